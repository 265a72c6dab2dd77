/* kdead.h - the kafka source's dead letters, for hopper dead.
 *
 * A dead message is one of the dead-letter topic, named by where it lies
 * there (TOPIC/PARTITION/OFFSET), with the error, attempts and record from
 * the headers the source wrote. A topic cannot take a message out, so
 * hopper keeps which dead messages were handled (retried or discarded) in a
 * consumer group of its own on the dead-letter topic, GROUP.dead: per
 * partition the committed offset is the first one not handled, and the
 * commit's metadata lists the handled ones past it. A handled message is
 * neither listed nor retried again. Retry publishes the message to the
 * topic it came from (its hopper-topic header, else the source's topic)
 * with its key, value and headers, without hopper's own, waits until the
 * broker has it, and only then records it as handled: a failure in between
 * can publish it twice, never lose it.
 */
#ifndef HOP_SOURCES_KAFKA_KDEAD_H
#define HOP_SOURCES_KAFKA_KDEAD_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "sources/source.h"

struct kd_msg;
struct kd_part;

struct hop_kafka_dead {
	rd_kafka_t *consumer; /* in the group GROUP.dead, for its commits */
	rd_kafka_t *producer; /* made at the first retry */
	char *brokers, *topic, *dead_topic, *group;
	const char *config; /* borrowed: librdkafka settings */
	struct kd_msg *msgs;
	size_t n;
	struct kd_part *parts;
	int32_t nparts;
};

/* Reads the dead-letter topic of the source at url (dead_topic NULL: the
 * topic's name + .dead) past what group's GROUP.dead has handled. Returns
 * 0 or -errno with a message in err; on failure nothing is left to close. */
int hop_kafka_dead_open(struct hop_kafka_dead *d, const char *url,
			const char *dead_topic, const char *group,
			const char *config, char *err, size_t errlen);

/* Calls each for every dead message not handled, partition by partition,
 * in offset order. */
int hop_kafka_dead_list(struct hop_kafka_dead *d, hop_dead_each_fn each,
			void *arg);

/* Publishes the dead message id to its topic again, then records it as
 * handled. Returns 0, -ENOENT when there is no such message not handled,
 * or another -errno with err. */
int hop_kafka_dead_retry(struct hop_kafka_dead *d, const char *id, char *err,
			 size_t errlen);

/* Records the dead message id as handled. Returns as retry. */
int hop_kafka_dead_discard(struct hop_kafka_dead *d, const char *id, char *err,
			   size_t errlen);

void hop_kafka_dead_close(struct hop_kafka_dead *d);

#endif
