/* kafka.c - the kafka sink: each result a message on a topic.
 *
 * An idempotent producer with acks=all. The writes of one turn of the loop
 * are handed to librdkafka together, before the loop sleeps, in batches of
 * up to BATCH (one rd_kafka_produce_batch call takes the locks and reads
 * the clock once for all of them), and at the latest by the next flush; a
 * flush answers PENDING and the answer comes when the broker has
 * confirmed every message written before it (the delivery reports arrive
 * through a pipe the loop watches), so an item is acknowledged upstream
 * only once its result is stored. A result near message.max.bytes goes
 * on its own, so that librdkafka's refusal fails that item alone; a message
 * of a batch refused (the queue full for a second, a fatal producer error)
 * fails its flush, and with it the flush's items, which are tried again.
 *
 * A message the broker refuses for good (over the topic's
 * max.message.bytes, a record it will not take) fails its flush with FAIL,
 * so that its item dies with the broker's error, but only when the broker
 * judged it alone: the only message of its flush, with no other in
 * librdkafka's queue from when it was handed over to its delivery report
 * (librdkafka packs the messages of several flushes into one request, and
 * the broker refuses such a batch whole). Otherwise the flush answers
 * RETRY, and the coordinator writes its items again one first, which comes
 * to the refused one alone. Anything else (a broker out of reach, a
 * timeout, a topic gone or not allowed) is the sink's outage, not the
 * item's: RETRY.
 *
 * A message's key is the output's own (an emit's "key"), else the item's
 * id (key=auto), and picks its partition with murmur2 as the Java client
 * does, so that Java and hopper producers put one key in one partition.
 *
 * Exactly once: when the run's only source is a kafka topic with
 * exactly_once, the sink writes through the source's transactional
 * producer (sources/kafka/kafka.h) instead of one of its own, and the
 * source commits the results with the input offsets. An item that its
 * transaction no longer counts (aborted, its partition moved away) is not
 * written: it is done again from the start. A message that fails aborts
 * the transaction; the flush answers RETRY as usual, and when its items
 * are written again they no longer count.
 */
#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "coordinator/gather.h"
#include "coordinator/item.h"
#include "coordinator/log.h"
#include "coordinator/loop.h"
#include "sinks/sink.h"
#include "sources/kafka/kafka.h"
#include "sources/source.h"

/* Writes are counted in generations: one per flush, the last one taking
 * the writes since the last flush. Flushes are answered in order. */
#define NGEN 9 /* more than the flushes the sink lets wait */
#define BATCH 256
struct ksink;
struct gen {
	struct hop_kafka_dr dr; /* its messages' delivery reports */
	struct ksink *c;
	size_t n;   /* messages written to it */
	size_t out; /* messages not confirmed yet */
	/* Its only message, by the count of messages produced, when it went
	 * with no other in librdkafka's queue; else 0. */
	uint64_t lone;
	rd_kafka_resp_err_t err;
	bool refused; /* the broker refused that message alone, for good */
};

struct ksink {
	char *url;
	char *key;
	char *config;
	bool create;
	int64_t partitions, replication;
	char *partition_by;
	bool exactly_once;

	struct hop_sink *sink;
	char *brokers, *topic;
	bool keyed;	/* key=id or key=auto */
	bool own_keys;	/* key=auto: an output's own key before the id */
	int32_t nparts; /* the topic's partitions, with partition_by */
	/* The source's transaction, when the sink writes in it; its
	 * producer is then rk. batch_round: the transaction's round when the
	 * batch began; an abort since fails the batch. */
	struct hop_kafka_txn *txn;
	uint64_t batch_round;
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt; /* looked up once, not at every message */
	int pipe[2];
	struct gen gen[NGEN];
	int cur;     /* the generation writes go to */
	int oldest;  /* the oldest flush waiting for its answer */
	int pending; /* flushes waiting */
	/* Writes not handed to librdkafka yet, all of generation cur. They
	 * point into their items' id and result, which live until the flush
	 * that covers them is answered. */
	rd_kafka_message_t batch[BATCH];
	int nbatch;
	uint64_t produced; /* messages handed to librdkafka */
	size_t max_bytes;  /* message.max.bytes */
};

static const struct hop_option ksink_options[] = {
    {"url", HOP_OPT_STR, NULL, offsetof(struct ksink, url),
     "kafka://host:port[,host:port...]/topic"},
    {"key", HOP_OPT_STR, "auto", offsetof(struct ksink, key),
     "a message's key, which picks its partition (murmur2, as Java "
     "clients): auto (the output's key, else the item's id), id or none"},
    {"config", HOP_OPT_STR, NULL, offsetof(struct ksink, config),
     "librdkafka settings, key=value,key=value"},
    {"partition_by", HOP_OPT_STR, NULL, offsetof(struct ksink, partition_by),
     "a JSON pointer into each result (\"/user\"): its text picks the "
     "message's partition, hashed with murmur2 as Kafka's Java clients "
     "hash keys, so that one value always lands in one partition (the "
     "item's id when the result has none); a stage's via into a sharder "
     "sets it to the sharder's key"},
    {"create", HOP_OPT_BOOL, "false", offsetof(struct ksink, create),
     "create the topic at start when it does not exist (on for a stage's "
     "via)"},
    {"partitions", HOP_OPT_INT, "-1", offsetof(struct ksink, partitions),
     "partitions of a topic created here (-1: the broker's num.partitions)"},
    {"replication", HOP_OPT_INT, "-1", offsetof(struct ksink, replication),
     "replicas of a topic created here (-1: the broker's "
     "default.replication.factor)"},
    {"exactly_once", HOP_OPT_BOOL, "false",
     offsetof(struct ksink, exactly_once),
     "refuse to start unless the results go in the source's transaction "
     "(they do whenever the run's only source is a kafka topic with "
     "exactly_once)"},
    {NULL},
};

/* True for an error of the broker's that the same message meets again
 * however often it is sent, and that is the message's own, not the
 * topic's or the cluster's: the Kafka protocol's non-retriable errors about
 * a record or its size. */
static bool refused_for_good(rd_kafka_resp_err_t err)
{
	switch (err) {
	case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
	case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
	case RD_KAFKA_RESP_ERR_INVALID_RECORD:
		return true;
	default:
		return false;
	}
}

/* True for librdkafka's own refusal of one message at produce time (too
 * large for the producer): that message never goes, the rest may. */
static bool refused_here(rd_kafka_resp_err_t err)
{
	return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
	       err == RD_KAFKA_RESP_ERR__INVALID_ARG;
}

/* The status of a finished generation; resets it for reuse. */
static enum hop_sink_status take_status(struct ksink *c, struct gen *g)
{
	enum hop_sink_status st = HOP_SINK_OK;
	if (g->err) {
		snprintf(c->sink->error, sizeof(c->sink->error),
			 "kafka sink: %s: %s", c->topic,
			 rd_kafka_err2str(g->err));
		/* In a transaction nothing fails alone: the transaction
		 * aborts, and the items, written again, no longer count. */
		st = g->refused && !c->txn ? HOP_SINK_FAIL : HOP_SINK_RETRY;
	}
	g->err = 0;
	g->refused = false;
	g->n = 0;
	g->lone = 0;
	return st;
}

/* Counts k messages of g handed to librdkafka; alone when its queue was
 * empty before. */
static void count_produced(struct ksink *c, struct gen *g, int k, bool alone)
{
	c->produced += (uint64_t)k;
	g->lone = alone && k == 1 && g->n == 1 ? c->produced : 0;
}

/* Answers, in order, every waiting flush whose messages all have their
 * delivery reports. */
static void answer(struct hop_loop *loop, void *arg)
{
	struct ksink *c = arg;
	while (c->pending && c->gen[c->oldest].out == 0) {
		enum hop_sink_status st = take_status(c, &c->gen[c->oldest]);
		c->oldest = (c->oldest + 1) % NGEN;
		c->pending--;
		hop_sink_flushed(c->sink, st);
	}
}

/* From the loop, never from inside a write or flush the coordinator is
 * in. */
static void answer_if_done(struct ksink *c)
{
	if (c->pending && c->gen[c->oldest].out == 0)
		hop_loop_soon(c->sink->loop, answer, c);
}

static void on_delivered(struct hop_kafka_dr *d, const rd_kafka_message_t *m)
{
	struct gen *g = (struct gen *)d;
	struct ksink *c = g->c;
	g->out--;
	if (m->err && !g->err) {
		g->err = m->err;
		/* Alone if no message was handed over after it. */
		g->refused = refused_for_good(m->err) && g->lone &&
			     g->lone == c->produced;
	}
	if (m->err && c->txn)
		c->txn->failed(c->txn, m->err);
	if (g->out == 0) /* the source polls a shared producer */
		answer_if_done(c);
}

static void on_event(struct hop_loop *loop, int fd, uint32_t ev, void *arg)
{
	struct ksink *c = arg;
	char buf[64];
	while (read(fd, buf, sizeof(buf)) > 0) {
	}
	rd_kafka_poll(c->rk, 0);
	answer_if_done(c);
}

/* The URL's form, the key's choice and the librdkafka settings, checked
 * on a configuration that is thrown away: no client, no broker. */
static int ksink_check(struct hop_sink *sink, const char **key)
{
	struct ksink *c = sink->ctx;
	char *brokers = NULL, *topic = NULL, err[400];
	int rc = -EINVAL;

	if (!c->url || hop_kafka_parse_url(c->url, &brokers, &topic)) {
		snprintf(sink->error, sizeof(sink->error),
			 "kafka sink: '%s': expected kafka://host:port/topic",
			 c->url ? c->url : "");
		*key = "url";
	} else if (strcmp(c->key, "auto") && strcmp(c->key, "id") &&
		   strcmp(c->key, "none")) {
		snprintf(sink->error, sizeof(sink->error),
			 "kafka sink: key '%s': expected auto, id or none",
			 c->key);
		*key = "key";
	} else if (c->partition_by && c->partition_by[0] != '/') {
		snprintf(sink->error, sizeof(sink->error),
			 "kafka sink: partition_by '%s' is not a JSON pointer: "
			 "one starts with '/'",
			 c->partition_by);
		*key = "partition_by";
	} else {
		rd_kafka_conf_t *conf = rd_kafka_conf_new();
		rc = hop_kafka_conf_set(conf, c->config, err, sizeof(err));
		rd_kafka_conf_destroy(conf);
		if (rc) {
			snprintf(sink->error, sizeof(sink->error),
				 "kafka sink: %s", err);
			*key = "config";
		}
	}
	free(brokers);
	free(topic);
	return rc;
}

/* The topic's partitions, from the brokers: at least 1, or -1 when they
 * cannot tell within about 15 s (a topic just created may be unknown to
 * the broker that answers for a moment). */
static int32_t partitions_of(struct ksink *c)
{
	for (int tries = 0; tries < 60; tries++) {
		const struct rd_kafka_metadata *md;
		int32_t n = -1;
		if (!rd_kafka_metadata(c->rk, 0, c->rkt, &md, 10000)) {
			if (md->topic_cnt == 1 && !md->topics[0].err)
				n = md->topics[0].partition_cnt;
			rd_kafka_metadata_destroy(md);
		}
		if (n > 0)
			return n;
		usleep(250 * 1000);
	}
	return -1;
}

/* Joins the transaction of the run's source when it runs one. Returns 0,
 * joined or not, or -EINVAL when exactly_once was asked for and cannot be
 * had. */
static int join_txn(struct hop_sink *sink)
{
	struct ksink *c = sink->ctx;
	struct hop_source *src = sink->only_source;

	if (src && src->ops->transaction)
		c->txn = src->ops->transaction(src, "kafka");
	if (c->txn && c->config) {
		snprintf(sink->error, sizeof(sink->error),
			 "kafka sink: config: with exactly once the results "
			 "go through the source's transactional producer: "
			 "give librdkafka settings to the source "
			 "(-S config=...)");
		return -EINVAL;
	}
	if (c->txn || !c->exactly_once)
		return 0;
	if (!src)
		snprintf(sink->error, sizeof(sink->error),
			 "kafka sink: exactly_once: the run has several "
			 "sources; only the items of one kafka source can be "
			 "written exactly once");
	else if (!src->ops->transaction)
		snprintf(sink->error, sizeof(sink->error),
			 "kafka sink: exactly_once: the source %s runs no "
			 "transactions; only a kafka source can",
			 src->label);
	else
		snprintf(sink->error, sizeof(sink->error),
			 "kafka sink: exactly_once: %.400s", src->error);
	return -EINVAL;
}

/* Makes the sink's own idempotent producer. Returns 0 or -EINVAL. */
static int make_producer(struct hop_sink *sink)
{
	struct ksink *c = sink->ctx;
	char err[400];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "bootstrap.servers", c->brokers, err,
			      sizeof(err)) ||
	    rd_kafka_conf_set(conf, "enable.idempotence", "true", err,
			      sizeof(err)) ||
	    rd_kafka_conf_set(conf, "acks", "all", err, sizeof(err)) ||
	    rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof(err)) ||
	    rd_kafka_conf_set(conf, "client.id", "hopper", err, sizeof(err)) ||
	    rd_kafka_conf_set(conf, "partitioner", "murmur2_random", err,
			      sizeof(err)) ||
	    hop_kafka_conf_set(conf, c->config, err, sizeof(err))) {
		rd_kafka_conf_destroy(conf);
		snprintf(sink->error, sizeof(sink->error), "kafka sink: %s",
			 err);
		return -EINVAL;
	}
	rd_kafka_conf_set_opaque(conf, c);
	rd_kafka_conf_set_log_cb(conf, hop_kafka_log);
	rd_kafka_conf_set_dr_msg_cb(conf, hop_kafka_delivered);
	c->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!c->rk) {
		rd_kafka_conf_destroy(conf);
		snprintf(sink->error, sizeof(sink->error), "kafka sink: %s",
			 err);
		return -EINVAL;
	}
	return 0;
}

static int ksink_open(struct hop_sink *sink)
{
	struct ksink *c = sink->ctx;
	const char *key;
	char err[400];
	int rc;

	c->sink = sink;
	c->pipe[0] = c->pipe[1] = -1;
	for (int i = 0; i < NGEN; i++) {
		c->gen[i].dr.fn = on_delivered;
		c->gen[i].c = c;
	}
	if ((rc = ksink_check(sink, &key)))
		return rc;
	if ((rc = hop_kafka_parse_url(c->url, &c->brokers, &c->topic)))
		return rc;
	if ((rc = join_txn(sink)) || (!c->txn && (rc = make_producer(sink))))
		goto fail_txn;
	if (c->txn)
		c->rk = c->txn->rk;
	if (hop_kafka_ensure_topic(c->rk, c->brokers, c->topic, c->create,
				   c->partitions, c->replication, "kafka sink",
				   err, sizeof(err))) {
		snprintf(sink->error, sizeof(sink->error), "kafka sink: %s",
			 err);
		goto fail;
	}
	c->keyed = strcmp(c->key, "none") != 0;
	c->own_keys = strcmp(c->key, "auto") == 0;
	char max[32];
	size_t maxlen = sizeof(max);
	c->max_bytes = 1000000;
	if (rd_kafka_conf_get(rd_kafka_conf(c->rk), "message.max.bytes", max,
			      &maxlen) == RD_KAFKA_CONF_OK)
		c->max_bytes = strtoull(max, NULL, 10);
	c->rkt = rd_kafka_topic_new(c->rk, c->topic, NULL);
	if (!c->rkt) {
		snprintf(sink->error, sizeof(sink->error), "kafka sink: %s: %s",
			 c->topic, rd_kafka_err2str(rd_kafka_last_error()));
		goto fail;
	}
	if (c->partition_by && (c->nparts = partitions_of(c)) < 1) {
		snprintf(sink->error, sizeof(sink->error),
			 "kafka sink: %s: cannot learn its partitions from %s",
			 c->topic, c->brokers);
		goto fail;
	}
	if (c->txn) {
		/* The source polls the producer and commits. */
		hop_log(HOP_INFO,
			"kafka sink: %s: results written exactly once, in the "
			"transactions of %s",
			c->topic, c->txn->id);
		return 0;
	}
	rd_kafka_queue_t *q = rd_kafka_queue_get_main(c->rk);
	if (pipe2(c->pipe, O_CLOEXEC | O_NONBLOCK) == 0) {
		rd_kafka_queue_io_event_enable(q, c->pipe[1], "1", 1);
		if (hop_loop_watch(sink->loop, c->pipe[0], EPOLLIN, on_event,
				   c) == 0) {
			rd_kafka_queue_destroy(q);
			return 0;
		}
	}
	rd_kafka_queue_destroy(q);
	snprintf(sink->error, sizeof(sink->error), "kafka sink: %s",
		 strerror(errno));
fail:
	for (int i = 0; i < 2; i++)
		if (c->pipe[i] >= 0)
			close(c->pipe[i]);
	if (c->rkt)
		rd_kafka_topic_destroy(c->rkt);
	c->rkt = NULL;
	if (!c->txn)
		rd_kafka_destroy(c->rk);
	c->rk = NULL;
	rc = -EIO;
fail_txn:
	hop_kafka_txn_put(c->txn);
	c->txn = NULL;
	free(c->brokers);
	free(c->topic);
	return rc;
}

/* The partition of a result: RD_KAFKA_PARTITION_UA for librdkafka's
 * partitioner, or, with partition_by, the murmur2 hash of the text at
 * that pointer (of the id when there is none) modulo the partitions. */
static int32_t partition_of(const struct ksink *c, const struct hop_item *it,
			    const char *v, size_t vlen)
{
	bool missing = false;
	char *text;
	uint32_t h;

	if (!c->partition_by)
		return RD_KAFKA_PARTITION_UA;
	text = hop_json_pointer_text(v, vlen, c->partition_by, &missing);
	h = text ? hop_kafka_murmur2(text, strlen(text))
		 : hop_kafka_murmur2(it->id, strlen(it->id));
	free(text);
	return (int32_t)((h & 0x7fffffff) % (uint32_t)c->nparts);
}

/* Hands the batch to librdkafka (copied), waiting for room when its
 * queue is full. A message it refuses counts as a failed delivery of the
 * current generation. */
static void produce_batch(struct ksink *c)
{
	rd_kafka_message_t *m = c->batch;
	int n = c->nbatch;
	bool alone = n == 1 && rd_kafka_outq_len(c->rk) == 0;

	c->nbatch = 0;
	if (n && c->txn && (c->batch_round != c->txn->round || c->txn->fatal)) {
		/* Written before its transaction aborted: the flush fails,
		 * and its items, written again, no longer count. */
		struct gen *g = &c->gen[c->cur];
		g->out -= (size_t)n;
		if (!g->err)
			g->err = RD_KAFKA_RESP_ERR__PURGE_QUEUE;
		return;
	}
	for (int tries = 0; n > 0; tries++) {
		int sent = rd_kafka_produce_batch(
		    c->rkt, RD_KAFKA_PARTITION_UA,
		    RD_KAFKA_MSG_F_COPY |
			(c->partition_by ? RD_KAFKA_MSG_F_PARTITION : 0),
		    m, n);
		int left = 0;
		count_produced(c, &c->gen[c->cur], sent, alone && !tries);
		rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
		if (sent == n)
			return;
		/* Keep the ones refused for a full queue, in order. */
		for (int i = 0; i < n; i++) {
			if (!m[i].err)
				continue;
			if (m[i].err == RD_KAFKA_RESP_ERR__QUEUE_FULL &&
			    tries < 100)
				m[left++] = m[i];
			else
				err = m[i].err;
		}
		if (err) {
			struct gen *g = &c->gen[c->cur];
			g->out -= (size_t)(n - sent - left);
			if (!g->err)
				g->err = err;
			if (c->txn && err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
				c->txn->failed(c->txn, err);
		}
		n = left;
		if (n) {
			rd_kafka_poll(c->rk, 10); /* let deliveries make room */
			answer_if_done(c);
		}
	}
}

/* The writes of one turn of the loop go to librdkafka together, before the
 * loop sleeps: a batch, but no later than one message at a time would. */
static void produce_soon(struct hop_loop *loop, void *arg)
{
	produce_batch(arg);
}

/* Hands one message to librdkafka at once, waiting for room when its
 * queue is full: for a result near message.max.bytes, which librdkafka may
 * refuse, so that the refusal is this item's alone. */
static enum hop_sink_status produce_one(struct ksink *c, struct hop_item *it,
					const char *v, size_t vlen,
					const char *k, size_t klen)
{
	int32_t part = partition_of(c, it, v, vlen);

	for (int tries = 0;; tries++) {
		rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
		bool alone = rd_kafka_outq_len(c->rk) == 0;
		if (rd_kafka_produce(c->rkt, part, RD_KAFKA_MSG_F_COPY,
				     (void *)v, vlen, k, klen,
				     &c->gen[c->cur]) == -1)
			e = rd_kafka_last_error();
		if (!e) {
			c->gen[c->cur].n++;
			c->gen[c->cur].out++;
			count_produced(c, &c->gen[c->cur], 1, alone);
			return HOP_SINK_OK;
		}
		if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || tries == 100) {
			snprintf(c->sink->error, sizeof(c->sink->error),
				 "kafka sink: %s: %s", c->topic,
				 rd_kafka_err2str(e));
			/* librdkafka refused it here, alone: the
			 * transaction never had it. Anything else
			 * (a transaction in error) is the
			 * transaction's. */
			if (c->txn && !refused_here(e) &&
			    e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
				c->txn->failed(c->txn, e);
			/* A message too large never goes: that item fails,
			 * while anything else may pass and is held. */
			return refused_here(e) ? HOP_SINK_FAIL : HOP_SINK_RETRY;
		}
		rd_kafka_poll(c->rk, 10); /* let deliveries make room */
		answer_if_done(c);
	}
}

static enum hop_sink_status ksink_write(struct hop_sink *sink,
					struct hop_item *it)
{
	struct ksink *c = sink->ctx;
	const char *v = it->result ? it->result : "null";
	size_t vlen = strlen(v);
	const char *k = !c->keyed		 ? NULL
			: c->own_keys && it->key ? it->key
						 : it->id;
	size_t klen = k ? strlen(k) : 0;

	/* Dead items stay in their source's dead-letter place. */
	if (!it->ok)
		return HOP_SINK_OK;
	/* Done again from the start, in a transaction that counts. */
	if (c->txn && c->txn->stale(c->txn, it->root ? it->root : it))
		return HOP_SINK_OK;
	if (vlen + klen + 1024 > c->max_bytes) {
		produce_batch(c); /* keep the order of writes */
		return produce_one(c, it, v, vlen, k, klen);
	}
	if (c->nbatch == 0 && c->txn)
		c->batch_round = c->txn->round;
	c->batch[c->nbatch++] = (rd_kafka_message_t){
	    .partition = partition_of(c, it, v, vlen),
	    .payload = (void *)v,
	    .len = vlen,
	    .key = (void *)k,
	    .key_len = klen,
	    ._private = &c->gen[c->cur],
	};
	c->gen[c->cur].n++;
	c->gen[c->cur].out++;
	if (c->nbatch == 1)
		hop_loop_soon(sink->loop, produce_soon, c);
	else if (c->nbatch == BATCH)
		produce_batch(c);
	return HOP_SINK_OK;
}

static enum hop_sink_status ksink_flush(struct hop_sink *sink)
{
	struct ksink *c = sink->ctx;
	struct gen *g = &c->gen[c->cur];

	produce_batch(c);
	rd_kafka_poll(c->rk, 0);
	if (!c->pending && g->out == 0)
		return take_status(c, g);
	hop_log(HOP_DEBUG, "kafka sink: waiting for %zu deliveries", g->out);
	if (!c->pending)
		c->oldest = c->cur;
	c->pending++;
	c->cur = (c->cur + 1) % NGEN; /* free: NGEN > max_flushes */
	answer_if_done(c);
	return HOP_SINK_PENDING;
}

static void ksink_wait(struct hop_sink *sink)
{
	struct ksink *c = sink->ctx;
	struct gen *g = &c->gen[c->oldest];
	for (int i = 0; i < 3000 && c->pending && g->out; i++)
		rd_kafka_poll(c->rk, 10);
	if (c->pending && g->out) {
		/* The run ends without the broker's word: not stored. */
		g->err = RD_KAFKA_RESP_ERR__TIMED_OUT;
		g->out = 0;
	}
	answer(sink->loop, c);
}

static void ksink_close(struct hop_sink *sink)
{
	struct ksink *c = sink->ctx;
	if (!c->rk)
		return;
	if (c->txn) {
		/* The source committed or aborted what was written. */
		rd_kafka_topic_destroy(c->rkt);
		hop_kafka_txn_put(c->txn);
		c->txn = NULL;
		free(c->brokers);
		free(c->topic);
		return;
	}
	rd_kafka_flush(c->rk, 10000);
	rd_kafka_topic_destroy(c->rkt);
	hop_loop_unwatch(sink->loop, c->pipe[0]);
	for (int i = 0; i < 2; i++)
		close(c->pipe[i]);
	rd_kafka_destroy(c->rk);
	free(c->brokers);
	free(c->topic);
}

static const char *const ksink_edge_fixed[] = {"key=id", NULL};
static const char *const ksink_edge_defaults[] = {"create=true", NULL};

const struct hop_sink_ops hop_sink_kafka = {
    .name = "kafka",
    .forms = "kafka://HOST:PORT/TOPIC",
    .summary = "each result a message on a topic, acknowledged upstream "
	       "once the broker stored it",
    .options = ksink_options,
    .ctx_size = sizeof(struct ksink),
    .check = ksink_check,
    .open = ksink_open,
    .write = ksink_write,
    .flush = ksink_flush,
    .wait = ksink_wait,
    .max_flushes = 8,
    .close = ksink_close,
    .edge_fixed = ksink_edge_fixed,
    .edge_defaults = ksink_edge_defaults,
};
