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
	/* Join by key: parts from any tree that share a key. by is a JSON
	 * pointer into a part's payload, or "key" for the key the output
	 * was emitted with; NULL joins by parent. A group knows its size
	 * from count (a pointer to the number of parts), or from end (a
	 * pointer to a marker, true on the last part) with seq (a pointer
	 * to each part's number, 0 for the first). */
	char *by;
	char *count;
	char *end;
	char *seq;
	int64_t remember; /* keys of closed groups kept, to know late parts */
	/* By key: where groups are kept (gstore.h), a PostgreSQL URL, and
	 * its table's name; NULL: in memory. */
	char *state;
	char *state_table;
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
	double grace;	 /* a time window stays open this long past its end */
	char *time;	 /* a JSON pointer to an item's event time (seconds
			    since the epoch); NULL: its arrival time */
	/* A reducer worker (the stage has a command, op_name is NULL): the
	 * items in one batch it gets, and whether it merges accumulators. */
	int64_t batch;
	bool merge;
	bool batch_given; /* batch or merge was set: for a worker only */
	/* A built-in op: where its accumulators are kept (a PostgreSQL URL,
	 * rstore.h), and its table's name; NULL: in memory. */
	char *state;
	char *state_table;
};

/* Reads a stage's "join" (true, or an object of options) into a new
 * config. Returns 0, or -EINVAL with a message in msg naming the key. */
int hop_join_parse(json_t *v, struct hop_join_config **out, char *msg,
		   size_t n);
/* Reads a stage's "reduce" (an object) into a new config. Same returns.
 * Whether it needs an op depends on the stage's command: see
 * hop_reduce_check. */
int hop_reduce_parse(json_t *v, struct hop_reduce_config **out, char *msg,
		     size_t n);
/* Checks c for a stage with a worker command (worker: a reducer worker,
 * which takes no op) or without one (a built-in op, which needs one).
 * Returns 0, or -EINVAL with msg naming the key. */
int hop_reduce_check(const struct hop_reduce_config *c, bool worker, char *msg,
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
	/* Join by key: the key (root is NULL), the parts it waits for (-1
	 * while unknown), the parts that died on the way (in errors), and
	 * each part's number when the join has seq. */
	char *key;
	int64_t expected;
	size_t ndead;
	int64_t *seqs;
	struct hop_group *next_of_root;
	struct hop_group *prev, *next; /* in the stage's open groups */
};

/* Adds part to g. Returns 1 when a part with the same id is there already
 * (the caller ends the duplicate), 0 when added, -ENOMEM. */
int hop_group_add(struct hop_group *g, struct hop_item *part);
/* Adds part, numbered seq, to a group by key. Returns as hop_group_add;
 * a part whose id died already counts as a copy too. */
int hop_group_add_seq(struct hop_group *g, struct hop_item *part, int64_t seq);
/* Whether a part with id is in g, or died on its way there. */
bool hop_group_has(const struct hop_group *g, const char *id);
/* Whether a group by key has every part it waits for, arrived or dead. */
bool hop_group_complete(const struct hop_group *g);
/* Records that a part of g's tree died in stage with error. */
void hop_group_error(struct hop_group *g, const char *id, const char *stage,
		     const char *error);
/* The joined payload, compact JSON: {"id": root id, "root": root payload,
 * "parts": [each part's payload, ordered by id], "errors": [...] when any,
 * "missing": true when partial}; by key, {"key": key, "parts": [...]
 * ordered by number (seq) or id, ...}. Sorts g's parts. NULL when memory
 * ran out. */
char *hop_group_payload(struct hop_group *g, bool partial);
/* Frees g's own memory; its parts are the caller's to end first. */
void hop_group_free(struct hop_group *g);
/* What a part of a join by key says of its group, read from its payload
 * (and the key it was emitted with). */
struct hop_part_info {
	char *key;     /* to free */
	int64_t count; /* -1: the part does not say */
	int64_t seq;   /* -1: the part does not say */
	bool last;     /* the end marker is set */
};

/* Reads what payload says for join j. Returns 0; -EINVAL with msg saying
 * what is missing or wrong (no key, a count or seq that is not a whole
 * number); -ENOMEM. */
int hop_part_info(const struct hop_join_config *j, const char *payload,
		  size_t len, const char *emitted_key,
		  struct hop_part_info *info, char *msg, size_t n);

/* Compares two derived ids ("a/2" < "a/10"): the numeric segments as
 * numbers, the rest as text. */
int hop_id_cmp(const char *a, const char *b);

/* A map from text keys to pointers (the keys copied), for the groups of
 * a join by key and the folds of a reducer worker. */
struct hop_strmap;

struct hop_strmap *hop_strmap_new(void);
/* The value of key, NULL when there is none. */
void *hop_strmap_get(const struct hop_strmap *m, const char *key);
/* Sets key to val (not NULL). Returns 0 or -ENOMEM. */
int hop_strmap_put(struct hop_strmap *m, const char *key, void *val);
/* Forgets key; returns its value, NULL when there was none. */
void *hop_strmap_del(struct hop_strmap *m, const char *key);
size_t hop_strmap_len(const struct hop_strmap *m);
/* Frees the map, not the values. */
void hop_strmap_free(struct hop_strmap *m);

/* The keys of the last cap groups closed, oldest forgotten first: a part
 * whose key is here came after its group was over. */
struct hop_keyring;

struct hop_keyring *hop_keyring_new(size_t cap);
bool hop_keyring_has(const struct hop_keyring *k, const char *key);
/* Remembers key, forgetting the oldest when full. Returns 0 or -ENOMEM. */
int hop_keyring_add(struct hop_keyring *k, const char *key);
void hop_keyring_free(struct hop_keyring *k);

/* Tumbling time windows with grace: a pure function of the times it is
 * given, so that it is tested on a fake clock. Window w holds the items
 * whose time t (event time, or arrival) has floor(t / size) == w; it
 * closes once the clock passes its end plus grace, and an item for a
 * closed window is late. */
struct hop_tumbler {
	int64_t size_ms, grace_ms;
	int64_t closed; /* windows below this are closed; INT64_MIN: none */
};

void hop_tumbler_init(struct hop_tumbler *t, int64_t size_ms, int64_t grace_ms);
/* The clock is at now_ms: closes every window whose end plus grace it
 * passed. Returns the lowest window still open (windows below it are to
 * close now, if the caller holds any). */
int64_t hop_tumbler_advance(struct hop_tumbler *t, int64_t now_ms);
/* The window of an item of time t_ms; false when that window is closed
 * (the item is late). */
bool hop_tumbler_place(const struct hop_tumbler *t, int64_t t_ms, int64_t *w);
/* When window w closes, in ms of the clock. */
int64_t hop_tumbler_close_at(const struct hop_tumbler *t, int64_t w);

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
/* Folds in a result of the same reduce (hop_reducer_result's json), as
 * kept elsewhere: results are exact, so folding one in is as folding in
 * every item behind it. Returns 0, -EINVAL (not such a result) or
 * -ENOMEM. */
int hop_reducer_merge(struct hop_reducer *rd, const char *json);
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
