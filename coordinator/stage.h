/* stage.h - one stage of a pipeline: a worker command and everything that
 * serves it.
 *
 * A stage owns its pool of workers, the queue of items waiting for them,
 * the items waiting for a retry, its autoscaler, its counters and its own
 * temporary folder (exec mode's payload files and spilled emits: two stages
 * never share one). A sharder is one stage per shard. The run (run.c) owns
 * the stages and moves items between them; a stage knows nothing of the
 * others.
 */
#ifndef HOP_STAGE_H
#define HOP_STAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "item.h"
#include "pool.h"
#include "scaler.h"
#include "spool.h"
#include "stats.h"

struct hop_loop;
struct hop_strmap;
struct hop_gstore;
struct hop_gstore_part;
struct tally;
struct store_batch;
struct hop_keyring;
struct fold_window;
struct hop_tumbler;
struct time_pane;

/* Roots kept in short: what acknowledging them needs, in a few chunks of
 * records, and runs of lines folded with no item (run.c's). */
struct held_chunk;
struct held_range;
struct hop_held {
	struct held_chunk *head, *tail;
	size_t n; /* roots: the records' and the ranges' lines */
	struct held_range *ranges;
	size_t nranges, ranges_cap;
};

struct hop_stage {
	const struct hop_stage_config *cfg; /* borrowed from the config */
	void *run;     /* the run's, for the pool's callbacks */
	char name[80]; /* the stage's name, "email[2]" for a shard */
	int index;     /* in the run's stages */
	int shard;     /* 0..cfg->shards-1 */
	struct hop_pool *pool;
	struct hop_queue ready;	  /* waiting for a worker */
	struct hop_queue waiting; /* failed, waiting for their retry */
	/* Finished with outputs not yet all handed on (the next stage was
	 * full): the stage takes no new item while this is long. */
	struct hop_queue routing;
	/* The next output of routing's head, taken from its spool, waiting
	 * for room; and its id. */
	struct hop_emit peek;
	bool peeked;
	char *peek_id;
	struct hop_stats stats;	  /* the pool's counts, and the stage's own */
	struct hop_scaler scaler; /* when cfg->autoscale */
	bool scaler_on;
	/* Set from the console: a paused stage hands no new item to its
	 * workers; a fixed size other than cfg->workers (0: that one). */
	bool paused;
	int workers;
	int64_t cold_since; /* work waited with no worker since then */
	char tmpdir[64];
	/* A join (gather.h): its open groups, and the parts they hold. */
	struct hop_group *groups;
	size_t parts, ngroups;
	/* A join by key: its open groups by key, and the keys of the groups
	 * it closed last, to know late parts. */
	struct hop_strmap *keyed;
	struct hop_keyring *closed;
	/* A join by key with "state": where its groups are (gstore.h), the
	 * keys of those this run is writing now, and the next time it
	 * forgets old done groups. */
	struct hop_gstore *gstore;
	struct hop_strmap *emitting;
	int64_t prune_ms;
	bool store_swept; /* a finite run's last sweep is done */
	/* Since when its store has been out of reach (0: it answers), and
	 * a join's parts that wait for it. */
	int64_t store_down_ms;
	struct hop_queue store_wait;
	/* The records of parts that died meanwhile (their items are
	 * dead-lettered already): counted in parts while they wait. */
	struct hop_gstore_part *dead_wait;
	size_t ndead_wait, dead_wait_cap;
	bool store_trying; /* the sweep's try: parts reach for the store */
	struct store_batch *batch; /* a join's parts for its store (run.c's) */
	/* A reduce's input is over: its window is to be written from the
	 * store (and whether this run took it already). */
	bool store_emit_due, store_claimed;
	/* A reduce with "state": what it folded since it last counted into
	 * the store (run.c's), and the windows this run counted into. */
	struct tally *tally;
	int64_t *counted;
	size_t ncounted, counted_cap;
	/* A reduce: its accumulators, and the roots of the items it folded
	 * in since its last result, each held (one of its pending) until
	 * that result is written. */
	struct hop_reducer *reducer;
	struct hop_item **holds;
	size_t nholds, holds_cap;
	/* Of those roots, the ones nothing else of whose tree waited: freed,
	 * what their sources need to hear their end kept (run.c's). */
	struct hop_held held;
	bool reduced;	  /* the end's results are out */
	uint64_t windows; /* results written so far, for their ids */
	uint64_t window_timer;
	/* A reducer worker: the window its items go into now (run.c's). */
	struct fold_window *folding;
	/* Time windows: their clock (gather.h), the open ones (run.c's),
	 * and the roots those hold. */
	struct hop_tumbler *tumbler;
	struct time_pane *panes;
	size_t pane_holds;
	/* Config stages (by index, the first 64) that this one's outputs
	 * can reach. */
	uint64_t reach;
};

/* True when the stage runs no worker: a join without a command, or a
 * reduce. */
static inline bool hop_stage_bare(const struct hop_stage *st)
{
	return !st->cfg->argv && !st->cfg->shell_command;
}

/* The workers a stage without an autoscaler runs: cfg->workers, unless
 * hop_stage_set_max changed it. */
static inline int hop_stage_workers(const struct hop_stage *st)
{
	return st->workers ? st->workers : (int)st->cfg->workers;
}

/* The most workers the stage may run now: its autoscaler's maximum, or its
 * fixed size. */
int hop_stage_max(const struct hop_stage *st);

/* Sets the most workers the stage may run to max, while the run goes on:
 * an autoscaled stage's maximum, or a fixed stage's size. Workers above it
 * retire once they hold no item. Returns 0, or -ERANGE (max outside 1 to
 * the worker slots the stage was started with) or -ENOTSUP (a stage with
 * no worker) with a message naming the stage in err. */
int hop_stage_set_max(struct hop_stage *st, int max, int64_t now_ms, char *err,
		      size_t errlen);

/* Fills st for the shard'th shard of cfg and makes its temporary folder
 * under the run's (TMPDIR, else /dev/shm when writable, else /tmp). Returns
 * 0, or -errno with a message in err. Nothing starts yet. */
int hop_stage_init(struct hop_stage *st, const struct hop_stage_config *cfg,
		   int index, int shard, char *err, size_t errlen);

/* Makes the stage's pool on loop (its callbacks get ev) and its autoscaler,
 * and starts the workers. kill_ms and max_line are the run's. Returns 0, or
 * -errno with a message naming the stage and the command in err. */
int hop_stage_start(struct hop_stage *st, struct hop_loop *loop,
		    const struct hop_pool_events *ev, int64_t kill_ms,
		    size_t max_line, char *err, size_t errlen);

/* Stops the pool at once (items it held are returned through the events)
 * and forgets it; the rest of the stage stays until hop_stage_free. */
void hop_stage_stop(struct hop_stage *st);

/* Frees what hop_stage_init and hop_stage_start made, the temporary folder
 * and everything in it included. The queues must be empty. */
void hop_stage_free(struct hop_stage *st);

#endif
