/* answer.h - a stream worker's stdout line, read one way everywhere.
 *
 * A run (stream.c) and `hopper check-worker` both ask this reader what a
 * worker's line says about the item in hand, so that a worker that passes
 * the check is read the same way by its first run.
 */
#ifndef HOP_ANSWER_H
#define HOP_ANSWER_H

#include <stdbool.h>
#include <stddef.h>

enum hop_answer_kind {
	HOP_ANSWER_NOT_OBJECT, /* not one JSON object on the line */
	HOP_ANSWER_NO_ID,      /* no "id", or one that is not a string */
	HOP_ANSWER_NUMBER_ID,  /* the item's id as a number: 1 for "1" */
	HOP_ANSWER_OTHER_ID,   /* a string id that is not the item's */
	HOP_ANSWER_PROGRESS,   /* a progress line: the worker is alive */
	HOP_ANSWER_NO_OK,      /* neither progress nor a boolean "ok" */
	HOP_ANSWER_OK,	       /* done: result holds the result */
	HOP_ANSWER_FAILED,     /* the worker failed the item: error, retry */
	HOP_ANSWER_EMIT,       /* an output of the item: result, port, key */
	HOP_ANSWER_BAD_EMIT,   /* an "emit" line the contract refuses: text
				  says why (a port or key that is not a
				  string, "ok" on it too, no "emit") */
};

struct hop_answer {
	enum hop_answer_kind kind;
	/* HOP_ANSWER_OK: the result's JSON text, a span of the line ("null"
	 * when the answer has none); HOP_ANSWER_EMIT: the emitted payload's.
	 * Valid while the line is. */
	const char *result;
	size_t result_len;
	/* HOP_ANSWER_FAILED: the "error" string, NULL when there is none;
	 * HOP_ANSWER_OTHER_ID: the id the worker gave; HOP_ANSWER_BAD_EMIT:
	 * what is wrong with the line. Owned by the answer. */
	char *text;
	bool retry; /* HOP_ANSWER_FAILED: "retry" is not false */
	bool drop;  /* HOP_ANSWER_OK: "drop" is true: no output at all */
	bool emits; /* the line has an "emit" member (for messages about a
		       wrong id) */
	/* HOP_ANSWER_EMIT: the "port" and "key" strings, NULL when absent.
	 * Owned by the answer until taken (set to NULL then). */
	char *port;
	char *key;
};

/* Reads one line a worker wrote while handling the item with id want.
 * Fills a and returns its kind. Allocates only for a failure's error, a
 * wrong id, a bad emit and an emit's port and key; hop_answer_free
 * releases them. A line with an "emit" member is an emit line, whatever
 * else it holds. */
enum hop_answer_kind hop_answer_read(const char *line, size_t len,
				     const char *want, struct hop_answer *a);

/* Reads one line of an exec worker's HOPPER_EMIT file, {"emit": PAYLOAD,
 * "port"?: STRING, "key"?: STRING}: no id, as the file is the item's own.
 * Returns HOP_ANSWER_EMIT, HOP_ANSWER_BAD_EMIT (text says why; no "emit"
 * member is one) or HOP_ANSWER_NOT_OBJECT. */
enum hop_answer_kind hop_answer_read_emit(const char *line, size_t len,
					  struct hop_answer *a);

void hop_answer_free(struct hop_answer *a);

struct hop_spool;

/* Reads the HOPPER_EMIT file at path, an exec worker's outputs, one emit
 * line each (blank lines aside), into *out: a new spool in dir keeping up
 * to mem_limit bytes in memory, left NULL for an empty file (a drop).
 * Returns 1 when the file was read, 0 when there is no such file (the
 * worker emitted nothing: its stdout is its output), -EINVAL for a line
 * that is not an emit (err: "line N: why", for the caller to name the
 * file), or -errno (err says what failed). On an error *out is NULL. */
int hop_answer_emit_file(const char *path, const char *dir, size_t mem_limit,
			 struct hop_spool **out, char *err, size_t errlen);

#endif
