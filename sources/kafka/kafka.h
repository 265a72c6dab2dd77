/* kafka.h - what the kafka source shares with the kafka sink. */
#ifndef HOP_SOURCES_KAFKA_H
#define HOP_SOURCES_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

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

#endif
