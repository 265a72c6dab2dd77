/* Unit tests for the kafka drivers' settings: config=key=value,... where a
 * value may hold commas. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "sources/kafka/kafka.h"

static void value_is(rd_kafka_conf_t *conf, const char *key, const char *want)
{
	char got[256];
	size_t n = sizeof(got);
	assert_int_equal(rd_kafka_conf_get(conf, key, got, &n),
			 RD_KAFKA_CONF_OK);
	assert_string_equal(got, want);
}

static void test_settings_split_at_keys(void **state)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char err[256];
	assert_int_equal(hop_kafka_conf_set(conf,
					    "debug=fetch,cgrp,linger.ms=7,"
					    "client.id=a",
					    err, sizeof(err)),
			 0);
	value_is(conf, "debug", "cgrp,fetch"); /* librdkafka orders them */
	value_is(conf, "linger.ms", "7");
	value_is(conf, "client.id", "a");
	rd_kafka_conf_destroy(conf);
}

static void test_bad_settings_are_named(void **state)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char err[256];
	assert_int_not_equal(
	    hop_kafka_conf_set(conf, "nonsense", err, sizeof(err)), 0);
	assert_non_null(strstr(err, "'nonsense': expected key=value"));
	assert_int_not_equal(
	    hop_kafka_conf_set(conf, "no.such.setting=1", err, sizeof(err)), 0);
	assert_non_null(strstr(err, "no.such.setting"));
	assert_int_equal(hop_kafka_conf_set(conf, NULL, err, sizeof(err)), 0);
	rd_kafka_conf_destroy(conf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_settings_split_at_keys),
	    cmocka_unit_test(test_bad_settings_are_named),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
