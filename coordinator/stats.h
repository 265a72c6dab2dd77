/* stats.h - what a run counts, for /metrics, /status, the progress line,
 * the trace and the autoscaler.
 *
 * One struct for the run, and one for each stage (a shard each), owned by
 * run.c and written only on the loop thread; the pool, the scaler and the
 * HTTP endpoints (all on the same loop) read and bump them directly.
 * Counters only grow; gauges are set where the value is known.
 *
 * The run's counts items by their roots (taken from a source, done when
 * their whole tree is written) and sums what its stages' pools count. A
 * stage's counts its own items: done is an ok answer from its worker, dead
 * an item that failed for good in this stage.
 */
#ifndef HOP_STATS_H
#define HOP_STATS_H

#include <stdint.h>

/* Upper bounds (seconds) of the item duration histogram's buckets; +Inf is
 * implied after the last. */
#define HOP_STATS_BUCKETS 12
extern const double hop_stats_bounds[HOP_STATS_BUCKETS];

/* The last errors, for /status. */
#define HOP_STATS_ERRORS 8

struct hop_stats {
	int64_t started_ms; /* when the run started (hop_now_ms) */

	/* Items, by outcome. */
	uint64_t done;	     /* acknowledged with a result */
	uint64_t dead;	     /* in the dead letter */
	uint64_t retries;    /* failed attempts that will be tried again */
	uint64_t released;   /* handed back unfinished at shutdown */
	uint64_t fetched;    /* taken from the source */
	uint64_t dropped;    /* outputs a stage dropped (filter, unmapped) */
	uint64_t late;	     /* a join's parts that came after their group */
	uint64_t duplicates; /* a join's parts that came twice */
	/* Failed for good, but the dead letter could not be written: left
	 * unacknowledged at the source. */
	uint64_t dead_unwritten;

	/* Attempts' wall time, done or failed: cumulative counts per bucket
	 * as Prometheus wants them (duration_le[i] counts attempts of at
	 * most hop_stats_bounds[i] seconds). */
	uint64_t duration_le[HOP_STATS_BUCKETS];
	uint64_t duration_count;
	double duration_sum;

	/* Workers. */
	uint64_t worker_starts;	  /* processes started */
	uint64_t worker_restarts; /* starts after an exit we did not ask for */
	uint64_t timeouts;	  /* items killed by their deadline */

	/* Errors of the source and the sink (a failed call). */
	uint64_t source_errors;
	uint64_t sink_errors;
	uint64_t sink_repairs; /* half-written lines the sink cut away */

	/* Gauges. */
	int64_t depth;	  /* last depth the source reported; -1 unknown */
	int64_t total;	  /* finite run: items it will give, -1 unknown */
	int64_t inflight; /* items in workers' hands */
	int64_t held;	  /* finished, held while the sink is out */
	int64_t groups;	  /* a join's groups not complete yet */
	int64_t gathered; /* a join's parts in them; a reduce's roots held */
	int workers;	  /* live worker processes (slots, in exec mode) */
	int workers_busy; /* of which hold an item */
	int workers_desired;

	/* The autoscaler's decisions. */
	uint64_t scale_ups, scale_downs;
	int64_t cold_start_ms; /* the last start from zero workers to the
				  first answer; 0 none yet */

	/* The last errors, newest at (errors_next - 1) % HOP_STATS_ERRORS. */
	struct {
		int64_t at_ms; /* wall clock, ms since the epoch */
		char text[240];
	} errors[HOP_STATS_ERRORS];
	unsigned errors_next;
};

/* A stage as the reports (/metrics, /status, the progress line) show it:
 * borrowed from the run. */
struct hop_stats_stage {
	const char *name; /* as the pipeline file names it ("main": none) */
	int shard;	  /* 0..shards-1 */
	int shards;	  /* 1 unless the stage is a sharder */
	const char *mode; /* "stream" or "exec" */
	const struct hop_stats *stats;
};

/* Lists a run's stages for a report: sets *list to them, in the pipeline's
 * order (a sharder's shards side by side), and returns how many; 0 before
 * the run has made them. The list is borrowed until the loop turns. */
typedef int hop_stats_stages_fn(void *arg, const struct hop_stats_stage **list);

/* Sets the counts a pool keeps (worker starts, restarts, timeouts, the
 * duration histogram) in to from the stages' stats, summed. */
void hop_stats_sum_pools(struct hop_stats *to,
			 const struct hop_stats *const *from, int n);

/* Counts one attempt's duration in the histogram. */
void hop_stats_duration(struct hop_stats *s, double seconds);

/* Remembers an error for /status. */
void hop_stats_error(struct hop_stats *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
