/* dead.h - a source's dead letters: list them, retry them, discard them.
 *
 * The operations of `hopper dead`, kept apart from its command line so that
 * anything else that manages dead letters (a web console) calls the same
 * ones. They work on a source that is not running: a hop_dead reads the
 * source's dead-letter place once, through the source's dead_* operations
 * (sources/source.h), and acts on the dead letters it read by id.
 */
#ifndef HOP_DEAD_H
#define HOP_DEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sources/source.h"

/* One dead letter, owned by its hop_dead. See struct hop_dead_letter. */
struct hop_dead_entry {
	char *id;
	char *item;
	char *error;
	int64_t attempts;
	char *when;    /* or NULL */
	char *payload; /* JSON text, or NULL */
	char *record;  /* JSON text, or NULL */
	bool gone;     /* retried or discarded since it was read */
};

struct hop_dead {
	struct hop_source *src; /* borrowed; the caller frees it after close */
	struct hop_dead_entry *v;
	size_t n;
};

/* True when src's driver has a dead-letter place hopper can manage. */
bool hop_dead_supported(const struct hop_source *src);

/* True when that place may be managed while a run has the source open
 * (the driver says dead_live). */
bool hop_dead_live(const struct hop_source *src);

enum hop_dead_action { HOP_DEAD_RETRY, HOP_DEAD_DISCARD };

/* Opens src's dead-letter place without reading it (the driver's
 * dead_open). Returns 0, -ENOTSUP when the source has no such place, or
 * another -errno with err saying why. hop_dead_place_close lets go. */
int hop_dead_place_open(struct hop_source *src, char *err, size_t errlen);
void hop_dead_place_close(struct hop_source *src);

/* Retries or discards the dead letter named id in src's opened place:
 * what hop_dead_retry and hop_dead_discard do to one dead letter, and what
 * the console's buttons do, so that the two never differ. out as for
 * hop_dead_retry. Returns 0, -ENOENT when there is no such dead letter, or
 * another -errno; err names the dead letter and says why. */
int hop_dead_apply(struct hop_source *src, enum hop_dead_action action,
		   const char *id, FILE *out, char *err, size_t errlen);

/* Lists the dead letters of src's opened place from the offset'th (0 is
 * the oldest) to at most limit of them: each is called for those, and
 * *total is set to how many there are in all. Returns 0, the first
 * non-zero return of each, or another -errno with err. */
int hop_dead_page(struct hop_source *src, size_t offset, size_t limit,
		  hop_dead_each_fn each, void *arg, size_t *total, char *err,
		  size_t errlen);

/* Opens src's dead-letter place and reads every dead letter in it into d,
 * oldest first. Returns 0, -ENOTSUP when the source has no such place, or
 * another -errno; err says why. On failure d holds nothing. */
int hop_dead_open(struct hop_dead *d, struct hop_source *src, char *err,
		  size_t errlen);

/* The dead letter named id, or NULL when d has none (or it is gone). */
const struct hop_dead_entry *hop_dead_find(const struct hop_dead *d,
					   const char *id);

/* Puts the dead letter named id back to be done again from its first
 * attempt, and out of the dead-letter place; a source that cannot take
 * items back (a jsonl stream) writes its payload as a JSON line to out.
 * Returns 0, -ENOENT when there is no such dead letter, or another -errno;
 * err names the dead letter and says why. */
int hop_dead_retry(struct hop_dead *d, const char *id, FILE *out, char *err,
		   size_t errlen);

/* Takes the dead letter named id out of the dead-letter place for good.
 * Returns as hop_dead_retry. */
int hop_dead_discard(struct hop_dead *d, const char *id, char *err,
		     size_t errlen);

/* Lets go of the dead-letter place and of what was read. */
void hop_dead_close(struct hop_dead *d);

/* `hopper dead ARGS`. Returns the exit code. */
int hop_dead_command(int argc, char **argv);

#endif
