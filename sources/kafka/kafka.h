/* kafka.h - what the kafka source shares with the kafka sink. */
#ifndef HOP_SOURCES_KAFKA_H
#define HOP_SOURCES_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hop_item;

/* Splits kafka://host:port[,host:port]/topic into malloc'd brokers and
 * topic. Returns 0 or -EINVAL. */
int hop_kafka_parse_url(const char *url, char **brokers, char **topic);

/* Applies "key=value,key=value" librdkafka settings. Returns 0, or -EINVAL
 * with librdkafka's words in err. */
int hop_kafka_conf_set(rd_kafka_conf_t *conf, const char *settings, char *err,
		       size_t errlen);

/* As hop_kafka_conf_set for a client of type, leaving out the settings
 * that librdkafka applies only to the other type (consumer-only ones on a
 * producer, producer-only ones on a consumer): the kafka source's config
 * serves its consumer and its producers, and librdkafka would warn of each
 * setting that does not apply. */
int hop_kafka_conf_set_for(rd_kafka_conf_t *conf, rd_kafka_type_t type,
			   const char *settings, char *err, size_t errlen);

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

/* Where a delivery report goes. A message's opaque (its _private) points
 * at one of these, first in whatever its sender keeps for it, so that one
 * producer can carry the messages of several senders: the source's dead
 * letters and the sink's results in one transaction. */
struct hop_kafka_dr {
	void (*fn)(struct hop_kafka_dr *self, const rd_kafka_message_t *m);
};

/* The delivery report callback of every hopper producer
 * (rd_kafka_conf_set_dr_msg_cb): hands the report to its sender. */
void hop_kafka_delivered(rd_kafka_t *rk, const rd_kafka_message_t *m,
			 void *opaque);

/* The kafka source's transaction (exactly_once=true): its transactional
 * producer, which kafka sinks join through the source's transaction op
 * (sources/source.h) to write their results in it. The source begins,
 * commits (with the input offsets of the items it covers, sent with the
 * consumer's group metadata) and aborts it; a joined sink only produces
 * in it and reports what failed. */
struct hop_kafka_txn {
	rd_kafka_t *rk; /* the producer; owned by the transaction */
	char *id;	/* its transactional.id */
	int refs;	/* the source's and each joined sink's */
	int joined;	/* sinks that joined */
	uint64_t round; /* bumped at each abort */
	bool fatal;	/* the producer is fenced or failed for good */
	void *owner;	/* the source's context; NULL once it closed */
	/* True when root (an item the source gave) no longer counts: its
	 * transaction aborted, its partition moved to another coordinator,
	 * or the source closed or failed for good. Its outputs must not be
	 * written: it is done again from the start. */
	bool (*stale)(struct hop_kafka_txn *t, const struct hop_item *root);
	/* A message of the transaction failed (err): the source aborts it
	 * soon and takes its items again from the last commit. */
	void (*failed)(struct hop_kafka_txn *t, rd_kafka_resp_err_t err);
};

/* Makes a transaction on a producer configured by conf (which it takes,
 * with transactional.id set): initialises it (fencing an earlier producer
 * of the same id and aborting what that one left open) and begins the
 * first transaction. Returns it with one reference, or NULL with
 * librdkafka's words in err (conf then destroyed too). */
struct hop_kafka_txn *hop_kafka_txn_new(rd_kafka_conf_t *conf, const char *id,
					char *err, size_t errlen);

/* Commits the open transaction with offsets (a list of the input
 * partitions' next offsets, NULL or empty for none) for consumer's group,
 * and begins the next. Returns 0; -EAGAIN when the transaction had to be
 * aborted instead (an abortable error: it is, and the next one begun);
 * or -EPERM when the producer cannot go on (fenced, or another fatal
 * error: t->fatal). err says why when it is not 0. Blocks until the broker
 * answered (at most the transaction timeout). */
int hop_kafka_txn_commit(struct hop_kafka_txn *t,
			 const rd_kafka_topic_partition_list_t *offsets,
			 rd_kafka_t *consumer, char *err, size_t errlen);

/* Aborts the open transaction and begins the next. Returns 0, or -EPERM
 * (fatal) with err saying why. Blocks as commit does. */
int hop_kafka_txn_abort(struct hop_kafka_txn *t, char *err, size_t errlen);

/* Gives a reference back; the last one destroys the producer. */
void hop_kafka_txn_put(struct hop_kafka_txn *t);

#endif
