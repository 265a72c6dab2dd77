/* metrics.h - a run's stats in the Prometheus text exposition format.
 *
 * Kept apart from the HTTP server so that the text can be checked without a
 * socket: one pure function from a struct hop_stats to the page.
 */
#ifndef HOP_METRICS_H
#define HOP_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "stats.h"

/* The Content-Type of the page hop_metrics_write produces. */
#define HOP_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Writes every metric of s (format 0.0.4, each with HELP and TYPE, names
 * prefixed hopper_) to out. now_ms is hop_now_ms() at the time of the
 * scrape, for the run's age. Returns 0 or -EIO when out failed. */
int hop_metrics_write(FILE *out, const struct hop_stats *s, int64_t now_ms);

#endif
