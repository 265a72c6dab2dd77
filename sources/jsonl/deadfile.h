/* deadfile.h - a jsonl source's dead-letter file, for hopper dead.
 *
 * The file holds one dead letter per line, as the run wrote it (id, error,
 * attempts, payload...). A dead letter is named by its item's id; when
 * runs over the same input left several lines of one id, retry and discard
 * act on all of them. A stream cannot be put back, so retry writes the
 * payloads as JSON lines to a file of the caller's, a new input to run;
 * both retry and discard then take the lines out of the dead file, which is
 * rewritten whole (a temporary file renamed over it), with no run writing
 * to it meanwhile.
 */
#ifndef HOP_SOURCES_JSONL_DEADFILE_H
#define HOP_SOURCES_JSONL_DEADFILE_H

#include <stddef.h>
#include <stdio.h>

#include "sources/source.h"

struct hop_jsonl_dead {
	const char *path; /* borrowed */
	char **lines;	  /* each line, NULL once taken out */
	size_t n;
};

/* Reads the dead file at path (none yet: no dead letters). Returns 0 or
 * -errno with err. */
int hop_jsonl_dead_open(struct hop_jsonl_dead *d, const char *path, char *err,
			size_t errlen);

/* Calls each for every dead letter, in the file's order. */
int hop_jsonl_dead_list(struct hop_jsonl_dead *d, hop_dead_each_fn each,
			void *arg);

/* Writes the payloads of the dead letters of id to out (-EINVAL when out
 * is NULL, or a payload was not JSON and so not kept) and takes them out of
 * the file. Returns 0, -ENOENT when there are none, or -errno, with err. */
int hop_jsonl_dead_retry(struct hop_jsonl_dead *d, const char *id, FILE *out,
			 char *err, size_t errlen);

/* Takes the dead letters of id out of the file. Returns as retry. */
int hop_jsonl_dead_discard(struct hop_jsonl_dead *d, const char *id, char *err,
			   size_t errlen);

void hop_jsonl_dead_close(struct hop_jsonl_dead *d);

#endif
