/* graph.c - a pipeline's graph: finding names, checking it, showing it. */
#include "graph.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "gather.h"
#include "suggest.h"

int hop_graph_find(const struct hop_config *cfg, const char *name,
		   struct hop_target *t)
{
	for (int i = 0; i < cfg->nstages; i++)
		if (strcmp(cfg->stages[i].name, name) == 0) {
			*t = (struct hop_target){false, i};
			return 0;
		}
	for (int i = 0; i < cfg->nsinks; i++)
		if (strcmp(cfg->sink_names[i], name) == 0) {
			*t = (struct hop_target){true, i};
			return 0;
		}
	return -ENOENT;
}

const char *hop_graph_nearest(const struct hop_config *cfg, const char *name)
{
	struct hop_suggest s;
	hop_suggest_init(&s, name);
	for (int i = 0; i < cfg->nstages; i++)
		hop_suggest_offer(&s, cfg->stages[i].name);
	for (int i = 0; i < cfg->nsinks; i++)
		hop_suggest_offer(&s, cfg->sink_names[i]);
	return hop_suggest_best(&s);
}

const char *hop_graph_target_name(const struct hop_config *cfg,
				  struct hop_target t)
{
	return t.sink ? cfg->sink_names[t.index] : cfg->stages[t.index].name;
}

static int fault(struct hop_graph_error *e, enum hop_graph_fault f, int stage,
		 int source, const char *key)
{
	e->fault = f;
	e->stage = stage;
	e->source = source;
	e->key = key;
	return -EINVAL;
}

/* Writes "N sinks: a, b" (or "1 sink: a") into buf. */
static void sink_list(const struct hop_config *cfg, char *buf, size_t n)
{
	int w = snprintf(buf, n, "%d sink%s:", cfg->nsinks,
			 cfg->nsinks == 1 ? "" : "s");
	for (int i = 0; i < cfg->nsinks && w > 0 && (size_t)w < n; i++)
		w += snprintf(buf + w, n - (size_t)w, "%s %s", i ? "," : "",
			      cfg->sink_names[i]);
}

/* The checks of one stage on its own: its name, its sharding, its routes. */
static int check_stage(const struct hop_config *cfg, int i,
		       struct hop_graph_error *e)
{
	const struct hop_stage_config *s = &cfg->stages[i];
	char sinks[512];

	/* Without stages, the one stage and the one sink are both "main",
	 * and no "to" names either. */
	for (int k = 0; cfg->staged && k < cfg->nsinks; k++)
		if (strcmp(cfg->sink_names[k], s->name) == 0) {
			snprintf(e->msg, sizeof(e->msg),
				 "'%s' names both a stage and a sink: a name "
				 "in 'to' must mean one of them; rename one",
				 s->name);
			return fault(e, HOP_GRAPH_NAME_CLASH, i, -1, NULL);
		}
	if (s->shards > 1 && !s->key) {
		snprintf(e->msg, sizeof(e->msg),
			 "'shards' %lld needs a 'key', a JSON pointer into "
			 "the payload (\"/user\") that picks the shard",
			 (long long)s->shards);
		return fault(e, HOP_GRAPH_NO_KEY, i, -1, "shards");
	}
	if (s->key && s->shards < 2) {
		snprintf(e->msg, sizeof(e->msg),
			 "'key' %s shards nothing: give 'shards' (2 or more) "
			 "too, or remove the key",
			 s->key);
		return fault(e, HOP_GRAPH_NO_SHARDS, i, -1, "key");
	}
	if (s->nroutes == 0) {
		sink_list(cfg, sinks, sizeof(sinks));
		snprintf(e->msg, sizeof(e->msg),
			 "its outputs go nowhere: give it a 'to' (a stage or "
			 "a sink; without one, outputs go to the only sink, "
			 "and there are %s)",
			 sinks);
		return fault(e, HOP_GRAPH_NOWHERE, i, -1, NULL);
	}
	return 0;
}

static int check_source(const struct hop_config *cfg, int i,
			struct hop_graph_error *e)
{
	const struct hop_route *r = &cfg->source_routes[i];
	if (r->nto == 0) {
		snprintf(e->msg, sizeof(e->msg),
			 "it feeds nothing: give it a 'to' naming a stage "
			 "(only a pipeline's one source feeds the first stage "
			 "by default)");
		return fault(e, HOP_GRAPH_SOURCE_IDLE, -1, i, NULL);
	}
	for (int k = 0; k < r->nto; k++)
		if (r->to[k].sink) {
			snprintf(e->msg, sizeof(e->msg),
				 "'to' names the sink '%s': a source feeds "
				 "stages",
				 cfg->sink_names[r->to[k].index]);
			return fault(e, HOP_GRAPH_SOURCE_IDLE, -1, i, "to");
		}
	return 0;
}

/* The depth-first walk that finds a cycle: state 0 not seen, 1 on the path
 * being walked, 2 done. */
struct walk {
	const struct hop_config *cfg;
	char *state;
	int *path;
	int depth;
	int cycle_from; /* index in path where the cycle starts, or -1 */
};

static bool walk_stage(struct walk *w, int i)
{
	const struct hop_stage_config *s = &w->cfg->stages[i];
	w->state[i] = 1;
	w->path[w->depth++] = i;
	for (int r = 0; r < s->nroutes; r++)
		for (int k = 0; k < s->routes[r].nto; k++) {
			struct hop_target t = s->routes[r].to[k];
			if (t.sink || w->state[t.index] == 2)
				continue;
			if (w->state[t.index] == 1) {
				for (int p = 0; p < w->depth; p++)
					if (w->path[p] == t.index)
						w->cycle_from = p;
				return true;
			}
			if (walk_stage(w, t.index))
				return true;
		}
	w->state[i] = 2;
	w->depth--;
	return false;
}

static int check_cycles(const struct hop_config *cfg, struct hop_graph_error *e)
{
	struct walk w = {cfg, calloc((size_t)cfg->nstages, 1),
			 calloc((size_t)cfg->nstages, sizeof(int)), 0, -1};
	int rc = 0;

	if (!w.state || !w.path) {
		snprintf(e->msg, sizeof(e->msg), "out of memory");
		rc = fault(e, HOP_GRAPH_CYCLE, 0, -1, NULL);
		goto out;
	}
	for (int i = 0; i < cfg->nstages && !rc; i++) {
		if (w.state[i] || !walk_stage(&w, i))
			continue;
		int n = snprintf(e->msg, sizeof(e->msg),
				 "a cycle (a pipeline is a graph without "
				 "one): ");
		for (int p = w.cycle_from;
		     p <= w.depth && n > 0 && (size_t)n < sizeof(e->msg); p++) {
			int at = p < w.depth ? w.path[p] : w.path[w.cycle_from];
			n += snprintf(e->msg + n, sizeof(e->msg) - (size_t)n,
				      "%s%s", p > w.cycle_from ? " -> " : "",
				      cfg->stages[at].name);
		}
		rc = fault(e, HOP_GRAPH_CYCLE, w.path[w.cycle_from], -1, "to");
	}
out:
	free(w.state);
	free(w.path);
	return rc;
}

/* Marks the stages that a route leads to. */
static void mark_fed(const struct hop_route *r, bool *fed)
{
	for (int k = 0; k < r->nto; k++)
		if (!r->to[k].sink)
			fed[r->to[k].index] = true;
}

static int check_fed(const struct hop_config *cfg, struct hop_graph_error *e)
{
	bool *fed = calloc((size_t)cfg->nstages, sizeof(bool));
	int rc = 0;

	if (!fed) {
		snprintf(e->msg, sizeof(e->msg), "out of memory");
		return fault(e, HOP_GRAPH_UNFED, 0, -1, NULL);
	}
	for (int i = 0; i < cfg->nsources; i++)
		mark_fed(&cfg->source_routes[i], fed);
	for (int i = 0; i < cfg->nstages; i++)
		for (int r = 0; r < cfg->stages[i].nroutes; r++)
			mark_fed(&cfg->stages[i].routes[r], fed);
	for (int i = 0; i < cfg->nstages && !rc; i++)
		if (!fed[i]) {
			snprintf(e->msg, sizeof(e->msg),
				 "nothing feeds it: no source and no other "
				 "stage names it in 'to'");
			rc = fault(e, HOP_GRAPH_UNFED, i, -1, NULL);
		}
	free(fed);
	return rc;
}

int hop_graph_check(const struct hop_config *cfg, struct hop_graph_error *e)
{
	memset(e, 0, sizeof(*e));
	e->stage = e->source = -1;
	for (int i = 0; i < cfg->nstages; i++)
		if (check_stage(cfg, i, e))
			return -EINVAL;
	for (int i = 0; i < cfg->nsources; i++)
		if (check_source(cfg, i, e))
			return -EINVAL;
	if (check_cycles(cfg, e) || check_fed(cfg, e))
		return -EINVAL;
	return 0;
}

int hop_graph_format_parse(const char *name, enum hop_graph_format *f)
{
	static const char *const names[] = {"text", "dot", "mermaid"};
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
		if (strcmp(name, names[i]) == 0) {
			*f = (enum hop_graph_format)i;
			return 0;
		}
	return -EINVAL;
}

/* Appends a reduce's window to the w bytes in buf: ", every 1000 items"
 * (a count window), ", windows of 60 s by /ts with 5 s grace" (a time
 * window, "by arrival" without "time"); nothing when it has one result,
 * at the end. */
static void window_words(const struct hop_reduce_config *r, char *buf, size_t n,
			 int w)
{
	if (w <= 0 || (size_t)w >= n)
		return;
	if (r->every)
		snprintf(buf + w, n - (size_t)w, ", every %lld item%s",
			 (long long)r->every, r->every == 1 ? "" : "s");
	else if (r->interval > 0) {
		char grace[48] = "no grace";
		if (r->grace > 0)
			snprintf(grace, sizeof(grace), "%.15g s grace",
				 r->grace);
		snprintf(buf + w, n - (size_t)w,
			 ", windows of %.15g s by %s with %s", r->interval,
			 r->time ? r->time : "arrival", grace);
	}
}

/* Appends ", state in PostgreSQL" to buf when a join's or a reduce's
 * state is kept there (gstore.h). */
static void state_words(const char *state, char *buf, size_t n)
{
	size_t w = strlen(buf);
	if (state && w < n)
		snprintf(buf + w, n - w, ", state in PostgreSQL");
}

/* Writes what a stage is in a few words: "stream, 2 workers", "exec, 1..8
 * workers, 4 shards by /user". */
static void stage_words(const struct hop_stage_config *s, char *buf, size_t n)
{
	int w;
	if (s->reduce && !s->reduce->op_name) {
		w = snprintf(buf, n, "reduce by a %s worker, batches of %lld%s",
			     s->mode, (long long)s->reduce->batch,
			     s->reduce->merge ? ", merged as a tree" : "");
		if (s->reduce->by && w > 0 && (size_t)w < n)
			w += snprintf(buf + w, n - (size_t)w, ", by %s",
				      s->reduce->by);
		window_words(s->reduce, buf, n, w);
		return;
	}
	if (s->reduce) {
		w = snprintf(buf, n, "reduce: %s", s->reduce->op_name);
		if (s->reduce->field && w > 0 && (size_t)w < n)
			w += snprintf(buf + w, n - (size_t)w, " of %s",
				      s->reduce->field);
		if (s->reduce->by && w > 0 && (size_t)w < n)
			w += snprintf(buf + w, n - (size_t)w, " by %s",
				      s->reduce->by);
		window_words(s->reduce, buf, n, w);
		state_words(s->reduce->state, buf, n);
		return;
	}
	if (s->join && !s->argv && !s->shell_command) {
		w = snprintf(buf, n, "join, %s dead parts",
			     s->join->collect ? "collecting" : "failing on");
		if (s->join->by && w > 0 && (size_t)w < n)
			snprintf(
			    buf + w, n - (size_t)w, ", by %s%s%s", s->join->by,
			    s->join->count ? " counting " : " until ",
			    s->join->count ? s->join->count : s->join->end);
		state_words(s->join->state, buf, n);
		return;
	}
	if (s->join)
		w = snprintf(buf, n, "join, then %s, %lld worker%s", s->mode,
			     (long long)s->workers, s->workers == 1 ? "" : "s");
	else if (s->autoscale)
		w = snprintf(buf, n, "%s, %lld..%lld %sworkers", s->mode,
			     (long long)s->min_workers,
			     (long long)s->max_workers,
			     s->shared ? "shared " : "");
	else
		w = snprintf(buf, n, "%s, %lld worker%s", s->mode,
			     (long long)s->workers, s->workers == 1 ? "" : "s");
	if (s->shards > 1 && w > 0 && (size_t)w < n)
		w += snprintf(buf + w, n - (size_t)w, " per shard, %lld shards",
			      (long long)s->shards);
	if (s->key && w > 0 && (size_t)w < n)
		w += snprintf(buf + w, n - (size_t)w, " by %s", s->key);
	if (s->drop_unmapped && w > 0 && (size_t)w < n)
		w += snprintf(buf + w, n - (size_t)w,
			      ", unmapped outputs dropped");
	if (s->dead_alone && w > 0 && (size_t)w < n)
		snprintf(buf + w, n - (size_t)w, ", dead items alone");
}

/* Writes the worker command as a person would type it. */
static void command_text(FILE *out, const struct hop_stage_config *s)
{
	if (s->shell_command) {
		fputs(s->shell_command, out);
		return;
	}
	for (char **a = s->argv; a && *a; a++)
		fprintf(out, "%s%s", a == s->argv ? "" : " ", *a);
}

/* Names a driver: its type and target ("dir:out") once config.c has
 * labelled it, else its type. */
static const char *source_label(const struct hop_source *s)
{
	return s->label ? s->label : s->ops->name;
}

static const char *sink_label(const struct hop_sink *s)
{
	return s->label ? s->label : s->ops->name;
}

/* The names of a route's targets, comma separated. */
static void targets_text(FILE *out, const struct hop_config *cfg,
			 const struct hop_route *r)
{
	for (int k = 0; k < r->nto; k++)
		fprintf(out, "%s%s", k ? ", " : "",
			hop_graph_target_name(cfg, r->to[k]));
}

/* True when a stage's routes are one route for every output: its "to"
 * was a name or a list, not a map of ports. */
static bool portless(const struct hop_stage_config *s)
{
	return s->nroutes == 1 && !s->routes[0].port;
}

static void print_text(FILE *out, const struct hop_config *cfg)
{
	char words[512];
	for (int i = 0; i < cfg->nsources; i++) {
		fprintf(out, "source %s (%s) -> ", cfg->source_names[i],
			source_label(cfg->sources[i]));
		targets_text(out, cfg, &cfg->source_routes[i]);
		fputc('\n', out);
	}
	for (int i = 0; i < cfg->nstages; i++) {
		const struct hop_stage_config *s = &cfg->stages[i];
		stage_words(s, words, sizeof(words));
		fprintf(out, "stage %s (%s)", s->name, words);
		if (s->argv || s->shell_command)
			fputs(": ", out);
		command_text(out, s);
		fputc('\n', out);
		for (int r = 0; r < s->nroutes; r++) {
			if (portless(s))
				fprintf(out, "  -> ");
			else
				fprintf(out, "  [%s] -> ",
					s->routes[r].port ? s->routes[r].port
							  : "*");
			targets_text(out, cfg, &s->routes[r]);
			fputc('\n', out);
		}
	}
	for (int i = 0; i < cfg->nsinks; i++)
		fprintf(out, "sink %s (%s)\n", cfg->sink_names[i],
			sink_label(cfg->sinks[i]));
}

/* Writes s as the inside of a Graphviz string. */
static void dot_escaped(FILE *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', out);
		fputc(*s, out);
	}
}

static void dot_node(FILE *out, const char *kind, const char *name)
{
	fprintf(out, "\"%s/", kind);
	dot_escaped(out, name);
	fputc('"', out);
}

static void dot_edges(FILE *out, const struct hop_config *cfg, const char *kind,
		      const char *name, const struct hop_route *r,
		      bool show_port)
{
	for (int k = 0; k < r->nto; k++) {
		fputc('\t', out);
		dot_node(out, kind, name);
		fputs(" -> ", out);
		dot_node(out, r->to[k].sink ? "sink" : "stage",
			 hop_graph_target_name(cfg, r->to[k]));
		if (show_port) {
			fputs(" [label=\"", out);
			dot_escaped(out, r->port ? r->port : "*");
			fputs("\"]", out);
		}
		fputs(";\n", out);
	}
}

static void print_dot(FILE *out, const struct hop_config *cfg)
{
	char words[512];
	fprintf(out, "digraph pipeline {\n\trankdir=LR;\n");
	for (int i = 0; i < cfg->nsources; i++) {
		fputc('\t', out);
		dot_node(out, "source", cfg->source_names[i]);
		fputs(" [shape=cds, label=\"", out);
		dot_escaped(out, cfg->source_names[i]);
		fputs("\\n", out);
		dot_escaped(out, source_label(cfg->sources[i]));
		fputs("\"];\n", out);
	}
	for (int i = 0; i < cfg->nstages; i++) {
		stage_words(&cfg->stages[i], words, sizeof(words));
		fputc('\t', out);
		dot_node(out, "stage", cfg->stages[i].name);
		fputs(" [shape=box, label=\"", out);
		dot_escaped(out, cfg->stages[i].name);
		fputs("\\n", out);
		dot_escaped(out, words);
		fputs("\"];\n", out);
	}
	for (int i = 0; i < cfg->nsinks; i++) {
		fputc('\t', out);
		dot_node(out, "sink", cfg->sink_names[i]);
		fputs(" [shape=cylinder, label=\"", out);
		dot_escaped(out, cfg->sink_names[i]);
		fputs("\\n", out);
		dot_escaped(out, sink_label(cfg->sinks[i]));
		fputs("\"];\n", out);
	}
	for (int i = 0; i < cfg->nsources; i++)
		dot_edges(out, cfg, "source", cfg->source_names[i],
			  &cfg->source_routes[i], false);
	for (int i = 0; i < cfg->nstages; i++) {
		const struct hop_stage_config *s = &cfg->stages[i];
		for (int r = 0; r < s->nroutes; r++)
			dot_edges(out, cfg, "stage", s->name, &s->routes[r],
				  !portless(s));
	}
	fputs("}\n", out);
}

/* Writes s as text inside a Mermaid label, its quotes and angle brackets
 * as entities. */
static void mermaid_escaped(FILE *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '"')
			fputs("#quot;", out);
		else if (*s == '<')
			fputs("#lt;", out);
		else if (*s == '>')
			fputs("#gt;", out);
		else
			fputc(*s, out);
	}
}

/* Mermaid's node ids: names may hold what an id may not, so each node is
 * its kind and index ("stage2"), its name in the label. */
static void mermaid_edges(FILE *out, const char *from, int index,
			  const struct hop_route *r, bool show_port)
{
	for (int k = 0; k < r->nto; k++) {
		fprintf(out, "\t%s%d -->", from, index);
		if (show_port) {
			fputs("|\"", out);
			mermaid_escaped(out, r->port ? r->port : "*");
			fputs("\"|", out);
		}
		fprintf(out, " %s%d\n", r->to[k].sink ? "sink" : "stage",
			r->to[k].index);
	}
}

static void print_mermaid(FILE *out, const struct hop_config *cfg)
{
	char words[512];
	fputs("flowchart LR\n", out);
	for (int i = 0; i < cfg->nsources; i++) {
		fprintf(out, "\tsource%d[/\"", i);
		mermaid_escaped(out, cfg->source_names[i]);
		fputs("<br/>", out);
		mermaid_escaped(out, source_label(cfg->sources[i]));
		fputs("\"/]\n", out);
	}
	for (int i = 0; i < cfg->nstages; i++) {
		stage_words(&cfg->stages[i], words, sizeof(words));
		fprintf(out, "\tstage%d[\"", i);
		mermaid_escaped(out, cfg->stages[i].name);
		fputs("<br/>", out);
		mermaid_escaped(out, words);
		fputs("\"]\n", out);
	}
	for (int i = 0; i < cfg->nsinks; i++) {
		fprintf(out, "\tsink%d[(\"", i);
		mermaid_escaped(out, cfg->sink_names[i]);
		fputs("<br/>", out);
		mermaid_escaped(out, sink_label(cfg->sinks[i]));
		fputs("\")]\n", out);
	}
	for (int i = 0; i < cfg->nsources; i++)
		mermaid_edges(out, "source", i, &cfg->source_routes[i], false);
	for (int i = 0; i < cfg->nstages; i++) {
		const struct hop_stage_config *s = &cfg->stages[i];
		for (int r = 0; r < s->nroutes; r++)
			mermaid_edges(out, "stage", i, &s->routes[r],
				      !portless(s));
	}
}

void hop_graph_print(FILE *out, const struct hop_config *cfg,
		     enum hop_graph_format f)
{
	if (f == HOP_GRAPH_DOT)
		print_dot(out, cfg);
	else if (f == HOP_GRAPH_MERMAID)
		print_mermaid(out, cfg);
	else
		print_text(out, cfg);
}
