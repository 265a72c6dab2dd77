/* kafka.h - what the kafka source shares with the kafka sink. */
#ifndef HOP_SOURCES_KAFKA_H
#define HOP_SOURCES_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

/* Splits kafka://host:port[,host:port]/topic into malloc'd brokers and
 * topic. Returns 0 or -EINVAL. */
int hop_kafka_parse_url(const char *url, char **brokers, char **topic);

/* Applies "key=value,key=value" librdkafka settings. Returns 0, or -EINVAL
 * with librdkafka's words in err. */
int hop_kafka_conf_set(rd_kafka_conf_t *conf, const char *settings, char *err,
		       size_t errlen);

/* librdkafka's log lines, as hopper's (rd_kafka_conf_set_log_cb). */
void hop_kafka_log(const rd_kafka_t *rk, int level, const char *fac,
		   const char *buf);

/* Asks the brokers for topic's metadata: 0, -ECONNREFUSED (no broker
 * answered) or -ENOENT (no such topic), with the reason in err. */
int hop_kafka_check_topic(rd_kafka_t *rk, const char *brokers,
			  const char *topic, char *err, size_t errlen);

/* The 32-bit murmur2 hash of len bytes that Kafka's Java clients pick a
 * key's partition with: (hop_kafka_murmur2(k, n) & 0x7fffffff) % parts. */
uint32_t hop_kafka_murmur2(const void *data, size_t len);

/* Creates topic with partitions and replication (-1: the broker's
 * defaults), waiting for the broker's answer at most 30 s. One that exists
 * already (another coordinator made it first) will do. Returns 0, or
 * -EINVAL or -EIO with the broker's words in err. */
int hop_kafka_create_topic(rd_kafka_t *rk, const char *brokers,
			   const char *topic, int64_t partitions,
			   int64_t replication, char *err, size_t errlen);

/* Makes sure topic is there: checks it and, when it is missing and create
 * is set, creates it (logging so, as who: "kafka sink"). Returns as
 * hop_kafka_check_topic. */
int hop_kafka_ensure_topic(rd_kafka_t *rk, const char *brokers,
			   const char *topic, bool create, int64_t partitions,
			   int64_t replication, const char *who, char *err,
			   size_t errlen);

#endif
