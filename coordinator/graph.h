/* graph.h - a pipeline's graph: finding names, checking it, showing it.
 *
 * config.c reads the graph (stages, named sources and sinks, the routes
 * between them) into struct hop_config; this module answers questions
 * about it without knowing where it came from, so that its checks can be
 * tested on configs built by hand. It finds no positions in a file: an
 * error names the stage or source and the key at fault, and config.c
 * turns them into FILE:LINE:COL.
 */
#ifndef HOP_GRAPH_H
#define HOP_GRAPH_H

#include <stdio.h>

#include "config.h"

/* What is wrong with a graph. */
enum hop_graph_fault {
	HOP_GRAPH_OK,
	HOP_GRAPH_NAME_CLASH,  /* a stage and a sink have one name (in a
				  file with stages: without them, both are
				  "main" and no "to" names them) */
	HOP_GRAPH_NO_KEY,      /* a sharder without a key */
	HOP_GRAPH_NO_SHARDS,   /* a key on a stage that is not a sharder */
	HOP_GRAPH_NOWHERE,     /* a stage whose outputs go nowhere */
	HOP_GRAPH_SOURCE_IDLE, /* a source that feeds no stage */
	HOP_GRAPH_CYCLE,       /* a stage's outputs come back to it */
	HOP_GRAPH_UNFED,       /* a stage that nothing feeds */
};

struct hop_graph_error {
	enum hop_graph_fault fault;
	int stage;	 /* the stage at fault, an index; -1 for a source */
	int source;	 /* the source at fault, an index; -1 for a stage */
	const char *key; /* its key at fault ("to", "shards", "key"), or NULL
			    for the stage (or source) as a whole */
	char msg[768];	 /* why, in words, without a position */
};

/* Checks the graph: names, sharders, where every stage's outputs go and
 * every source's items, then cycles, then stages nothing feeds (in this
 * order, so that a cycle is named as one rather than as stages unfed).
 * Targets must be valid indices. Returns 0, or -EINVAL with the first
 * fault found (in file order) in *e. */
int hop_graph_check(const struct hop_config *cfg, struct hop_graph_error *e);

/* Finds the stage or sink called name. Returns 0 with *t set, or -ENOENT. */
int hop_graph_find(const struct hop_config *cfg, const char *name,
		   struct hop_target *t);

/* Returns the stage or sink name nearest to a misspelt name, or NULL when
 * none is near (suggest.h). The string is cfg's. */
const char *hop_graph_nearest(const struct hop_config *cfg, const char *name);

/* Names a target: its stage's or sink's name, borrowed from cfg. */
const char *hop_graph_target_name(const struct hop_config *cfg,
				  struct hop_target t);

enum hop_graph_format {
	HOP_GRAPH_TEXT,
	HOP_GRAPH_DOT,
	HOP_GRAPH_MERMAID,
};

/* Reads a format's name: text, dot or mermaid. Returns 0, or -EINVAL. */
int hop_graph_format_parse(const char *name, enum hop_graph_format *f);

/* Writes the graph: its sources, stages (mode, workers, shards), sinks and
 * the edges between them, a port on an edge that has one. Text is for
 * people (and hopper validate), dot for Graphviz, mermaid for Markdown. */
void hop_graph_print(FILE *out, const struct hop_config *cfg,
		     enum hop_graph_format f);

#endif
