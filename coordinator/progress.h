/* progress.h - one updating line on a terminal for a finite run.
 *
 * Four times a second the line under the log is drawn again (through
 * hop_log_status, so log lines pass above it without garbling it): items
 * finished of the total when the source knows it, outcomes, a smoothed
 * rate, the time left, and the workers. Never written to stdout.
 */
#ifndef HOP_PROGRESS_H
#define HOP_PROGRESS_H

#include <stddef.h>

#include "stats.h"

struct hop_loop;
struct hop_progress;

/* Starts drawing on loop from stats, calling refresh(arg) before each
 * read to bring its gauges up to date. Returns NULL when memory ran out
 * (the run goes on without a progress line). */
struct hop_progress *hop_progress_start(struct hop_loop *loop,
					const struct hop_stats *stats,
					void (*refresh)(void *arg), void *arg);

/* Stops drawing, clears the line and frees p. NULL is ignored. */
void hop_progress_stop(struct hop_progress *p);

/* Writes the line for s into buf, at most width columns: rate is items per
 * second (negative while unknown). Exposed for the tests. */
void hop_progress_format(char *buf, size_t n, const struct hop_stats *s,
			 double rate, int width);

#endif
