/* metrics.c - the Prometheus page: counters, gauges and the histogram. */
#include "metrics.h"

#include <errno.h>
#include <time.h>

static void head(FILE *out, const char *name, const char *type,
		 const char *help)
{
	fprintf(out, "# HELP hopper_%s %s\n# TYPE hopper_%s %s\n", name, help,
		name, type);
}

static void counter(FILE *out, const char *name, const char *help, uint64_t v)
{
	head(out, name, "counter", help);
	fprintf(out, "hopper_%s %llu\n", name, (unsigned long long)v);
}

/* A gauge whose value may be unknown (negative): then the family is
 * declared but has no sample, so that a dashboard shows a gap, not -1. */
static void gauge(FILE *out, const char *name, const char *help, int64_t v)
{
	head(out, name, "gauge", help);
	if (v >= 0)
		fprintf(out, "hopper_%s %lld\n", name, (long long)v);
}

static void histogram(FILE *out, const struct hop_stats *s)
{
	head(out, "item_duration_seconds", "histogram",
	     "Wall time of each attempt at an item, finished or failed.");
	for (int i = 0; i < HOP_STATS_BUCKETS; i++)
		fprintf(out,
			"hopper_item_duration_seconds_bucket{le=\"%g\"} "
			"%llu\n",
			hop_stats_bounds[i],
			(unsigned long long)s->duration_le[i]);
	fprintf(out,
		"hopper_item_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
		"hopper_item_duration_seconds_sum %.17g\n"
		"hopper_item_duration_seconds_count %llu\n",
		(unsigned long long)s->duration_count, s->duration_sum,
		(unsigned long long)s->duration_count);
}

static void outcomes(FILE *out, const struct hop_stats *s)
{
	head(out, "items_total", "counter",
	     "Items by outcome: done (acknowledged with a result), dead (in "
	     "the dead letter), retried (failed attempts tried again), "
	     "released (handed back unfinished at shutdown).");
	fprintf(out,
		"hopper_items_total{outcome=\"done\"} %llu\n"
		"hopper_items_total{outcome=\"dead\"} %llu\n"
		"hopper_items_total{outcome=\"retried\"} %llu\n"
		"hopper_items_total{outcome=\"released\"} %llu\n",
		(unsigned long long)s->done, (unsigned long long)s->dead,
		(unsigned long long)s->retries,
		(unsigned long long)s->released);
}

int hop_metrics_write(FILE *out, const struct hop_stats *s, int64_t now_ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	double age = (double)(now_ms - s->started_ms) / 1000;
	double wall = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;

	outcomes(out, s);
	counter(out, "items_fetched_total", "Items taken from the source.",
		s->fetched);
	counter(out, "retries_total",
		"Failed attempts that will be tried again.", s->retries);
	counter(out, "dead_letters_total",
		"Items that failed for good and went to the dead letter.",
		s->dead);
	counter(out, "item_timeouts_total",
		"Attempts killed because they passed their deadline.",
		s->timeouts);
	histogram(out, s);
	gauge(out, "queue_depth",
	      "Items waiting at the source or for a worker; absent when the "
	      "source cannot tell.",
	      s->depth);
	gauge(out, "items_expected",
	      "Items a finite run will take in all; absent when unknown.",
	      s->total);
	gauge(out, "items_in_flight", "Items in workers' hands.", s->inflight);
	gauge(out, "items_held",
	      "Finished items held, unacknowledged, while the sink (or the "
	      "source's dead-letter place) cannot write.",
	      s->held);
	gauge(out, "workers", "Live worker processes (slots in exec mode).",
	      s->workers);
	gauge(out, "workers_desired", "Worker processes the pool is sized for.",
	      s->workers_desired);
	gauge(out, "workers_busy", "Workers holding an item.", s->workers_busy);
	counter(out, "worker_starts_total", "Worker processes started.",
		s->worker_starts);
	counter(out, "worker_restarts_total",
		"Worker processes started again after an exit that was not "
		"asked for.",
		s->worker_restarts);
	counter(out, "source_errors_total", "Failed calls to the source.",
		s->source_errors);
	counter(out, "sink_errors_total", "Failed calls to the sink.",
		s->sink_errors);
	counter(out, "sink_repairs_total",
		"Half-written lines a sink cut away: a torn last line found at "
		"start, or a write that failed part way.",
		s->sink_repairs);
	head(out, "scale_events_total", "counter",
	     "Decisions of the autoscaler that changed the pool's size, by "
	     "direction.");
	fprintf(out,
		"hopper_scale_events_total{direction=\"up\"} %llu\n"
		"hopper_scale_events_total{direction=\"down\"} %llu\n",
		(unsigned long long)s->scale_ups,
		(unsigned long long)s->scale_downs);
	if (s->cold_start_ms > 0) {
		head(out, "cold_start_seconds", "gauge",
		     "The last start from zero workers: from starting a "
		     "worker to its first answer.");
		fprintf(out, "hopper_cold_start_seconds %.3f\n",
			(double)s->cold_start_ms / 1000);
	}
	head(out, "start_time_seconds", "gauge",
	     "When the run started, in seconds since the Unix epoch.");
	fprintf(out, "hopper_start_time_seconds %.3f\n", wall - age);
	head(out, "uptime_seconds", "gauge", "Seconds since the run started.");
	fprintf(out, "hopper_uptime_seconds %.3f\n", age);
	return ferror(out) ? -EIO : 0;
}
