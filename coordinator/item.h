/* item.h - one unit of work on its way from a source to a sink.
 *
 * An item is created by its source's fetch, owned by the coordinator until
 * its source has acknowledged it, dead-lettered it or taken it back, and then
 * freed by hop_item_free. The source may hang private state on src_data and
 * frees it in its own ack, dead or release callback.
 */
#ifndef HOP_ITEM_H
#define HOP_ITEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hop_group;

struct hop_item {
	char *id;      /* owned; unique within the run */
	char *payload; /* owned; compact JSON text of the payload */
	size_t payload_len;
	int attempt;	/* attempts started, 1 for the first */
	bool invalid;	/* the source could not make an item of it: dead at
			   once with error, never sent to a worker */
	bool one_block; /* id, payload and src_data live in the item's own
			   allocation (hop_item_new_block) */
	void *src_data; /* the source's own; freed by the source, unless
			   it lives in the item (one_block) */

	/* The outcome of the latest attempt. */
	bool ok;
	bool retry;   /* for a failure: may another attempt succeed? */
	char *result; /* owned; compact JSON of the worker's result */
	bool drop;    /* ok, and the answer said "drop": no output at all */
	struct hop_spool *emits; /* owned; what the attempt emitted before
				    its answer, NULL for nothing */
	char *key;   /* owned; the output's key (an emit's "key"), for a sink
			that places by key (a Kafka partition); NULL for none */
	char *error; /* owned; why the attempt failed */
	char
	    *stderr_tail; /* owned; the last lines the worker wrote to stderr */

	/* Lineage. A root is an item a source gave; the items a stage makes
	 * from it are its descendants. The root is acknowledged at its
	 * source once none of its tree is at work or unwritten. */
	struct hop_item *root;	  /* NULL: the item is a root itself */
	uint32_t pending;	  /* a root: its tree's items at work or
				     unwritten, itself included while it is */
	int16_t stage;		  /* the run's stage it is in, or last was */
	int16_t feed;		  /* a root: its source, in the run's sources */
	uint8_t fate;		  /* a root: what its source hears at the end */
	uint32_t holds;		  /* a root: of pending, the reduce windows that
				     wait to write what it gave them */
	struct hop_group *groups; /* a root: its parts gathered at join
				     stages (gather.h), NULL for none */
	int16_t died_in;	  /* a dead root: the run's stage its tree died
				     in, plus one; 0 when it died in none */
	const char *dead_stage;	  /* a dead item, in a file with stages: the
				     name of the stage it died in (the run's
				     string), for the sink's record; or NULL */

	int64_t
	    started_ms; /* when the current attempt was handed to a worker */
	int64_t due_ms; /* for a retry: when to try again */
	uint64_t timer; /* a pending retry timer, if any */
	struct hop_item *next; /* link in whichever list holds the item */
};

/* Returns a new item that takes ownership of id and payload (both from
 * malloc), or NULL (and frees both) when memory ran out. */
struct hop_item *hop_item_new(char *id, char *payload, size_t payload_len);
/* Returns a new item in one allocation with copies of id and payload and
 * extra bytes (aligned) for the source at src_data, which the source must
 * not free; NULL when memory ran out. For sources that make many small
 * items: one malloc and one free each rather than four. */
struct hop_item *hop_item_new_block(const char *id, size_t id_len,
				    const char *payload, size_t payload_len,
				    size_t extra);
void hop_item_free(struct hop_item *it);

/* Clears the outcome of the previous attempt: its result, error, emits
 * and drop. */
void hop_item_reset_outcome(struct hop_item *it);
/* Records a failed attempt: error is copied; what the attempt emitted or
 * would have output is discarded, as only an ok answer's outputs count. */
void hop_item_fail(struct hop_item *it, bool retry, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Appends one line to the item's stderr tail, keeping only the last few. */
void hop_item_add_stderr(struct hop_item *it, const char *line, size_t len);

/* A FIFO of items linked through next. */
struct hop_queue {
	struct hop_item *head, *tail;
	size_t len;
};

void hop_queue_push(struct hop_queue *q, struct hop_item *it);
struct hop_item *hop_queue_pop(struct hop_queue *q);
/* Unlinks it from q; returns false when it was not there. */
bool hop_queue_remove(struct hop_queue *q, struct hop_item *it);

#endif
