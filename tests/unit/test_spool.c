/* Unit tests for spool.c: outputs come back in order with their ports and
 * keys, from memory and past the limit from a file that no one else can
 * see, and the spool's own memory stays within its limit however many
 * outputs go through it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/spool.h"

static char dir[] = "/tmp/test_spool.XXXXXX";

/* Entries in the test's folder, other than . and .. */
static int entries(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

static int add(struct hop_spool *s, const char *payload, const char *port,
	       const char *key)
{
	struct hop_emit e = {(char *)payload, strlen(payload), (char *)port,
			     (char *)key};
	return hop_spool_add(s, &e);
}

static void next_is(struct hop_spool *s, const char *payload, const char *port,
		    const char *key)
{
	struct hop_emit e;

	assert_int_equal(hop_spool_next(s, &e), 1);
	assert_int_equal(e.payload_len, strlen(payload));
	assert_string_equal(e.payload, payload);
	if (port)
		assert_string_equal(e.port, port);
	else
		assert_null(e.port);
	if (key)
		assert_string_equal(e.key, key);
	else
		assert_null(e.key);
	hop_emit_clear(&e);
}

static void outputs_come_back_in_order_from_memory(void **state)
{
	struct hop_spool *s = hop_spool_new(dir, 1 << 20);
	struct hop_emit e;

	assert_non_null(s);
	assert_int_equal(hop_spool_next(s, &e), 0);
	assert_int_equal(add(s, "{\"n\":1}", NULL, NULL), 0);
	assert_int_equal(add(s, "\"two\"", "sms", NULL), 0);
	assert_int_equal(add(s, "3", NULL, "user-42"), 0);
	assert_int_equal(add(s, "[]", "", ""), 0); /* empty, not none */
	assert_int_equal(hop_spool_count(s), 4);
	assert_int_equal(hop_spool_left(s), 4);
	assert_false(hop_spool_spilled(s));
	assert_int_equal(entries(), 0);

	next_is(s, "{\"n\":1}", NULL, NULL);
	next_is(s, "\"two\"", "sms", NULL);
	assert_int_equal(hop_spool_left(s), 2);
	/* Adding after taking keeps the order. */
	assert_int_equal(add(s, "5", "p", "k"), 0);
	next_is(s, "3", NULL, "user-42");
	next_is(s, "[]", "", "");
	next_is(s, "5", "p", "k");
	assert_int_equal(hop_spool_next(s, &e), 0);
	assert_null(e.payload);
	assert_int_equal(hop_spool_left(s), 0);
	assert_int_equal(hop_spool_count(s), 5);
	hop_spool_free(s);
}

/* Past the limit, outputs go to a file that is never in the folder, and
 * come back in order across the two, big ones too. */
static void past_the_limit_outputs_spill_to_an_unlinked_file(void **state)
{
	const size_t limit = 4096;
	struct hop_spool *s = hop_spool_new(dir, limit);
	char payload[64], port[16], key[16];
	char *big = malloc(100000);

	assert_non_null(s);
	assert_non_null(big);
	memset(big, 'x', 99999);
	big[0] = big[99998] = '"';
	big[99999] = '\0';
	for (int i = 0; i < 1000; i++) {
		snprintf(payload, sizeof(payload), "{\"n\":%d}", i);
		snprintf(port, sizeof(port), "p%d", i % 3);
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(add(s, payload, i % 2 ? port : NULL, key), 0);
		if (i == 500)
			assert_int_equal(add(s, big, "big", NULL), 0);
		assert_true(hop_spool_mem(s) <= limit);
	}
	assert_true(hop_spool_spilled(s));
	assert_int_equal(entries(), 0);
	assert_int_equal(hop_spool_count(s), 1001);
	for (int i = 0; i < 1000; i++) {
		snprintf(payload, sizeof(payload), "{\"n\":%d}", i);
		snprintf(port, sizeof(port), "p%d", i % 3);
		snprintf(key, sizeof(key), "k%d", i);
		next_is(s, payload, i % 2 ? port : NULL, key);
		if (i == 500)
			next_is(s, big, "big", NULL);
		assert_true(hop_spool_mem(s) <= limit);
	}
	assert_int_equal(hop_spool_left(s), 0);
	hop_spool_free(s);
	free(big);
}

/* A splitter's million small outputs: the spool's memory never passes its
 * limit, and every output comes back, in order. */
static void a_million_outputs_stay_within_the_limit(void **state)
{
	const size_t limit = 64 * 1024;
	struct hop_spool *s = hop_spool_new(dir, limit);
	char payload[32];
	size_t most = 0;
	struct hop_emit e;

	assert_non_null(s);
	for (int i = 0; i < 1000000; i++) {
		int n = snprintf(payload, sizeof(payload), "{\"i\":%d}", i);
		struct hop_emit in = {payload, (size_t)n, NULL, NULL};
		assert_int_equal(hop_spool_add(s, &in), 0);
		if (hop_spool_mem(s) > most)
			most = hop_spool_mem(s);
	}
	assert_true(hop_spool_spilled(s));
	assert_int_equal(hop_spool_count(s), 1000000);
	for (int i = 0; i < 1000000; i++) {
		int n = snprintf(payload, sizeof(payload), "{\"i\":%d}", i);
		assert_int_equal(hop_spool_next(s, &e), 1);
		assert_int_equal(e.payload_len, (size_t)n);
		assert_memory_equal(e.payload, payload, (size_t)n);
		hop_emit_clear(&e);
		if (hop_spool_mem(s) > most)
			most = hop_spool_mem(s);
	}
	assert_int_equal(hop_spool_next(s, &e), 0);
	assert_true(most <= limit);
	assert_true(most > limit / 2); /* it did use its memory */
	hop_spool_free(s);
}

/* A folder the file cannot be made in: the error is returned, and sticks,
 * while what fit in memory was accepted. */
static void a_disk_error_is_returned(void **state)
{
	struct hop_spool *s = hop_spool_new("/nonexistent/folder", 1024);

	assert_non_null(s);
	assert_int_equal(add(s, "1", NULL, NULL), 0);
	char big[2048];
	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_true(add(s, big, NULL, NULL) < 0);
	assert_true(add(s, "2", NULL, NULL) < 0);
	struct hop_emit e;
	assert_true(hop_spool_next(s, &e) < 0);
	assert_int_equal(hop_spool_count(s), 1);
	hop_spool_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(outputs_come_back_in_order_from_memory),
	    cmocka_unit_test(past_the_limit_outputs_spill_to_an_unlinked_file),
	    cmocka_unit_test(a_million_outputs_stay_within_the_limit),
	    cmocka_unit_test(a_disk_error_is_returned),
	};
	if (!mkdtemp(dir))
		return 1;
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(dir);
	return rc;
}
