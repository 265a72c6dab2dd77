/* config.c - run options: the table, the pipeline file and the flags. */
#include "config.h"
#include "driver.h"
#include "gather.h"
#include "graph.h"

#include <errno.h>
#include <jansson.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "jsonpos.h"
#include "log.h"
#include "scaler.h"
#include "suggest.h"
#include "yamlpos.h"

#define OFF(f) offsetof(struct hop_config, f)
/* The longest any time may be (a year): its milliseconds stay well within
 * an int64_t. */
#define SECONDS_MAX "8760h"

/* The run options. Every value, from a flag or a pipeline file, is checked
 * against its bounds here (hop_opts_set); finish() checks only what depends
 * on two options at once. */
static const struct hop_option run_options[] = {
    /* --help adds the forms of the drivers in the registry. */
    {"source", HOP_OPT_STR, NULL, OFF(source_spec), "where items come from"},
    {"sink", HOP_OPT_STR, "jsonl:-", OFF(sink_spec), "where results go"},
    {"mode", HOP_OPT_STR, "stream", OFF(mode),
     "stream (one persistent worker per slot) or exec (a process per item)",
     .choices = "stream|exec"},
    {"workers", HOP_OPT_INT, "0", OFF(workers),
     "a fixed number of worker processes; 0 means one per available CPU",
     .min = "0", .max = "4096", .def_words = "one per CPU"},
    /* No default: hop_config_load starts both at -1, unset, and setting
     * either one turns autoscaling on. */
    {"min_workers", HOP_OPT_INT, NULL, OFF(min_workers),
     "autoscale: the fewest workers, 0 to scale to zero when idle", .min = "0",
     .max = "4096", .def_words = "1 when max_workers is set"},
    {"max_workers", HOP_OPT_INT, NULL, OFF(max_workers),
     "autoscale: the most workers", .min = "1", .max = "4096",
     .def_words = "the CPUs this process may use, cgroup limits included"},
    /* No default: -1 until the stages are known (share_workers). */
    {"shared_workers", HOP_OPT_INT, NULL, OFF(shared_workers),
     "stages that set neither workers nor max_workers autoscale and run "
     "this many workers together at most, shared in proportion to demand",
     .min = "1", .max = "4096",
     .def_words = "the CPUs available, less what the other stages may run"},
    {"scale_window", HOP_OPT_SECONDS, "30", OFF(scale_window),
     "autoscale: demand must stay lower this long before workers retire",
     .min = "0", .max = SECONDS_MAX},
    {"drain_target", HOP_OPT_SECONDS, "10", OFF(drain_target),
     "autoscale: enough workers to drain the backlog within this", .min = "1ms",
     .max = SECONDS_MAX},
    {"utilization", HOP_OPT_INT, "80", OFF(utilization),
     "autoscale: percent of the time workers should be busy with arrivals",
     .min = "1", .max = "100"},
    {"trace", HOP_OPT_STR, NULL, OFF(trace),
     "write a CSV time series (depth, workers, throughput; each stage's "
     "too) to this file"},
    {"prefetch", HOP_OPT_INT, "1", OFF(prefetch),
     "stream mode: items queued on each worker's stdin", .min = "1",
     .max = "65536"},
    {"timeout", HOP_OPT_SECONDS, "300", OFF(timeout),
     "per-item deadline, extended by progress lines; 0 for none", .min = "0",
     .max = SECONDS_MAX},
    {"attempts", HOP_OPT_INT, "3", OFF(attempts),
     "attempts per item before it is dead", .min = "1", .max = "1000000"},
    {"backoff", HOP_OPT_SECONDS, "1", OFF(backoff),
     "wait before the second attempt, doubled each time, with jitter",
     .min = "0", .max = SECONDS_MAX},
    {"backoff_max", HOP_OPT_SECONDS, "60", OFF(backoff_max),
     "longest wait between attempts", .min = "0", .max = SECONDS_MAX},
    {"grace", HOP_OPT_SECONDS, "30", OFF(grace),
     "on SIGTERM, how long in-flight items may take to finish", .min = "0",
     .max = SECONDS_MAX},
    {"kill_timeout", HOP_OPT_SECONDS, "5", OFF(kill_timeout),
     "from SIGTERM to SIGKILL when a worker must stop", .min = "0",
     .max = SECONDS_MAX},
    {"watch", HOP_OPT_BOOL, "false", OFF(watch),
     "keep running and take new items as they arrive (--once: finish)"},
    {"max_line", HOP_OPT_SIZE, "16M", OFF(max_line),
     "longest line a worker or a jsonl source may send", .min = "1K",
     .max = "1G"},
    {"log_format", HOP_OPT_STR, "text", OFF(log_format), "text or json",
     .choices = "text|json"},
    {"log_level", HOP_OPT_STR, "info", OFF(log_level),
     "debug, info, warn or error", .choices = "debug|info|warn|error"},
    {"listen", HOP_OPT_STR, NULL, OFF(listen),
     "serve the console (/), /metrics, /healthz, /readyz and /status on "
     "HOST:PORT (a bare PORT means 127.0.0.1; also HOPPER_LISTEN); off when "
     "unset"},
    {"admin_token_file", HOP_OPT_STR, NULL, OFF(admin_token_file),
     "allow the console's actions (retry or discard a dead letter, pause "
     "or resume a stage, set its most workers) to requests that carry the "
     "token in this file; actions are off when unset"},
    {"private", HOP_OPT_BOOL, "false", OFF(private_reads),
     "with admin_token_file: the console's data (/api/...) and /status "
     "answer only requests that carry the token too (/metrics, /healthz and "
     "/readyz stay open)"},
    {"progress", HOP_OPT_BOOL, "true", OFF(progress),
     "a progress line on stderr when it is a terminal and the run is "
     "finite (--no-progress: none)"},
    {"halt", HOP_OPT_STR, "never", OFF(halt),
     "stop the run early when attempts fail, as GNU parallel's --halt: "
     "now,fail=N or soon,fail=N after N failed attempts, now,fail=P% or "
     "soon,fail=P% once P% of at least 10 attempts failed; now hands back "
     "what is in flight, soon lets it finish; exit status 4"},
    {"journal", HOP_OPT_STR, NULL, OFF(journal),
     "record each finished item's id in this file, and skip the items it "
     "records done or dead when the run is started again (as GNU "
     "parallel's --joblog with --resume); finite runs only"},
    {"resume_failed", HOP_OPT_BOOL, "false", OFF(resume_failed),
     "with journal: run again the items it records dead"},
    {"stage", HOP_OPT_STR, NULL, OFF(stage),
     "run only these stages of the pipeline file (a name, or names with "
     "commas; also HOPPER_STAGE): the others run in other coordinators, "
     "joined to these by the stages' via"},
    {NULL},
};

/* Single-letter flags and the options they stand for. */
static const struct {
	char flag;
	const char *key;
} shorts[] = {
    {'s', "source"},  {'o', "sink"},	{'m', "mode"},
    {'j', "workers"}, {'t', "timeout"}, {'f', "pipeline"},
};

/* A stage's keys that are not run options. */
struct stage_extra {
	int64_t shards;
	char *key;
	int64_t queue;
	char *unmapped;
	char *on_dead;
	struct hop_join_config *join;	  /* "join", parsed */
	struct hop_reduce_config *reduce; /* "reduce", parsed */
	const char *name;		  /* the stage's */
	struct hop_source *via_source;	  /* "via", made */
	struct hop_sink *via_sink;
};

#define SOFF(f) offsetof(struct stage_extra, f)

static const struct hop_option stage_options[] = {
    {"shards", HOP_OPT_INT, "1", SOFF(shards),
     "a sharder: this many queues and pools, and each output goes to the "
     "one its key picks (one key, one shard); needs key",
     .min = "1", .max = "1024"},
    {"key", HOP_OPT_STR, NULL, SOFF(key),
     "a sharder: a JSON pointer into the payload (\"/user\") that picks the "
     "shard, for the outputs that carry no \"key\" of their own"},
    {"queue", HOP_OPT_INT, "1000", SOFF(queue),
     "the most items waiting at the stage's input", .min = "1",
     .max = "10000000"},
    {"unmapped", HOP_OPT_STR, "error", SOFF(unmapped),
     "an output on a port that to does not map (and no \"*\" entry): error "
     "fails its item (no retry), drop drops the output",
     .choices = "error|drop"},
    {"on_dead", HOP_OPT_STR, "root", SOFF(on_dead),
     "an item that dies here: root dead-letters the source's item it came "
     "from, with the stage, the path of ids and the error; alone writes it "
     "to the sink as failed and lets the rest of the tree go on",
     .choices = "root|alone"},
    {NULL},
};

/* The run options that each stage has its own of. */
static const char *const stage_run_keys[] = {
    "mode",    "workers",  "min_workers", "max_workers", "prefetch",
    "timeout", "attempts", "backoff",	  "backoff_max"};

/* Help text columns: where the meaning starts, and the width it wraps at. */
#define HELP_COL 29
#define HELP_WIDTH 79

/* Writes text from column col (the cursor is there), wrapped at HELP_WIDTH
 * with the following lines indented to col, then a newline. */
static void wrap(FILE *out, int col, const char *text)
{
	int at = col;
	for (const char *p = text; *p;) {
		size_t word = strcspn(p, " ");
		if (at > col && at + 1 + (int)word > HELP_WIDTH) {
			fprintf(out, "\n%*s", col, "");
			at = col;
		} else if (at > col) {
			fputc(' ', out);
			at++;
		}
		fwrite(p, 1, word, out);
		at += (int)word;
		p += word;
		while (*p == ' ')
			p++;
	}
	fputc('\n', out);
}

/* Writes one flag of --help: "  -j, --workers N", then its meaning. */
static void flag_line(FILE *out, char s, const char *left, const char *text)
{
	char head[64];
	snprintf(head, sizeof(head), "  %s%c%s %s", s ? "-" : " ", s ? s : ' ',
		 s ? "," : " ", left);
	fprintf(out, "%-*s", HELP_COL - 1, head);
	if ((int)strlen(head) >= HELP_COL - 1)
		fprintf(out, "\n%*s", HELP_COL - 1, "");
	fputc(' ', out);
	wrap(out, HELP_COL, text);
}

/* Writes the option's help followed by its default in words and bounds:
 * "attempts per item (default: 3; 1..1000000)". */
static void option_text(const struct hop_option *o, char *buf, size_t n)
{
	char def[128], range[128], help[512];
	const struct hop_registry *r =
	    !strcmp(o->key, "source") ? &hop_source_drivers
	    : !strcmp(o->key, "sink") ? &hop_sink_drivers
				      : NULL;
	if (r) {
		int w = snprintf(help, sizeof(help), "%s: ", o->help);
		hop_driver_forms(r, help + w, sizeof(help) - (size_t)w);
	} else {
		snprintf(help, sizeof(help), "%s", o->help);
	}
	hop_opts_default_words(o, def, sizeof(def));
	if (o->type == HOP_OPT_STR)
		range[0] = '\0'; /* the help names the choices in words */
	else
		hop_opts_range(o, range, sizeof(range));
	if (def[0] || range[0])
		snprintf(buf, n, "%s (%s%s%s%s)", help,
			 def[0] ? "default: " : "", def,
			 def[0] && range[0] ? "; " : "", range);
	else
		snprintf(buf, n, "%s", help);
}

void hop_config_help(FILE *out)
{
	char text[1024];
	flag_line(out, 'f', "--pipeline FILE",
		  "read settings from a pipeline file (flags override it; "
		  "hopper help pipeline)");
	for (const struct hop_option *o = run_options; o->key; o++) {
		char flag[48], left[64];
		char s = 0;
		for (size_t i = 0; i < sizeof(shorts) / sizeof(shorts[0]); i++)
			if (strcmp(shorts[i].key, o->key) == 0)
				s = shorts[i].flag;
		snprintf(flag, sizeof(flag), "%s", o->key);
		for (char *p = flag; *p; p++)
			if (*p == '_')
				*p = '-';
		if (o->type == HOP_OPT_BOOL)
			snprintf(left, sizeof(left), "--%s", flag);
		else
			snprintf(left, sizeof(left), "--%s %s", flag,
				 o->type == HOP_OPT_INT	      ? "N"
				 : o->type == HOP_OPT_SECONDS ? "SECS"
				 : o->type == HOP_OPT_SIZE    ? "BYTES"
							      : "TEXT");
		option_text(o, text, sizeof(text));
		flag_line(out, s, left, text);
	}
	flag_line(out, 0, "--once",
		  "finish when the source runs dry (the default)");
	flag_line(out, 0, "--no-progress", "no progress line");
	flag_line(out, 'S', "--source-opt KEY=VAL",
		  "set a source option (hopper help sources)");
	flag_line(out, 'O', "--sink-opt KEY=VAL",
		  "set a sink option (hopper help sinks)");
}

/* Writes one key of hopper help pipeline: its name and kind, then its
 * meaning on the lines below. */
static void help_key(FILE *out, const char *key, const char *kind,
		     const char *help)
{
	fprintf(out, "  %-*s", HELP_COL - 3, key);
	wrap(out, HELP_COL - 1, kind);
	fprintf(out, "%*s", HELP_COL - 1, "");
	wrap(out, HELP_COL - 1, help);
}

/* The keys of a stage, for hopper help pipeline. */
static void help_options(FILE *out, const struct hop_option *table,
			 const char *prefix);

static void help_stage_keys(FILE *out)
{
	char runs[256] = "";
	for (size_t i = 0; i < sizeof(stage_run_keys) / sizeof(*stage_run_keys);
	     i++) {
		size_t n = strlen(runs);
		snprintf(runs + n, sizeof(runs) - n, "%s%s", i ? ", " : "",
			 stage_run_keys[i]);
	}
	fprintf(out, "\nstage keys (in stages):\n");
	help_key(out, "command", "[\"PROGRAM\", \"ARG\", ...] or text",
		 "the stage's worker, as above (required)");
	fprintf(out, "  %-*s", HELP_COL - 3, "run options");
	wrap(out, HELP_COL - 1, runs);
	fprintf(out, "%*s", HELP_COL - 1, "");
	wrap(out, HELP_COL - 1, "as above, for this stage");
	help_key(
	    out, "to", "NAME, [NAME, ...] or {PORT: NAME or [NAME, ...], ...}",
	    "where the stage's outputs go: a stage or a sink; each of a "
	    "list (a copier); or by the output's port (a splitter), \"*\" "
	    "for the ports not named and outputs without one; default: the "
	    "only sink");
	help_options(out, stage_options, "");
	help_key(out, "join", "true or {KEY: VALUE, ...}",
		 "a join: the stage gathers the items of each source item's "
		 "tree that reach it (its parts) and, once nothing else of "
		 "that tree is on its way, hands on one item: {\"id\", "
		 "\"root\": the source item's payload, \"parts\": [...] in "
		 "order, \"errors\": [...]}; with by, the parts of any tree "
		 "that share a key, {\"key\", \"parts\"}; to its command, or "
		 "straight on without one; its keys are join.KEY below");
	help_options(out, hop_join_options, "join.");
	help_key(out, "reduce", "{KEY: VALUE, ...}",
		 "a reduce: the stage folds every item that reaches it into a "
		 "result per key, written when everything before it has "
		 "finished (or per window); with op, itself; with a command "
		 "and no op, by a reducer worker ({\"key\", \"acc\", "
		 "\"items\"} in, the new accumulator out); the source items "
		 "behind a result are acknowledged once it is written; its "
		 "keys are reduce.KEY below");
	help_key(out, "reduce.buckets", "[NUMBER, ...]",
		 "histogram: the bucket edges, ascending; counts below the "
		 "first, between each two, and from the last up; without it, "
		 "a count per value");
	help_options(out, hop_reduce_options, "reduce.");
}

/* Writes a table of options as stage keys, each named prefix + key. */
static void help_options(FILE *out, const struct hop_option *table,
			 const char *prefix)
{
	char text[256], def[128], range[128], key[64];
	for (const struct hop_option *o = table; o->key; o++) {
		int n = snprintf(text, sizeof(text), "%s",
				 hop_opts_type_word(o->type));
		hop_opts_range(o, range, sizeof(range));
		hop_opts_default_words(o, def, sizeof(def));
		if (range[0] && n > 0 && (size_t)n < sizeof(text))
			n += snprintf(text + n, sizeof(text) - (size_t)n,
				      o->choices ? ": %s" : ", %s", range);
		if (n > 0 && (size_t)n < sizeof(text))
			snprintf(text + n, sizeof(text) - (size_t)n,
				 "; default: %s", def[0] ? def : "none");
		snprintf(key, sizeof(key), "%s%s", prefix, o->key);
		help_key(out, key, text, o->help);
	}
}

void hop_config_help_pipeline(FILE *out)
{
	static const struct {
		const char *key, *kind, *help;
	} others[] = {
	    {"source", "NAME:TARGET or {\"type\": NAME, OPTION: VALUE, ...}",
	     "where items come from; the options are those of hopper help "
	     "sources (required)"},
	    {"sink", "the same, default jsonl:-",
	     "where results go; the options are those of hopper help sinks"},
	    {"command", "[\"PROGRAM\", \"ARG\", ...] or text",
	     "the worker command; text is run by /bin/sh -c (required)"},
	    {"stages", "{NAME: {\"command\": ..., KEY: VALUE, ...}, ...}",
	     "several steps, each a worker command with its own pool; the "
	     "stage keys are below, and the run options above them are every "
	     "stage's defaults (a flag wins over both, in every stage); "
	     "instead of command"},
	    {"sources", "{NAME: {\"type\": NAME, \"to\": STAGE, ...}, ...}",
	     "several named sources, each as source is, plus to: the stage "
	     "(or list of stages) its items go to; instead of source"},
	    {"sinks", "{NAME: {\"type\": NAME, ...}, ...}",
	     "several named sinks, each as sink is; instead of sink"},
	    {"description", "text", "words for people; hopper ignores them"},
	    {"x-...", "anything",
	     "keys that begin with x- are ignored: a place for YAML anchors"},
	};
	char text[1024], def[128], range[128];

	fprintf(out,
		"A pipeline file is one JSON object, or a YAML mapping when "
		"its name ends\n"
		"in .yaml or .yml: hopper run -f FILE runs it, hopper validate "
		"FILE checks\n"
		"it. Strings may use ${VAR} and ${VAR:-default} from the "
		"environment;\n"
		"flags on the command line win over the file. A key is spelled "
		"as its\n"
		"flag is or with underscores (backoff-max, backoff_max).\n\n"
		"example:\n"
		"  {\n"
		"    \"source\": {\"type\": \"dir\", \"path\": \"in\", "
		"\"glob\": \"*.txt\"},\n"
		"    \"sink\": \"jsonl:results.jsonl\",\n"
		"    \"command\": [\"python3\", "
		"\"worker/examples/python/word_count.py\"],\n"
		"    \"workers\": 2,\n"
		"    \"timeout\": \"30s\"\n"
		"  }\n\n"
		"the same in YAML:\n"
		"  source: {type: dir, path: in, glob: \"*.txt\"}\n"
		"  sink: jsonl:results.jsonl\n"
		"  command: [python3, worker/examples/python/word_count.py]\n"
		"  workers: 2\n"
		"  timeout: 30s   # comments are welcome\n\n"
		"keys:\n");
	for (size_t i = 0; i < sizeof(others) / sizeof(*others); i++) {
		fprintf(out, "  %-*s%s\n%*s", HELP_COL - 3, others[i].key,
			others[i].kind, HELP_COL - 1, "");
		wrap(out, HELP_COL - 1, others[i].help);
	}
	for (const struct hop_option *o = run_options; o->key; o++) {
		/* A file's source and sink are its first keys, above. */
		if (!strcmp(o->key, "source") || !strcmp(o->key, "sink"))
			continue;
		int n = snprintf(text, sizeof(text), "%s",
				 hop_opts_type_word(o->type));
		hop_opts_range(o, range, sizeof(range));
		hop_opts_default_words(o, def, sizeof(def));
		if (range[0] && n > 0 && (size_t)n < sizeof(text))
			n += snprintf(text + n, sizeof(text) - (size_t)n,
				      o->choices ? ": %s" : ", %s", range);
		if (n > 0 && (size_t)n < sizeof(text))
			snprintf(text + n, sizeof(text) - (size_t)n,
				 "; default: %s", def[0] ? def : "none");
		fprintf(out, "  %-*s", HELP_COL - 3, o->key);
		wrap(out, HELP_COL - 1, text);
		fprintf(out, "%*s", HELP_COL - 1, "");
		wrap(out, HELP_COL - 1, o->help);
	}
	help_stage_keys(out);
}

/* A flag from the command line, kept until the pipeline file is read. */
struct flag {
	const char *key; /* run option, or "source-opt" / "sink-opt" */
	const char *value;
	const char *arg; /* as typed: "-j", "--workers=4" */
	bool joined;	 /* the value is part of arg */
};

/* A pipeline file as read: its name, its text and, for YAML, where its keys
 * and values stood (JSON's are found by scanning the text again). */
struct doc {
	const char *file;
	const char *text;
	struct hop_yaml_pos *yaml; /* NULL for JSON */
};

/* Where the settings came from, for messages that name the value at fault:
 * the pipeline file and the flags, the last flag winning. */
struct origin {
	const struct hop_config *cfg;
	const struct doc *doc; /* NULL without a pipeline file */
	const struct flag *flags;
	int nflags;
};

/* Finds the key at path in the file, or its value when value is set.
 * Returns 0 with the 1-based line and column, or -ENOENT. */
static int locate(const struct doc *d, const char *const *path, int depth,
		  bool value, int *line, int *col)
{
	if (d->yaml)
		return hop_yaml_locate(d->yaml, path, depth, value, line, col);
	return value ? hop_json_locate_value(d->text, path, depth, line, col)
		     : hop_json_locate(d->text, path, depth, line, col);
}

/* Writes "FILE:LINE:COL" of the key at path, or of its value when value is
 * set; "FILE" alone when it cannot be found. */
static int where(const struct doc *d, const char *const *path, int depth,
		 bool value, char *buf, size_t n)
{
	int line, col;
	if (d->text && locate(d, path, depth, value, &line, &col) == 0)
		return snprintf(buf, n, "%s:%d:%d", d->file, line, col);
	return snprintf(buf, n, "%s", d->file);
}

/* Writes a flag as it was typed ("-j1", "--workers 3") to buf. */
static const char *flag_text(const struct flag *fl, char *buf, size_t n)
{
	if (fl->joined)
		snprintf(buf, n, "%s", fl->arg);
	else
		snprintf(buf, n, "%s %s", fl->arg, fl->value);
	return buf;
}

/* Names where a run option's value came from: the flag that set it last
 * ("-j 8", "--workers=8"), else its place in the pipeline file (in the
 * stage, when stage is not NULL, then at the top), else "KEY (default)". */
static const char *blame_in(const struct origin *o, const char *stage,
			    const char *key, char *buf, size_t n)
{
	for (int f = o->nflags - 1; f >= 0; f--) {
		const struct flag *fl = &o->flags[f];
		if (strcmp(fl->key, key))
			continue;
		return flag_text(fl, buf, n);
	}
	if (o->doc) {
		int line, col;
		if ((stage &&
		     locate(o->doc, (const char *[]){"stages", stage, key}, 3,
			    true, &line, &col) == 0) ||
		    locate(o->doc, &key, 1, true, &line, &col) == 0) {
			snprintf(buf, n, "%s:%d:%d", o->doc->file, line, col);
			return buf;
		}
	}
	snprintf(buf, n, "%s (default)", key);
	return buf;
}

static const char *blame(const struct origin *o, const char *key, char *buf,
			 size_t n)
{
	return blame_in(o, NULL, key, buf, n);
}

/* Names where an option of source (or sink) i came from: the last
 * --source-opt or --sink-opt flag that set it (or --source/--sink for the
 * first option, the target), for the first one; else its place in the
 * pipeline file (the driver's value itself when the option is not written
 * out there); else "source option KEY". */
static const char *blame_driver(const struct origin *o, bool is_source, int i,
				const char *key, char *buf, size_t n)
{
	const char *what = is_source ? "source" : "sink";
	const char *group = is_source ? "sources" : "sinks";
	const char *opt = is_source ? "source-opt" : "sink-opt";
	const struct hop_option *t = is_source
					 ? o->cfg->sources[i]->ops->options
					 : o->cfg->sinks[i]->ops->options;
	const char *name =
	    is_source ? o->cfg->source_names[i] : o->cfg->sink_names[i];
	size_t kl = key ? strlen(key) : 0;
	bool target = key && t->key && strcmp(t->key, key) == 0;

	for (int f = o->nflags - 1; key && i == 0 && f >= 0; f--) {
		const struct flag *fl = &o->flags[f];
		bool set = !strcmp(fl->key, opt) &&
			   !strncmp(fl->value, key, kl) && fl->value[kl] == '=';
		if (!set && !(target && !strcmp(fl->key, what)))
			continue;
		return flag_text(fl, buf, n);
	}
	if (o->doc) {
		int line, col;
		/* "sources": {NAME: {KEY: ...}}, or "source": {KEY: ...}. */
		bool named = locate(o->doc, &group, 1, false, &line, &col) == 0;
		const char *at[3] = {named ? group : what, named ? name : key,
				     key};
		int depth = named ? 2 : 1;
		if ((key &&
		     locate(o->doc, at, depth + 1, true, &line, &col) == 0) ||
		    locate(o->doc, at, depth, true, &line, &col) == 0) {
			snprintf(buf, n, "%s:%d:%d", o->doc->file, line, col);
			return buf;
		}
	}
	snprintf(buf, n, "%s option %s", what, key ? key : "");
	return buf;
}

/* Runs the sources' and the sinks' checks: what their open would refuse
 * about the options, found without opening them. */
static int check_drivers(struct hop_config *cfg, const struct origin *o,
			 char *err, size_t errlen)
{
	char at[320];
	const char *key;

	for (int i = 0; i < cfg->nsources; i++)
		if (hop_source_check(cfg->sources[i], &key)) {
			snprintf(err, errlen, "%s: %s",
				 blame_driver(o, true, i, key, at, sizeof(at)),
				 cfg->sources[i]->error);
			return -EINVAL;
		}
	for (int i = 0; i < cfg->nsinks; i++)
		if (hop_sink_check(cfg->sinks[i], &key)) {
			snprintf(err, errlen, "%s: %s",
				 blame_driver(o, false, i, key, at, sizeof(at)),
				 cfg->sinks[i]->error);
			return -EINVAL;
		}
	return 0;
}

/* Expands ${VAR} in every string of v, in place. */
static int expand_tree(json_t *v, char *err, size_t errlen)
{
	if (json_is_string(v)) {
		char *s = hop_expand_env(json_string_value(v), err, errlen);
		if (!s)
			return -EINVAL;
		json_string_set(v, s);
		free(s);
	} else if (json_is_object(v)) {
		const char *k;
		json_t *e;
		json_object_foreach(
		    v, k, e) if (expand_tree(e, err, errlen)) return -EINVAL;
	} else if (json_is_array(v)) {
		size_t i;
		json_t *e;
		json_array_foreach(
		    v, i, e) if (expand_tree(e, err, errlen)) return -EINVAL;
	}
	return 0;
}

static int set_command(struct hop_config *cfg, json_t *v, char *err,
		       size_t errlen)
{
	size_t n = json_is_array(v) ? json_array_size(v) : 3;
	if (!json_is_array(v) && !json_is_string(v)) {
		snprintf(err, errlen,
			 "'command' must be an array of strings or a "
			 "shell command line");
		return -EINVAL;
	}
	if (n == 0) {
		snprintf(err, errlen, "'command' is empty");
		return -EINVAL;
	}
	char **argv = calloc(n + 1, sizeof(char *));
	if (!argv)
		return -ENOMEM;
	if (json_is_string(v)) {
		argv[0] = strdup("/bin/sh");
		argv[1] = strdup("-c");
		argv[2] = strdup(json_string_value(v));
		free(cfg->shell_command);
		cfg->shell_command = strdup(json_string_value(v));
	} else {
		for (size_t i = 0; i < n; i++) {
			json_t *a = json_array_get(v, i);
			/* A whole number is its digits ("--width", 320): YAML
			 * users write it unquoted. */
			if (json_is_integer(a)) {
				char num[32];
				snprintf(num, sizeof(num),
					 "%" JSON_INTEGER_FORMAT,
					 json_integer_value(a));
				argv[i] = strdup(num);
				continue;
			}
			if (!json_is_string(a)) {
				snprintf(
				    err, errlen,
				    "'command' element %zu is not a string", i);
				for (size_t j = 0; j < i; j++)
					free(argv[j]);
				free(argv);
				return -EINVAL;
			}
			argv[i] = strdup(json_string_value(a));
		}
	}
	cfg->argv = argv;
	return 0;
}

/* Makes the source (or sink) named by spec the run's, freeing the one it
 * replaces. Returns 0 or -EINVAL with a message in err. */
static int replace_driver(struct hop_config *cfg, bool is_source,
			  const char *spec, char *err, size_t errlen)
{
	if (is_source) {
		struct hop_source *src = hop_source_new(spec, err, errlen);
		if (!src)
			return -EINVAL;
		hop_source_free(cfg->source);
		cfg->source = src;
		if (cfg->nsources)
			cfg->sources[0] = src;
	} else {
		struct hop_sink *sink = hop_sink_new(spec, err, errlen);
		if (!sink)
			return -EINVAL;
		hop_sink_free(cfg->sink);
		cfg->sink = sink;
		if (cfg->nsinks)
			cfg->sinks[0] = sink;
	}
	return 0;
}

/* Frees a source or a sink. */
static void driver_free(bool is_source, void *drv)
{
	if (is_source)
		hop_source_free(drv);
	else
		hop_sink_free(drv);
}

/* Builds a source or sink from a pipeline file's value at path ("source",
 * or "sources", NAME): "name:target" or {"type": name, option: value, ...}.
 * A source's "to" is the graph's, read later. what names it in messages
 * ("source", "sink 'log'"). Returns the driver, or NULL with the message,
 * naming FILE:LINE:COL, in err. */
static void *new_driver(bool is_source, json_t *v, const struct doc *d,
			const char *const *path, int depth, const char *what,
			char *err, size_t errlen)
{
	char msg[600], pos[300];
	const char *spec = NULL;
	void *drv;

	if (json_is_string(v)) {
		spec = json_string_value(v);
	} else if (json_is_object(v) &&
		   json_is_string(json_object_get(v, "type"))) {
		spec = json_string_value(json_object_get(v, "type"));
	} else {
		where(d, path, depth, true, pos, sizeof(pos));
		snprintf(err, errlen,
			 "%s: %s%s%s must be \"name:target\" or an object "
			 "with a \"type\"",
			 pos, depth > 1 ? "" : "'", what, depth > 1 ? "" : "'");
		return NULL;
	}
	drv = is_source ? (void *)hop_source_new(spec, msg, sizeof(msg))
			: (void *)hop_sink_new(spec, msg, sizeof(msg));
	if (!drv) {
		where(d, path, depth, true, pos, sizeof(pos));
		snprintf(err, errlen, "%s: %s", pos, msg);
		return NULL;
	}
	const struct hop_option *table =
	    is_source ? ((struct hop_source *)drv)->ops->options
		      : ((struct hop_sink *)drv)->ops->options;
	void *ctx = is_source ? ((struct hop_source *)drv)->ctx
			      : ((struct hop_sink *)drv)->ctx;
	const char *k;
	json_t *e;
	json_object_foreach(json_is_object(v) ? v : NULL, k, e)
	{
		if (strcmp(k, "type") == 0 || (is_source && !strcmp(k, "to")))
			continue;
		if (hop_opts_set_json(table, ctx, k, e, msg, sizeof(msg))) {
			const char *at[3] = {path[0], depth > 1 ? path[1] : k,
					     k};
			/* An unknown key is the key's fault, a bad value the
			 * value's. */
			where(d, at, depth + 1, hop_opts_find(table, k) != NULL,
			      pos, sizeof(pos));
			snprintf(err, errlen, "%s: %s %s", pos, what, msg);
			driver_free(is_source, drv);
			return NULL;
		}
	}
	return drv;
}

/* Builds the file's one source or sink, replacing the run's. */
static int set_driver(struct hop_config *cfg, bool is_source, json_t *v,
		      const struct doc *d, char *err, size_t errlen)
{
	const char *what = is_source ? "source" : "sink";
	void *drv = new_driver(is_source, v, d, &what, 1, what, err, errlen);
	if (!drv)
		return -EINVAL;
	if (is_source) {
		hop_source_free(cfg->source);
		cfg->source = drv;
	} else {
		hop_sink_free(cfg->sink);
		cfg->sink = drv;
	}
	return 0;
}

/* True for a name a stage, source or sink may have: it is shown in logs,
 * metrics labels and graphs as it is. */
static bool good_name(const char *name)
{
	size_t n = strlen(name);
	return n > 0 && n <= 64 &&
	       strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW"
			    "XYZ0123456789_-.") == n;
}

/* Names a name's fault in err ("FILE:LINE:COL: stage name 'a b' ..."), at
 * the key path..name. Returns -EINVAL. */
static int bad_name(const struct doc *d, const char *kind, const char *group,
		    const char *name, char *err, size_t errlen)
{
	char pos[300];
	where(d, (const char *[]){group, name}, 2, false, pos, sizeof(pos));
	snprintf(err, errlen,
		 "%s: %s name '%s' may hold only letters, digits, '_', '-' "
		 "and '.' (at most 64 of them)",
		 pos, kind, name);
	return -EINVAL;
}

/* Builds the file's named sources ("sources") or sinks ("sinks"): the
 * first of them becomes the run's source or sink. */
static int set_named_drivers(struct hop_config *cfg, bool is_source, json_t *v,
			     const struct doc *d, char *err, size_t errlen)
{
	const char *group = is_source ? "sources" : "sinks";
	const char *kind = is_source ? "source" : "sink";
	char pos[300], what[96];
	size_t n = json_is_object(v) ? json_object_size(v) : 0;

	if (n == 0) {
		where(d, &group, 1, true, pos, sizeof(pos));
		snprintf(err, errlen,
			 "%s: '%s' must be an object naming one %s or more: "
			 "{\"NAME\": {\"type\": ...}}",
			 pos, group, kind);
		return -EINVAL;
	}
	void **drivers = calloc(n, sizeof(void *));
	char **names = calloc(n, sizeof(char *));
	if (!drivers || !names) {
		free(drivers);
		free(names);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (is_source) {
		cfg->sources = (struct hop_source **)drivers;
		cfg->source_names = names;
	} else {
		cfg->sinks = (struct hop_sink **)drivers;
		cfg->sink_names = names;
	}
	const char *name;
	json_t *e;
	json_object_foreach(v, name, e)
	{
		if (!good_name(name))
			return bad_name(d, kind, group, name, err, errlen);
		snprintf(what, sizeof(what), "%s '%s'", kind, name);
		void *drv =
		    new_driver(is_source, e, d, (const char *[]){group, name},
			       2, what, err, errlen);
		if (!drv)
			return -EINVAL;
		int *count = is_source ? &cfg->nsources : &cfg->nsinks;
		drivers[*count] = drv;
		names[*count] = strdup(name);
		if ((*count)++ > 0)
			continue;
		if (is_source)
			cfg->source = drv;
		else
			cfg->sink = drv;
	}
	return 0;
}

/* Reads a whole file into a malloc'd, NUL-terminated *text. Returns 0 or
 * -errno with a message in err. */
static int read_text(const char *file, char **text, size_t *len, char *err,
		     size_t errlen)
{
	FILE *f = fopen(file, "re");
	if (!f) {
		int rc = -errno;
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		return rc;
	}
	*text = NULL;
	*len = 0;
	FILE *m = open_memstream(text, len);
	char chunk[8192];
	size_t n;
	while (m && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, n, m);
	fclose(f);
	if (!m || fclose(m)) {
		snprintf(err, errlen, "%s: cannot read", file);
		free(*text);
		*text = NULL;
		return -EIO;
	}
	return 0;
}

/* The keys of a pipeline file that are not run options. */
static const char *const file_keys[] = {
    "source", "sink", "command", "description", "stages", "sources", "sinks"};

/* Applies one top-level key of a pipeline file other than source and sink.
 * Returns 0, or -EINVAL with the message (without a position) in msg and
 * *at_value saying whether the value (or else the key) is at fault. */
static int file_key(struct hop_config *cfg, const char *k, json_t *v,
		    bool *at_value, char *msg, size_t msglen)
{
	*at_value = true;
	if (strcmp(k, "command") == 0)
		return set_command(cfg, v, msg, msglen);
	if (strcmp(k, "pipeline") == 0) {
		*at_value = false;
		snprintf(msg, msglen, "a pipeline file cannot name another");
		return -EINVAL;
	}
	if (hop_opts_find(stage_options, k) || strcmp(k, "to") == 0) {
		*at_value = false;
		snprintf(msg, msglen,
			 "'%s' is a stage's key: put it in a stage of "
			 "\"stages\" (hopper help pipeline)",
			 k);
		return -EINVAL;
	}
	if (!hop_opts_find(run_options, k)) {
		struct hop_suggest s;
		char near[64];
		*at_value = false;
		hop_suggest_init(&s, k);
		for (size_t i = 0; i < sizeof(file_keys) / sizeof(*file_keys);
		     i++)
			hop_suggest_offer(&s, file_keys[i]);
		for (const struct hop_option *o = run_options; o->key; o++)
			hop_suggest_offer(&s, o->key);
		if (hop_suggest_spelled(&s, near, sizeof(near)))
			snprintf(msg, msglen,
				 "unknown key '%s'; did you mean '%s'?", k,
				 near);
		else
			snprintf(msg, msglen,
				 "unknown key '%s' (known: source, sink, "
				 "command, description, stages, sources, sinks "
				 "and the run options of hopper run --help)",
				 k);
		return -EINVAL;
	}
	return hop_opts_set_json(run_options, cfg, k, v, msg, msglen);
}

/* Returns the key before k in root that names the same option as k
 * ("backoff-max" and "backoff_max"), or NULL. */
static const char *same_key_before(json_t *root, const char *k)
{
	const char *other;
	json_t *v;
	json_object_foreach(root, other, v)
	{
		if (other == k || strcmp(other, k) == 0)
			return NULL;
		if (hop_opts_key_equal(other, k))
			return other;
	}
	return NULL;
}

/* Parses the file's text as YAML when its name says so, else as JSON.
 * Returns the tree, or NULL with the error, naming FILE:LINE:COL, in err. */
static json_t *parse(struct doc *d, size_t len, char *err, size_t errlen)
{
	char msg[600];
	json_error_t jerr;
	json_t *root;

	if (hop_yaml_named(d->file)) {
		root = hop_yaml_load(d->text, len, &d->yaml, msg, sizeof(msg));
		if (!root)
			snprintf(err, errlen, "%s:%s", d->file, msg);
	} else {
		root = json_loadb(d->text, len, JSON_REJECT_DUPLICATES, &jerr);
		if (!root)
			snprintf(err, errlen, "%s:%d:%d: invalid JSON: %s",
				 d->file, jerr.line, jerr.column, jerr.text);
	}
	if (root && !json_is_object(root)) {
		snprintf(err, errlen, "%s: a pipeline file is a %s", d->file,
			 d->yaml ? "YAML mapping of keys" : "JSON object");
		json_decref(root);
		root = NULL;
	}
	return root;
}

/* Refuses two keys of the file that say one thing twice ("source" and
 * "sources"), or that do not go together ("command" beside "stages"). */
static int keys_in_conflict(json_t *root, const struct doc *d, char *err,
			    size_t errlen)
{
	static const struct {
		const char *a, *b, *why;
	} pairs[] = {
	    {"source", "sources", "one source, or named sources: not both"},
	    {"sink", "sinks", "one sink, or named sinks: not both"},
	    {"command", "stages",
	     "a file with stages gives each stage its own command"},
	};
	char pos[300];
	for (size_t i = 0; i < sizeof(pairs) / sizeof(*pairs); i++) {
		if (!json_object_get(root, pairs[i].a) ||
		    !json_object_get(root, pairs[i].b))
			continue;
		where(d, &pairs[i].a, 1, false, pos, sizeof(pos));
		snprintf(err, errlen, "%s: '%s' beside '%s': %s", pos,
			 pairs[i].a, pairs[i].b, pairs[i].why);
		return -EINVAL;
	}
	return 0;
}

/* Reads the file's top-level keys into cfg; its stages and the routes are
 * read from *rootp (a new reference, the caller's) once the flags are in. */
static int load_file(struct hop_config *cfg, struct doc *d, size_t len,
		     json_t **rootp, char *err, size_t errlen)
{
	char msg[600], pos[300];
	bool at_value;

	json_t *root = parse(d, len, err, errlen);
	*rootp = root;
	if (!root || keys_in_conflict(root, d, err, errlen))
		return -EINVAL;
	const char *k;
	json_t *v;
	json_object_foreach(root, k, v)
	{
		const char *twin = same_key_before(root, k);
		if (twin) {
			where(d, &twin, 1, false, pos, sizeof(pos));
			snprintf(err, errlen,
				 "%s: '%s' and '%s' are the same key: keep one",
				 pos, twin, k);
			return -EINVAL;
		}
		if (expand_tree(v, msg, sizeof(msg))) {
			where(d, &k, 1, true, pos, sizeof(pos));
			snprintf(err, errlen, "%s: '%s': %s", pos, k, msg);
			return -EINVAL;
		}
		/* "x-" keys are the reader's own, as in compose files: a
		 * place for YAML anchors, say. */
		if (strcmp(k, "description") == 0 || strncmp(k, "x-", 2) == 0)
			continue;
		if (strcmp(k, "source") == 0 || strcmp(k, "sink") == 0) {
			if (set_driver(cfg, k[1] == 'o', v, d, err, errlen))
				return -EINVAL;
			continue;
		}
		if (strcmp(k, "sources") == 0 || strcmp(k, "sinks") == 0) {
			if (set_named_drivers(cfg, k[1] == 'o', v, d, err,
					      errlen))
				return -EINVAL;
			continue;
		}
		if (strcmp(k, "stages") == 0) {
			if (!json_is_object(v) || json_object_size(v) == 0) {
				where(d, &k, 1, true, pos, sizeof(pos));
				snprintf(err, errlen,
					 "%s: 'stages' must be an object "
					 "naming one stage or more: "
					 "{\"NAME\": {\"command\": ...}}",
					 pos);
				return -EINVAL;
			}
			cfg->staged = true;
			continue;
		}
		if (file_key(cfg, k, v, &at_value, msg, sizeof(msg))) {
			where(d, &k, 1, at_value, pos, sizeof(pos));
			snprintf(err, errlen, "%s: %s", pos, msg);
			return -EINVAL;
		}
	}
	return 0;
}

static const char *long_key(const char *name, char *buf, size_t n)
{
	snprintf(buf, n, "%s", name);
	for (char *p = buf; *p; p++)
		if (*p == '-')
			*p = '_';
	return buf;
}

/* Applies a driver option "KEY=VALUE" given on the command line. */
static int driver_flag(struct hop_config *cfg, bool is_source, const char *kv,
		       char *err, size_t errlen)
{
	char key[128], msg[512];
	const char *eq = strchr(kv, '=');
	const char *flag = is_source ? "--source-opt" : "--sink-opt";
	if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof(key)) {
		snprintf(err, errlen, "%s '%s': expected KEY=VALUE", flag, kv);
		return -EINVAL;
	}
	memcpy(key, kv, (size_t)(eq - kv));
	key[eq - kv] = '\0';
	int rc =
	    is_source
		? hop_source_set(cfg->source, key, eq + 1, msg, sizeof(msg))
		: hop_sink_set(cfg->sink, key, eq + 1, msg, sizeof(msg));
	if (rc)
		snprintf(err, errlen, "%s %s: %s", flag, kv, msg);
	return rc;
}

/* Replaces the file's source or sink with the flag's spec unless both name
 * the same driver, in which case the flag's target is applied on top. */
static int driver_spec_flag(struct hop_config *cfg, bool is_source,
			    const char *spec, char *err, size_t errlen)
{
	char msg[512];
	const char *cur = is_source
			      ? (cfg->source ? cfg->source->ops->name : NULL)
			      : (cfg->sink ? cfg->sink->ops->name : NULL);
	size_t n = strcspn(spec, ":");
	if (cur && strlen(cur) == n && strncmp(cur, spec, n) == 0 && spec[n] &&
	    strncmp(spec + n, "://", 3) != 0) {
		const struct hop_option *t = is_source
						 ? cfg->source->ops->options
						 : cfg->sink->ops->options;
		void *ctx = is_source ? cfg->source->ctx : cfg->sink->ctx;
		return hop_opts_set(t, ctx, t->key, spec + n + 1, err, errlen);
	}
	if (replace_driver(cfg, is_source, spec, msg, sizeof(msg))) {
		snprintf(err, errlen, "--%s %s: %s",
			 is_source ? "source" : "sink", spec, msg);
		return -EINVAL;
	}
	return 0;
}

/* Names a driver for messages by its type and target: "dir:videos". */
static char *driver_label(const char *name, const struct hop_option *t,
			  void *ctx)
{
	char *label = NULL;
	const char *target = t->key && t->type == HOP_OPT_STR
				 ? *(char **)((char *)ctx + t->offset)
				 : NULL;
	if (target && strstr(target, "://"))
		label = hop_driver_label(target); /* without the password */
	else if (target && asprintf(&label, "%s:%s", name, target) < 0)
		label = NULL;
	return label ? label : strdup(name);
}

/* Replaces *label with the driver's type and target, when it has them. */
static void set_label(char **label, const char *name,
		      const struct hop_option *t, void *ctx)
{
	char *l = driver_label(name, t, ctx);
	if (l) {
		free(*label);
		*label = l;
	}
}

/* Makes the run's one source and sink, when the file did not name them,
 * sources[0] and sinks[0], called "main". Returns 0 or -ENOMEM. */
static int own_drivers(struct hop_config *cfg)
{
	if (cfg->nsources == 0) {
		cfg->sources = calloc(1, sizeof(*cfg->sources));
		cfg->source_names = calloc(1, sizeof(char *));
		if (!cfg->sources || !cfg->source_names)
			return -ENOMEM;
		cfg->sources[0] = cfg->source;
		cfg->source_names[0] = strdup("main");
		cfg->nsources = 1;
	}
	if (cfg->nsinks == 0) {
		cfg->sinks = calloc(1, sizeof(*cfg->sinks));
		cfg->sink_names = calloc(1, sizeof(char *));
		if (!cfg->sinks || !cfg->sink_names)
			return -ENOMEM;
		cfg->sinks[0] = cfg->sink;
		cfg->sink_names[0] = strdup("main");
		cfg->nsinks = 1;
	}
	return 0;
}

/* Reads halt: never, or (now|soon),fail=(N|P%). Returns false when it is
 * none of these. */
static bool parse_halt(struct hop_config *cfg)
{
	const char *h = cfg->halt, *f;
	char *end;

	if (strcmp(h, "never") == 0)
		return true;
	cfg->halt_now = strncmp(h, "now,", 4) == 0;
	f = cfg->halt_now ? h + 4 : strncmp(h, "soon,", 5) == 0 ? h + 5 : NULL;
	if (!f || strncmp(f, "fail=", 5) != 0)
		return false;
	errno = 0;
	double v = strtod(f + 5, &end);
	bool pct = *end == '%';
	if (end == f + 5 || errno || end[pct] != '\0')
		return false;
	if (pct && v > 0 && v <= 100)
		cfg->halt_pct = v;
	else if (!pct && v >= 1 && v <= 1e9 && v == (double)(int64_t)v)
		cfg->halt_fail = (int64_t)v;
	else
		return false;
	return true;
}

/* Sizes a pool from workers, min_workers and max_workers (of the run, or
 * of a stage when stage is not NULL): a fixed number, or autoscaling
 * between two, each unset one given its default. Returns 0, or -EINVAL
 * naming the places of the values in conflict. */
static int size_pool(struct hop_config *c, const struct origin *o,
		     const char *stage, char *err, size_t errlen)
{
	char at[320], at2[320], in[96] = "";

	if (stage)
		snprintf(in, sizeof(in), "stage '%s': ", stage);
	c->autoscale = c->min_workers >= 0 || c->max_workers >= 0;
	if (c->autoscale) {
		if (c->workers > 0) {
			blame_in(o, stage,
				 c->max_workers >= 0 ? "max_workers"
						     : "min_workers",
				 at2, sizeof(at2));
			snprintf(err, errlen,
				 "%s: %sworkers sets a fixed pool: use it or "
				 "min_workers/max_workers (%s), not both",
				 blame_in(o, stage, "workers", at, sizeof(at)),
				 in, at2);
			return -EINVAL;
		}
		bool max_set = c->max_workers >= 0;
		if (!max_set)
			c->max_workers = hop_cpus_available();
		if (c->min_workers < 0)
			c->min_workers = 1;
		if (c->min_workers > c->max_workers) {
			if (max_set)
				blame_in(o, stage, "max_workers", at2,
					 sizeof(at2));
			else
				snprintf(at2, sizeof(at2),
					 "the CPUs available, when max_workers "
					 "is not set");
			snprintf(
			    err, errlen,
			    "%s: %smin_workers %lld is above max_workers "
			    "%lld (%s)",
			    blame_in(o, stage, "min_workers", at, sizeof(at)),
			    in, (long long)c->min_workers,
			    (long long)c->max_workers, at2);
			return -EINVAL;
		}
		c->workers = c->max_workers;
	}
	if (c->workers == 0)
		c->workers = hop_cpus_available();
	return 0;
}

/* Checks what depends on more than one option (each option's own range
 * was checked as it was set) and builds the rest of cfg. */
static int finish(struct hop_config *cfg, const struct origin *o,
		  bool need_command, char *err, size_t errlen)
{
	char at[320], at2[320];

	if (!cfg->source) {
		snprintf(err, errlen,
			 "no source: give --source (for example "
			 "--source jsonl:items.jsonl)");
		return -EINVAL;
	}
	if (!cfg->sink && driver_spec_flag(cfg, false, "jsonl:-", err, errlen))
		return -EINVAL;
	if (!cfg->argv && need_command && !cfg->staged) {
		snprintf(err, errlen,
			 "no worker command: put it after -- (for "
			 "example: -- python3 worker.py)");
		return -EINVAL;
	}
	cfg->exec_mode = strcmp(cfg->mode, "exec") == 0;
	if (own_drivers(cfg)) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (int i = 0; i < cfg->nsources; i++)
		set_label(&cfg->sources[i]->label, cfg->sources[i]->ops->name,
			  cfg->sources[i]->ops->options, cfg->sources[i]->ctx);
	for (int i = 0; i < cfg->nsinks; i++)
		set_label(&cfg->sinks[i]->label, cfg->sinks[i]->ops->name,
			  cfg->sinks[i]->ops->options, cfg->sinks[i]->ctx);
	if (size_pool(cfg, o, NULL, err, errlen))
		return -EINVAL;
	if (!parse_halt(cfg)) {
		snprintf(err, errlen,
			 "%s: halt '%s' is not never, now,fail=N, soon,fail=N, "
			 "now,fail=P%% or soon,fail=P%% (N at least 1, P above "
			 "0 and at most 100)",
			 blame(o, "halt", at, sizeof(at)), cfg->halt);
		return -EINVAL;
	}
	if (cfg->journal && cfg->watch) {
		snprintf(err, errlen,
			 "%s: a journal is for finite runs: a watched "
			 "source's own acknowledgements say what is done",
			 blame(o, "journal", at, sizeof(at)));
		return -EINVAL;
	}
	if (cfg->resume_failed && !cfg->journal) {
		snprintf(err, errlen,
			 "%s needs a journal (--journal FILE) that says "
			 "which items failed",
			 blame(o, "resume_failed", at, sizeof(at)));
		return -EINVAL;
	}
	if (!cfg->listen && getenv("HOPPER_LISTEN"))
		cfg->listen = strdup(getenv("HOPPER_LISTEN"));
	if (cfg->listen && (!*cfg->listen || !strcmp(cfg->listen, "off"))) {
		free(cfg->listen);
		cfg->listen = NULL;
	}
	if (cfg->listen &&
	    hop_http_check_address(cfg->listen, at2, sizeof(at2))) {
		/* Neither a flag nor the file: it came from the environment. */
		blame(o, "listen", at, sizeof(at));
		snprintf(err, errlen, "%s: %s",
			 strstr(at, " (default)") ? "HOPPER_LISTEN" : at, at2);
		return -EINVAL;
	}
	if (cfg->private_reads && !cfg->admin_token_file) {
		snprintf(err, errlen,
			 "%s: private reads need the admin token: give "
			 "--admin-token-file FILE",
			 blame(o, "private", at, sizeof(at)));
		return -EINVAL;
	}
	if (cfg->admin_token_file && !cfg->listen) {
		blame(o, "admin_token_file", at, sizeof(at));
		snprintf(err, errlen,
			 "%s: the admin token is for the console's actions: "
			 "give --listen too",
			 at);
		return -EINVAL;
	}
	return 0;
}

static bool stage_run_key(const char *k)
{
	for (size_t i = 0; i < sizeof(stage_run_keys) / sizeof(*stage_run_keys);
	     i++)
		if (hop_opts_key_equal(k, stage_run_keys[i]))
			return true;
	return false;
}

/* Names an unknown key of a stage in msg, with the nearest known one. */
static void unknown_stage_key(const char *k, char *msg, size_t n)
{
	static const char *const others[] = {"command", "to",	  "description",
					     "join",	"reduce", "via"};
	struct hop_suggest s;
	char near[64];

	if (hop_opts_find(run_options, k)) {
		snprintf(msg, n,
			 "'%s' is an option of the whole run, not of a stage: "
			 "put it at the top of the file",
			 k);
		return;
	}
	hop_suggest_init(&s, k);
	for (size_t i = 0; i < sizeof(others) / sizeof(*others); i++)
		hop_suggest_offer(&s, others[i]);
	for (size_t i = 0; i < sizeof(stage_run_keys) / sizeof(*stage_run_keys);
	     i++)
		hop_suggest_offer(&s, stage_run_keys[i]);
	for (const struct hop_option *o = stage_options; o->key; o++)
		hop_suggest_offer(&s, o->key);
	if (hop_suggest_spelled(&s, near, sizeof(near)))
		snprintf(msg, n, "unknown key '%s'; did you mean '%s'?", k,
			 near);
	else
		snprintf(
		    msg, n,
		    "unknown key '%s' (a stage's keys: command, to, mode, "
		    "workers, min_workers, max_workers, prefetch, timeout, "
		    "attempts, backoff, backoff_max, shards, key, queue, "
		    "unmapped, on_dead, join, reduce, via; hopper help "
		    "pipeline)",
		    k);
}

/* Applies one "key=value" of an edge's settings to a source (src) or a
 * sink, "%s" in the value standing for stage. Returns 0, or -EINVAL with
 * the driver's words in msg. */
static int edge_set(struct hop_source *src, struct hop_sink *sink,
		    const char *kv, const char *stage, char *msg, size_t n)
{
	char key[64], value[256];
	const char *eq = strchr(kv, '='), *pct;

	snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
	pct = strstr(eq + 1, "%s");
	if (pct)
		snprintf(value, sizeof(value), "%.*s%s%s", (int)(pct - eq - 1),
			 eq + 1, stage, pct + 2);
	else
		snprintf(value, sizeof(value), "%s", eq + 1);
	return src ? hop_source_set(src, key, value, msg, n)
		   : hop_sink_set(sink, key, value, msg, n);
}

/* Whether key is among an edge's fixed settings ("key=value", NULL last). */
static bool edge_fixed(const char *const *fixed, const char *key)
{
	size_t kl = strlen(key);
	for (; fixed && *fixed; fixed++)
		if (!strncmp(*fixed, key, kl) && (*fixed)[kl] == '=')
			return true;
	return false;
}

/* Across an edge that can place its messages (a Kafka topic), a sharder's
 * key picks the partition, so that one key is read by one coordinator
 * and so lands in one of its shards; unless the via chose otherwise. */
static void edge_partitions(struct hop_sink *sink, const char *key)
{
	const struct hop_option *o =
	    hop_opts_find(sink->ops->options, "partition_by");
	char msg[256];

	if (o && !*(char **)((char *)sink->ctx + o->offset))
		hop_sink_set(sink, "partition_by", key, msg, sizeof(msg));
}

/* Sets the options of one end of an edge (src, or else sink) from v, the
 * via's "source" or "sink" object: settings for that end alone (a
 * consumer's librdkafka config). Returns 0, or -EINVAL with msg. */
static int edge_end(struct hop_source *src, struct hop_sink *sink, json_t *v,
		    char *msg, size_t n)
{
	const struct hop_option *t =
	    src ? src->ops->options : sink->ops->options;
	const char *const *fixed =
	    src ? src->ops->edge_fixed : sink->ops->edge_fixed;
	const char *end = src ? "source" : "sink", *k;
	char why[512];
	json_t *e;

	if (!json_is_object(v)) {
		snprintf(msg, n,
			 "via: '%s' must be an object of the %s's options", end,
			 end);
		return -EINVAL;
	}
	json_object_foreach(v, k, e)
	{
		if (edge_fixed(fixed, k)) {
			snprintf(msg, n,
				 "via: %s: '%s' is the edge's own: it keeps "
				 "each item's id and payload whole",
				 end, k);
			return -EINVAL;
		}
		if (hop_opts_set_json(t, src ? src->ctx : sink->ctx, k, e, why,
				      sizeof(why))) {
			snprintf(msg, n, "via: %s: %s", end, why);
			return -EINVAL;
		}
	}
	return 0;
}

/* Makes both ends of the durable edge into stage ex->name from its "via":
 * a URL ("kafka://host:port/topic"), or an object with a "type" and the
 * options of that driver's source and sink, each key going to the end (or
 * both ends) whose driver knows it. Returns 0, or -EINVAL with msg. */
static int edge_parse(struct stage_extra *ex, json_t *v, char *msg, size_t n)
{
	const char *spec = json_is_string(v) ? json_string_value(v)
			   : json_is_object(v)
			       ? json_string_value(json_object_get(v, "type"))
			       : NULL;
	struct hop_source *src = NULL;
	struct hop_sink *sink = NULL;
	char why[512];
	const char *k;
	json_t *e;

	if (!spec) {
		snprintf(msg, n,
			 "'via' must be a URL (\"kafka://host:port/topic\") or "
			 "an object with a \"type\" (kafka or postgres) and "
			 "its options");
		return -EINVAL;
	}
	if (!(src = hop_source_new(spec, why, sizeof(why))) ||
	    !(sink = hop_sink_new(spec, why, sizeof(why)))) {
		snprintf(msg, n, "via: %s", why);
		goto bad;
	}
	if (!src->ops->edge_fixed || !sink->ops->edge_fixed) {
		snprintf(msg, n,
			 "via: a %s cannot carry an edge between stages: use "
			 "kafka or postgres",
			 src->ops->name);
		goto bad;
	}
	for (const char *const *kv = src->ops->edge_defaults; kv && *kv; kv++)
		if (edge_set(src, NULL, *kv, ex->name, msg, n))
			goto bad;
	for (const char *const *kv = sink->ops->edge_defaults; kv && *kv; kv++)
		if (edge_set(NULL, sink, *kv, ex->name, msg, n))
			goto bad;
	json_object_foreach(json_is_object(v) ? v : NULL, k, e)
	{
		bool in_src = hop_opts_find(src->ops->options, k) != NULL;
		bool in_sink = hop_opts_find(sink->ops->options, k) != NULL;
		if (!strcmp(k, "type"))
			continue;
		if (!strcmp(k, "source") || !strcmp(k, "sink")) {
			if (edge_end(k[1] == 'o' ? src : NULL,
				     k[1] == 'o' ? NULL : sink, e, msg, n))
				goto bad;
			continue;
		}
		if (edge_fixed(src->ops->edge_fixed, k) ||
		    edge_fixed(sink->ops->edge_fixed, k)) {
			snprintf(msg, n,
				 "via: '%s' is the edge's own: it keeps each "
				 "item's id and payload whole from one stage "
				 "to the next",
				 k);
			goto bad;
		}
		if (!in_src && !in_sink) {
			snprintf(msg, n,
				 "via: unknown key '%s' (a %s source's or "
				 "sink's options: hopper help sources, hopper "
				 "help sinks)",
				 k, src->ops->name);
			goto bad;
		}
		if ((in_src && hop_opts_set_json(src->ops->options, src->ctx, k,
						 e, why, sizeof(why))) ||
		    (in_sink && hop_opts_set_json(sink->ops->options, sink->ctx,
						  k, e, why, sizeof(why)))) {
			snprintf(msg, n, "via: %s", why);
			goto bad;
		}
	}
	for (const char *const *kv = src->ops->edge_fixed; *kv; kv++)
		if (edge_set(src, NULL, *kv, ex->name, msg, n))
			goto bad;
	for (const char *const *kv = sink->ops->edge_fixed; *kv; kv++)
		if (edge_set(NULL, sink, *kv, ex->name, msg, n))
			goto bad;
	if (hop_source_check(src, &k) || hop_sink_check(sink, &k)) {
		snprintf(msg, n, "via: %s",
			 src->error[0] ? src->error : sink->error);
		goto bad;
	}
	hop_source_free(ex->via_source);
	hop_sink_free(ex->via_sink);
	ex->via_source = src;
	ex->via_sink = sink;
	return 0;
bad:
	hop_source_free(src);
	hop_sink_free(sink);
	return -EINVAL;
}

/* Applies one key of a stage to the stage's run options (sc) or its own
 * (ex). Returns 0, or -EINVAL with the message in msg and *at_value saying
 * whether the value (or else the key) is at fault. */
static int stage_key(struct hop_config *sc, struct stage_extra *ex,
		     const char *k, json_t *v, bool *at_value, char *msg,
		     size_t n)
{
	*at_value = true;
	if (strcmp(k, "command") == 0)
		return set_command(sc, v, msg, n);
	if (strcmp(k, "join") == 0) {
		hop_join_config_free(ex->join);
		return hop_join_parse(v, &ex->join, msg, n);
	}
	if (strcmp(k, "reduce") == 0) {
		hop_reduce_config_free(ex->reduce);
		return hop_reduce_parse(v, &ex->reduce, msg, n);
	}
	if (strcmp(k, "via") == 0)
		return edge_parse(ex, v, msg, n);
	if (!strcmp(k, "to") || !strcmp(k, "description") ||
	    !strncmp(k, "x-", 2))
		return 0; /* "to" is read once every name is known */
	if (stage_run_key(k))
		return hop_opts_set_json(run_options, sc, k, v, msg, n);
	if (hop_opts_find(stage_options, k)) {
		if (hop_opts_set_json(stage_options, ex, k, v, msg, n))
			return -EINVAL;
		if (strcmp(k, "key") == 0 && ex->key[0] != '/') {
			snprintf(msg, n,
				 "'key' '%s' is not a JSON pointer: one starts "
				 "with '/' (\"/user\", \"/order/id\")",
				 ex->key);
			return -EINVAL;
		}
		return 0;
	}
	*at_value = false;
	unknown_stage_key(k, msg, n);
	return -EINVAL;
}

static char **copy_argv(char **argv)
{
	size_t n = 0;
	while (argv[n])
		n++;
	char **copy = calloc(n + 1, sizeof(char *));
	for (size_t i = 0; copy && i < n; i++)
		copy[i] = strdup(argv[i]);
	return copy;
}

/* Fills a stage from run options (the run's own, or the stage's as read)
 * and its own keys: copies, so that the stage owns all it holds. */
static int fill_stage(struct hop_stage_config *st, const struct hop_config *c,
		      const struct stage_extra *ex)
{
	st->argv = c->argv ? copy_argv(c->argv) : NULL;
	st->shell_command = c->shell_command ? strdup(c->shell_command) : NULL;
	st->mode = strdup(c->mode);
	st->exec_mode = strcmp(c->mode, "exec") == 0;
	st->workers = c->workers;
	st->min_workers = c->min_workers;
	st->max_workers = c->max_workers;
	st->autoscale = c->autoscale;
	st->prefetch = c->prefetch;
	st->attempts = c->attempts;
	st->timeout = c->timeout;
	st->backoff = c->backoff;
	st->backoff_max = c->backoff_max;
	st->shards = ex->shards;
	st->key = ex->key ? strdup(ex->key) : NULL;
	st->queue = ex->queue;
	st->drop_unmapped = strcmp(ex->unmapped, "drop") == 0;
	st->dead_alone = strcmp(ex->on_dead, "alone") == 0;
	st->join = ex->join;
	st->reduce = ex->reduce;
	st->via_source = ex->via_source;
	st->via_sink = ex->via_sink;
	if ((c->argv && !st->argv) ||
	    (c->shell_command && !st->shell_command) || !st->mode ||
	    (ex->key && !st->key))
		return -ENOMEM;
	return 0;
}

/* Makes the one stage of a pipeline without stages, "main", from the
 * run's options. */
static int main_stage(struct hop_config *cfg, char *err, size_t errlen)
{
	struct hop_stage_config *st = &cfg->stages[0];
	struct stage_extra ex = {0};
	int rc = hop_opts_defaults(stage_options, &ex, err, errlen);

	st->name = strdup("main");
	if (!rc && (!st->name || fill_stage(st, cfg, &ex))) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
	}
	hop_opts_free(stage_options, &ex);
	return rc;
}

/* Reads stage name (value v) into st. Its run options start as the run's
 * in the file (the defaults beneath them), then its own keys, then the
 * flags, which are for every stage. */
static int build_stage(struct hop_stage_config *st, const char *name, json_t *v,
		       json_t *root, const struct origin *o, bool need_command,
		       char *err, size_t errlen)
{
	const struct doc *d = o->doc;
	const char *path[3] = {"stages", name, NULL};
	struct hop_config sc;
	struct stage_extra ex = {0};
	char msg[600], pos[300];
	const char *k;
	json_t *e;
	bool at_value;
	int rc = -EINVAL;

	memset(&sc, 0, sizeof(sc));
	sc.min_workers = sc.max_workers = -1;
	st->name = strdup(name);
	if (locate(d, path, 2, false, &st->line, &st->col))
		st->line = st->col = 0;
	if (!good_name(name))
		return bad_name(d, "stage", "stages", name, err, errlen);
	if (!json_is_object(v)) {
		where(d, path, 2, true, pos, sizeof(pos));
		snprintf(err, errlen,
			 "%s: stage '%s' must be an object of keys "
			 "({\"command\": ..., \"to\": ...})",
			 pos, name);
		return -EINVAL;
	}
	if (hop_opts_defaults(run_options, &sc, err, errlen) ||
	    hop_opts_defaults(stage_options, &ex, err, errlen))
		goto out;
	ex.name = name;
	sc.workers = -1; /* unset, to tell a given 0 from the default */
	/* Checked when the file's top was read: these cannot fail. */
	json_object_foreach(root, k, e)
	{
		if (stage_run_key(k))
			hop_opts_set_json(run_options, &sc, k, e, msg,
					  sizeof(msg));
	}
	json_object_foreach(v, k, e)
	{
		const char *twin = same_key_before(v, k);
		path[2] = twin ? twin : k;
		if (twin) {
			where(d, path, 3, false, pos, sizeof(pos));
			snprintf(err, errlen,
				 "%s: stage '%s': '%s' and '%s' are the same "
				 "key: keep one",
				 pos, name, twin, k);
			goto out;
		}
		if (stage_key(&sc, &ex, k, e, &at_value, msg, sizeof(msg))) {
			where(d, path, 3, at_value, pos, sizeof(pos));
			snprintf(err, errlen, "%s: stage '%s': %s", pos, name,
				 msg);
			goto out;
		}
	}
	for (int f = 0; f < o->nflags; f++)
		if (stage_run_key(o->flags[f].key))
			hop_opts_set(run_options, &sc, o->flags[f].key,
				     o->flags[f].value, msg, sizeof(msg));
	if (ex.via_sink && ex.key && ex.shards > 1)
		edge_partitions(ex.via_sink, ex.key);
	if (ex.reduce &&
	    (ex.join || hop_reduce_check(ex.reduce, sc.argv || sc.shell_command,
					 msg, sizeof(msg)))) {
		path[2] = "reduce";
		where(d, path, 3, false, pos, sizeof(pos));
		snprintf(err, errlen, "%s: stage '%s': %s", pos, name,
			 ex.join ? "a reduce stage takes no 'join'" : msg);
		goto out;
	}
	if (ex.join && ex.via_source &&
	    (!ex.join->by || ex.join->by[0] != '/')) {
		path[2] = "via";
		where(d, path, 3, false, pos, sizeof(pos));
		snprintf(err, errlen, "%s: stage '%s': %s", pos, name,
			 ex.join->by
			     ? "a join by the key its parts were emitted with "
			       "cannot take them from a via, which keeps only "
			       "their ids and payloads: join by a JSON pointer "
			       "into the payload (\"by\": \"/video\")"
			     : "a join by parent gathers the parts of one item "
			       "inside one coordinator, and a via would make "
			       "each part an item of its own: put the via on "
			       "the stage before the one that splits, or join "
			       "by key (\"by\")");
		goto out;
	}
	/* Across a Kafka edge, a join's key picks the partition: the parts of
	 * one group meet in one partition, read by one coordinator. */
	if (ex.join && ex.via_sink && ex.join->by)
		edge_partitions(ex.via_sink, ex.join->by);
	if (ex.join && ex.join->max_parts < 1) {
		snprintf(err, errlen, "stage '%s': join max_parts below 1",
			 name);
		goto out;
	}
	/* A join without a command, or a reduce: it runs no worker, none to
	 * start, none to scale. */
	bool bare = !sc.argv && !sc.shell_command && (ex.join || ex.reduce);
	if (!sc.argv && need_command && !bare) {
		where(d, path, 2, false, pos, sizeof(pos));
		snprintf(err, errlen,
			 "%s: stage '%s' has no 'command' (the worker: "
			 "[\"PROGRAM\", \"ARG\", ...] or a shell command line)",
			 pos, name);
		goto out;
	}
	/* Neither a fixed size nor a most: one of the shared stages. */
	bool shared = sc.workers < 0 && sc.max_workers < 0 && !bare;
	if (sc.workers < 0)
		sc.workers = 0;
	if (shared && sc.min_workers < 0)
		sc.min_workers = 1;
	if (!shared && !bare && size_pool(&sc, o, name, err, errlen))
		goto out;
	if (bare) {
		sc.workers = sc.min_workers = sc.max_workers = 0;
		sc.autoscale = false;
	}
	rc = fill_stage(st, &sc, &ex);
	if (rc)
		snprintf(err, errlen, "out of memory");
	ex.join = NULL; /* the stage's now */
	ex.reduce = NULL;
	ex.via_source = NULL;
	ex.via_sink = NULL;
	st->shared = shared;
out:
	if (sc.argv)
		for (char **a = sc.argv; *a; a++)
			free(*a);
	free(sc.argv);
	free(sc.shell_command);
	hop_opts_free(run_options, &sc);
	hop_opts_free(stage_options, &ex);
	hop_join_config_free(ex.join);
	hop_reduce_config_free(ex.reduce);
	hop_source_free(ex.via_source);
	hop_sink_free(ex.via_sink);
	return rc;
}

/* Writes the names a 'to' may use: "stages: a, b; sinks: c". */
static void known_targets(const struct hop_config *cfg, char *buf, size_t n)
{
	int w = snprintf(buf, n, "stages:");
	for (int i = 0; i < cfg->nstages && w > 0 && (size_t)w < n; i++)
		w += snprintf(buf + w, n - (size_t)w, "%s %s", i ? "," : "",
			      cfg->stages[i].name);
	for (int i = 0; i < cfg->nsinks && w > 0 && (size_t)w < n; i++)
		w += snprintf(buf + w, n - (size_t)w, "%s %s",
			      i ? "," : "; sinks:", cfg->sink_names[i]);
}

/* Reads the targets of one route: a name, or a list of names (v, at path
 * in the file), each a stage or a sink. who names the stage or source in
 * messages. */
static int parse_targets(const struct hop_config *cfg, json_t *v,
			 struct hop_route *r, const char *who,
			 const char *const *path, int depth,
			 const struct doc *d, char *err, size_t errlen)
{
	char pos[300], known[512];
	size_t n = json_is_array(v) ? json_array_size(v) : 1;

	where(d, path, depth, true, pos, sizeof(pos));
	if (n == 0 || (!json_is_string(v) && !json_is_array(v))) {
		snprintf(err, errlen,
			 "%s: %s: 'to' must name a stage or a sink, or list "
			 "them%s",
			 pos, who,
			 depth == 3 && !strcmp(path[0], "stages")
			     ? ", or map ports to them"
			     : "");
		return -EINVAL;
	}
	r->to = calloc(n, sizeof(*r->to));
	if (!r->to) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
		const char *name = json_string_value(e);
		if (!name) {
			snprintf(err, errlen,
				 "%s: %s: 'to' element %zu is not a name", pos,
				 who, i);
			return -EINVAL;
		}
		struct hop_target *t = &r->to[r->nto];
		if (hop_graph_find(cfg, name, t)) {
			const char *near = hop_graph_nearest(cfg, name);
			known_targets(cfg, known, sizeof(known));
			if (near)
				snprintf(err, errlen,
					 "%s: %s: 'to': no stage or sink is "
					 "called '%s'; did you mean '%s'?",
					 pos, who, name, near);
			else
				snprintf(err, errlen,
					 "%s: %s: 'to': no stage or sink is "
					 "called '%s' (%s)",
					 pos, who, name, known);
			return -EINVAL;
		}
		for (int j = 0; j < r->nto; j++)
			if (r->to[j].sink == t->sink &&
			    r->to[j].index == t->index) {
				snprintf(err, errlen,
					 "%s: %s: 'to' names '%s' twice", pos,
					 who, name);
				return -EINVAL;
			}
		r->nto++;
	}
	return 0;
}

/* Reads a stage's "to": a name or a list (one route for every output), or
 * an object from port to a name or a list ("*": the outputs no other port
 * takes). Without "to", outputs go to the only sink if there is one. */
static int stage_routes(struct hop_config *cfg, struct hop_stage_config *st,
			json_t *to, const struct doc *d, char *err,
			size_t errlen)
{
	char who[96];
	const char *path[4] = {"stages", st->name, "to", NULL};
	size_t n = json_is_object(to) ? json_object_size(to) : 1;

	if (!to && cfg->nsinks != 1)
		return 0; /* the graph check says that its outputs go nowhere */
	st->routes = calloc(n, sizeof(*st->routes));
	if (!st->routes) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	st->nroutes = (int)n;
	if (!to) {
		st->routes[0].to = calloc(1, sizeof(struct hop_target));
		if (!st->routes[0].to) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		st->routes[0].to[0] = (struct hop_target){true, 0};
		st->routes[0].nto = 1;
		return 0;
	}
	snprintf(who, sizeof(who), "stage '%s'", st->name);
	if (!json_is_object(to))
		return parse_targets(cfg, to, &st->routes[0], who, path, 3, d,
				     err, errlen);
	if (n == 0) {
		where(d, path, 3, true, who, sizeof(who));
		snprintf(err, errlen, "%s: stage '%s': 'to' maps no port", who,
			 st->name);
		return -EINVAL;
	}
	const char *port;
	json_t *e;
	int r = 0;
	json_object_foreach(to, port, e)
	{
		struct hop_route *route = &st->routes[r++];
		if (strcmp(port, "*") != 0 && !(route->port = strdup(port))) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		path[3] = port;
		if (parse_targets(cfg, e, route, who, path, 4, d, err, errlen))
			return -EINVAL;
	}
	return 0;
}

/* Reads where each source's items go: its "to" (a stage, or a list of
 * them), else the first stage when it is the pipeline's only source. */
static int source_routes(struct hop_config *cfg, json_t *root,
			 const struct doc *d, char *err, size_t errlen)
{
	json_t *named = root ? json_object_get(root, "sources") : NULL;
	char who[96], pos[300];

	cfg->source_routes =
	    calloc((size_t)cfg->nsources, sizeof(*cfg->source_routes));
	if (!cfg->source_routes) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (int i = 0; i < cfg->nsources; i++) {
		struct hop_route *r = &cfg->source_routes[i];
		const char *name = cfg->source_names[i];
		json_t *src = named  ? json_object_get(named, name)
			      : root ? json_object_get(root, "source")
				     : NULL;
		json_t *to =
		    json_is_object(src) ? json_object_get(src, "to") : NULL;
		const char *path[3] = {"sources", name, "to"};
		const char *const *at =
		    named ? path : (const char *[]){"source", "to"};
		snprintf(who, sizeof(who), "source '%s'", name);
		if (json_is_object(to)) {
			where(d, at, named ? 3 : 2, true, pos, sizeof(pos));
			snprintf(err, errlen,
				 "%s: %s: 'to' must name a stage, or list "
				 "them: a source's items have no ports",
				 pos, who);
			return -EINVAL;
		}
		if (to && parse_targets(cfg, to, r, who, at, named ? 3 : 2, d,
					err, errlen))
			return -EINVAL;
		if (to || cfg->nsources > 1)
			continue; /* the graph check names a source idle */
		r->to = calloc(1, sizeof(*r->to));
		if (!r->to) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		r->to[0] = (struct hop_target){false, 0};
		r->nto = 1;
	}
	return 0;
}

/* Writes a fault of the graph with the position of the stage's (or
 * source's) key at fault, or of its name. */
static void graph_error(const struct hop_config *cfg, json_t *root,
			const struct origin *o,
			const struct hop_graph_error *ge, char *err,
			size_t errlen)
{
	char pos[300] = "";
	bool named = root && json_object_get(root, "sources");
	const char *kind = ge->stage >= 0 ? "stage" : "source";
	const char *name = ge->stage >= 0 ? cfg->stages[ge->stage].name
					  : cfg->source_names[ge->source];
	const char *path[3] = {"stages", name, ge->key};
	int depth = ge->key ? 3 : 2;

	if (ge->stage < 0 && !named) {
		path[0] = "source";
		path[1] = ge->key;
		depth = ge->key ? 2 : 1;
	} else if (ge->stage < 0) {
		path[0] = "sources";
	}
	if (o->doc)
		where(o->doc, path, depth, ge->key != NULL, pos, sizeof(pos));
	snprintf(err, errlen, "%s%s%s '%s': %s", pos, pos[0] ? ": " : "", kind,
		 name, ge->msg);
}

/* Reads the pipeline's stages (or makes its one stage), then the routes
 * between them, and checks the graph they make. */
/* Gives the stages that leave their size unset one budget of workers:
 * shared_workers when given, else the CPUs available less what the other
 * stages may run (each of their shards a pool), and never less than the
 * shared pools' floors together (min_workers, at least one, each). Each
 * shared stage autoscales from its min to the budget; the run keeps their
 * sum within it (budget.h). Returns 0, or -EINVAL when a given budget is
 * below the floors. */
static int share_workers(struct hop_config *cfg, const struct origin *o,
			 char *err, size_t errlen)
{
	int64_t others = 0, floors = 0;
	char at[320];

	for (int i = 0; i < cfg->nstages; i++) {
		const struct hop_stage_config *st = &cfg->stages[i];
		int64_t pools = st->shards > 1 ? st->shards : 1;
		if (st->shared)
			floors +=
			    pools * (st->min_workers > 1 ? st->min_workers : 1);
		else
			others += pools * (st->autoscale ? st->max_workers
							 : st->workers);
	}
	int64_t budget = cfg->shared_workers;
	if (!floors) {
		cfg->shared_workers = 0;
		return 0;
	}
	if (budget > 0 && budget < floors) {
		snprintf(err, errlen,
			 "%s: shared_workers %lld is below what the stages "
			 "that share it run at least: %lld (min_workers, or "
			 "one worker, for each stage and shard)",
			 blame(o, "shared_workers", at, sizeof(at)),
			 (long long)budget, (long long)floors);
		return -EINVAL;
	}
	if (budget < 0)
		budget = hop_cpus_available() - others;
	if (budget < floors)
		budget = floors;
	if (budget > 4096)
		budget = 4096;
	cfg->shared_workers = budget;
	for (int i = 0; i < cfg->nstages; i++) {
		struct hop_stage_config *st = &cfg->stages[i];
		if (!st->shared)
			continue;
		st->autoscale = true;
		st->max_workers = st->workers = budget;
	}
	return 0;
}

/* Grows the arrays of sources (by ns) and sinks (by nk), zeroing the new
 * entries. Returns 0 or -ENOMEM. */
static int grow_drivers(struct hop_config *cfg, int ns, int nk)
{
	size_t s = (size_t)(cfg->nsources + ns), k = (size_t)(cfg->nsinks + nk);
	void *p;

#define GROW(f, n, old)                                                        \
	do {                                                                   \
		if (!(p = realloc(cfg->f, (n) * sizeof(*cfg->f))))             \
			return -ENOMEM;                                        \
		cfg->f = p;                                                    \
		memset(cfg->f + (old), 0, ((n) - (old)) * sizeof(*cfg->f));    \
	} while (0)
	GROW(sources, s, (size_t)cfg->nsources);
	GROW(source_names, s, (size_t)cfg->nsources);
	GROW(source_routes, s, (size_t)cfg->nsources);
	GROW(source_edge, s, (size_t)cfg->nsources);
	GROW(sinks, k, (size_t)cfg->nsinks);
	GROW(sink_names, k, (size_t)cfg->nsinks);
#undef GROW
	return 0;
}

/* Whether a source or a sink (as is_source says) is called name. */
static bool driver_named(const struct hop_config *cfg, bool is_source,
			 const char *name)
{
	int n = is_source ? cfg->nsources : cfg->nsinks;
	for (int i = 0; i < n; i++)
		if (!strcmp(is_source ? cfg->source_names[i]
				      : cfg->sink_names[i],
			    name))
			return true;
	return false;
}

/* Takes each stage's via into the graph: a sink "NAME.via" that every
 * stage sending to the stage writes to instead, and a source of the same
 * name that feeds it. The file's own sources that name the stage still
 * feed it directly. Returns 0, or -EINVAL/-ENOMEM with err. */
static int durable_edges(struct hop_config *cfg, const struct origin *o,
			 char *err, size_t errlen)
{
	int nvia = 0;
	char name[80];

	for (int i = 0; i < cfg->nstages; i++)
		nvia += cfg->stages[i].via_source != NULL;
	if (grow_drivers(cfg, nvia, nvia)) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (int i = 0; i < cfg->nsources; i++)
		cfg->source_edge[i] = -1;
	for (int i = 0; i < cfg->nstages; i++) {
		struct hop_stage_config *st = &cfg->stages[i];
		if (!st->via_source)
			continue;
		snprintf(name, sizeof(name), "%s.via", st->name);
		if (driver_named(cfg, true, name) ||
		    driver_named(cfg, false, name)) {
			char pos[300] = "";
			if (o->doc)
				where(
				    o->doc,
				    (const char *[]){"stages", st->name, "via"},
				    3, false, pos, sizeof(pos));
			snprintf(err, errlen,
				 "%s%sstage '%s': its via is called '%s', "
				 "and so is a source or sink of the file: "
				 "rename that one",
				 pos, pos[0] ? ": " : "", st->name, name);
			return -EINVAL;
		}
		int si = cfg->nsinks++, so = cfg->nsources++;
		struct hop_target *t = calloc(1, sizeof(*t));
		cfg->sinks[si] = st->via_sink;
		cfg->sources[so] = st->via_source;
		cfg->sink_names[si] = strdup(name);
		cfg->source_names[so] = strdup(name);
		st->via_sink = NULL;
		st->via_source = NULL;
		st->via = true;
		if (!t || !cfg->sink_names[si] || !cfg->source_names[so]) {
			free(t);
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		*t = (struct hop_target){false, i};
		cfg->source_routes[so] = (struct hop_route){NULL, 1, t};
		cfg->source_edge[so] = si;
		set_label(&cfg->sources[so]->label, cfg->sources[so]->ops->name,
			  cfg->sources[so]->ops->options,
			  cfg->sources[so]->ctx);
		set_label(&cfg->sinks[si]->label, cfg->sinks[si]->ops->name,
			  cfg->sinks[si]->ops->options, cfg->sinks[si]->ctx);
		/* What other stages send to it goes through the edge. */
		for (int j = 0; j < cfg->nstages; j++)
			for (int r = 0; r < cfg->stages[j].nroutes; r++) {
				struct hop_route *rt =
				    &cfg->stages[j].routes[r];
				for (int k = 0; k < rt->nto; k++)
					if (!rt->to[k].sink &&
					    rt->to[k].index == i)
						rt->to[k] = (struct hop_target){
						    true, si};
			}
	}
	return 0;
}

static void free_routes(struct hop_route *routes, int n);
static void free_stage(struct hop_stage_config *st);

/* Renumbers the targets of routes after stages and sinks were left out:
 * stage_at and sink_at give each old index its new one. */
static void renumber(struct hop_route *routes, int n, const int *stage_at,
		     const int *sink_at)
{
	for (int r = 0; r < n; r++)
		for (int k = 0; k < routes[r].nto; k++) {
			struct hop_target *t = &routes[r].to[k];
			t->index =
			    t->sink ? sink_at[t->index] : stage_at[t->index];
		}
}

/* Names in err an edge between a stage run here and one run elsewhere
 * that is not durable. Returns -EINVAL. */
static int not_durable(const char *from_kind, const char *from, const char *to,
		       bool to_here, char *err, size_t errlen)
{
	snprintf(err, errlen,
		 "--stage: %s '%s' sends its items to stage '%s' in memory, "
		 "and only %s of them runs here: give stage '%s' a \"via\" "
		 "(a Kafka topic or a PostgreSQL queue) to run them apart, or "
		 "run both here",
		 from_kind, from, to, to_here ? "the second" : "the first", to);
	return -EINVAL;
}

/* Keeps the stages cfg->stage names, the sources that feed them and the
 * sinks they write to, and leaves the rest of the file out: other
 * coordinators run it. An edge between a stage kept and one left out
 * must be durable. Returns 0, or -EINVAL with err. */
static int select_stages(struct hop_config *cfg, char *err, size_t errlen)
{
	int ns = cfg->nstages, nsrc = cfg->nsources, nsk = cfg->nsinks;
	bool keep[ns > 0 ? ns : 1], src_keep[nsrc], sink_keep[nsk];
	int stage_at[ns > 0 ? ns : 1], sink_at[nsk];
	char list[512];

	memset(keep, 0, sizeof(keep));
	memset(sink_keep, 0, sizeof(sink_keep));
	snprintf(list, sizeof(list), "%s", cfg->stage);
	for (char *save, *n = strtok_r(list, ", ", &save); n;
	     n = strtok_r(NULL, ", ", &save)) {
		int i = 0;
		while (i < ns && strcmp(cfg->stages[i].name, n))
			i++;
		if (i == ns) {
			struct hop_suggest sg;
			char near[80];
			hop_suggest_init(&sg, n);
			for (int j = 0; j < ns; j++)
				hop_suggest_offer(&sg, cfg->stages[j].name);
			if (hop_suggest_spelled(&sg, near, sizeof(near)))
				snprintf(err, errlen,
					 "--stage: the file has no stage '%s'; "
					 "did you mean '%s'?",
					 n, near);
			else
				snprintf(err, errlen,
					 "--stage: the file has no stage "
					 "'%s'",
					 n);
			return -EINVAL;
		}
		keep[i] = true;
	}
	/* Stage to stage: both here, or a durable edge (a sink by now). */
	for (int i = 0; i < ns; i++) {
		const struct hop_stage_config *st = &cfg->stages[i];
		for (int r = 0; r < st->nroutes; r++)
			for (int k = 0; k < st->routes[r].nto; k++) {
				struct hop_target t = st->routes[r].to[k];
				if (t.sink) {
					sink_keep[t.index] |= keep[i];
					continue;
				}
				if (keep[i] != keep[t.index])
					return not_durable(
					    "stage", st->name,
					    cfg->stages[t.index].name,
					    keep[t.index], err, errlen);
			}
	}
	/* A source goes with the stages it feeds, all of them. */
	for (int i = 0; i < nsrc; i++) {
		const struct hop_route *rt = &cfg->source_routes[i];
		src_keep[i] = false;
		for (int k = 0; k < rt->nto; k++)
			src_keep[i] |= keep[rt->to[k].index];
		for (int k = 0; k < rt->nto; k++)
			if (src_keep[i] && !keep[rt->to[k].index])
				return not_durable(
				    "source", cfg->source_names[i],
				    cfg->stages[rt->to[k].index].name, false,
				    err, errlen);
	}
	int n = 0;
	for (int i = 0; i < ns; i++) {
		stage_at[i] = keep[i] ? n : -1;
		if (keep[i])
			cfg->stages[n++] = cfg->stages[i];
		else
			free_stage(&cfg->stages[i]);
	}
	cfg->nstages = n;
	n = 0;
	for (int i = 0; i < nsk; i++) {
		sink_at[i] = sink_keep[i] ? n : -1;
		if (sink_keep[i]) {
			cfg->sinks[n] = cfg->sinks[i];
			cfg->sink_names[n++] = cfg->sink_names[i];
			continue;
		}
		hop_sink_free(cfg->sinks[i]);
		free(cfg->sink_names[i]);
	}
	cfg->nsinks = n;
	n = 0;
	for (int i = 0; i < nsrc; i++) {
		if (!src_keep[i]) {
			hop_source_free(cfg->sources[i]);
			free(cfg->source_names[i]);
			free(cfg->source_routes[i].port);
			free(cfg->source_routes[i].to);
			continue;
		}
		int e = cfg->source_edge[i];
		cfg->sources[n] = cfg->sources[i];
		cfg->source_names[n] = cfg->source_names[i];
		cfg->source_routes[n] = cfg->source_routes[i];
		cfg->source_edge[n++] = e >= 0 ? sink_at[e] : -1;
	}
	cfg->nsources = n;
	for (int i = 0; i < cfg->nstages; i++)
		renumber(cfg->stages[i].routes, cfg->stages[i].nroutes,
			 stage_at, sink_at);
	renumber(cfg->source_routes, cfg->nsources, stage_at, sink_at);
	if (!cfg->nsources || !cfg->nsinks) {
		snprintf(err, errlen, "--stage %s: nothing to read or to write",
			 cfg->stage);
		return -EINVAL;
	}
	cfg->source = cfg->sources[0];
	cfg->sink = cfg->sinks[0];
	return 0;
}

/* A source whose batches are transactions (exactly_once) commits a batch
 * once all its items are finished; a join or a reduce in the same run
 * holds items until later ones come, which the next batch would bring:
 * it would wait for ever. Returns 0, or -EINVAL naming both. */
static int check_transactions(const struct hop_config *cfg, char *err,
			      size_t errlen)
{
	for (int i = 0; i < cfg->nsources; i++) {
		const struct hop_source *src = cfg->sources[i];
		const struct hop_option *o =
		    hop_opts_find(src->ops->options, "exactly_once");
		if (!o || o->type != HOP_OPT_BOOL ||
		    !*(bool *)((char *)src->ctx + o->offset))
			continue;
		for (int s = 0; s < cfg->nstages; s++) {
			const struct hop_stage_config *st = &cfg->stages[s];
			if (!st->join && !st->reduce)
				continue;
			snprintf(err, errlen,
				 "source '%s': exactly_once commits a batch "
				 "once all its items are finished, and stage "
				 "'%s' (a %s) holds items until later ones "
				 "come: run that stage in a coordinator of "
				 "its own (a via, --stage), or without "
				 "exactly_once",
				 cfg->source_names[i], st->name,
				 st->join ? "join" : "reduce");
			return -EINVAL;
		}
	}
	return 0;
}

static int build_graph(struct hop_config *cfg, json_t *root,
		       const struct origin *o, bool need_command, char *err,
		       size_t errlen)
{
	json_t *stages = root ? json_object_get(root, "stages") : NULL;
	size_t n = stages ? json_object_size(stages) : 1;
	struct hop_graph_error ge;
	const char *name;
	json_t *v;

	cfg->stages = calloc(n, sizeof(*cfg->stages));
	if (!cfg->stages) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (!stages) {
		cfg->nstages = 1;
		if (main_stage(cfg, err, errlen))
			return -ENOMEM;
	}
	json_object_foreach(stages, name, v)
	{
		struct hop_stage_config *st = &cfg->stages[cfg->nstages++];
		if (build_stage(st, name, v, root, o, need_command, err,
				errlen))
			return -EINVAL;
	}
	if (share_workers(cfg, o, err, errlen))
		return -EINVAL;
	/* Every name is known now: where each output goes. */
	for (int i = 0; i < cfg->nstages; i++) {
		struct hop_stage_config *st = &cfg->stages[i];
		json_t *s = stages ? json_object_get(stages, st->name) : NULL;
		if (stage_routes(cfg, st, json_object_get(s, "to"), o->doc, err,
				 errlen))
			return -EINVAL;
	}
	if (source_routes(cfg, root, o->doc, err, errlen))
		return -EINVAL;
	if (durable_edges(cfg, o, err, errlen))
		return -EINVAL;
	if (hop_graph_check(cfg, &ge)) {
		graph_error(cfg, root, o, &ge, err, errlen);
		return -EINVAL;
	}
	if (!cfg->stage && getenv("HOPPER_STAGE") && *getenv("HOPPER_STAGE"))
		cfg->stage = strdup(getenv("HOPPER_STAGE"));
	if (cfg->stage && select_stages(cfg, err, errlen))
		return -EINVAL;
	return check_transactions(cfg, err, errlen);
}

/* Names the run option a long flag (--max-line, --max_line=16M) stands for,
 * and its value when the flag carries one. Returns NULL for an unknown flag. */
static const char *long_flag(const char *a, const char **val)
{
	const char *eq = strchr(a + 2, '=');
	char name[64], key[64];
	snprintf(name, sizeof(name), "%.*s",
		 (int)(eq ? eq - a - 2 : (long)strlen(a + 2)), a + 2);
	long_key(name, key, sizeof(key));
	if (strcmp(key, "pipeline") == 0) {
		*val = eq ? eq + 1 : NULL;
		return "pipeline";
	}
	const struct hop_option *o = hop_opts_find(run_options, key);
	if (!o)
		return NULL;
	if (eq)
		*val = eq + 1;
	else if (o->type == HOP_OPT_BOOL)
		*val = "true";
	return o->key;
}

/* Names the option a short flag stands for, and its value when it is
 * attached as getopt allows ("-j1", "-Sglob=*.txt"). Returns NULL for an
 * unknown flag, and for a long flag typed with one dash ("-source" is not
 * "-s ource"), which unknown_flag then names. */
static const char *short_flag(const char *a, const char **val)
{
	const char *key = NULL;
	for (size_t s = 0; s < sizeof(shorts) / sizeof(shorts[0]); s++)
		if (a[1] == shorts[s].flag)
			key = shorts[s].key;
	if (a[1] == 'S')
		key = "source-opt";
	if (a[1] == 'O')
		key = "sink-opt";
	if (!key || !a[2])
		return key;
	if (hop_opts_find(run_options, a + 1) ||
	    hop_opts_key_equal(a + 1, "pipeline") ||
	    hop_opts_key_equal(a + 1, "source-opt") ||
	    hop_opts_key_equal(a + 1, "sink-opt"))
		return NULL;
	*val = a + 2;
	return key;
}

/* Names an unknown flag, with the long flag nearest to it if one is near:
 * "--wokers" (or "-wokers", one dash short) is "--workers". */
static void unknown_flag(const char *a, char *err, size_t errlen)
{
	static const char *const others[] = {"pipeline",    "once",
					     "no-progress", "source-opt",
					     "sink-opt",    "help"};
	char word[64], near[64];
	struct hop_suggest s;

	const char *name = a + 1 + (a[1] == '-');
	snprintf(word, sizeof(word), "%.*s", (int)strcspn(name, "="), name);
	hop_suggest_init(&s, word);
	for (size_t i = 0; i < sizeof(others) / sizeof(*others); i++)
		hop_suggest_offer(&s, others[i]);
	for (const struct hop_option *o = run_options; o->key; o++)
		hop_suggest_offer(&s, o->key);
	/* A flag is spelled with dashes whatever the typo had; a long flag
	 * typed with one dash is its own suggestion. */
	const char *best = hop_suggest_best(&s);
	if (a[1] != '-' && s.dist == 0)
		best = s.best;
	snprintf(near, sizeof(near), "%s", best ? best : "");
	for (char *p = near; *p; p++)
		if (*p == '_')
			*p = '-';
	if (strlen(word) > 1 && best)
		snprintf(err, errlen, "unknown flag '%s'; did you mean '--%s'?",
			 a, near);
	else
		snprintf(err, errlen,
			 "unknown flag '%s' (see hopper run --help)", a);
}

/* Reads the flags before "--" into flags (in order) and notes the pipeline
 * file. Returns the index of the worker command in argv (argc when there is
 * none), or -EINVAL with a message in err. */
static int parse_flags(struct hop_config *cfg, int argc, char **argv,
		       bool validate_only, struct flag *flags, int *nflags,
		       char *err, size_t errlen)
{
	int i;
	for (i = 0; i < argc && strcmp(argv[i], "--") != 0; i++) {
		const char *a = argv[i], *key = NULL, *val = NULL;
		if ((a[0] != '-' || !a[1]) && validate_only && !cfg->pipeline) {
			key = "pipeline";
			val = a;
		} else if (a[0] != '-' || !a[1]) {
			snprintf(err, errlen,
				 "unexpected '%s': the worker command goes "
				 "after -- (hopper run [OPTIONS] -- %s ...)",
				 a, a);
			return -EINVAL;
		} else if (a[1] != '-') {
			key = short_flag(a, &val);
		} else if (strcmp(a, "--once") == 0) {
			key = "watch";
			val = "false";
		} else if (strcmp(a, "--no-progress") == 0) {
			key = "progress";
			val = "false";
		} else if (strcmp(a, "--source-opt") == 0 ||
			   strcmp(a, "--sink-opt") == 0) {
			key = a + 2;
		} else {
			key = long_flag(a, &val);
		}
		if (!key) {
			unknown_flag(a, err, errlen);
			return -EINVAL;
		}
		if (!val && i + 1 >= argc) {
			snprintf(err, errlen, "flag '%s' needs a value", a);
			return -EINVAL;
		}
		bool joined = val != NULL;
		if (!val)
			val = argv[++i];
		flags[(*nflags)++] = (struct flag){key, val, a, joined};
		if (strcmp(key, "pipeline") == 0) {
			free(cfg->pipeline);
			cfg->pipeline = strdup(val);
		}
	}
	return i < argc ? i + 1 : argc;
}

/* Applies the flags over what the pipeline file set. */
static int apply_flags(struct hop_config *cfg, const struct flag *flags,
		       int nflags, char *err, size_t errlen)
{
	char msg[512];
	for (int f = 0; f < nflags; f++) {
		const char *k = flags[f].key, *v = flags[f].value;
		bool is_source = k[1] == 'o';
		bool driver = !strcmp(k, "source") || !strcmp(k, "sink") ||
			      !strcmp(k, "source-opt") ||
			      !strcmp(k, "sink-opt");
		int named = is_source ? cfg->nsources : cfg->nsinks;
		if (strcmp(k, "pipeline") == 0)
			continue;
		if (driver && named > 1) {
			snprintf(err, errlen,
				 "%s: the pipeline file names %d %s: change "
				 "them there",
				 flags[f].arg, named,
				 is_source ? "sources" : "sinks");
			return -EINVAL;
		}
		if (strcmp(k, "source") == 0 || strcmp(k, "sink") == 0) {
			if (driver_spec_flag(cfg, is_source, v, err, errlen))
				return -EINVAL;
		} else if (strcmp(k, "source-opt") == 0 ||
			   strcmp(k, "sink-opt") == 0) {
			/* An option before its driver: the default driver. */
			bool none = is_source ? !cfg->source : !cfg->sink;
			if (none &&
			    driver_spec_flag(cfg, is_source,
					     is_source ? "jsonl" : "jsonl:-",
					     err, errlen))
				return -EINVAL;
			if (driver_flag(cfg, is_source, v, err, errlen))
				return -EINVAL;
		} else if (hop_opts_set(run_options, cfg, k, v, msg,
					sizeof(msg))) {
			if (flags[f].joined)
				snprintf(err, errlen, "%s: %s", flags[f].arg,
					 msg);
			else
				snprintf(err, errlen, "%s %s: %s", flags[f].arg,
					 v, msg);
			return -EINVAL;
		}
	}
	return 0;
}

/* Replaces the worker command with argv[from..argc). */
static int set_argv(struct hop_config *cfg, int argc, char **argv, int from)
{
	char **cmd = calloc((size_t)(argc - from + 1), sizeof(char *));
	if (!cmd)
		return -ENOMEM;
	for (int j = from; j < argc; j++)
		cmd[j - from] = strdup(argv[j]);
	if (cfg->argv)
		for (char **p = cfg->argv; *p; p++)
			free(*p);
	free(cfg->argv);
	cfg->argv = cmd;
	free(cfg->shell_command); /* the file's, replaced */
	cfg->shell_command = NULL;
	return 0;
}

static int load(struct hop_config *cfg, int argc, char **argv,
		bool validate_only, bool need_command, char *err, size_t errlen)
{
	struct flag *flags = calloc((size_t)argc + 1, sizeof(*flags));
	int nflags = 0, rc = -EINVAL;
	char *text = NULL;
	size_t len = 0;
	struct doc doc = {0};
	json_t *root = NULL;

	memset(cfg, 0, sizeof(*cfg));
	cfg->min_workers = cfg->max_workers = -1; /* unset: no autoscaling */
	cfg->shared_workers = -1;
	if (!flags || hop_opts_defaults(run_options, cfg, err, errlen))
		goto out;
	int cmd = parse_flags(cfg, argc, argv, validate_only, flags, &nflags,
			      err, errlen);
	if (cmd < 0)
		goto out;
	if (cfg->pipeline && read_text(cfg->pipeline, &text, &len, err, errlen))
		goto out;
	doc = (struct doc){cfg->pipeline, text, NULL};
	if (cfg->pipeline && load_file(cfg, &doc, len, &root, err, errlen))
		goto out;
	if (apply_flags(cfg, flags, nflags, err, errlen))
		goto out;
	if (cmd < argc && cfg->staged) {
		snprintf(err, errlen,
			 "a worker command after --: %s has stages, and each "
			 "has its own 'command'",
			 cfg->pipeline);
		goto out;
	}
	if (cmd < argc && set_argv(cfg, argc, argv, cmd))
		goto out;
	struct origin o = {cfg, cfg->pipeline ? &doc : NULL, flags, nflags};
	rc = finish(cfg, &o, need_command, err, errlen);
	if (!rc)
		rc = build_graph(cfg, root, &o, need_command, err, errlen);
	/* A run's open runs the same checks, failing as any open does. */
	if (!rc && validate_only)
		rc = check_drivers(cfg, &o, err, errlen);
out:
	json_decref(root);
	hop_yaml_pos_free(doc.yaml);
	free(text);
	free(flags);
	return rc;
}

int hop_config_load(struct hop_config *cfg, int argc, char **argv,
		    bool validate_only, char *err, size_t errlen)
{
	return load(cfg, argc, argv, validate_only, true, err, errlen);
}

int hop_config_load_source(struct hop_config *cfg, int argc, char **argv,
			   char *err, size_t errlen)
{
	return load(cfg, argc, argv, false, false, err, errlen);
}

static void free_argv(char **argv)
{
	for (char **p = argv; p && *p; p++)
		free(*p);
	free(argv);
}

static void free_routes(struct hop_route *routes, int n)
{
	for (int i = 0; routes && i < n; i++) {
		free(routes[i].port);
		free(routes[i].to);
	}
	free(routes);
}

static void free_stage(struct hop_stage_config *st)
{
	free(st->name);
	free_argv(st->argv);
	free(st->shell_command);
	free(st->mode);
	free(st->key);
	free_routes(st->routes, st->nroutes);
	hop_join_config_free(st->join);
	hop_reduce_config_free(st->reduce);
	hop_source_free(st->via_source); /* when the graph did not take it */
	hop_sink_free(st->via_sink);
}

void hop_config_free(struct hop_config *cfg)
{
	for (int i = 0; cfg->stages && i < cfg->nstages; i++)
		free_stage(&cfg->stages[i]);
	free(cfg->stages);
	/* sources[0] and sinks[0] are source and sink, freed below. */
	for (int i = 1; i < cfg->nsources; i++)
		hop_source_free(cfg->sources[i]);
	for (int i = 0; cfg->source_names && i < cfg->nsources; i++)
		free(cfg->source_names[i]);
	free(cfg->sources);
	free(cfg->source_names);
	free_routes(cfg->source_routes, cfg->source_routes ? cfg->nsources : 0);
	free(cfg->source_edge);
	for (int i = 1; i < cfg->nsinks; i++)
		hop_sink_free(cfg->sinks[i]);
	for (int i = 0; cfg->sink_names && i < cfg->nsinks; i++)
		free(cfg->sink_names[i]);
	free(cfg->sinks);
	free(cfg->sink_names);
	hop_source_free(cfg->source);
	hop_sink_free(cfg->sink);
	free_argv(cfg->argv);
	hop_opts_free(run_options, cfg);
	free(cfg->shell_command);
	free(cfg->pipeline);
	memset(cfg, 0, sizeof(*cfg));
}

const char *hop_config_command(const struct hop_config *cfg)
{
	const char *shell = cfg->shell_command;
	char **argv = cfg->argv;
	if (!argv && cfg->nstages > 0) {
		shell = cfg->stages[0].shell_command;
		argv = cfg->stages[0].argv;
	}
	return shell ? shell : argv ? argv[0] : "";
}
