/* spool.h - the outputs a worker emitted for one attempt, kept until its
 * final answer says whether they count.
 *
 * A worker may emit any number of outputs before it answers; they count
 * only if the answer is ok, and a splitter may emit far more than fit in
 * memory. A spool keeps them in order: in memory up to a limit, then in an
 * unlinked file, and hands them back one at a time.
 */
#ifndef HOP_SPOOL_H
#define HOP_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hop_spool;

/* One output: its payload (compact JSON), its port and key (NULL for
 * none). The strings are owned by whoever hop_spool_next filled it for,
 * freed with hop_emit_clear. */
struct hop_emit {
	char *payload;
	size_t payload_len;
	char *port;
	char *key;
};

/* Returns an empty spool that spills to an unlinked file in dir past
 * mem_limit bytes, or NULL when memory ran out. */
struct hop_spool *hop_spool_new(const char *dir, size_t mem_limit);
/* Appends one output. Returns 0, or -errno (memory, or the disk). */
int hop_spool_add(struct hop_spool *s, const struct hop_emit *e);
/* Outputs added, and outputs not yet handed back. */
uint64_t hop_spool_count(const struct hop_spool *s);
uint64_t hop_spool_left(const struct hop_spool *s);
/* Bytes of memory the spool holds for its records and its file's buffers
 * (not the strings it has handed back): never more than mem_limit, or
 * 128 for a smaller one. */
size_t hop_spool_mem(const struct hop_spool *s);
/* True once outputs went to the file. */
bool hop_spool_spilled(const struct hop_spool *s);
/* Hands back the next output in the order they were added, its strings
 * newly allocated for the caller. Returns 1, 0 when none is left, or
 * -errno. Adding and taking may interleave. A disk error sticks: every
 * call after it returns it. */
int hop_spool_next(struct hop_spool *s, struct hop_emit *e);
void hop_emit_clear(struct hop_emit *e);
void hop_spool_free(struct hop_spool *s);

#endif
