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

/* Renders s into *text (the caller frees it). */
static void render(const struct hop_stats *s, char **text)
{
	size_t len = 0;
	FILE *f = open_memstream(text, &len);
	assert_non_null(f);
	assert_int_equal(hop_metrics_write(f, s, s->started_ms + 2500), 0);
	fclose(f);
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

	hop_progress_format(line, sizeof(line), &s, 8.0, 200);
	assert_string_equal(line, "hopper 32/64 (50%) | 8.0/s | ETA 0:04 | "
				  "4 workers | 30 done, 2 dead, 1 retried");
	s.total = -1;
	s.depth = 100;
	s.inflight = 4;
	hop_progress_format(line, sizeof(line), &s, 0.5, 200);
	assert_string_equal(line,
			    "hopper 32 finished | 100 waiting | 0.5/s | ETA "
			    "3:28 | 4 workers | 30 done, 2 dead, 1 retried");
	s.depth = -1;
	hop_progress_format(line, sizeof(line), &s, -1, 200);
	assert_string_equal(line, "hopper 32 finished | --/s | 4 workers | "
				  "30 done, 2 dead, 1 retried");
	/* Never as wide as the terminal: a wrapped line cannot be redrawn. */
	hop_progress_format(line, sizeof(line), &s, -1, 20);
	assert_int_equal(strlen(line), 19);
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
	    cmocka_unit_test(listen_addresses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
