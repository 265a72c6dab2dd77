/* ktxn.c - the kafka source's transactions: a transactional producer that
 * commits its messages and the input offsets together (exactly once).
 *
 * librdkafka's transactional API, as KIP-447 means it: the input offsets go
 * into the transaction with the consumer's group metadata, so the group
 * coordinator fences a producer whose consumer has lost its partitions (a
 * zombie after a rebalance) without a transactional.id per partition; one
 * id per coordinator is enough. Initialising a producer with an id fences
 * an earlier producer of the same id and aborts what that one left open,
 * so a coordinator restarted with its id does not wait for its dead
 * predecessor's transaction to time out.
 *
 * Every call here blocks until the broker answered. A commit is short on a
 * healthy broker (milliseconds) and comes when the source has nothing in
 * flight, so the loop waits on it rather than run it on a thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/log.h"
#include "sources/kafka/kafka.h"

/* The longest a transactional call may wait for the broker. */
#define TXN_WAIT_MS 30000
/* Calls that fail with a retriable error are made again, this often. */
#define TXN_TRIES 3

void hop_kafka_delivered(rd_kafka_t *rk, const rd_kafka_message_t *m,
			 void *opaque)
{
	struct hop_kafka_dr *d = m->_private;
	if (d)
		d->fn(d, m);
}

/* What error e means for the transaction: -EPERM fatal (t->fatal set),
 * -EAGAIN to be aborted, -EINTR to be tried again, else -EIO. Takes e;
 * err says what failed and why. */
static int classify(struct hop_kafka_txn *t, rd_kafka_error_t *e,
		    const char *what, char *err, size_t errlen)
{
	int rc = -EIO;
	snprintf(err, errlen, "%s: %s", what, rd_kafka_error_string(e));
	if (rd_kafka_error_is_fatal(e)) {
		t->fatal = true;
		rc = -EPERM;
	} else if (rd_kafka_error_txn_requires_abort(e)) {
		rc = -EAGAIN;
	} else if (rd_kafka_error_is_retriable(e)) {
		rc = -EINTR;
	}
	rd_kafka_error_destroy(e);
	return rc;
}

/* Begins the next transaction: 0, or -EPERM (nothing else can fail on a
 * producer whose last transaction ended). */
static int begin(struct hop_kafka_txn *t, char *err, size_t errlen)
{
	rd_kafka_error_t *e = rd_kafka_begin_transaction(t->rk);
	if (!e)
		return 0;
	classify(t, e, "beginning a transaction", err, errlen);
	t->fatal = true;
	return -EPERM;
}

struct hop_kafka_txn *hop_kafka_txn_new(rd_kafka_conf_t *conf, const char *id,
					char *err, size_t errlen)
{
	struct hop_kafka_txn *t = calloc(1, sizeof(*t));
	rd_kafka_error_t *e;
	int rc = -EINTR;

	if (!t || !(t->id = strdup(id))) {
		snprintf(err, errlen, "out of memory");
		goto out_conf;
	}
	if (rd_kafka_conf_set(conf, "transactional.id", id, err, errlen))
		goto out_conf;
	t->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errlen);
	if (!t->rk)
		goto out_conf;
	conf = NULL; /* the producer's now */
	for (int i = 0; i < TXN_TRIES && rc == -EINTR; i++) {
		e = rd_kafka_init_transactions(t->rk, TXN_WAIT_MS);
		rc =
		    e ? classify(t, e, "initialising transactions", err, errlen)
		      : 0;
	}
	if (rc || begin(t, err, errlen))
		goto out_producer;
	t->refs = 1;
	hop_log(HOP_INFO, "kafka: transactional producer %s ready", id);
	return t;

out_producer:
	rd_kafka_destroy(t->rk);
out_conf:
	if (conf)
		rd_kafka_conf_destroy(conf);
	if (t)
		free(t->id);
	free(t);
	return NULL;
}

int hop_kafka_txn_abort(struct hop_kafka_txn *t, char *err, size_t errlen)
{
	int rc = t->fatal ? -EPERM : -EINTR;

	for (int i = 0; i < TXN_TRIES && rc == -EINTR; i++) {
		rd_kafka_error_t *e =
		    rd_kafka_abort_transaction(t->rk, TXN_WAIT_MS);
		rc = e ? classify(t, e, "aborting a transaction", err, errlen)
		       : 0;
	}
	t->round++; /* what was written before is gone */
	if (rc) {
		t->fatal = true;
		return -EPERM;
	}
	return begin(t, err, errlen);
}

int hop_kafka_txn_commit(struct hop_kafka_txn *t,
			 const rd_kafka_topic_partition_list_t *offsets,
			 rd_kafka_t *consumer, char *err, size_t errlen)
{
	rd_kafka_error_t *e;
	int rc = -EINTR;

	if (t->fatal)
		return -EPERM;
	if (offsets && offsets->cnt) {
		rd_kafka_consumer_group_metadata_t *g =
		    rd_kafka_consumer_group_metadata(consumer);
		for (int i = 0; i < TXN_TRIES && rc == -EINTR; i++) {
			e = rd_kafka_send_offsets_to_transaction(
			    t->rk, offsets, g, TXN_WAIT_MS);
			rc = e ? classify(t, e, "sending the input offsets",
					  err, errlen)
			       : 0;
		}
		rd_kafka_consumer_group_metadata_destroy(g);
		if (rc)
			goto failed;
	}
	rc = -EINTR;
	for (int i = 0; i < TXN_TRIES && rc == -EINTR; i++) {
		e = rd_kafka_commit_transaction(t->rk, TXN_WAIT_MS);
		rc = e ? classify(t, e, "committing", err, errlen) : 0;
	}
	if (rc == 0)
		return begin(t, err, errlen);
failed:
	if (rc == -EPERM)
		return rc;
	/* Abortable, or anything else: what the transaction held is done
	 * again, which is always safe. */
	hop_log(HOP_WARN, "kafka: transaction of %s aborted: %s", t->id, err);
	char why[256];
	if (hop_kafka_txn_abort(t, why, sizeof(why))) {
		snprintf(err, errlen, "%s", why);
		return -EPERM;
	}
	return -EAGAIN;
}

void hop_kafka_txn_put(struct hop_kafka_txn *t)
{
	if (!t || --t->refs > 0)
		return;
	rd_kafka_destroy(t->rk);
	free(t->id);
	free(t);
}
