/* Unit tests for the kafka drivers' settings: config=key=value,... where a
 * value may hold commas, each client getting those that apply to it; and
 * the murmur2 hash that places keyed messages. */
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

static void value_is_not(rd_kafka_conf_t *conf, const char *key,
			 const char * not )
{
	char got[256];
	size_t n = sizeof(got);
	assert_int_equal(rd_kafka_conf_get(conf, key, got, &n),
			 RD_KAFKA_CONF_OK);
	assert_string_not_equal(got, not );
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

/* The kafka source's config serves its consumer and its producers: each
 * gets the settings that apply to it, and neither a setting librdkafka
 * would ignore with a warning. */
static void test_each_client_gets_its_own_settings(void **state)
{
	static const char *settings =
	    "session.timeout.ms=6000,heartbeat.interval.ms=1000,"
	    "isolation.level=read_uncommitted,linger.ms=7,client.id=a,"
	    "security.protocol=plaintext";
	rd_kafka_conf_t *p = rd_kafka_conf_new(), *c = rd_kafka_conf_new();
	char err[256];
	assert_int_equal(hop_kafka_conf_set_for(p, RD_KAFKA_PRODUCER, settings,
						err, sizeof(err)),
			 0);
	assert_int_equal(hop_kafka_conf_set_for(c, RD_KAFKA_CONSUMER, settings,
						err, sizeof(err)),
			 0);
	/* left out: librdkafka's defaults */
	value_is_not(p, "session.timeout.ms", "6000");
	value_is_not(p, "heartbeat.interval.ms", "1000");
	value_is_not(p, "isolation.level", "read_uncommitted");
	value_is(p, "linger.ms", "7");
	value_is(c, "session.timeout.ms", "6000");
	value_is(c, "heartbeat.interval.ms", "1000");
	value_is(c, "isolation.level", "read_uncommitted");
	value_is_not(c, "linger.ms", "7");
	/* both: the generic ones */
	value_is(p, "client.id", "a");
	value_is(c, "client.id", "a");
	value_is(p, "security.protocol", "plaintext");
	value_is(c, "security.protocol", "plaintext");
	/* a bad setting is named still */
	assert_int_not_equal(hop_kafka_conf_set_for(p, RD_KAFKA_PRODUCER,
						    "no.such.setting=1", err,
						    sizeof(err)),
			     0);
	assert_non_null(strstr(err, "no.such.setting"));
	rd_kafka_conf_destroy(p);
	rd_kafka_conf_destroy(c);
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
	    cmocka_unit_test(test_each_client_gets_its_own_settings),
	    cmocka_unit_test(test_murmur2_matches_the_java_clients),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
