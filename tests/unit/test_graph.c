/* Unit tests for graph.c: the checks of a pipeline's graph, on configs
 * built by hand, and the edges it prints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/graph.h"

#define MAX 8

/* A graph built by hand: stages by name, one or more sinks, sources that
 * feed stages. Edges are added with edge(). */
struct g {
	struct hop_config cfg;
	struct hop_stage_config stages[MAX];
	struct hop_route routes[MAX][MAX];
	struct hop_target to[MAX][MAX][MAX];
	struct hop_route src_routes[MAX];
	struct hop_target src_to[MAX][MAX];
	struct hop_source src[MAX], *srcs[MAX];
	struct hop_sink sink[MAX], *sinks[MAX];
	char *src_names[MAX], *sink_names[MAX];
};

static struct g *graph(const char *stages, const char *sinks,
		       const char *sources)
{
	struct g *g = calloc(1, sizeof(*g));
	char *list, *name, *save;

	g->cfg.staged = true;
	g->cfg.stages = g->stages;
	g->cfg.source_routes = g->src_routes;
	g->cfg.sources = g->srcs;
	g->cfg.sinks = g->sinks;
	g->cfg.source_names = g->src_names;
	g->cfg.sink_names = g->sink_names;
	list = strdup(stages);
	for (name = strtok_r(list, " ", &save); name;
	     name = strtok_r(NULL, " ", &save)) {
		struct hop_stage_config *s = &g->stages[g->cfg.nstages];
		s->name = strdup(name);
		s->mode = "stream";
		s->workers = 1;
		s->shards = 1;
		s->routes = g->routes[g->cfg.nstages];
		for (int r = 0; r < MAX; r++)
			s->routes[r].to = g->to[g->cfg.nstages][r];
		g->cfg.nstages++;
	}
	free(list);
	list = strdup(sinks);
	for (name = strtok_r(list, " ", &save); name;
	     name = strtok_r(NULL, " ", &save)) {
		int i = g->cfg.nsinks++;
		g->sink_names[i] = strdup(name);
		g->sink[i].label = "jsonl:-";
		g->sinks[i] = &g->sink[i];
	}
	free(list);
	list = strdup(sources);
	for (name = strtok_r(list, " ", &save); name;
	     name = strtok_r(NULL, " ", &save)) {
		int i = g->cfg.nsources++;
		g->src_names[i] = strdup(name);
		g->src[i].label = "jsonl:in";
		g->srcs[i] = &g->src[i];
		g->src_routes[i].to = g->src_to[i];
	}
	free(list);
	return g;
}

static void graph_free(struct g *g)
{
	for (int i = 0; i < g->cfg.nstages; i++)
		free(g->stages[i].name);
	for (int i = 0; i < g->cfg.nsinks; i++)
		free(g->sink_names[i]);
	for (int i = 0; i < g->cfg.nsources; i++)
		free(g->src_names[i]);
	free(g);
}

/* Adds an edge from a stage (or, with from_source, a source) to a stage
 * or sink, on port (NULL: every output). */
static void edge(struct g *g, bool from_source, const char *from,
		 const char *port, const char *to)
{
	struct hop_target t;
	struct hop_route *r = NULL;
	assert_int_equal(hop_graph_find(&g->cfg, to, &t), 0);
	if (from_source) {
		for (int i = 0; i < g->cfg.nsources; i++)
			if (!strcmp(g->src_names[i], from))
				r = &g->src_routes[i];
	} else {
		for (int i = 0; i < g->cfg.nstages; i++) {
			struct hop_stage_config *s = &g->stages[i];
			if (strcmp(s->name, from))
				continue;
			for (int k = 0; k < s->nroutes && !r; k++)
				if ((!port && !s->routes[k].port) ||
				    (port && s->routes[k].port &&
				     !strcmp(port, s->routes[k].port)))
					r = &s->routes[k];
			if (!r) {
				r = &s->routes[s->nroutes++];
				r->port = (char *)port;
			}
		}
	}
	assert_non_null(r);
	r->to[r->nto++] = t;
}

static int stage_index(struct g *g, const char *name)
{
	struct hop_target t;
	assert_int_equal(hop_graph_find(&g->cfg, name, &t), 0);
	assert_false(t.sink);
	return t.index;
}

/* Checks the graph and expects fault at stage (or source) name. */
static void expect(struct g *g, enum hop_graph_fault f, const char *name,
		   const char *key, const char *words)
{
	struct hop_graph_error e;
	assert_int_equal(hop_graph_check(&g->cfg, &e), -EINVAL);
	assert_int_equal(e.fault, f);
	if (e.stage >= 0)
		assert_string_equal(g->stages[e.stage].name, name);
	else
		assert_string_equal(g->src_names[e.source], name);
	if (key)
		assert_string_equal(e.key, key);
	else
		assert_null(e.key);
	if (!strstr(e.msg, words))
		fail_msg("'%s' not in '%s'", words, e.msg);
}

/* The sign-up flow of the README: a copier, a splitter, a sharder. */
static struct g *signup(void)
{
	struct g *g =
	    graph("verify welcome prefs email sms", "out log", "signups");
	edge(g, true, "signups", NULL, "verify");
	edge(g, false, "verify", NULL, "welcome");
	edge(g, false, "verify", NULL, "prefs");
	edge(g, false, "welcome", NULL, "out");
	edge(g, false, "prefs", "email", "email");
	edge(g, false, "prefs", "sms", "sms");
	edge(g, false, "email", NULL, "out");
	edge(g, false, "sms", NULL, "log");
	g->stages[stage_index(g, "email")].shards = 4;
	g->stages[stage_index(g, "email")].key = "/user";
	return g;
}

static void a_good_graph_passes(void **state)
{
	struct g *g = signup();
	struct hop_graph_error e;
	assert_int_equal(hop_graph_check(&g->cfg, &e), 0);
	graph_free(g);
}

static void finds_names_and_near_ones(void **state)
{
	struct g *g = signup();
	struct hop_target t;
	assert_int_equal(hop_graph_find(&g->cfg, "log", &t), 0);
	assert_true(t.sink);
	assert_int_equal(t.index, 1);
	assert_int_equal(hop_graph_find(&g->cfg, "prefs", &t), 0);
	assert_false(t.sink);
	assert_int_equal(t.index, 2);
	assert_int_equal(hop_graph_find(&g->cfg, "nope", &t), -ENOENT);
	assert_string_equal(hop_graph_nearest(&g->cfg, "welcom"), "welcome");
	assert_string_equal(hop_graph_nearest(&g->cfg, "lgo"), "log");
	assert_null(hop_graph_nearest(&g->cfg, "zzzzzz"));
	graph_free(g);
}

static void a_cycle_is_named_by_its_stages(void **state)
{
	struct g *g = graph("a b c d", "out", "in");
	edge(g, true, "in", NULL, "a");
	edge(g, false, "a", NULL, "b");
	edge(g, false, "b", NULL, "c");
	edge(g, false, "c", NULL, "d");
	edge(g, false, "c", NULL, "b");
	edge(g, false, "d", NULL, "out");
	expect(g, HOP_GRAPH_CYCLE, "b", "to", "b -> c -> b");
	graph_free(g);

	g = graph("a", "out", "in");
	edge(g, true, "in", NULL, "a");
	edge(g, false, "a", "again", "a");
	edge(g, false, "a", NULL, "out");
	expect(g, HOP_GRAPH_CYCLE, "a", "to", "a -> a");
	graph_free(g);
}

static void a_stage_nothing_feeds(void **state)
{
	struct g *g = graph("a b c", "out", "in");
	edge(g, true, "in", NULL, "a");
	edge(g, false, "a", NULL, "out");
	edge(g, false, "b", NULL, "c");
	edge(g, false, "c", NULL, "out");
	expect(g, HOP_GRAPH_UNFED, "b", NULL, "nothing feeds it");
	graph_free(g);
}

static void outputs_that_go_nowhere(void **state)
{
	struct g *g = graph("a b", "out log", "in");
	edge(g, true, "in", NULL, "a");
	edge(g, false, "a", NULL, "b");
	expect(g, HOP_GRAPH_NOWHERE, "b", NULL, "2 sinks: out, log");
	graph_free(g);
}

static void sharders_need_a_key_and_keys_shards(void **state)
{
	struct g *g = signup();
	g->stages[stage_index(g, "email")].key = NULL;
	expect(g, HOP_GRAPH_NO_KEY, "email", "shards", "needs a 'key'");
	g->stages[stage_index(g, "email")].key = "/user";
	g->stages[stage_index(g, "email")].shards = 1;
	expect(g, HOP_GRAPH_NO_SHARDS, "email", "key", "shards nothing");
	graph_free(g);
}

static void a_name_for_a_stage_and_a_sink(void **state)
{
	struct g *g = graph("a out", "out", "in");
	edge(g, true, "in", NULL, "a");
	edge(g, false, "a", NULL, "out");
	expect(g, HOP_GRAPH_NAME_CLASH, "out", NULL,
	       "names both a stage and a sink");
	/* Without stages in the file, both are "main" and nothing names
	 * them. */
	g->cfg.staged = false;
	g->stages[1].routes[0].to[0] = (struct hop_target){true, 0};
	g->stages[1].routes[0].nto = 1;
	g->stages[1].nroutes = 1;
	struct hop_graph_error e;
	assert_int_equal(hop_graph_check(&g->cfg, &e), 0);
	graph_free(g);
}

static void sources_feed_stages(void **state)
{
	struct g *g = graph("a", "out", "one two");
	edge(g, true, "one", NULL, "a");
	edge(g, false, "a", NULL, "out");
	expect(g, HOP_GRAPH_SOURCE_IDLE, "two", NULL, "feeds nothing");
	edge(g, true, "two", NULL, "out");
	expect(g, HOP_GRAPH_SOURCE_IDLE, "two", "to", "names the sink 'out'");
	graph_free(g);
}

/* The first fault in file order is the one named. */
static void the_first_fault_is_named(void **state)
{
	struct g *g = graph("a b c", "out log", "in");
	edge(g, true, "in", NULL, "a");
	edge(g, false, "a", NULL, "out");
	/* b and c go nowhere, and nothing feeds them. */
	expect(g, HOP_GRAPH_NOWHERE, "b", NULL, "go nowhere");
	graph_free(g);
}

/* Runs hop_graph_print into a string. */
static char *printed(struct g *g, enum hop_graph_format f)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	hop_graph_print(out, &g->cfg, f);
	fclose(out);
	return text;
}

static void prints_the_edges(void **state)
{
	struct g *g = signup();
	enum hop_graph_format f;
	char *text = printed(g, HOP_GRAPH_TEXT);
	assert_non_null(strstr(text, "source signups (jsonl:in) -> verify\n"));
	/* The test's stages have no command: none is printed. */
	assert_non_null(strstr(text, "stage verify (stream, 1 worker)\n"
				     "  -> welcome, prefs\n"));
	assert_non_null(strstr(text, "  [email] -> email\n  [sms] -> sms\n"));
	assert_non_null(strstr(text, "1 worker per shard, 4 shards by /user"));
	assert_non_null(strstr(text, "sink log (jsonl:-)\n"));
	free(text);
	text = printed(g, HOP_GRAPH_DOT);
	assert_non_null(strstr(
	    text, "\t\"stage/prefs\" -> \"stage/sms\" [label=\"sms\"];"));
	assert_non_null(strstr(text, "\t\"stage/email\" -> \"sink/out\";"));
	free(text);
	text = printed(g, HOP_GRAPH_MERMAID);
	assert_non_null(strstr(text, "\tstage2 -->|\"email\"| stage3\n"));
	assert_non_null(strstr(text, "\tsource0 --> stage0\n"));
	free(text);
	assert_int_equal(hop_graph_format_parse("mermaid", &f), 0);
	assert_int_equal(f, HOP_GRAPH_MERMAID);
	assert_int_equal(hop_graph_format_parse("svg", &f), -EINVAL);
	graph_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_good_graph_passes),
	    cmocka_unit_test(finds_names_and_near_ones),
	    cmocka_unit_test(a_cycle_is_named_by_its_stages),
	    cmocka_unit_test(a_stage_nothing_feeds),
	    cmocka_unit_test(outputs_that_go_nowhere),
	    cmocka_unit_test(sharders_need_a_key_and_keys_shards),
	    cmocka_unit_test(a_name_for_a_stage_and_a_sink),
	    cmocka_unit_test(sources_feed_stages),
	    cmocka_unit_test(the_first_fault_is_named),
	    cmocka_unit_test(prints_the_edges),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
