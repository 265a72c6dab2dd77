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
};

struct hop_answer {
	enum hop_answer_kind kind;
	/* HOP_ANSWER_OK: the result's JSON text, a span of the line ("null"
	 * when the answer has none); valid while the line is. */
	const char *result;
	size_t result_len;
	/* HOP_ANSWER_FAILED: the "error" string, NULL when there is none;
	 * HOP_ANSWER_OTHER_ID: the id the worker gave. Owned by the answer. */
	char *text;
	bool retry; /* HOP_ANSWER_FAILED: "retry" is not false */
};

/* Reads one line a worker wrote while handling the item with id want.
 * Fills a and returns its kind. Allocates only for a failure's error and a
 * wrong id; hop_answer_free releases it. */
enum hop_answer_kind hop_answer_read(const char *line, size_t len,
				     const char *want, struct hop_answer *a);

void hop_answer_free(struct hop_answer *a);

#endif
