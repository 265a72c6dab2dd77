/* progress.h - one updating line on a terminal for a finite run.
 *
 * Four times a second the line under the log is drawn again (through
 * hop_log_status, so log lines pass above it without garbling it): items
 * finished of the total when the source knows it, outcomes, a smoothed
 * rate, the time left, and the workers; then, when the pipeline has
 * several stages, a segment for each. Never written to stdout.
 */
#ifndef HOP_PROGRESS_H
#define HOP_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

#include "stats.h"

struct hop_loop;
struct hop_progress;

/* Starts drawing on loop from stats and the stages that stages(arg)
 * lists, calling refresh(arg) before each read to bring their gauges up to
 * date. Returns NULL when memory ran out (the run goes on without a
 * progress line). */
struct hop_progress *hop_progress_start(struct hop_loop *loop,
					const struct hop_stats *stats,
					void (*refresh)(void *arg),
					hop_stats_stages_fn *stages, void *arg);

/* Stops drawing, clears the line and frees p. NULL is ignored. */
void hop_progress_stop(struct hop_progress *p);

/* The rate of finished items, as the progress line and /status give it:
 * the mean since the start for the first seconds, then an exponential
 * average over about five. */
struct hop_rate {
	int64_t last_ms;
	uint64_t last_finished;
	double rate; /* items/s, < 0 until measured */
};

/* Starts measuring at now_ms (hop_now_ms). */
void hop_rate_init(struct hop_rate *r, int64_t now_ms);

/* Takes in s's finished items at now_ms; returns the rate in items/s,
 * negative while unknown. */
double hop_rate_update(struct hop_rate *r, const struct hop_stats *s,
		       int64_t now_ms);

/* The items left: of the total when the source knows it, else those
 * waiting in the source and in flight; -1 when unknown. */
int64_t hop_progress_remaining(const struct hop_stats *s);

/* Writes the time left for remaining items at rate as "M:SS" or
 * "H:MM:SS", or "--" while it cannot be told. Returns the seconds, or -1
 * when unknown. */
double hop_progress_eta(char *buf, size_t n, int64_t remaining, double rate);

/* Writes the line for s into buf, at most width columns: rate is items per
 * second (negative while unknown). With more than one of the nstages
 * stages, each stage adds a segment "NAME: D done, W waiting, B/L busy"
 * (a sharder's shards summed in one). Exposed for the tests. */
void hop_progress_format(char *buf, size_t n, const struct hop_stats *s,
			 double rate, const struct hop_stats_stage *stages,
			 int nstages, int width);

#endif
