/* metrics.h - a run's stats in the Prometheus text exposition format.
 *
 * Kept apart from the HTTP server so that the text can be checked without a
 * socket: one pure function from the run's and its stages' stats to the
 * page.
 */
#ifndef HOP_METRICS_H
#define HOP_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "stats.h"

/* The Content-Type of the page hop_metrics_write produces. */
#define HOP_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Writes every metric of the run's s (format 0.0.4, each with HELP and
 * TYPE, names prefixed hopper_) to out, then those of its nstages stages:
 * families named hopper_stage_*, one sample per stage labelled
 * stage="NAME" (and shard="K" for a sharder's shards). The run's own
 * series stay unlabelled totals in families of their own, so that sum()
 * over either never counts a stage twice. now_ms is hop_now_ms() at the
 * time of the scrape, for the run's age. Returns 0, -ENOMEM, or -EIO when
 * out failed. */
int hop_metrics_write(FILE *out, const struct hop_stats *s,
		      const struct hop_stats_stage *stages, int nstages,
		      int64_t now_ms);

#endif
