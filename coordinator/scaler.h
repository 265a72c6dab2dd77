/* scaler.h - how many workers a queue needs, decided from what it measures.
 *
 * The scaler is a pure function of what it is told at each tick: no clock,
 * no pool, no I/O, so tests drive it on a fake clock. The run calls
 * hop_scaler_tick a few times a second with the queue's state and applies
 * the target it returns; the pool only ever retires idle workers to reach a
 * lower target.
 *
 * Sizing: enough workers to drain what waits within `drain_ms` and to keep
 * up with arrivals at `utilization`, from the measured (smoothed) service
 * time and arrival rate. Up at once, by at most doubling a step, so that
 * each level's throughput is measured; down only when the demand stayed
 * lower for a whole `window_ms`, to the highest demand seen in it.
 * Saturation: when a step up added little throughput (a CPU-bound worker on
 * a full machine), the level it came from plus what the step did add
 * becomes a ceiling for a while, and the pool goes back to it.
 *
 * Held back: a stage whose finished items wait for room in the next one
 * cannot drain faster than the next one takes them. For the share of the
 * time it is held so, its backlog counts for nothing and it asks only for
 * the workers that keep pace with what it does finish.
 *
 * A cap (hop_scaler_cap) bounds the target from outside: stages that share
 * a budget of workers (budget.h) are each capped at their share.
 */
#ifndef HOP_SCALER_H
#define HOP_SCALER_H

#include <stdbool.h>
#include <stdint.h>

#define HOP_SCALER_RATE_SECONDS 8
#define HOP_SCALER_SLICES 30

struct hop_scaler_config {
	int min, max;
	int64_t window_ms;  /* stabilisation before scaling down */
	int64_t drain_ms;   /* drain what waits within this */
	double utilization; /* target busy share of the workers, 0..1 */
};

/* What the run knows at a tick. Counters are cumulative. */
struct hop_scaler_input {
	int64_t now_ms;
	int64_t waiting;	/* items known to wait for a worker */
	bool unknown;		/* the source may hold more than it says */
	int64_t inflight;	/* items in workers' hands */
	int workers;		/* workers running or starting */
	int busy;		/* of which hold an item */
	uint64_t completed;	/* attempts finished */
	double service_seconds; /* their total time */
	bool blocked; /* finished items wait for room downstream, so the
			 stage takes no new one */
};

struct hop_scaler {
	struct hop_scaler_config cfg;
	int target;

	/* Smoothed measurements. */
	bool primed;
	int64_t last_ms;
	uint64_t completed;
	double service_sum;
	int64_t seen;	   /* waiting + inflight + completed at the last tick */
	double service;	   /* seconds per item; 0 until measured */
	double arrivals;   /* items per second */
	double throughput; /* items per second */
	double need;	   /* workers the demand asks for, unrounded */
	int want;	   /* need rounded, within min..max: where the target
			      heads, before the cap */
	double held;	   /* smoothed share of the time it was blocked */
	int cap;	   /* the most the target may be: max unless capped */
	int limit;	   /* the highest max so far (at init, or raised by
			      hop_scaler_set_max): the level arrays' size */
	int min0;	   /* the min given at init */

	/* Arrivals per second over the last few seconds: their median is
	 * the rate, so a one-off burst counts as backlog, not as a rate. */
	int64_t arr[HOP_SCALER_RATE_SECONDS];
	int64_t arr_sec; /* the second arr[arr_sec % N] counts */

	/* Scaling down: since when demand stayed below the target, and the
	 * most it asked for in each slice of the last window. */
	int64_t low_since;
	int want_max[HOP_SCALER_SLICES];
	int64_t want_slice; /* the slice want_max[want_slice % N] holds */

	/* Saturation: throughput measured at each level while every worker
	 * was busy and items waited. */
	int64_t changed_ms; /* when the target last changed */
	int from;	    /* the level the last step up came from */
	double *level_tput; /* [max + 1], 0 when not measured */
	int64_t *level_at;  /* [max + 1], when measured */
	int64_t meas_ms;    /* measuring the current level for so long */
	uint64_t meas_done;
	bool level_done;       /* measured since the last change */
	bool suspect;	       /* the last measurement showed no gain */
	int ceiling;	       /* 0: none */
	int64_t ceiling_until; /* when to try above it again */

	/* The last decision, for the log. */
	char why[512];
	char note[160]; /* what a measurement found at this tick */
	uint64_t ups, downs;
};

/* Returns 0, or -EINVAL when the bounds make no sense (min > max, max < 1,
 * utilization outside (0, 1]). */
int hop_scaler_init(struct hop_scaler *s, const struct hop_scaler_config *cfg);
void hop_scaler_free(struct hop_scaler *s);

/* Takes one tick's measurements and returns the target number of workers.
 * When it differs from the previous target, s->why says why. */
int hop_scaler_tick(struct hop_scaler *s, const struct hop_scaler_input *in);

/* Sets the most workers the target may be from now on (clamped to min..max;
 * max lifts the cap). A target above it drops to it at once: the workers
 * are wanted elsewhere, so this is no dip in demand to wait out. Steps up
 * stop at the cap. Returns the target. */
int hop_scaler_cap(struct hop_scaler *s, int64_t now_ms, int cap);

/* Sets the most workers to max (1 or more, above the max given at init
 * too) while the run goes on, for a person who wants fewer or more
 * workers; the min drops with it when it is higher. A target above it
 * drops to it at once. Returns 0, -ERANGE when max is below 1, or -ENOMEM.
 */
int hop_scaler_set_max(struct hop_scaler *s, int64_t now_ms, int max);

/* CPUs this process may use: its affinity mask, capped by a cgroup v2
 * cpu.max (or v1 cfs quota) when one is set. At least 1. */
int hop_cpus_available(void);

#endif
