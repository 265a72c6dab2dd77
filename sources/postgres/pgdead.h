/* pgdead.h - the postgres source's dead letters, for hopper dead.
 *
 * A dead row is one in state dead, its error in last_error and its dead
 * letter in result. It is named by its item's id (the key column, else the
 * row's id). Retry makes it ready again, due now, with its attempts at 0
 * and its dead letter cleared (last_error stays, the last word on it until
 * it runs), and notifies the table's channel so that idle coordinators take
 * it at once. Discard deletes the row: the queue's states are ready,
 * running, done and dead, and a row discarded is one nobody wants, which
 * also frees its key for a new row.
 */
#ifndef HOP_SOURCES_PGDEAD_H
#define HOP_SOURCES_PGDEAD_H

#include <libpq-fe.h>
#include <stddef.h>

#include "sources/source.h"

struct hop_pg_dead {
	PGconn *conn;
	char table[160]; /* quoted */
	char channel[80];
	const char *key_column, *payload_column; /* borrowed, checked */
};

/* Connects to url for the queue table (a valid identifier; so must the
 * columns be). Returns 0 or -errno with a message in err; on failure
 * nothing is left to close. */
int hop_pg_dead_open(struct hop_pg_dead *d, const char *url, const char *table,
		     const char *key_column, const char *payload_column,
		     char *err, size_t errlen);

/* Calls each for every dead row, the longest dead first. */
int hop_pg_dead_list(struct hop_pg_dead *d, hop_dead_each_fn each, void *arg,
		     char *err, size_t errlen);

/* Makes the dead row(s) of item id ready again. Returns 0, -ENOENT when
 * there is none, or -EIO with err. */
int hop_pg_dead_retry(struct hop_pg_dead *d, const char *id, char *err,
		      size_t errlen);

/* Deletes the dead row(s) of item id. Returns as retry. */
int hop_pg_dead_discard(struct hop_pg_dead *d, const char *id, char *err,
			size_t errlen);

void hop_pg_dead_close(struct hop_pg_dead *d);

#endif
