/* metrics.c - the Prometheus page: counters, gauges and the histogram, for
 * the run and for each of its stages. */
#include "metrics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Room for a stage's labels: a name of at most 64 characters (config.c),
 * each escaped in two at worst, and a shard's number. */
#define LABELS 200

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

/* The samples of a duration histogram named name, with the labels in
 * labels ("" for none; else ending in a comma) before le. */
static void histogram_samples(FILE *out, const char *name, const char *labels,
			      const struct hop_stats *s)
{
	size_t n = strlen(labels);
	for (int i = 0; i < HOP_STATS_BUCKETS; i++)
		fprintf(out, "hopper_%s_bucket{%sle=\"%g\"} %llu\n", name,
			labels, hop_stats_bounds[i],
			(unsigned long long)s->duration_le[i]);
	fprintf(out, "hopper_%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels,
		(unsigned long long)s->duration_count);
	/* _sum and _count carry the labels without le's trailing comma. */
	fprintf(out, "hopper_%s_sum%s%.*s%s %.17g\n", name, n ? "{" : "",
		(int)(n ? n - 1 : 0), labels, n ? "}" : "", s->duration_sum);
	fprintf(out, "hopper_%s_count%s%.*s%s %llu\n", name, n ? "{" : "",
		(int)(n ? n - 1 : 0), labels, n ? "}" : "",
		(unsigned long long)s->duration_count);
}

static void histogram(FILE *out, const struct hop_stats *s)
{
	head(out, "item_duration_seconds", "histogram",
	     "Wall time of each attempt at an item, finished or failed.");
	histogram_samples(out, "item_duration_seconds", "", s);
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

/* ---- per stage ---- */

/* Writes v's labels to buf, each followed by a comma: stage="NAME", and
 * shard="K" for a sharder's shard, escaped as the format wants. */
static void stage_labels(char buf[LABELS], const struct hop_stats_stage *v)
{
	size_t k = (size_t)snprintf(buf, LABELS, "stage=\"");
	/* Room is left for the shard. */
	for (const char *p = v->name; *p && k + 2 < LABELS - 32; p++) {
		if (*p == '\\' || *p == '"' || *p == '\n')
			buf[k++] = '\\';
		buf[k++] = *p == '\n' ? 'n' : *p;
	}
	if (v->shards > 1)
		snprintf(buf + k, LABELS - k, "\",shard=\"%d\",", v->shard);
	else
		snprintf(buf + k, LABELS - k, "\",");
}

/* What a family of one sample per stage gives. */
enum stage_value {
	SV_DEPTH,
	SV_INFLIGHT,
	SV_BLOCKED,
	SV_WORKERS,
	SV_BUSY,
	SV_DESIRED,
	SV_STARTS,
	SV_RESTARTS,
	SV_TIMEOUTS,
	SV_DROPPED,
	SV_GROUPS,
	SV_GATHERED,
	SV_LATE,
};

static const struct stage_family {
	const char *name, *type, *help;
	enum stage_value value;
} stage_families[] = {
    {"stage_queue_depth", "gauge",
     "Items waiting for the stage's workers (a first stage's include those "
     "waiting at its source); absent when the source cannot tell.",
     SV_DEPTH},
    {"stage_items_in_flight", "gauge", "Items in the stage's workers' hands.",
     SV_INFLIGHT},
    {"stage_items_blocked", "gauge",
     "Items the stage finished whose outputs wait for room in the next "
     "stage.",
     SV_BLOCKED},
    {"stage_workers", "gauge",
     "The stage's live worker processes (slots in exec mode).", SV_WORKERS},
    {"stage_workers_busy", "gauge", "The stage's workers holding an item.",
     SV_BUSY},
    {"stage_workers_desired", "gauge",
     "Worker processes the stage's pool is sized for.", SV_DESIRED},
    {"stage_worker_starts_total", "counter",
     "The stage's worker processes started.", SV_STARTS},
    {"stage_worker_restarts_total", "counter",
     "The stage's worker processes started again after an exit that was "
     "not asked for.",
     SV_RESTARTS},
    {"stage_item_timeouts_total", "counter",
     "Attempts in the stage killed because they passed their deadline.",
     SV_TIMEOUTS},
    {"stage_outputs_dropped_total", "counter",
     "Outputs the stage dropped: items its worker answered with drop, and "
     "outputs on a port its \"to\" does not map when it says \"unmapped\": "
     "\"drop\".",
     SV_DROPPED},
    {"stage_join_groups", "gauge",
     "A join's groups not complete yet: roots whose parts it holds.",
     SV_GROUPS},
    {"stage_gathered_items", "gauge",
     "A join's parts held in its groups; a reduce's source items held "
     "until its result is written.",
     SV_GATHERED},
    {"stage_join_late_total", "counter",
     "A join's parts that came after their group was handed on (partial, "
     "on timeout): dropped.",
     SV_LATE},
};

/* The value of one sample, negative when the gauge is unknown. */
static int64_t stage_value(const struct hop_stats *s, enum stage_value v)
{
	switch (v) {
	case SV_DEPTH:
		return s->depth;
	case SV_INFLIGHT:
		return s->inflight;
	case SV_BLOCKED:
		return s->held;
	case SV_WORKERS:
		return s->workers;
	case SV_BUSY:
		return s->workers_busy;
	case SV_DESIRED:
		return s->workers_desired;
	case SV_STARTS:
		return (int64_t)s->worker_starts;
	case SV_RESTARTS:
		return (int64_t)s->worker_restarts;
	case SV_TIMEOUTS:
		return (int64_t)s->timeouts;
	case SV_DROPPED:
		return (int64_t)s->dropped;
	case SV_GROUPS:
		return s->groups;
	case SV_GATHERED:
		return s->gathered;
	case SV_LATE:
		return (int64_t)s->late;
	}
	return -1;
}

static void per_stage(FILE *out, const struct hop_stats_stage *st, int n,
		      char (*labels)[LABELS])
{
	head(out, "stage_items_total", "counter",
	     "A stage's items by outcome: done (its worker answered ok), "
	     "failed (failed for good in this stage), retried (failed "
	     "attempts tried again in this stage).");
	for (int i = 0; i < n; i++) {
		const struct hop_stats *s = st[i].stats;
		const char *l = labels[i];
		fprintf(out,
			"hopper_stage_items_total{%soutcome=\"done\"} %llu\n"
			"hopper_stage_items_total{%soutcome=\"failed\"} "
			"%llu\n"
			"hopper_stage_items_total{%soutcome=\"retried\"} "
			"%llu\n",
			l, (unsigned long long)s->done, l,
			(unsigned long long)s->dead, l,
			(unsigned long long)s->retries);
	}
	size_t nf = sizeof(stage_families) / sizeof(stage_families[0]);
	for (size_t f = 0; f < nf; f++) {
		const struct stage_family *sf = &stage_families[f];
		head(out, sf->name, sf->type, sf->help);
		for (int i = 0; i < n; i++) {
			int64_t v = stage_value(st[i].stats, sf->value);
			size_t len = strlen(labels[i]);
			if (v >= 0) /* the last comma dropped */
				fprintf(out, "hopper_%s{%.*s} %lld\n", sf->name,
					(int)len - 1, labels[i], (long long)v);
		}
	}
	head(out, "stage_item_duration_seconds", "histogram",
	     "Wall time of each attempt at an item in the stage, finished or "
	     "failed.");
	for (int i = 0; i < n; i++)
		histogram_samples(out, "stage_item_duration_seconds", labels[i],
				  st[i].stats);
	head(out, "stage_scale_events_total", "counter",
	     "Decisions of the stage's autoscaler that changed its pool's "
	     "size, by direction.");
	for (int i = 0; i < n; i++)
		fprintf(out,
			"hopper_stage_scale_events_total{%sdirection=\"up\"} "
			"%llu\n"
			"hopper_stage_scale_events_total{%sdirection="
			"\"down\"} %llu\n",
			labels[i], (unsigned long long)st[i].stats->scale_ups,
			labels[i],
			(unsigned long long)st[i].stats->scale_downs);
}

int hop_metrics_write(FILE *out, const struct hop_stats *s,
		      const struct hop_stats_stage *stages, int nstages,
		      int64_t now_ms)
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
	counter(out, "outputs_dropped_total",
		"Outputs the stages dropped: items a worker answered with "
		"drop, and outputs on a port a stage's \"to\" does not map "
		"when it says \"unmapped\": \"drop\". Their trees are "
		"done all the same.",
		s->dropped);
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
	if (nstages > 0) {
		char(*labels)[LABELS] = calloc((size_t)nstages, LABELS);
		if (!labels)
			return -ENOMEM;
		for (int i = 0; i < nstages; i++)
			stage_labels(labels[i], &stages[i]);
		per_stage(out, stages, nstages, labels);
		free(labels);
	}
	return ferror(out) ? -EIO : 0;
}
