/* deadcmd.c - `hopper dead`: the command line over dead.h. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "dead.h"
#include "log.h"
#include "run.h"
#include "sources/source.h"

enum action { LIST, RETRY, DISCARD };

struct args {
	enum action action;
	const char **ids; /* the operands */
	int nids;
	bool all, json, dry_run;
	const char *to;	 /* where retried payloads go, for a stream source */
	char **cfg_argv; /* -s, -S and -f, for the config */
	int cfg_argc;
};

/* Writes text from column indent, its lines at most 79 wide. */
static void wrap(FILE *out, const char *text, int indent)
{
	int col = indent;
	while (*text) {
		int n = (int)strcspn(text, " ");
		if (col > indent && col + 1 + n > 79) {
			fprintf(out, "\n%*s", indent, "");
			col = indent;
		} else if (col > indent) {
			fputc(' ', out);
			col++;
		}
		fprintf(out, "%.*s", n, text);
		col += n;
		text += n + (text[n] == ' ');
	}
	fputc('\n', out);
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage:\n"
		"  hopper dead list [ID...] [--json] SOURCE\n"
		"  hopper dead retry (ID... | --all) [--dry-run] [--json] "
		"[--to FILE] SOURCE\n"
		"  hopper dead discard (ID... | --all) [--dry-run] [--json] "
		"SOURCE\n"
		"\n"
		"SOURCE is given as to hopper run: -s SPEC [-S KEY=VAL]..., "
		"or -f PIPELINE\n"
		"(with --stage NAME, the source of that stage: its via).\n"
		"No coordinator needs to run. The dead-letter places:\n");
	for (size_t i = 0; hop_source_registry[i]; i++) {
		const struct hop_source_ops *s = hop_source_registry[i];
		if (!s->dead_place)
			continue;
		fprintf(out, "  %-9s ", s->name);
		wrap(out, s->dead_place, 12);
	}
	fprintf(out,
		"\n"
		"  --all       retry or discard every dead letter\n"
		"  --dry-run   say what would be done, and do nothing\n"
		"  --json      one JSON object per line instead of a table\n"
		"  --to FILE   where retried payloads go, for a source that "
		"cannot take\n"
		"              them back (a stream)\n"
		"\n"
		"exit status: 0 done, 1 a dead letter could not be found or "
		"acted on (named\n"
		"on stderr; the others are done), 2 usage\n");
}

/* The flags that name the source, as run takes them, with a value. */
static bool cfg_flag(const char *a)
{
	static const char *const flags[] = {
	    "-s", "--source",	"-S",	   "--source-opt",
	    "-f", "--pipeline", "--stage", NULL,
	};
	for (size_t i = 0; flags[i]; i++)
		if (!strcmp(a, flags[i]))
			return true;
	return false;
}

static bool cfg_flag_joined(const char *a)
{
	static const char *const flags[] = {
	    "--source=", "--source-opt=", "--pipeline=", "--stage=", NULL,
	};
	for (size_t i = 0; flags[i]; i++)
		if (!strncmp(a, flags[i], strlen(flags[i])))
			return true;
	return false;
}

/* Reads the command line into a. Returns 0 or HOP_EXIT_USAGE, said. */
static int parse(int argc, char **argv, struct args *a)
{
	if (argc < 1)
		goto usage;
	if (!strcmp(argv[0], "list"))
		a->action = LIST;
	else if (!strcmp(argv[0], "retry"))
		a->action = RETRY;
	else if (!strcmp(argv[0], "discard"))
		a->action = DISCARD;
	else if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
		usage(stdout);
		return -1;
	} else {
		fprintf(stderr, "hopper dead: unknown action '%s'\n", argv[0]);
		goto usage;
	}
	a->ids = calloc((size_t)argc, sizeof(*a->ids));
	a->cfg_argv = calloc((size_t)argc + 1, sizeof(*a->cfg_argv));
	if (!a->ids || !a->cfg_argv)
		goto usage;
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
			usage(stdout);
			return -1;
		} else if (!strcmp(s, "--all")) {
			a->all = true;
		} else if (!strcmp(s, "--json")) {
			a->json = true;
		} else if (!strcmp(s, "--dry-run")) {
			a->dry_run = true;
		} else if (!strcmp(s, "--to") && i + 1 < argc) {
			a->to = argv[++i];
		} else if (cfg_flag(s) && i + 1 < argc) {
			a->cfg_argv[a->cfg_argc++] = argv[i];
			a->cfg_argv[a->cfg_argc++] = argv[++i];
		} else if (cfg_flag_joined(s)) {
			a->cfg_argv[a->cfg_argc++] = argv[i];
		} else if (s[0] == '-' && s[1]) {
			fprintf(stderr, "hopper dead: unknown flag '%s'%s\n", s,
				cfg_flag(s) || !strcmp(s, "--to")
				    ? " (it needs a value)"
				    : "");
			goto usage;
		} else {
			a->ids[a->nids++] = s;
		}
	}
	if (a->action != LIST && !a->all && !a->nids) {
		fprintf(stderr,
			"hopper dead %s: name the dead letters (IDs from "
			"hopper dead list) or give --all\n",
			argv[0]);
		goto usage;
	}
	if (a->all && a->nids) {
		fprintf(stderr, "hopper dead %s: IDs or --all, not both\n",
			argv[0]);
		goto usage;
	}
	return 0;
usage:
	fprintf(stderr, "\n");
	usage(stderr);
	return HOP_EXIT_USAGE;
}

/* Puts JSON text into o under key, as JSON when it parses. */
static void set_json(json_t *o, const char *key, const char *text)
{
	json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
	if (!v && text)
		v = json_string(text);
	json_object_set_new(o, key, v ? v : json_null());
}

static void print_json_entry(const struct hop_dead_entry *e)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(e->id));
	json_object_set_new(o, "item", json_string(e->item));
	json_object_set_new(o, "error", json_string(e->error));
	json_object_set_new(o, "attempts",
			    e->attempts >= 0 ? json_integer(e->attempts)
					     : json_null());
	json_object_set_new(o, "when",
			    e->when ? json_string(e->when) : json_null());
	set_json(o, "payload", e->payload);
	set_json(o, "record", e->record);
	char *s = json_dumps(o, JSON_COMPACT);
	if (s)
		printf("%s\n", s);
	free(s);
	json_decref(o);
}

/* The table's columns: id, attempts, when, and the error's first line. */
static void print_table(const struct hop_dead_entry *const *v, size_t n)
{
	int w = 2;
	for (size_t i = 0; i < n; i++)
		if ((int)strlen(v[i]->id) > w)
			w = (int)strlen(v[i]->id);
	if (w > 48)
		w = 48;
	printf("%-*s  %8s  %-20s  %s\n", w, "ID", "ATTEMPTS", "DIED", "ERROR");
	for (size_t i = 0; i < n; i++) {
		const struct hop_dead_entry *e = v[i];
		char att[24];
		snprintf(att, sizeof(att), "%lld", (long long)e->attempts);
		printf("%-*s  %8s  %-20s  %.*s\n", w, e->id,
		       e->attempts >= 0 ? att : "?", e->when ? e->when : "?",
		       (int)strcspn(e->error, "\n"), e->error);
	}
}

static int list(struct hop_dead *d, const struct args *a)
{
	const struct hop_dead_entry **v = calloc(d->n + 1, sizeof(*v));
	size_t n = 0;
	int code = 0;

	if (!v)
		return HOP_EXIT_FAILURE;
	for (size_t i = 0; i < d->n && !a->nids; i++)
		v[n++] = &d->v[i];
	for (int i = 0; i < a->nids; i++) {
		const struct hop_dead_entry *e = hop_dead_find(d, a->ids[i]);
		if (e) {
			v[n++] = e;
		} else {
			fprintf(stderr, "hopper: %s: no dead letter '%s'\n",
				d->src->label, a->ids[i]);
			code = HOP_EXIT_FAILURE;
		}
	}
	if (a->json)
		for (size_t i = 0; i < n; i++)
			print_json_entry(v[i]);
	else if (n || !a->nids)
		print_table(v, n);
	free(v);
	return code;
}

/* Says what was done to one dead letter: on report, which is stdout unless
 * retried payloads go there. */
static void report(FILE *out, const struct args *a, const char *id)
{
	const char *done = a->action == RETRY ? "retried" : "discarded";
	const char *would = a->action == RETRY ? "retry" : "discard";
	if (a->json) {
		json_t *o = json_object();
		json_object_set_new(o, "id", json_string(id));
		json_object_set_new(o, "action",
				    json_string(a->dry_run ? would : done));
		json_object_set_new(o, "dry_run", json_boolean(a->dry_run));
		char *s = json_dumps(o, JSON_COMPACT);
		if (s)
			fprintf(out, "%s\n", s);
		free(s);
		json_decref(o);
	} else {
		fprintf(out, "%s%s %s\n", a->dry_run ? "would " : "",
			a->dry_run ? would : done, id);
	}
}

static int act_on(struct hop_dead *d, const struct args *a, FILE *to, FILE *out,
		  const char *id)
{
	char err[1024];
	int rc;

	if (a->dry_run)
		rc = hop_dead_find(d, id) ? 0 : -ENOENT;
	else if (a->action == RETRY)
		rc = hop_dead_retry(d, id, to, err, sizeof(err));
	else
		rc = hop_dead_discard(d, id, err, sizeof(err));
	if (rc == -ENOENT && a->dry_run)
		snprintf(err, sizeof(err), "%s: no dead letter '%s'",
			 d->src->label, id);
	if (rc) {
		fprintf(stderr, "hopper: %s\n", err);
		return HOP_EXIT_FAILURE;
	}
	report(out, a, id);
	return 0;
}

static int act_all(struct hop_dead *d, const struct args *a)
{
	bool to_stdout = a->to && !strcmp(a->to, "-");
	FILE *to = to_stdout ? stdout : NULL, *out = to ? stderr : stdout;
	int code = 0;

	if (a->to && !to_stdout && !a->dry_run && !(to = fopen(a->to, "we"))) {
		fprintf(stderr, "hopper: %s: %s\n", a->to, strerror(errno));
		return HOP_EXIT_FAILURE;
	}
	if (a->all) {
		/* Each one's id, copied: acting on one may not move another. */
		for (size_t i = 0; i < d->n; i++)
			if (!d->v[i].gone && act_on(d, a, to, out, d->v[i].id))
				code = HOP_EXIT_FAILURE;
	}
	for (int i = 0; i < a->nids; i++)
		if (act_on(d, a, to, out, a->ids[i]))
			code = HOP_EXIT_FAILURE;
	if (to && !to_stdout && fclose(to)) {
		fprintf(stderr, "hopper: %s: %s\n", a->to, strerror(errno));
		code = HOP_EXIT_FAILURE;
	}
	if (to_stdout && fflush(stdout))
		code = HOP_EXIT_FAILURE;
	return code;
}

int hop_dead_command(int argc, char **argv)
{
	struct args a = {0};
	struct hop_config cfg = {0};
	struct hop_dead d = {0};
	char err[1024];
	int code = parse(argc, argv, &a);

	if (code) {
		code = code < 0 ? 0 : code;
		goto out_args;
	}
	hop_log_setup(false, HOP_WARN);
	if (hop_config_load_source(&cfg, a.cfg_argc, a.cfg_argv, err,
				   sizeof(err))) {
		fprintf(stderr, "hopper dead: %s\n", err);
		code = HOP_EXIT_USAGE;
		goto out_cfg;
	}
	if (hop_dead_open(&d, cfg.source, err, sizeof(err))) {
		fprintf(stderr, "hopper: %s\n", err);
		code = HOP_EXIT_FAILURE;
		goto out_cfg;
	}
	code = a.action == LIST ? list(&d, &a) : act_all(&d, &a);
	hop_dead_close(&d);
out_cfg:
	hop_config_free(&cfg);
out_args:
	free(a.ids);
	free(a.cfg_argv);
	return code;
}
