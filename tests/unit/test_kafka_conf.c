/* Unit tests for the kafka drivers' settings: config=key=value,... where a
 * value may hold commas; and the murmur2 hash that places keyed messages. */
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

/* Kafka's Java clients hash "foobar" and the others to these (signed
 * 32-bit) values, and partition with (h & 0x7fffffff) % partitions. */
static void test_murmur2_matches_the_java_clients(void **state)
{
	static const struct {
		const char *key;
		int32_t want;
	} cases[] = {
	    {"21", -973932308},
	    {"foobar", -790332482},
	    {"a-little-bit-long-string", -985981536},
	    {"a-little-bit-longer-string", -1486304829},
	    {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
	    {"abc", 479470107},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		assert_int_equal((int32_t)hop_kafka_murmur2(
				     cases[i].key, strlen(cases[i].key)),
				 cases[i].want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_settings_split_at_keys),
	    cmocka_unit_test(test_bad_settings_are_named),
	    cmocka_unit_test(test_murmur2_matches_the_java_clients),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
