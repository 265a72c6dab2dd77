/* Unit tests for metrics.c, the progress line's text and the listen
 * address check. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/http.h"
#include "coordinator/metrics.h"
#include "coordinator/progress.h"

/* Renders s and its n stages into *text (the caller frees it). */
static void render_stages(const struct hop_stats *s,
			  const struct hop_stats_stage *st, int n, char **text)
{
	size_t len = 0;
	FILE *f = open_memstream(text, &len);
	assert_non_null(f);
	assert_int_equal(hop_metrics_write(f, s, st, n, s->started_ms + 2500),
			 0);
	fclose(f);
}

static void render(const struct hop_stats *s, char **text)
{
	render_stages(s, NULL, 0, text);
}

/* The value of the sample named key (with its labels) in t; -1 when
 * absent. */
static double sample(const char *t, const char *key)
{
	char want[256];
	snprintf(want, sizeof(want), "\n%s ", key);
	const char *at = strstr(t, want);
	return at ? strtod(at + strlen(want), NULL) : -1;
}

static void counters_histogram_and_gauges(void **state)
{
	struct hop_stats s = {.started_ms = 1000,
			      .done = 17,
			      .dead = 3,
			      .retries = 4,
			      .depth = 9,
			      .total = -1,
			      .workers = 2,
			      .scale_ups = 5};
	hop_stats_duration(&s, 0.003);
	hop_stats_duration(&s, 0.2);
	hop_stats_duration(&s, 100);
	char *t = NULL;
	render(&s, &t);

	assert_non_null(strstr(t,
			       "# TYPE hopper_items_total counter\n"
			       "hopper_items_total{outcome=\"done\"} 17\n"
			       "hopper_items_total{outcome=\"dead\"} 3\n"
			       "hopper_items_total{outcome=\"retried\"} 4\n"));
	/* Buckets are cumulative; the 100 s attempt is only in +Inf. */
	assert_non_null(
	    strstr(t, "hopper_item_duration_seconds_bucket{le=\"0.005\"} 1\n"));
	assert_non_null(
	    strstr(t, "hopper_item_duration_seconds_bucket{le=\"0.25\"} 2\n"));
	assert_non_null(
	    strstr(t, "hopper_item_duration_seconds_bucket{le=\"30\"} 2\n"));
	assert_non_null(
	    strstr(t, "hopper_item_duration_seconds_bucket{le=\"+Inf\"} 3\n"
		      "hopper_item_duration_seconds_sum 100.203"));
	assert_non_null(strstr(t, "hopper_item_duration_seconds_count 3\n"));
	assert_non_null(strstr(t, "hopper_queue_depth 9\n"));
	/* An unknown gauge is declared without a sample. */
	assert_non_null(strstr(t, "# TYPE hopper_items_expected gauge\n#"));
	assert_null(strstr(t, "hopper_items_expected -1"));
	assert_non_null(
	    strstr(t, "hopper_scale_events_total{direction=\"up\"} 5\n"));
	assert_non_null(strstr(t, "hopper_uptime_seconds 2.500\n"));
	/* Every family has its HELP before its TYPE. */
	size_t families = 0;
	for (const char *at = strstr(t, "# TYPE "); at;
	     at = strstr(at + 1, "# TYPE ")) {
		char name[96], help[128];
		assert_int_equal(sscanf(at, "# TYPE %95s", name), 1);
		snprintf(help, sizeof(help), "# HELP %s ", name);
		const char *h = strstr(t, help);
		assert_non_null(h);
		assert_true(h < at);
		families++;
	}
	assert_true(families >= 18);
	free(t);
}

static void progress_text(void **state)
{
	struct hop_stats s = {.done = 30,
			      .dead = 2,
			      .retries = 1,
			      .total = 64,
			      .depth = -1,
			      .workers = 4};
	char line[256];

	hop_progress_format(line, sizeof(line), &s, 8.0, NULL, 0, 200);
	assert_string_equal(line, "hopper 32/64 (50%) | 8.0/s | ETA 0:04 | "
				  "4 workers | 30 done, 2 dead, 1 retried");
	s.total = -1;
	s.depth = 100;
	s.inflight = 4;
	hop_progress_format(line, sizeof(line), &s, 0.5, NULL, 0, 200);
	assert_string_equal(line,
			    "hopper 32 finished | 100 waiting | 0.5/s | ETA "
			    "3:28 | 4 workers | 30 done, 2 dead, 1 retried");
	s.depth = -1;
	hop_progress_format(line, sizeof(line), &s, -1, NULL, 0, 200);
	assert_string_equal(line, "hopper 32 finished | --/s | 4 workers | "
				  "30 done, 2 dead, 1 retried");
	/* Never as wide as the terminal: a wrapped line cannot be redrawn. */
	hop_progress_format(line, sizeof(line), &s, -1, NULL, 0, 20);
	assert_int_equal(strlen(line), 19);
}

/* A chain "a" -> "b" (a sharder of two) -> "c": the run's stats and its
 * four stages'. */
static struct hop_stats chain_stats[4];
static const struct hop_stats_stage chain[4] = {
    {"a", 0, 1, "stream", &chain_stats[0]},
    {"b", 0, 2, "stream", &chain_stats[1]},
    {"b", 1, 2, "stream", &chain_stats[2]},
    {"c", 0, 1, "exec", &chain_stats[3]},
};

static void make_chain(struct hop_stats *run)
{
	*run = (struct hop_stats){.started_ms = 1000, .depth = 12, .total = -1};
	for (int i = 0; i < 4; i++) {
		struct hop_stats *s = &chain_stats[i];
		*s = (struct hop_stats){.started_ms = 1000,
					.done = (uint64_t)(10 * (i + 1)),
					.dead = (uint64_t)i,
					.retries = 2,
					.dropped = (uint64_t)(i == 3 ? 5 : 0),
					.depth = i == 0 ? -1 : 3,
					.inflight = 1,
					.workers = 2,
					.workers_busy = 1,
					.workers_desired = 2,
					.worker_starts = 2,
					.scale_ups = (uint64_t)i};
		hop_stats_duration(s, 0.02 * (i + 1));
		run->done += s->done;
		run->workers += s->workers;
	}
}

static void stage_series(void **state)
{
	struct hop_stats run;
	make_chain(&run);
	char *t = NULL;
	render_stages(&run, chain, 4, &t);

	/* The run's series are as they were: unlabelled totals. */
	assert_non_null(strstr(t, "\nhopper_workers 8\n"));
	assert_non_null(strstr(t, "\nhopper_queue_depth 12\n"));
	/* A stage's own are labelled with its name, a shard's with its
	 * number too. */
	assert_true(sample(t, "hopper_stage_workers{stage=\"a\"}") == 2);
	assert_true(
	    sample(t, "hopper_stage_workers{stage=\"b\",shard=\"1\"}") == 2);
	assert_true(sample(t, "hopper_stage_items_total{stage=\"b\",shard="
			      "\"1\",outcome=\"done\"}") == 30);
	assert_true(sample(t, "hopper_stage_items_total{stage=\"c\",outcome="
			      "\"failed\"}") == 3);
	assert_true(sample(t, "hopper_stage_items_total{stage=\"a\",outcome="
			      "\"retried\"}") == 2);
	assert_true(
	    sample(t, "hopper_stage_outputs_dropped_total{stage=\"c\"}") == 5);
	assert_true(sample(t, "hopper_stage_queue_depth{stage=\"c\"}") == 3);
	/* An unknown depth has no sample. */
	assert_null(strstr(t, "hopper_stage_queue_depth{stage=\"a\"}"));
	assert_true(sample(t, "hopper_stage_items_in_flight{stage=\"a\"}") ==
		    1);
	assert_true(sample(t, "hopper_stage_workers_busy{stage=\"c\"}") == 1);
	assert_true(sample(t, "hopper_stage_workers_desired{stage=\"c\"}") ==
		    2);
	assert_true(
	    sample(t, "hopper_stage_worker_starts_total{stage=\"a\"}") == 2);
	assert_true(sample(t, "hopper_stage_scale_events_total{stage=\"c\","
			      "direction=\"up\"}") == 3);
	/* Each stage's histogram, with its labels before le, and on _sum
	 * and _count. */
	assert_true(sample(t, "hopper_stage_item_duration_seconds_bucket{"
			      "stage=\"a\",le=\"0.025\"}") == 1);
	assert_true(sample(t, "hopper_stage_item_duration_seconds_bucket{"
			      "stage=\"b\",shard=\"0\",le=\"0.025\"}") == 0);
	assert_true(sample(t, "hopper_stage_item_duration_seconds_bucket{"
			      "stage=\"c\",le=\"+Inf\"}") == 1);
	assert_true(sample(t, "hopper_stage_item_duration_seconds_count{"
			      "stage=\"b\",shard=\"1\"}") == 1);
	assert_true(sample(t, "hopper_stage_item_duration_seconds_sum{"
			      "stage=\"c\"}") > 0.079);
	/* Each family once, its HELP before its TYPE, before its samples. */
	const char *fam[] = {
	    "stage_items_total",	 "stage_outputs_dropped_total",
	    "stage_queue_depth",	 "stage_items_in_flight",
	    "stage_items_blocked",	 "stage_workers",
	    "stage_workers_busy",	 "stage_workers_desired",
	    "stage_worker_starts_total", "stage_worker_restarts_total",
	    "stage_item_timeouts_total", "stage_item_duration_seconds",
	    "stage_scale_events_total"};
	for (size_t i = 0; i < sizeof(fam) / sizeof(fam[0]); i++) {
		char help[96], type[96], first[96];
		snprintf(help, sizeof(help), "# HELP hopper_%s ", fam[i]);
		snprintf(type, sizeof(type), "# TYPE hopper_%s ", fam[i]);
		snprintf(first, sizeof(first), "\nhopper_%s", fam[i]);
		const char *h = strstr(t, help), *ty = strstr(t, type);
		assert_non_null(h);
		assert_non_null(ty);
		assert_true(h < ty && ty < strstr(t, first));
		assert_null(strstr(ty + 1, type));
	}
	free(t);

	/* Without stages (before the run made them) none of them. */
	render_stages(&run, chain, 0, &t);
	assert_null(strstr(t, "hopper_stage_"));
	free(t);
}

static void progress_stages(void **state)
{
	struct hop_stats run;
	char line[512];
	make_chain(&run);
	run.total = 100;
	run.done = 40;
	run.workers = 8;

	/* One stage: the line as it always was. */
	hop_progress_format(line, sizeof(line), &run, 8.0, chain, 1, 400);
	assert_string_equal(line, "hopper 40/100 (40%) | 8.0/s | ETA 0:08 | "
				  "8 workers | 40 done, 0 dead, 0 retried");
	/* Several: a segment each, a sharder's shards summed in one, an
	 * unknown depth shown as "?". */
	hop_progress_format(line, sizeof(line), &run, 8.0, chain, 4, 400);
	assert_string_equal(
	    line,
	    "hopper 40/100 (40%) | 8.0/s | ETA 0:08 | 8 workers | 40 "
	    "done, 0 dead, 0 retried | a: 10 done, ? waiting, 1/2 busy | "
	    "b: 50 done, 6 waiting, 2/4 busy | c: 40 done, 3 waiting, 1/2 "
	    "busy");
	/* Cut at the terminal's width like the rest. */
	hop_progress_format(line, sizeof(line), &run, 8.0, chain, 4, 100);
	assert_int_equal(strlen(line), 99);
	/* A buffer too small for every segment ends cut, not overrun. */
	char small[90];
	hop_progress_format(small, sizeof(small), &run, 8.0, chain, 4, 400);
	assert_int_equal(strlen(small), sizeof(small) - 1);
}

static void listen_addresses(void **state)
{
	char err[256];
	assert_int_equal(hop_http_check_address("127.0.0.1:9464", err, 256), 0);
	assert_int_equal(hop_http_check_address("0.0.0.0:0", err, 256), 0);
	assert_int_equal(hop_http_check_address("[::1]:9464", err, 256), 0);
	assert_int_equal(hop_http_check_address("localhost:80", err, 256), 0);
	assert_int_equal(hop_http_check_address("9464", err, 256), 0);
	const char *bad[] = {"",	 ":9464",	  "host",
			     "host:",	 "1.2.3.4:65536", "[::1]9464",
			     "::1:9464", "h:12a",	  "[]:1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(hop_http_check_address(bad[i], err, 256),
				 -EINVAL);
		assert_non_null(strstr(err, "expected HOST:PORT"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(counters_histogram_and_gauges),
	    cmocka_unit_test(progress_text),
	    cmocka_unit_test(stage_series),
	    cmocka_unit_test(progress_stages),
	    cmocka_unit_test(listen_addresses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
