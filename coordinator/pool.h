/* pool.h - the worker processes and the protocol spoken with them.
 *
 * A pool owns a fixed number of worker slots. In stream mode each slot holds
 * one persistent process that takes items on stdin and answers on stdout, up
 * to `prefetch` items queued at a time; in exec mode a slot runs one process
 * per item. The pool enforces the per-item deadline (extended by progress
 * lines), kills a worker's whole process group when it must go, ends what
 * remains of the group when a worker exits on its own, restarts a
 * stream worker that died (waiting at least a second between starts, longer
 * while it keeps crashing), and tells the coordinator about every item
 * through the callbacks below. Everything runs on the caller's loop.
 */
#ifndef HOP_POOL_H
#define HOP_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "item.h"

struct hop_loop;
struct hop_pool;
struct hop_stats;

/* The memory an item's emits may take before they go to a file in the
 * pool's tmpdir. Most stages emit a few small outputs per item, which never
 * touch the file; a splitter's thousands do, and the coordinator's memory
 * stays bounded by workers x this (one item per worker emits at a time,
 * and a stage stops reading answers while its outputs wait). */
#define HOP_EMIT_MEM_LIMIT (1024 * 1024)

struct hop_pool_config {
	char **argv; /* the worker command; borrowed for the pool's life */
	bool exec_mode;
	int size;		 /* worker slots: the most workers */
	int start;		 /* workers to start with (0..size) */
	int prefetch;		 /* stream mode: items queued per worker */
	int64_t timeout_ms;	 /* per-item deadline, 0 for none */
	int64_t kill_ms;	 /* SIGTERM to SIGKILL */
	size_t max_line;	 /* longest stdout line (exec: whole stdout) */
	const char *tmpdir;	 /* where WORK_ITEM_FILE files and spilled
				    emits go: the stage's own folder */
	struct hop_stats *stats; /* counts starts, restarts, timeouts */
};

struct hop_pool_events {
	/* An attempt ended; the outcome is in it->ok, result, error, retry,
	 * and for an ok one in it->drop (no output) and it->emits (the
	 * outputs, in order, when the worker emitted any; else the result is
	 * the one output). The pool no longer holds the item. */
	void (*done)(void *arg, struct hop_item *it);
	/* The item is handed back unattempted (its worker went away before it
	 * started on it, or the pool was killed): it->attempt was undone, and
	 * its outcome cleared. */
	void (*returned)(void *arg, struct hop_item *it);
	/* Capacity or the number of live workers changed. */
	void (*changed)(void *arg);
	/* Stream mode: a worker exited unasked (or died of its own fault,
	 * such as SIGSEGV) before its first answer while no worker of the
	 * pool has answered yet, the in_a_row'th time; why says how it
	 * ended, stderr is the last line it wrote there ("" for none). For
	 * the first
	 * HOP_POOL_START_TRIES of these the items it held were returned
	 * unattempted (a worker that cannot start says nothing of its items);
	 * after that they fail as usual. */
	void (*start_failed)(void *arg, int in_a_row, const char *why,
			     const char *stderr_line);
	void *arg;
};

/* Worker ends before any answer after which the pool stops handing their
 * items back unattempted (see start_failed). */
#define HOP_POOL_START_TRIES 5

/* Returns a pool, or NULL when memory ran out. Nothing starts yet. */
struct hop_pool *hop_pool_new(struct hop_loop *loop,
			      const struct hop_pool_config *cfg,
			      const struct hop_pool_events *ev);

/* Starts the workers (stream mode) or checks that the command can be run
 * (exec mode). Returns 0, or -errno with a message naming the command in
 * err: a command that does not exist is an error here, not a restart loop. */
int hop_pool_start(struct hop_pool *pool, char *err, size_t errlen);

/* How many more items the pool takes right now. */
size_t hop_pool_capacity(const struct hop_pool *pool);
/* Items handed to workers and not yet done or returned. */
size_t hop_pool_inflight(const struct hop_pool *pool);
/* Live worker processes. */
int hop_pool_alive(const struct hop_pool *pool);
/* True when no worker process runs and no process a worker started in its
 * group is still there (those get SIGTERM when their worker exits, SIGKILL
 * kill_ms later, and SIGKILL at hop_pool_destroy). */
bool hop_pool_stopped(const struct hop_pool *pool);

/* Workers running or starting (in exec mode, slots taking items), the
 * number that hop_pool_resize steers. */
int hop_pool_workers(const struct hop_pool *pool);
/* Of those, the ones holding at least one item. */
int hop_pool_busy(const struct hop_pool *pool);

/* One worker slot as a report shows it (the console). */
struct hop_pool_slot {
	const char *state; /* "down", "backoff", "idle", "busy", "retiring"
			      or "stopping" */
	int pid;	   /* its process, 0 for none */
	/* The item it works on (the first it holds), borrowed until the
	 * loop turns; NULL when it holds none. */
	const struct hop_item *item;
	int held; /* items it holds, the one it works on included */
};

/* The most slots a pool grows to (as many as a stage's workers may be). */
#define HOP_POOL_MAX_SLOTS 4096

/* Worker slots: the most workers the pool can run now. */
int hop_pool_size(const struct hop_pool *pool);

/* Fills out with slot i (0..hop_pool_size - 1). */
void hop_pool_slot(const struct hop_pool *pool, int i,
		   struct hop_pool_slot *out);

/* Sets how many workers should run (0..size). More: workers start in free
 * slots at once. Fewer: idle workers are retired now (EOF on stdin) and
 * busy ones only when they have finished their items; a busy worker is
 * never stopped to scale down. */
void hop_pool_resize(struct hop_pool *pool, int n);

/* Adds down slots until the pool has n (at most HOP_POOL_MAX_SLOTS), so
 * that a later hop_pool_resize may run that many workers. Slots are never
 * taken away: a smaller target leaves the ones above it down. Returns 0,
 * -ERANGE or -ENOMEM (then the slots added so far stay). */
int hop_pool_grow(struct hop_pool *pool, int n);

/* Hands an item to a worker; the pool owns it until done or returned.
 * Counts an attempt. Returns 0, or -EBUSY when there is no capacity. */
int hop_pool_submit(struct hop_pool *pool, struct hop_item *it);

/* Hands back, unattempted, the items that wait behind a running one and
 * have not started (exec mode queues a slot's next item to start the
 * moment the one before exits): at a signal, only what runs may finish. */
void hop_pool_unqueue(struct hop_pool *pool);

/* Stops restarting workers and tells each stream worker to exit (EOF on
 * stdin) as soon as it holds no item. */
void hop_pool_drain(struct hop_pool *pool);
/* Stops every worker now: SIGTERM to its group, SIGKILL after kill_ms.
 * Items they held are returned unattempted. */
void hop_pool_kill(struct hop_pool *pool);

/* Stops everything at once and frees the pool. Workers still running are
 * killed with SIGKILL and reaped; items they held are returned. */
void hop_pool_destroy(struct hop_pool *pool);

#endif
