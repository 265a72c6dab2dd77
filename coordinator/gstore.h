/* gstore.h - a join by key's groups, and a reduce's accumulators, kept
 * outside the coordinator.
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
 * A reduce with "state" counts what it folded into the store about once
 * a second, with the items' ids (an item that comes again counts once),
 * and acknowledges their source items then; a window's results are
 * written from the store by one coordinator (hop_gstore_count and the
 * window calls below).
 *
 * The one store is PostgreSQL (sources/postgres/gstore.c): for a join,
 * TABLE for the parts and TABLE_groups for the groups (open, emitting,
 * done or dead, with the coordinator that hands it on); for a reduce,
 * TABLE for the accumulators by window and key, TABLE_windows and
 * TABLE_seen. The calls block; each is a few statements on one
 * connection.
 */
#ifndef HOP_GSTORE_H
#define HOP_GSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gather.h"

struct hop_gstore;

/* What adding a part did. */
enum hop_gstore_verdict {
	HOP_GSTORE_WAIT = 0,	 /* stored; the group waits for more */
	HOP_GSTORE_COMPLETE = 1, /* stored; the group is complete and now this
				    coordinator's to hand on */
	HOP_GSTORE_COPY = 2,	 /* a part with this id was there already */
	HOP_GSTORE_LATE = 3,	 /* the group was handed on already */
};

/* Checks a join's "state" and "state_table" (NULL: the default) before a
 * run: url names a store hopper has (postgres:// or postgresql://) and
 * table is a name it can take. Returns 0, or -EINVAL with a message in
 * msg. */
int hop_gstore_check(const char *url, const char *table, char *msg, size_t n);

/* Connects to url and makes the tables if they are missing: a join's
 * (table, table_groups) or, when reduce, a reduce's (table,
 * table_windows, table_seen); stage names it in messages. Returns 0, or
 * -EINVAL (a bad table name) or -EIO, with a message in msg. */
int hop_gstore_open(const char *url, const char *table, const char *stage,
		    bool reduce, struct hop_gstore **out, char *msg, size_t n);

/* The tables, as given ("hopper_join_tag"), for messages. */
const char *hop_gstore_table(const struct hop_gstore *s);

/* One part of a group by key: ok (payload) or dead (error, and the stage it
 * died in). seq is its number, -1 without; expected what it says of its
 * group's size, -1 when nothing (the first known size holds). */
struct hop_gstore_part {
	const char *key;
	const char *id;
	int64_t seq;
	int64_t expected;
	const char *payload;
	size_t len;
	const char *stage;
	const char *error;
};

/* Stores parts p[0..np) in one transaction, in the order of their keys,
 * and sets each one's verdict (>= 0) in verdicts. Returns 0, or -EIO with
 * a message in msg (nothing was stored). */
int hop_gstore_add(struct hop_gstore *s, const struct hop_gstore_part *p,
		   size_t np, int *verdicts, char *msg, size_t n);

/* Reads the parts of group key (which this coordinator hands on) into g,
 * whose key is set: a new item for each part that came (with its number),
 * an error for each that died, and the group's size. Returns 0, -ENOMEM
 * or -EIO (msg). */
int hop_gstore_load(struct hop_gstore *s, struct hop_group *g, char *msg,
		    size_t n);

/* Group key, handed on, is over: written (error NULL: its parts are
 * deleted, its key kept as done), or dead (kept with its parts and
 * error). Returns 0 or -EIO (msg). */
int hop_gstore_finish(struct hop_gstore *s, const char *key, const char *error,
		      char *msg, size_t n);

/* Takes the groups that are this coordinator's to hand on now: its own
 * (each skips those it is writing), those with no owner (a dead group put
 * back by hand: state 'emitting', owner NULL), those a coordinator that
 * is gone was handing on, and, when timeout > 0, those open longer than
 * timeout seconds. Calls each for every one. Returns how many, or -EIO
 * (msg). */
int hop_gstore_claim(struct hop_gstore *s, double timeout,
		     void (*each)(const char *key, void *arg), void *arg,
		     char *msg, size_t n);

/* The number of open groups, and the keys of the oldest few (up to max,
 * into keys, each the caller's to free). Returns the number or -EIO. */
int64_t hop_gstore_open_groups(struct hop_gstore *s, char **keys, size_t max,
			       size_t *nkeys, char *msg, size_t n);

/* Forgets all but the newest keep done groups' keys. Returns 0 or -EIO. */
int hop_gstore_prune(struct hop_gstore *s, int64_t keep, char *msg, size_t n);

/* A reduce's windows. A window is a number (a time window's, or 0 for
 * the one window of a finite run); its accumulators are results of the
 * reduce (hop_reducer_result), one per key, merged with what each
 * coordinator counts (hop_reducer_merge). */

/* Counts a batch of items folded into *rd in window win, which closes at
 * closes (seconds since the epoch; < 0: when a run ends), ids the items'
 * (nids). One transaction: the ids counted already in win (an item that
 * came again after a crash) are left out, refold(arg, fresh, rd) making
 * *rd again from the fresh ones only; then *rd's keys are merged with the
 * stored accumulators and written back. Returns HOP_GSTORE_WAIT (counted),
 * HOP_GSTORE_COPY (counted, some ids were there), HOP_GSTORE_LATE (the
 * window was handed on: nothing counted), or -EIO (msg). */
int hop_gstore_count(struct hop_gstore *s, int64_t win, double closes,
		     const char *const *ids, size_t nids,
		     struct hop_reducer **rd,
		     int (*refold)(void *arg, const bool *fresh,
				   struct hop_reducer **rd),
		     void *arg, char *msg, size_t n);

/* Takes window win to hand on, when it is open. Returns 1 (this
 * coordinator's now), 0 (not open: nothing counted in it, or another has
 * it) or -EIO. hop_gstore_claim takes the windows of coordinators gone,
 * and those past their close. */
int hop_gstore_claim_window(struct hop_gstore *s, int64_t win, char *msg,
			    size_t n);

/* Folds window win's accumulators into rd (new). Returns 0 or -EIO. */
int hop_gstore_load_window(struct hop_gstore *s, int64_t win,
			   struct hop_reducer *rd, char *msg, size_t n);

/* Window win, handed on, is over: its results written (error NULL: its
 * accumulators and ids deleted; its row kept as done when keep, else
 * deleted, for a later run's), or dead (kept, with error). Returns 0 or
 * -EIO. */
int hop_gstore_finish_window(struct hop_gstore *s, int64_t win, bool keep,
			     const char *error, char *msg, size_t n);

/* Disconnects; groups this coordinator was handing on pass to others. */
void hop_gstore_close(struct hop_gstore *s);

#endif
