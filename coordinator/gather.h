/* gather.h - join and reduce: the stages that turn many items into one.
 *
 * A join stage holds the items of one root's tree that reach it (its
 * parts) in a group, until nothing else of that tree is on its way; then
 * the group becomes one item whose payload lists the parts in order. A
 * reduce stage folds every item that reaches it into an accumulator per
 * key (count, sum, min, max, mean, histogram) and writes one result per
 * key when everything upstream has finished, or per window.
 *
 * This file holds the options, the groups and the accumulators; run.c
 * decides when a group is complete and when a window closes, from the
 * lineage it keeps.
 */
#ifndef HOP_GATHER_H
#define HOP_GATHER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "item.h"
#include "opts.h"

/* A stage's "join". */
struct hop_join_config {
	char *on_part_dead; /* "fail" or "collect" */
	double timeout;	    /* seconds from a group's first part; 0: none */
	char *on_timeout;   /* "fail" or "partial" */
	int64_t max_parts;  /* the most parts the stage holds at once */
	bool collect;	    /* on_part_dead is collect */
	bool partial;	    /* on_timeout is partial */
};

enum hop_reduce_op {
	HOP_REDUCE_COUNT,
	HOP_REDUCE_SUM,
	HOP_REDUCE_MIN,
	HOP_REDUCE_MAX,
	HOP_REDUCE_MEAN,
	HOP_REDUCE_HISTOGRAM,
};

/* A stage's "reduce". */
struct hop_reduce_config {
	char *op_name;
	enum hop_reduce_op op;
	char *field; /* a JSON pointer to the value; not for count */
	char *by;    /* a JSON pointer to the key; NULL: one key, "" */
	/* histogram: ascending bucket edges; none: a count per value */
	int nbuckets;
	double *buckets;
	int64_t every;	 /* a result each this many items; 0: at the end */
	double interval; /* a result each this many seconds; 0: none */
};

/* Reads a stage's "join" (true, or an object of options) into a new
 * config. Returns 0, or -EINVAL with a message in msg naming the key. */
int hop_join_parse(json_t *v, struct hop_join_config **out, char *msg,
		   size_t n);
/* Reads a stage's "reduce" (an object) into a new config. Same returns. */
int hop_reduce_parse(json_t *v, struct hop_reduce_config **out, char *msg,
		     size_t n);
void hop_join_config_free(struct hop_join_config *c);
void hop_reduce_config_free(struct hop_reduce_config *c);
/* The keys of "join" (over struct hop_join_config) and of "reduce" (but
 * buckets), for hopper help pipeline. */
extern const struct hop_option hop_join_options[];
extern const struct hop_option hop_reduce_options[];

/* The parts of one root's tree that reached one join stage. */
struct hop_group {
	void *run;		 /* run.c's */
	int stage;		 /* the run's stage */
	struct hop_item *root;	 /* borrowed */
	struct hop_item **parts; /* in the order they came */
	size_t nparts, cap;
	json_t *errors; /* [{id, stage, error}] of the parts that died */
	bool done;	/* handed on (or failed): later parts are late */
	uint64_t timer; /* the deadline's, 0 for none */
	struct hop_group *next_of_root;
	struct hop_group *prev, *next; /* in the stage's open groups */
};

/* Adds part to g. Returns 1 when a part with the same id is there already
 * (the caller ends the duplicate), 0 when added, -ENOMEM. */
int hop_group_add(struct hop_group *g, struct hop_item *part);
/* Records that a part of g's tree died in stage with error. */
void hop_group_error(struct hop_group *g, const char *id, const char *stage,
		     const char *error);
/* The joined payload, compact JSON: {"id": root id, "root": root payload,
 * "parts": [each part's payload, ordered by id], "errors": [...] when any,
 * "missing": true when partial}. Sorts g's parts. NULL when memory ran
 * out. */
char *hop_group_payload(struct hop_group *g, bool partial);
/* Frees g's own memory; its parts are the caller's to end first. */
void hop_group_free(struct hop_group *g);
/* Compares two derived ids ("a/2" < "a/10"): the numeric segments as
 * numbers, the rest as text. */
int hop_id_cmp(const char *a, const char *b);

/* The accumulators of one reduce stage. */
struct hop_reducer;

struct hop_reducer *hop_reducer_new(const struct hop_reduce_config *c);
/* Folds one payload in. Returns 0, or -EINVAL with msg saying what is
 * wrong with it (the field missing, not a number), or -ENOMEM. */
int hop_reducer_add(struct hop_reducer *rd, const char *payload, size_t len,
		    char *msg, size_t n);
/* Items folded in since the last hop_reducer_clear. */
uint64_t hop_reducer_items(const struct hop_reducer *rd);
/* Keys held since the last hop_reducer_clear. */
size_t hop_reducer_keys(const struct hop_reducer *rd);
/* The result of the i'th key (in the order keys first came): its id (the
 * key, or "all" with no by) and its payload, compact JSON, both to free.
 * Returns 0 or -ENOMEM. */
int hop_reducer_result(const struct hop_reducer *rd, size_t i, char **id,
		       char **json);
/* Forgets every key: the next window starts empty. */
void hop_reducer_clear(struct hop_reducer *rd);
void hop_reducer_free(struct hop_reducer *rd);

/* The text at JSON pointer ptr in a JSON text: a string's content
 * unescaped, anything else as its compact JSON. Returns a string to free;
 * NULL with *missing set when there is no such value, NULL alone when
 * memory ran out. */
char *hop_json_pointer_text(const char *text, size_t len, const char *ptr,
			    bool *missing);

#endif
