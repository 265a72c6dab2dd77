/* jstore.h - a join by key's groups kept outside the coordinator.
 *
 * Without a store, a join by key holds its parts in memory, and each
 * part's source item stays unacknowledged until its group is written: a
 * group that stays open long holds its source (a Kafka partition's
 * committed offset) back, and after a crash the groups closed behind it
 * are gathered and written again. With "state" on the join, each part is
 * written to the store first and its source item is acknowledged at once;
 * the store decides, in one transaction per part, when a group is
 * complete and which coordinator hands it on, so that any number of
 * coordinators share the groups, one killed with groups half gathered
 * leaves them to the others, and a group is handed on by one coordinator
 * only. A group handed on but not yet written when its coordinator died
 * is taken over by another (the store sees the owner gone) and written
 * again under the same id.
 *
 * The one store is PostgreSQL (sources/postgres/jstore.c): two tables,
 * TABLE for the parts and TABLE_groups for the groups (open, emitting,
 * done or dead, with the coordinator that hands it on). The calls block;
 * each is a few statements on one connection.
 */
#ifndef HOP_JSTORE_H
#define HOP_JSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gather.h"

struct hop_jstore;

/* What adding a part did. */
enum hop_jstore_verdict {
	HOP_JSTORE_WAIT = 0,	 /* stored; the group waits for more */
	HOP_JSTORE_COMPLETE = 1, /* stored; the group is complete and now this
				    coordinator's to hand on */
	HOP_JSTORE_COPY = 2,	 /* a part with this id was there already */
	HOP_JSTORE_LATE = 3,	 /* the group was handed on already */
};

/* Checks a join's "state" and "state_table" (NULL: the default) before a
 * run: url names a store hopper has (postgres:// or postgresql://) and
 * table is a name it can take. Returns 0, or -EINVAL with a message in
 * msg. */
int hop_jstore_check(const char *url, const char *table, char *msg, size_t n);

/* Connects to url and makes the tables (table, and table_groups) if they
 * are missing; stage names the join in messages. Returns 0, or -EINVAL
 * (a bad table name) or -EIO, with a message in msg. */
int hop_jstore_open(const char *url, const char *table, const char *stage,
		    struct hop_jstore **out, char *msg, size_t n);

/* The tables, as given ("hopper_join_tag"), for messages. */
const char *hop_jstore_table(const struct hop_jstore *s);

/* One part of a group by key: ok (payload) or dead (error, and the stage it
 * died in). seq is its number, -1 without; expected what it says of its
 * group's size, -1 when nothing (the first known size holds). */
struct hop_jstore_part {
	const char *key;
	const char *id;
	int64_t seq;
	int64_t expected;
	const char *payload;
	size_t len;
	const char *stage;
	const char *error;
};

/* Stores p in one transaction. Returns a verdict (>= 0), or -EIO with a
 * message in msg (nothing was stored). */
int hop_jstore_add(struct hop_jstore *s, const struct hop_jstore_part *p,
		   char *msg, size_t n);

/* Reads the parts of group key (which this coordinator hands on) into g,
 * whose key is set: a new item for each part that came (with its number),
 * an error for each that died, and the group's size. Returns 0, -ENOMEM
 * or -EIO (msg). */
int hop_jstore_load(struct hop_jstore *s, struct hop_group *g, char *msg,
		    size_t n);

/* Group key, handed on, is over: written (error NULL: its parts are
 * deleted, its key kept as done), or dead (kept with its parts and
 * error). Returns 0 or -EIO (msg). */
int hop_jstore_finish(struct hop_jstore *s, const char *key, const char *error,
		      char *msg, size_t n);

/* Takes the groups that are this coordinator's to hand on now: its own
 * (each skips those it is writing), those with no owner (a dead group put
 * back by hand: state 'emitting', owner NULL), those a coordinator that
 * is gone was handing on, and, when timeout > 0, those open longer than
 * timeout seconds. Calls each for every one. Returns how many, or -EIO
 * (msg). */
int hop_jstore_claim(struct hop_jstore *s, double timeout,
		     void (*each)(const char *key, void *arg), void *arg,
		     char *msg, size_t n);

/* The number of open groups, and the keys of the oldest few (up to max,
 * into keys, each the caller's to free). Returns the number or -EIO. */
int64_t hop_jstore_open_groups(struct hop_jstore *s, char **keys, size_t max,
			       size_t *nkeys, char *msg, size_t n);

/* Forgets all but the newest keep done groups' keys. Returns 0 or -EIO. */
int hop_jstore_prune(struct hop_jstore *s, int64_t keep, char *msg, size_t n);

/* Disconnects; groups this coordinator was handing on pass to others. */
void hop_jstore_close(struct hop_jstore *s);

#endif
