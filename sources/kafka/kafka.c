/* kafka.c - the kafka source: the messages of a topic, consumed in a group.
 *
 * A consumer in a group with the cooperative-sticky assignor. Offsets are
 * stored by hand: per partition the source keeps the offsets it handed out,
 * in order, and stores the offset just after the contiguous run of finished
 * ones, so a commit never passes a message that is still in flight or
 * waiting for a retry, though messages of one partition run in parallel and
 * finish out of order. librdkafka commits what is stored every second and
 * when the consumer closes.
 *
 * The consumer's queue signals a pipe that the loop watches; a timer polls
 * too, so that rebalances are served while every worker is busy. Messages
 * are copied out of librdkafka as they come into a read-ahead of `buffer`
 * bytes (kbuf.h says why), and become items only when handed out, at most
 * `max_inflight` of them unfinished at a time. When the read-ahead is full
 * the assigned partitions are paused (a poll then serves rebalances and
 * gives no messages) until a quarter of it is free again: librdkafka takes
 * about half a second to fetch after a resume, which the rest covers.
 *
 * A dead item (attempts used up, a permanent failure, a value that is not
 * JSON) goes to the dead-letter topic with its original key, value and
 * headers, plus headers that say why, how many attempts and where it came
 * from; its offset counts as finished, and the item as dead, only once the
 * broker has it. The topic must exist at start (or be created when asked):
 * a dead letter that cannot be written leaves its message unacknowledged,
 * and the partition's committed offset stops before it.
 *
 * Exactly once (exactly_once=true): nothing is stored or auto-committed.
 * A transactional producer (ktxn.c) takes the dead letters and, through
 * the source's transaction op, the results of every kafka sink, and each
 * transaction commits them with the input offsets of the items it covers.
 * The source hands out items in batches: at most `batch` of them, or what
 * came in `commit_interval`, then no more until every one handed out is
 * finished (acknowledged or dead), whereupon the transaction commits with
 * the offset after each partition's finished prefix and the next batch
 * starts. So a committed transaction never holds part of an item's outputs,
 * nor outputs of an item whose offset it does not cover. An abortable error
 * aborts the transaction and seeks each partition back to the offset of
 * the last commit: the items of the batch are taken again, and those still
 * in flight no longer count (their epoch is old): sinks write nothing of
 * theirs. A revocation closes the batch and commits it before the
 * partitions are given up (or aborts it when revoke_grace ends first). A
 * fenced producer (another coordinator with the same transactional.id, or
 * this one's group generation gone stale) is fatal: the run stops, naming
 * the id.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "coordinator/buf.h"
#include "coordinator/jsonscan.h"
#include "coordinator/log.h"
#include "coordinator/loop.h"
#include "sources/kafka/kafka.h"
#include "sources/kafka/kbuf.h"
#include "sources/kafka/kdead.h"
#include "sources/source.h"

/* The offsets handed out of one partition, in order, and which finished. */
struct part {
	bool assigned;
	bool revoking; /* revoked; its items in flight get revoke_grace */
	bool eof;
	uint32_t epoch;	   /* bumped at each assignment and unassignment */
	size_t out;	   /* items of this epoch handed out, not finished */
	int64_t next;	   /* offset after the last message taken, or -1 */
	int64_t store;	   /* offset for the next store_offsets, or -1 */
	int64_t committed; /* as librdkafka's statistics last said, or -1 */
	/* Exactly once: where the last commit left the partition (where an
	 * abort seeks back to), or -1 before its first message; and the
	 * offset after its finished prefix, for the next commit, or -1. */
	int64_t base, done;
	int64_t *off;
	bool *fin;
	size_t head, len, cap; /* a ring; cap is a power of two */
};

/* An item's hold on its message: where it came from and, for the
 * dead-letter topic, the message as it came. */
struct kref {
	struct hop_kafka_dr dr; /* its dead letter's delivery report */
	struct hop_source *src;
	struct krec rec; /* followed by its bytes */
};

struct ksrc {
	/* options */
	char *url;
	char *group;
	char *dead_topic;
	bool dead_create;
	int64_t dead_partitions, dead_replication;
	bool create;
	int64_t partitions, replication;
	int64_t max_inflight;
	int64_t buffer;
	char *id_from;
	char *payload_as;
	bool headers;
	double revoke_grace;
	char *config;
	bool exactly_once;
	char *txn_id;
	int64_t txn_batch;
	double txn_interval;

	struct hop_kafka_dead dead; /* hopper dead's clients */
	struct hop_source *src;
	char *brokers, *topic;
	size_t topic_len;
	rd_kafka_t *rk, *dlq;
	rd_kafka_queue_t *cq;
	int cpipe[2], dpipe[2];
	uint64_t timer;
	struct part *parts;
	int32_t nparts;
	struct kbuf ahead; /* read ahead, not handed out */
	size_t out;	   /* items handed out, not finished */
	size_t dead_pending;
	bool paused;
	bool service_soon; /* a service() waits for the next loop turn */
	bool topic_missing;
	bool closing;
	bool id_is_key, payload_is_string; /* the options, parsed */
	bool store_pending;		   /* offsets wait for store_offsets */
	/* A revocation waiting for its partitions' items in flight. */
	rd_kafka_topic_partition_list_t *revoking;
	uint64_t grace_timer;
	int64_t revoke_ms; /* when it began */
	int64_t logged_depth;

	/* Exactly once: the transaction (NULL without), the items handed out
	 * in it, when its batch began, and whether the batch is closed (no
	 * more items until it commits). */
	struct hop_kafka_txn *txn;
	int64_t txn_items;
	uint64_t txn_timer;
	bool txn_closed;
	bool txn_failed; /* a message of it failed: abort soon */
	bool txn_fatal;	 /* src->error says why; fetch reports it */
	bool txn_reported;
	uint64_t commits, aborts;
};

static const struct hop_option kafka_options[] = {
    {"url", HOP_OPT_STR, NULL, offsetof(struct ksrc, url),
     "kafka://host:port[,host:port...]/topic"},
    {"group", HOP_OPT_STR, "hopper", offsetof(struct ksrc, group),
     "the consumer group"},
    {"dead_topic", HOP_OPT_STR, NULL, offsetof(struct ksrc, dead_topic),
     "where dead messages go (default: the topic's name + .dead); it must "
     "exist at start"},
    {"dead_create", HOP_OPT_BOOL, "false", offsetof(struct ksrc, dead_create),
     "create the dead-letter topic at start when it does not exist"},
    {"dead_partitions", HOP_OPT_INT, "-1",
     offsetof(struct ksrc, dead_partitions),
     "partitions of a dead-letter topic created here (-1: the broker's "
     "num.partitions)"},
    {"dead_replication", HOP_OPT_INT, "-1",
     offsetof(struct ksrc, dead_replication),
     "replicas of a dead-letter topic created here (-1: the broker's "
     "default.replication.factor)"},
    {"create", HOP_OPT_BOOL, "false", offsetof(struct ksrc, create),
     "create the topic at start when it does not exist (on for a stage's "
     "via)"},
    {"partitions", HOP_OPT_INT, "-1", offsetof(struct ksrc, partitions),
     "partitions of a topic created here (-1: the broker's num.partitions)"},
    {"replication", HOP_OPT_INT, "-1", offsetof(struct ksrc, replication),
     "replicas of a topic created here (-1: the broker's "
     "default.replication.factor)"},
    {"max_inflight", HOP_OPT_INT, "100000", offsetof(struct ksrc, max_inflight),
     "messages handed out and not finished; more wait read ahead", .min = "1"},
    {"buffer", HOP_OPT_SIZE, "64M", offsetof(struct ksrc, buffer),
     "bytes of messages read ahead of the workers (keep a second's worth)",
     .min = "1"},
    {"id", HOP_OPT_STR, "offset", offsetof(struct ksrc, id_from),
     "an item's id: offset (topic/partition/offset) or key"},
    {"payload", HOP_OPT_STR, "json", offsetof(struct ksrc, payload_as),
     "the value as json, or as a string"},
    {"headers", HOP_OPT_BOOL, "false", offsetof(struct ksrc, headers),
     "hand the worker {value, key, headers, topic, partition, offset}"},
    {"revoke_grace", HOP_OPT_SECONDS, "5s", offsetof(struct ksrc, revoke_grace),
     "how long revoked partitions' items in flight may finish and have "
     "their offsets committed before the partitions are given up"},
    {"config", HOP_OPT_STR, NULL, offsetof(struct ksrc, config),
     "librdkafka settings, key=value,key=value, for the consumer and the "
     "producer (each gets those that apply to it)"},
    {"exactly_once", HOP_OPT_BOOL, "false", offsetof(struct ksrc, exactly_once),
     "commit the kafka sinks' results, the dead letters and the input "
     "offsets in one transaction per batch; readers of the outputs must "
     "use isolation.level=read_committed"},
    {"transactional_id", HOP_OPT_STR, NULL, offsetof(struct ksrc, txn_id),
     "exactly once: the producer's transactional.id, one per coordinator "
     "(default: hopper-GROUP-TOPIC-HOSTNAME; give each coordinator on one "
     "host its own)"},
    {"batch", HOP_OPT_INT, "100000", offsetof(struct ksrc, txn_batch),
     "exactly once: the most items one transaction covers", .min = "1"},
    {"commit_interval", HOP_OPT_SECONDS, "100ms",
     offsetof(struct ksrc, txn_interval),
     "exactly once: the longest a batch takes items before it commits",
     .min = "1ms"},
    {NULL},
};

int hop_kafka_parse_url(const char *url, char **brokers, char **topic)
{
	const char *p = strncmp(url, "kafka://", 8) == 0 ? url + 8 : NULL;
	const char *slash = p ? strchr(p, '/') : NULL;
	if (!slash || slash == p || !slash[1] || strchr(slash + 1, '/'))
		return -EINVAL;
	*brokers = strndup(p, (size_t)(slash - p));
	*topic = strdup(slash + 1);
	return *brokers && *topic ? 0 : -ENOMEM;
}

/* Where librdkafka's setting key applies, as its table of settings says
 * (the C/P column of CONFIGURATION.md, which is that table): 'C' to a
 * consumer only, 'P' to a producer only, '*' to both; 0 when the table
 * does not have it. */
static char setting_scope(const char *table, const char *key)
{
	for (const char *l = table; l && *l;) {
		char name[128], scope[4];
		if (sscanf(l, "%127s | %3s |", name, scope) == 2 &&
		    strcmp(name, key) == 0 && !scope[1])
			return scope[0];
		l = strchr(l, '\n');
		l = l ? l + 1 : NULL;
	}
	return 0;
}

/* Applies settings, all but those whose scope is skip (0: none). */
static int conf_set(rd_kafka_conf_t *conf, const char *settings, char skip,
		    char *err, size_t errlen)
{
	char *copy = strdup(settings ? settings : ""), *table = NULL;
	size_t table_len = 0;
	int rc = 0;

	if (!copy)
		return -ENOMEM;
	if (skip && *copy) {
		FILE *f = open_memstream(&table, &table_len);
		if (!f) {
			free(copy);
			return -ENOMEM;
		}
		rd_kafka_conf_properties_show(f);
		fclose(f);
	}
	/* A comma starts the next setting only when a key= follows it:
	 * "debug=fetch,cgrp,linger.ms=5" is two settings. */
	for (char *kv = copy; *kv && !rc;) {
		char *eq = strchr(kv, '=');
		if (!eq || memchr(kv, ',', (size_t)(eq - kv))) {
			snprintf(err, errlen, "'%s': expected key=value", kv);
			rc = -EINVAL;
			break;
		}
		*eq = '\0';
		char *val = eq + 1, *end = val, *next;
		for (;;) {
			char *comma = strchr(end, ',');
			char *eq2 = comma ? strchr(comma, '=') : NULL;
			if (!comma ||
			    (eq2 && !memchr(comma + 1, ',',
					    (size_t)(eq2 - comma - 1)))) {
				end = comma ? comma : end + strlen(end);
				break;
			}
			end = comma + 1;
		}
		next = *end ? end + 1 : end;
		*end = '\0';
		if ((!skip || setting_scope(table, kv) != skip) &&
		    rd_kafka_conf_set(conf, kv, val, err, errlen) !=
			RD_KAFKA_CONF_OK)
			rc = -EINVAL;
		kv = next;
	}
	free(table);
	free(copy);
	return rc;
}

int hop_kafka_conf_set(rd_kafka_conf_t *conf, const char *settings, char *err,
		       size_t errlen)
{
	return conf_set(conf, settings, 0, err, errlen);
}

int hop_kafka_conf_set_for(rd_kafka_conf_t *conf, rd_kafka_type_t type,
			   const char *settings, char *err, size_t errlen)
{
	return conf_set(conf, settings, type == RD_KAFKA_PRODUCER ? 'C' : 'P',
			err, errlen);
}

void hop_kafka_log(const rd_kafka_t *rk, int level, const char *fac,
		   const char *buf)
{
	/* syslog levels: 0..3 errors, 4 warnings, 5..6 information. */
	enum hop_log_level l = level <= 3   ? HOP_ERROR
			       : level == 4 ? HOP_WARN
			       : level <= 6 ? HOP_INFO
					    : HOP_DEBUG;
	hop_log(l, "librdkafka %s: %s", fac, buf);
}

int hop_kafka_check_topic(rd_kafka_t *rk, const char *brokers,
			  const char *topic, char *err, size_t errlen)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, 10000);
	int rc = e ? -ECONNREFUSED : 0;

	rd_kafka_topic_destroy(t);
	if (e)
		snprintf(err, errlen, "%s: %s", brokers, rd_kafka_err2str(e));
	else if (md->topic_cnt != 1 || md->topics[0].err)
		snprintf(err, errlen, "%s: %s", topic,
			 md->topic_cnt != 1
			     ? "no such topic"
			     : rd_kafka_err2str(md->topics[0].err));
	if (!e && (md->topic_cnt != 1 || md->topics[0].err))
		rc = -ENOENT;
	if (md)
		rd_kafka_metadata_destroy(md);
	return rc;
}

uint32_t hop_kafka_murmur2(const void *data, size_t len)
{
	const uint32_t m = 0x5bd1e995;
	const unsigned char *p = data;
	uint32_t h = 0x9747b28cu ^ (uint32_t)len;
	size_t i = 0;

	for (; i + 4 <= len; i += 4) {
		uint32_t k = (uint32_t)p[i] | (uint32_t)p[i + 1] << 8 |
			     (uint32_t)p[i + 2] << 16 |
			     (uint32_t)p[i + 3] << 24;
		k *= m;
		k ^= k >> 24;
		k *= m;
		h *= m;
		h ^= k;
	}
	switch (len - i) {
	case 3:
		h ^= (uint32_t)p[i + 2] << 16;
		/* fall through */
	case 2:
		h ^= (uint32_t)p[i + 1] << 8;
		/* fall through */
	case 1:
		h ^= p[i];
		h *= m;
	}
	h ^= h >> 13;
	h *= m;
	h ^= h >> 15;
	return h;
}

#define CREATE_MS 30000
int hop_kafka_create_topic(rd_kafka_t *rk, const char *brokers,
			   const char *topic, int64_t partitions,
			   int64_t replication, char *err, size_t errlen)
{
	rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(
	    topic, (int)partitions, (int)replication, err, errlen);
	if (!nt)
		return -EINVAL;
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_AdminOptions_t *o =
	    rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
	/* The answer comes once the topic is made, not merely asked for. */
	rd_kafka_AdminOptions_set_request_timeout(o, CREATE_MS, NULL, 0);
	rd_kafka_AdminOptions_set_operation_timeout(o, CREATE_MS, NULL, 0);
	rd_kafka_CreateTopics(rk, &nt, 1, o, q);
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, CREATE_MS + 5000);
	int rc = -EIO;
	size_t n = 0;
	const rd_kafka_topic_result_t **res =
	    ev && !rd_kafka_event_error(ev)
		? rd_kafka_CreateTopics_result_topics(
		      rd_kafka_event_CreateTopics_result(ev), &n)
		: NULL;
	rd_kafka_resp_err_t e = n == 1 ? rd_kafka_topic_result_error(res[0])
				       : RD_KAFKA_RESP_ERR__FAIL;
	if (!ev)
		snprintf(err, errlen, "no answer from %s", brokers);
	else if (rd_kafka_event_error(ev))
		snprintf(err, errlen, "%s", rd_kafka_event_error_string(ev));
	else if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
		snprintf(err, errlen, "%s",
			 n == 1 && rd_kafka_topic_result_error_string(res[0])
			     ? rd_kafka_topic_result_error_string(res[0])
			     : rd_kafka_err2str(e));
	else
		rc = 0;
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_AdminOptions_destroy(o);
	rd_kafka_queue_destroy(q);
	rd_kafka_NewTopic_destroy(nt);
	return rc;
}

int hop_kafka_ensure_topic(rd_kafka_t *rk, const char *brokers,
			   const char *topic, bool create, int64_t partitions,
			   int64_t replication, const char *who, char *err,
			   size_t errlen)
{
	int rc = hop_kafka_check_topic(rk, brokers, topic, err, errlen);
	if (rc != -ENOENT || !create)
		return rc;
	rc = hop_kafka_create_topic(rk, brokers, topic, partitions, replication,
				    err, errlen);
	if (!rc)
		hop_log(HOP_INFO, "%s: created the topic %s", who, topic);
	return rc;
}

/* ---- offsets ---- */

static struct part *part_of(struct ksrc *c, int32_t p)
{
	if (p < 0)
		return NULL;
	if (p >= c->nparts) {
		struct part *n =
		    realloc(c->parts, (size_t)(p + 1) * sizeof(*n));
		if (!n)
			return NULL;
		memset(n + c->nparts, 0,
		       (size_t)(p + 1 - c->nparts) * sizeof(*n));
		for (int32_t i = c->nparts; i <= p; i++)
			n[i].next = n[i].committed = n[i].store = n[i].base =
			    n[i].done = -1;
		c->parts = n;
		c->nparts = p + 1;
	}
	return &c->parts[p];
}

static int remember(struct part *p, int64_t off)
{
	if (p->len == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		int64_t *o = malloc(cap * sizeof(*o));
		bool *f = malloc(cap * sizeof(*f));
		if (!o || !f) {
			free(o);
			free(f);
			return -ENOMEM;
		}
		for (size_t i = 0; i < p->len; i++) {
			o[i] = p->off[(p->head + i) & (p->cap - 1)];
			f[i] = p->fin[(p->head + i) & (p->cap - 1)];
		}
		free(p->off);
		free(p->fin);
		p->off = o;
		p->fin = f;
		p->head = 0;
		p->cap = cap;
	}
	p->off[(p->head + p->len) & (p->cap - 1)] = off;
	p->fin[(p->head + p->len) & (p->cap - 1)] = false;
	p->len++;
	return 0;
}

/* Hands librdkafka the offsets that finish_offset set aside: one call for
 * a whole batch of acknowledgements rather than one per message. */
static void store_offsets(struct ksrc *c)
{
	rd_kafka_topic_partition_list_t *l;

	if (!c->store_pending)
		return;
	c->store_pending = false;
	l = rd_kafka_topic_partition_list_new(c->nparts);
	for (int32_t i = 0; i < c->nparts; i++) {
		struct part *p = &c->parts[i];
		if (p->store >= 0 && (p->assigned || p->revoking))
			rd_kafka_topic_partition_list_add(l, c->topic, i)
			    ->offset = p->store;
		p->store = -1;
	}
	if (l->cnt && rd_kafka_offsets_store(c->rk, l))
		for (int i = 0; i < l->cnt; i++)
			if (l->elems[i].err)
				hop_log(HOP_WARN,
					"kafka source: storing offset "
					"%s/%d@%lld: %s",
					c->topic, (int)l->elems[i].partition,
					(long long)l->elems[i].offset,
					rd_kafka_err2str(l->elems[i].err));
	rd_kafka_topic_partition_list_destroy(l);
}

static void store_soon(struct hop_loop *loop, void *arg)
{
	store_offsets(arg);
}

/* Marks off finished and sets aside the offset after the finished prefix
 * for store_offsets. */
static void finish_offset(struct ksrc *c, int32_t part, int64_t off)
{
	struct part *p = part < c->nparts ? &c->parts[part] : NULL;
	size_t lo = 0, hi = p ? p->len : 0;

	while (lo < hi) { /* offsets in the ring are increasing */
		size_t mid = (lo + hi) / 2;
		if (p->off[(p->head + mid) & (p->cap - 1)] < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!p || lo == p->len || p->off[(p->head + lo) & (p->cap - 1)] != off)
		return;
	p->fin[(p->head + lo) & (p->cap - 1)] = true;
	int64_t next = -1;
	while (p->len && p->fin[p->head]) {
		next = p->off[p->head] + 1;
		p->head = (p->head + 1) & (p->cap - 1);
		p->len--;
	}
	if (next < 0)
		return;
	if (c->txn) { /* committed with the transaction that covers it */
		p->done = next;
		return;
	}
	p->store = next;
	if (!c->store_pending) {
		c->store_pending = true;
		hop_loop_soon(c->src->loop, store_soon, c);
	}
}

/* ---- backpressure ---- */

/* Pauses or resumes the partitions we consume: the assigned ones, not
 * those revoked and waiting for their grace to end. */
static void set_paused(struct ksrc *c, bool pause)
{
	if (c->paused == pause)
		return;
	rd_kafka_topic_partition_list_t *l =
	    rd_kafka_topic_partition_list_new(c->nparts > 0 ? c->nparts : 1);
	for (int32_t i = 0; i < c->nparts; i++)
		if (c->parts[i].assigned)
			rd_kafka_topic_partition_list_add(l, c->topic, i);
	hop_log(HOP_DEBUG, "kafka source: %s: %zu out, %zu read ahead",
		pause ? "pausing" : "resuming", c->out, c->ahead.count);
	if (pause)
		rd_kafka_pause_partitions(c->rk, l);
	else
		rd_kafka_resume_partitions(c->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	c->paused = pause;
}

static bool full(const struct ksrc *c)
{
	return c->ahead.bytes >= (size_t)c->buffer;
}

/* ---- exactly once ----
 *
 * A batch: items handed out in the open transaction, up to `batch` of
 * them or for `commit_interval`, or until the partitions' ends; then it
 * is closed and commits once every item handed out in it has finished.
 * p->out counts the current epoch's items of a partition, p->len those
 * handed out and not finished: when the former is 0 and the latter is not,
 * an item was handed back or its dead letter failed, and the transaction
 * must abort rather than commit results whose offsets it cannot cover. */

static void txn_soon(struct hop_loop *loop, void *arg);

/* Items of the current epochs handed out and not settled. */
static size_t txn_out(const struct ksrc *c)
{
	size_t n = 0;
	for (int32_t i = 0; i < c->nparts; i++)
		if (c->parts[i].assigned || c->parts[i].revoking)
			n += c->parts[i].out;
	return n;
}

/* Whether an item handed out in the transaction did not finish. */
static bool txn_unfinished(const struct ksrc *c)
{
	for (int32_t i = 0; i < c->nparts; i++)
		if ((c->parts[i].assigned || c->parts[i].revoking) &&
		    c->parts[i].len)
			return true;
	return false;
}

/* Whether the source has partitions and has read each to its end. */
static bool all_at_eof(const struct ksrc *c)
{
	bool any = false;
	for (int32_t i = 0; i < c->nparts; i++) {
		if (!c->parts[i].assigned)
			continue;
		if (!c->parts[i].eof)
			return false;
		any = true;
	}
	return any;
}

/* Whether every assigned partition is at its end with nothing read
 * ahead: the batch need not wait for more. */
static bool at_end(const struct ksrc *c)
{
	return !c->ahead.count && all_at_eof(c);
}

/* A new batch may begin: items are handed out again. */
static void txn_reopen(struct ksrc *c)
{
	hop_loop_cancel(c->src->loop, c->txn_timer);
	c->txn_timer = 0;
	c->txn_items = 0;
	c->txn_closed = false;
	hop_source_wake(c->src);
}

/* The producer cannot go on: the run stops, naming why. */
static void txn_fatal(struct ksrc *c, const char *why)
{
	c->txn_fatal = true;
	snprintf(c->src->error, sizeof(c->src->error),
		 "kafka source: exactly once: %s (transactional.id %s: another "
		 "coordinator started with the same id, this one lost its "
		 "partitions in a rebalance, or a batch outlasted the "
		 "producer's transaction.timeout.ms); stopping: what was not "
		 "committed is done again by the partitions' owners",
		 why, c->txn->id);
	hop_log(HOP_ERROR, "%s", c->src->error);
	hop_source_wake(c->src);
}

/* Seeks every partition back to where the last commit left it; the items
 * handed out since no longer count. */
static void rewind_parts(struct ksrc *c)
{
	rd_kafka_topic_partition_list_t *l =
	    rd_kafka_topic_partition_list_new(c->nparts > 0 ? c->nparts : 1);
	for (int32_t i = 0; i < c->nparts; i++) {
		struct part *p = &c->parts[i];
		if (!p->assigned && !p->revoking)
			continue;
		p->epoch++;
		p->out = 0;
		p->len = p->head = 0;
		p->done = -1;
		p->eof = false;
		if (p->assigned && p->base >= 0) {
			rd_kafka_topic_partition_list_add(l, c->topic, i)
			    ->offset = p->base;
			p->next = p->base;
		}
	}
	rd_kafka_error_t *e =
	    l->cnt ? rd_kafka_seek_partitions(c->rk, l, 0) : NULL;
	if (e) {
		hop_log(HOP_ERROR, "kafka source: seeking back: %s",
			rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
	}
	rd_kafka_topic_partition_list_destroy(l);
}

/* Aborts the transaction: its items are taken again from the last
 * commit. */
static void txn_abort(struct ksrc *c, const char *why)
{
	char err[400];
	c->txn_failed = false;
	if (c->txn_fatal)
		return;
	if (hop_kafka_txn_abort(c->txn, err, sizeof(err))) {
		txn_fatal(c, err);
		return;
	}
	c->aborts++;
	rewind_parts(c);
	hop_log(HOP_WARN,
		"kafka source: transaction aborted (%s): its %lld item(s) are "
		"done again from the last commit",
		why, (long long)c->txn_items);
	txn_reopen(c);
}

/* Commits the closed batch with each partition's finished offset; aborts
 * it instead when an item of it did not finish. */
static void txn_commit(struct ksrc *c)
{
	char err[400];
	if (txn_unfinished(c)) {
		txn_abort(c, "an item of the batch did not finish");
		return;
	}
	rd_kafka_topic_partition_list_t *l =
	    rd_kafka_topic_partition_list_new(c->nparts > 0 ? c->nparts : 1);
	for (int32_t i = 0; i < c->nparts; i++) {
		struct part *p = &c->parts[i];
		if ((p->assigned || p->revoking) && p->done >= 0 &&
		    p->done != p->base)
			rd_kafka_topic_partition_list_add(l, c->topic, i)
			    ->offset = p->done;
	}
	int rc = 0;
	if (l->cnt || c->txn_items)
		rc = hop_kafka_txn_commit(c->txn, l, c->rk, err, sizeof(err));
	if (rc == 0) {
		for (int i = 0; i < l->cnt; i++)
			c->parts[l->elems[i].partition].base =
			    l->elems[i].offset;
		c->commits += l->cnt || c->txn_items;
		hop_log(HOP_DEBUG,
			"kafka source: committed %lld item(s) over %d "
			"partition(s)",
			(long long)c->txn_items, l->cnt);
		txn_reopen(c);
	} else if (rc == -EAGAIN) {
		c->aborts++;
		rewind_parts(c);
		hop_log(HOP_WARN,
			"kafka source: %s: the batch's %lld item(s) are done "
			"again from the last commit",
			err, (long long)c->txn_items);
		txn_reopen(c);
	} else {
		txn_fatal(c, err);
	}
	rd_kafka_topic_partition_list_destroy(l);
}

/* Ends the batch now, for a revocation or the close: commits it when
 * nothing of it is in flight, else aborts it. */
static void txn_end(struct ksrc *c)
{
	if (!c->txn || c->txn_fatal)
		return;
	if (c->txn_failed)
		txn_abort(c, "a message of it failed");
	else if (txn_out(c))
		txn_abort(c, "its items in flight did not finish in time");
	else
		txn_commit(c);
}

/* Moves the transaction on: aborts it when a message failed, closes the
 * batch at the partitions' ends, commits a closed batch once its items
 * finished. A revocation does its own commit (end_revoke). */
static void txn_step(struct ksrc *c)
{
	if (!c->txn || c->txn_fatal || c->revoking)
		return;
	if (c->txn_failed) {
		txn_abort(c, "a message of it failed");
		return;
	}
	if (!c->txn_closed && c->txn_items && at_end(c))
		c->txn_closed = true;
	if (c->txn_closed && txn_out(c) == 0)
		txn_commit(c);
}

static void txn_soon(struct hop_loop *loop, void *arg)
{
	txn_step(arg);
}

static void txn_due(struct hop_loop *loop, void *arg)
{
	struct ksrc *c = arg;
	c->txn_timer = 0;
	c->txn_closed = true;
	txn_step(c);
}

/* Counts n items handed out in the batch: the first starts its interval,
 * the batch's last closes it. */
static void txn_handed(struct ksrc *c, size_t n)
{
	if (!n)
		return;
	if (!c->txn_items && !c->txn_timer)
		c->txn_timer = hop_loop_after(
		    c->src->loop, (int64_t)(c->txn_interval * 1000 + 0.5),
		    txn_due, c);
	c->txn_items += (int64_t)n;
	if (c->txn_items >= c->txn_batch)
		c->txn_closed = true;
}

static bool txn_stale(struct hop_kafka_txn *t, const struct hop_item *root)
{
	struct ksrc *c = t->owner;
	const struct kref *k = root->src_data;
	if (!c || c->txn_fatal || !k || k->src != c->src ||
	    k->rec.partition >= c->nparts)
		return true;
	const struct part *p = &c->parts[k->rec.partition];
	return k->rec.epoch != p->epoch || !(p->assigned || p->revoking);
}

static void txn_failed(struct hop_kafka_txn *t, rd_kafka_resp_err_t err)
{
	struct ksrc *c = t->owner;
	if (!c || c->txn_failed || c->txn_fatal)
		return;
	hop_log(HOP_WARN,
		"kafka source: a message of the transaction failed: "
		"%s; aborting it",
		rd_kafka_err2str(err));
	c->txn_failed = true;
	hop_loop_soon(c->src->loop, txn_soon, c);
}

/* ---- rebalances ----
 *
 * A revocation does not give the partitions up at once. Their messages
 * not yet handed out are dropped (the new owner gets them from the
 * committed offset), no more are taken, and the items in flight get
 * revoke_grace to finish: what finishes has its offset stored, and the
 * stored offsets are committed before rd_kafka_incremental_unassign lets
 * the new owner start. librdkafka waits for that call (the group's
 * rebalance does not complete without it) while the loop goes on polling.
 * Items that finish after the partitions are gone store nothing (their
 * epoch is old): the new owner repeats them. */

static size_t revoking_out(const struct ksrc *c)
{
	size_t n = 0;
	for (int32_t i = 0; i < c->nparts; i++)
		if (c->parts[i].revoking)
			n += c->parts[i].out;
	return n;
}

/* Whether a pending revocation may end: its partitions' items in flight
 * finished, or with exactly once every item of the batch did. */
static bool revoke_ready(const struct ksrc *c)
{
	return (c->txn ? txn_out(c) : revoking_out(c)) == 0;
}

/* Forgets what was out of partitions we no longer own: their offsets are
 * not ours to store. */
static void forget_parts(struct ksrc *c,
			 const rd_kafka_topic_partition_list_t *parts)
{
	for (int i = 0; i < parts->cnt; i++) {
		struct part *p = part_of(c, parts->elems[i].partition);
		if (!p)
			continue;
		p->assigned = p->revoking = p->eof = false;
		p->epoch++;
		p->out = 0;
		p->len = p->head = 0;
		p->store = p->base = p->done = -1;
	}
}

static void commit_stored(struct ksrc *c)
{
	rd_kafka_resp_err_t e = rd_kafka_commit(c->rk, NULL, 0);
	if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
		hop_log(HOP_WARN, "kafka source: committing on revoke: %s",
			rd_kafka_err2str(e));
}

static void unassign(struct ksrc *c,
		     const rd_kafka_topic_partition_list_t *parts)
{
	rd_kafka_error_t *e = rd_kafka_incremental_unassign(c->rk, parts);
	if (e) {
		hop_log(HOP_ERROR, "kafka source: giving up partitions: %s",
			rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
	}
}

/* Ends the pending revocation: commits what finished and gives the
 * partitions up. */
static void end_revoke(struct ksrc *c)
{
	rd_kafka_topic_partition_list_t *l = c->revoking;
	if (!l)
		return;
	c->revoking = NULL;
	hop_loop_cancel(c->src->loop, c->grace_timer);
	c->grace_timer = 0;
	size_t left = revoking_out(c);
	if (c->txn) {
		left = txn_out(c);
		txn_end(c); /* commits, or aborts what is unfinished */
	} else {
		store_offsets(c);
		commit_stored(c);
	}
	forget_parts(c, l);
	unassign(c, l);
	hop_log(HOP_INFO,
		"kafka source: gave up %d partition(s) of %s after %.1f s: "
		"%zu item(s) unfinished%s",
		l->cnt, c->topic, (double)(hop_now_ms() - c->revoke_ms) / 1000,
		left, left ? ", the new owner gets them again" : "");
	rd_kafka_topic_partition_list_destroy(l);
}

static void grace_over(struct hop_loop *loop, void *arg)
{
	struct ksrc *c = arg;
	c->grace_timer = 0;
	end_revoke(c);
}

static void revoke_when_done(struct hop_loop *loop, void *arg)
{
	struct ksrc *c = arg;
	if (c->revoking && revoke_ready(c))
		end_revoke(c);
}

/* Starts giving parts up: at once when nothing of theirs is in flight,
 * the partitions are lost (someone else owns them already), or we are
 * closing; else after their items in flight finished or the grace ended. */
static void begin_revoke(struct ksrc *c,
			 const rd_kafka_topic_partition_list_t *parts,
			 bool lost)
{
	for (int i = 0; i < parts->cnt; i++) {
		struct part *p = part_of(c, parts->elems[i].partition);
		if (p) {
			p->assigned = false;
			p->revoking = true;
		}
	}
	if (!c->revoking)
		c->revoke_ms = hop_now_ms();
	if (c->revoking) {
		for (int i = 0; i < parts->cnt; i++)
			rd_kafka_topic_partition_list_add(
			    c->revoking, parts->elems[i].topic,
			    parts->elems[i].partition);
	} else {
		c->revoking = rd_kafka_topic_partition_list_copy(parts);
	}
	size_t out = c->txn ? txn_out(c) : revoking_out(c);
	if (c->txn)
		c->txn_closed = true; /* the batch ends with the revocation */
	if (lost) {
		hop_log(HOP_WARN,
			"kafka source: lost %d partition(s) of %s: %zu item(s) "
			"in flight finish without storing offsets",
			parts->cnt, c->topic, out);
		rd_kafka_topic_partition_list_t *l = c->revoking;
		c->revoking = NULL;
		hop_loop_cancel(c->src->loop, c->grace_timer);
		c->grace_timer = 0;
		if (c->txn) /* its offsets are not ours to commit now */
			txn_abort(c, "partitions lost");
		forget_parts(c, l);
		unassign(c, l);
		rd_kafka_topic_partition_list_destroy(l);
		return;
	}
	if (out == 0 || c->closing || c->revoke_grace <= 0) {
		end_revoke(c);
		return;
	}
	hop_log(HOP_INFO,
		"kafka source: revoking %d partition(s) of %s: %zu item(s) in "
		"flight get up to %.1f s",
		parts->cnt, c->topic, out, c->revoke_grace);
	rd_kafka_pause_partitions(c->rk, c->revoking);
	if (!c->grace_timer)
		c->grace_timer = hop_loop_after(
		    c->src->loop, (int64_t)(c->revoke_grace * 1000), grace_over,
		    c);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct ksrc *c = opaque;

	if (err != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		begin_revoke(c, parts, rd_kafka_assignment_lost(rk));
		return;
	}
	end_revoke(c); /* cannot be pending here; be sure */
	for (int i = 0; i < parts->cnt; i++) {
		struct part *p = part_of(c, parts->elems[i].partition);
		if (!p)
			continue;
		p->assigned = true;
		p->eof = false;
		p->epoch++;
		p->out = 0;
		p->len = p->head = 0;
		p->next = p->committed = p->store = p->base = p->done = -1;
	}
	hop_log(HOP_INFO, "kafka source: assigned %d partition(s) of %s",
		parts->cnt, c->topic);
	rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
	if (e) {
		hop_log(HOP_ERROR, "kafka source: %s",
			rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
	}
	if (c->paused) {
		c->paused = false; /* new partitions start resumed */
		set_paused(c, true);
	}
}

/* Its message is done with: its offset may be committed, unless its
 * partition was revoked since it was handed out. */
static void finish_current(struct ksrc *c, const struct kref *k)
{
	if (k->rec.epoch == c->parts[k->rec.partition].epoch)
		finish_offset(c, k->rec.partition, k->rec.offset);
}

/* An item handed out is finished, dead or handed back: one less out. */
static void settle(struct ksrc *c, const struct kref *k)
{
	struct part *p = &c->parts[k->rec.partition];
	if (k->rec.epoch == p->epoch && p->out > 0)
		p->out--;
	c->out--;
	if (c->revoking && revoke_ready(c))
		hop_loop_soon(c->src->loop, revoke_when_done, c);
	else if (c->txn && c->txn_closed && txn_out(c) == 0)
		hop_loop_soon(c->src->loop, txn_soon, c);
}

/* ---- messages to items ---- */

/* The payload handed to the worker, its length in *plen; NULL with the
 * reason in why when the value cannot be one. *borrowed says whether it is
 * the record's own value (the usual case) rather than malloc'd. */
static char *payload_of(struct ksrc *c, const struct krec *r, size_t *plen,
			bool *borrowed, char *why, size_t n)
{
	const char *v = krec_value(r);
	size_t len = v ? r->value_len : 0;
	json_t *j = NULL;

	if (c->payload_is_string) {
		j = v ? json_stringn(v, len) : json_null();
		if (!j) {
			snprintf(why, n, "value is not UTF-8 text");
			return NULL;
		}
	} else if (!v) {
		j = json_null();
	} else if (!hop_json_valid(v, len)) {
		json_error_t jerr;
		json_t *t = json_loadb(v, len, JSON_DECODE_ANY, &jerr);
		json_decref(t);
		snprintf(why, n, "value is not JSON: %s (column %d)",
			 t ? "invalid text" : jerr.text, t ? 0 : jerr.column);
		return NULL;
	} else if (!c->headers && !memchr(v, '\r', len) &&
		   !memchr(v, '\n', len)) {
		*plen = len;
		*borrowed = true;
		return (char *)v; /* the fast path: as it stands */
	} else {
		j = json_loadb(v, len, JSON_DECODE_ANY, NULL);
	}
	if (c->headers) {
		json_t *o = json_object(), *h = json_object();
		const char *key = krec_key(r), *name, *val;
		size_t pos = 0, nlen, vlen;
		json_object_set_new(o, "value", j);
		json_object_set_new(o, "key",
				    key ? json_stringn(key, r->key_len)
					: json_null());
		while (krec_next_header(r, &pos, &name, &nlen, &val, &vlen))
			json_object_setn_new(h, name, nlen,
					     val ? json_stringn(val, vlen)
						 : json_null());
		json_object_set_new(o, "headers", h);
		json_object_set_new(o, "topic", json_string(c->topic));
		json_object_set_new(o, "partition", json_integer(r->partition));
		json_object_set_new(o, "offset", json_integer(r->offset));
		j = o;
	}
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(j);
	if (!s)
		snprintf(why, n, "value cannot be passed on as JSON text");
	else
		*plen = strlen(s);
	return s;
}

/* Writes v in decimal at out; returns the digits written. */
static size_t put_decimal(char *out, uint64_t v)
{
	char tmp[20];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

/* Writes the item's id at id (ID_MAX bytes): the key when asked and there
 * is one, else topic/partition/offset. Returns its length. */
#define ID_MAX 600 /* a key under 512, or a topic's name (at most 249) */
static size_t id_of(const struct ksrc *c, const struct krec *r, char *id)
{
	const char *key = krec_key(r);
	if (c->id_is_key && key && r->key_len && r->key_len < 512) {
		memcpy(id, key, r->key_len);
		return r->key_len;
	}
	char *p = id;
	memcpy(p, c->topic, c->topic_len);
	p += c->topic_len;
	*p++ = '/';
	p += put_decimal(p, (uint64_t)r->partition);
	*p++ = '/';
	p += put_decimal(p, (uint64_t)r->offset);
	return (size_t)(p - id);
}

/* Makes the item of a record read ahead, in one allocation with its kref
 * (a copy of the record). */
static struct hop_item *item_of(struct ksrc *c, const struct krec *r)
{
	char why[400], id[ID_MAX];
	size_t len = 0, size = krec_size(r);
	bool borrowed = false;

	why[0] = '\0';
	char *payload = payload_of(c, r, &len, &borrowed, why, sizeof(why));
	size_t id_len = id_of(c, r, id);
	struct hop_item *it = hop_item_new_block(
	    id, id_len, payload ? payload : "null", payload ? len : 4,
	    offsetof(struct kref, rec) + size);
	if (payload && !borrowed)
		free(payload);
	if (!it)
		return NULL;
	struct kref *k = it->src_data;
	k->src = c->src;
	memcpy(&k->rec, r, size);
	if (!payload) {
		it->invalid = true;
		hop_item_fail(it, false, "%s/%d/%lld: %s", c->topic,
			      (int)r->partition, (long long)r->offset, why);
	}
	return it;
}

/* Copies a message into the read-ahead. Returns 0 or -ENOMEM. */
static int keep(struct ksrc *c, const rd_kafka_message_t *m, uint32_t epoch)
{
	rd_kafka_headers_t *hdrs = NULL;
	const char *name;
	const void *val;
	size_t vlen, nhdrs = 0, hlen = 0;

	if (rd_kafka_message_headers(m, &hdrs) == 0)
		for (;
		     !rd_kafka_header_get_all(hdrs, nhdrs, &name, &val, &vlen);
		     nhdrs++)
			hlen += 2 * sizeof(uint32_t) + strlen(name) +
				(val ? vlen : 0);
	size_t klen = m->key ? m->key_len : 0;
	size_t plen = m->payload ? m->len : 0;
	struct krec *r = kbuf_push(&c->ahead, sizeof(*r) + klen + plen + hlen);
	if (!r)
		return -ENOMEM;
	*r = (struct krec){
	    .offset = m->offset,
	    .partition = m->partition,
	    .epoch = epoch,
	    .key_len = m->key ? (uint32_t)klen : UINT32_MAX,
	    .value_len = m->payload ? (uint32_t)plen : UINT32_MAX,
	    .hdr_len = (uint32_t)hlen,
	    .nhdrs = (uint32_t)nhdrs,
	};
	char *p = (char *)(r + 1);
	if (klen)
		memcpy(p, m->key, klen);
	if (plen)
		memcpy(p + klen, m->payload, plen);
	p += klen + plen;
	for (size_t i = 0; i < nhdrs; i++) {
		rd_kafka_header_get_all(hdrs, i, &name, &val, &vlen);
		uint32_t lens[2] = {(uint32_t)strlen(name),
				    val ? (uint32_t)vlen : UINT32_MAX};
		memcpy(p, lens, sizeof(lens));
		p += sizeof(lens);
		memcpy(p, name, lens[0]);
		p += lens[0];
		if (val && vlen)
			memcpy(p, val, vlen);
		p += val ? vlen : 0;
	}
	return 0;
}

/* Fetching restarts at a message that could not be kept: nothing after it
 * may be taken before it is. */
static void refetch_from(struct ksrc *c, const rd_kafka_message_t *m)
{
	rd_kafka_topic_partition_list_t *l =
	    rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, c->topic, m->partition)->offset =
	    m->offset;
	rd_kafka_error_t *e = rd_kafka_seek_partitions(c->rk, l, 0);
	if (e)
		rd_kafka_error_destroy(e);
	rd_kafka_topic_partition_list_destroy(l);
	hop_log(HOP_WARN,
		"kafka source: out of memory reading ahead; %s/%d is read "
		"again from offset %lld",
		c->topic, (int)m->partition, (long long)m->offset);
}

static void service(struct ksrc *c);

static void service_now(struct hop_loop *loop, void *arg)
{
	struct ksrc *c = arg;
	c->service_soon = false;
	if (!c->rk)
		return;
	service(c);
	hop_source_wake(c->src);
}

/* Polls the consumer: serves rebalances, and copies messages into the
 * read-ahead while it has room. Once it is full the partitions are paused,
 * and polling goes on for the events. A few thousand messages at a time:
 * a fetch can bring hundreds of thousands, and the workers should not wait
 * for them all to be copied. */
static void service(struct ksrc *c)
{
	rd_kafka_message_t *m;

	if (c->paused && c->ahead.bytes <= (size_t)c->buffer / 4 * 3)
		set_paused(c, false);
	for (int n = 0;; n++) {
		if (full(c))
			set_paused(c, true);
		if (n == 4096) {
			/* librdkafka's queue says nothing more until it has
			 * been emptied: come back for the rest. */
			if (!c->service_soon) {
				c->service_soon = true;
				hop_loop_soon(c->src->loop, service_now, c);
			}
			return;
		}
		if (!(m = rd_kafka_consumer_poll(c->rk, 0)))
			break;
		struct part *p = part_of(c, m->partition);
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			if (p) {
				p->eof = true;
				p->next = m->offset;
			}
			rd_kafka_message_destroy(m);
			continue;
		}
		if (m->err) {
			if (m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
			    m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
				if (!c->topic_missing)
					hop_log(HOP_ERROR,
						"kafka source: topic %s does "
						"not exist (yet): %s",
						c->topic,
						rd_kafka_message_errstr(m));
				c->topic_missing = true;
			} else {
				hop_log(HOP_WARN, "kafka source: %s/%d: %s",
					c->topic, (int)m->partition,
					rd_kafka_message_errstr(m));
			}
			rd_kafka_message_destroy(m);
			continue;
		}
		c->topic_missing = false;
		if (!p || !p->assigned) {
			rd_kafka_message_destroy(m);
			continue;
		}
		if (keep(c, m, p->epoch)) {
			refetch_from(c, m);
			rd_kafka_message_destroy(m);
			return;
		}
		p->eof = false;
		p->next = m->offset + 1;
		if (p->base < 0) /* where the partition's commit stands */
			p->base = m->offset;
		rd_kafka_message_destroy(m);
	}
}

/* ---- depth ---- */

/* Messages of the assigned partitions not handed out yet: from the high
 * watermark (librdkafka keeps it from its fetches) down to the offset
 * after the last message taken (or, before one is, the committed offset
 * that the statistics report, or the low watermark), plus those waiting
 * here. Kafka's own lag, high watermark minus committed, also counts the
 * items in flight and those finished since the last commit. */
static int64_t depth_of(struct ksrc *c)
{
	int64_t n = (int64_t)c->ahead.count;
	for (int32_t i = 0; i < c->nparts; i++) {
		const struct part *p = &c->parts[i];
		int64_t lo, hi;
		if (!p->assigned || rd_kafka_get_watermark_offsets(
					c->rk, c->topic, i, &lo, &hi))
			continue;
		int64_t from = p->next >= 0	   ? p->next
			       : p->committed >= 0 ? p->committed
						   : lo;
		if (from >= 0 && hi > from)
			n += hi - from;
	}
	return n;
}

/* librdkafka's statistics, once a second: only the committed offsets. */
static int on_stats(rd_kafka_t *rk, char *text, size_t len, void *opaque)
{
	struct ksrc *c = opaque;
	json_t *root = json_loadb(text, len, 0, NULL);
	json_t *ps = json_object_get(
	    json_object_get(json_object_get(root, "topics"), c->topic),
	    "partitions");
	const char *key;
	json_t *v;

	json_object_foreach(ps, key, v)
	{
		char *end;
		long i = strtol(key, &end, 10);
		json_t *off = json_object_get(v, "committed_offset");
		if (!*end && i >= 0 && i < c->nparts && json_is_integer(off))
			c->parts[i].committed = json_integer_value(off);
	}
	json_decref(root);
	return 0; /* librdkafka frees text */
}

/* Logs the depth when it changed by a tenth or more, or reached 0. */
static void log_depth(struct ksrc *c)
{
	int64_t d = depth_of(c), last = c->logged_depth;
	if (d == last ||
	    (d && last > 0 && (d > last ? d - last : last - d) * 10 < last))
		return;
	hop_log(HOP_DEBUG, "kafka source: depth %lld", (long long)d);
	c->logged_depth = d;
}

static void on_consumer(struct hop_loop *loop, int fd, uint32_t ev, void *arg)
{
	struct hop_source *src = arg;
	char buf[64];
	while (read(fd, buf, sizeof(buf)) > 0) {
	}
	service(src->ctx);
	hop_source_wake(src);
}

static void on_tick(struct hop_loop *loop, void *arg)
{
	struct hop_source *src = arg;
	struct ksrc *c = src->ctx;
	service(c);
	rd_kafka_poll(c->dlq, 0);
	txn_step(c);
	log_depth(c);
	c->timer = hop_loop_after(loop, 200, on_tick, src);
	hop_source_wake(src);
}

/* ---- the dead-letter topic ---- */

/* The dead-letter topic must be there before a message may die: a dead
 * letter that cannot be written would stop its partition's commits. Checks
 * it, or creates it when asked. Returns 0, or -errno with src->error set. */
static int check_dead_topic(struct ksrc *c)
{
	char err[400];
	struct hop_source *src = c->src;
	int rc = hop_kafka_check_topic(c->dlq, c->brokers, c->dead_topic, err,
				       sizeof(err));
	if (rc == -ENOENT && c->dead_create) {
		rc = hop_kafka_create_topic(
		    c->dlq, c->brokers, c->dead_topic, c->dead_partitions,
		    c->dead_replication, err, sizeof(err));
		if (rc) {
			snprintf(src->error, sizeof(src->error),
				 "kafka source: cannot create the dead-letter "
				 "topic %s: %s",
				 c->dead_topic, err);
			return rc;
		}
		hop_log(HOP_INFO,
			"kafka source: created the dead-letter topic %s",
			c->dead_topic);
		return 0;
	}
	if (rc == -ENOENT)
		snprintf(
		    src->error, sizeof(src->error),
		    "kafka source: dead-letter topic %.300s; create it, name "
		    "another with -S dead_topic=TOPIC, or have hopper "
		    "create it with -S dead_create=true",
		    err);
	else if (rc)
		snprintf(src->error, sizeof(src->error),
			 "kafka source: dead-letter topic %s: %s",
			 c->dead_topic, err);
	return rc;
}

static void on_dead_delivered(struct hop_kafka_dr *d,
			      const rd_kafka_message_t *m)
{
	struct kref *k = (struct kref *)d;
	struct ksrc *c = k->src->ctx;
	char id[ID_MAX + 1];

	c->dead_pending--;
	id[id_of(c, &k->rec, id)] = '\0';
	if (m->err && c->txn) {
		/* Its transaction aborts, and the item is done again. */
		txn_failed(c->txn, m->err);
		hop_log(HOP_INFO,
			"kafka source: the dead letter of %s was in a "
			"transaction that aborts: it is done again",
			id);
	} else if (m->err) {
		/* Its offset is never stored: the partition's commits stop
		 * before it, and the next run (or the partition's next
		 * owner) takes it again. */
		snprintf(k->src->error, sizeof(k->src->error),
			 "kafka source: dead-letter topic %s: %s: message "
			 "%s/%d/%lld stays unacknowledged",
			 rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err),
			 c->topic, (int)k->rec.partition,
			 (long long)k->rec.offset);
	} else {
		finish_current(c, k);
	}
	hop_source_dead_done(k->src, id, !m->err || c->txn);
	settle(c, k);
	free(k);
}

static void on_dlq_event(struct hop_loop *loop, int fd, uint32_t ev, void *arg)
{
	struct ksrc *c = arg;
	char buf[64];
	while (read(fd, buf, sizeof(buf)) > 0) {
	}
	rd_kafka_poll(c->dlq, 0);
}

static int watch_queue(struct hop_source *src, rd_kafka_queue_t *q, int fds[2],
		       hop_fd_cb cb, void *arg)
{
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK))
		return -errno;
	rd_kafka_queue_io_event_enable(q, fds[1], "1", 1);
	return hop_loop_watch(src->loop, fds[0], EPOLLIN, cb, arg);
}

/* The configuration of the source's consumer or producer: hopper's
 * settings, then the user's that apply to it (one config serves both).
 * NULL with librdkafka's words in err. */
static rd_kafka_conf_t *client_conf(struct ksrc *c, rd_kafka_type_t type,
				    char *err, size_t errlen)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	bool consumer = type == RD_KAFKA_CONSUMER;
	bool txn_consumer = consumer && c->exactly_once;
	const char *set[][2] = {
	    {"bootstrap.servers", c->brokers},
	    {"client.id", "hopper"},
	    {consumer ? "group.id" : "enable.idempotence",
	     consumer ? c->group : "true"},
	    {consumer ? "enable.auto.offset.store" : "acks",
	     consumer ? "false" : "all"},
	    {consumer ? "partition.assignment.strategy" : "linger.ms",
	     consumer ? "cooperative-sticky" : "5"},
	    {consumer ? "auto.offset.reset" : NULL, "earliest"},
	    {consumer ? "enable.partition.eof" : NULL, "true"},
	    {consumer ? "auto.commit.interval.ms" : NULL, "200"},
	    /* librdkafka stops fetching when its queue holds either (over
	     * all partitions) and looks again only a second later. The
	     * source empties that queue into its read-ahead as it fills, so
	     * these bound it once the read-ahead is full; they must hold more
	     * than one fetch's answer, or each answer costs a second. */
	    {consumer ? "queued.max.messages.kbytes" : NULL, "16384"},
	    {consumer ? "queued.min.messages" : NULL, "200000"},
	    {consumer ? "fetch.max.bytes" : NULL, "1048576"},
	    {consumer ? "statistics.interval.ms" : NULL, "1000"},
	    /* Dead letters keyed as the Java client would place them. */
	    {consumer ? NULL : "partitioner", "murmur2_random"},
	    /* Exactly once: offsets go with the transactions only, and what
	     * an aborted transaction upstream wrote is never read. */
	    {txn_consumer ? "enable.auto.commit" : NULL, "false"},
	    {txn_consumer ? "isolation.level" : NULL, "read_committed"},
	    /* A batch must commit within it, slowest item included; and a
	     * coordinator killed with a transaction open under an id that
	     * no one takes again holds read_committed readers back this
	     * long at most. */
	    {!consumer && c->exactly_once ? "transaction.timeout.ms" : NULL,
	     "60000"},
	};
	for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++)
		if (set[i][0] &&
		    rd_kafka_conf_set(conf, set[i][0], set[i][1], err,
				      errlen) != RD_KAFKA_CONF_OK)
			goto fail;
	if (hop_kafka_conf_set_for(conf, type, c->config, err, errlen))
		goto fail;
	rd_kafka_conf_set_opaque(conf, c);
	rd_kafka_conf_set_log_cb(conf, hop_kafka_log);
	if (consumer) {
		rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
		rd_kafka_conf_set_stats_cb(conf, on_stats);
	} else
		rd_kafka_conf_set_dr_msg_cb(conf, hop_kafka_delivered);
	return conf;
fail:
	rd_kafka_conf_destroy(conf);
	return NULL;
}

static rd_kafka_t *make_client(struct ksrc *c, rd_kafka_type_t type, char *err,
			       size_t errlen)
{
	rd_kafka_conf_t *conf = client_conf(c, type, err, errlen);
	rd_kafka_t *rk = conf ? rd_kafka_new(type, conf, err, errlen) : NULL;
	if (conf && !rk)
		rd_kafka_conf_destroy(conf);
	return rk;
}

/* Makes the source's transaction (exactly_once): its producer, under the
 * configured transactional.id or hopper-GROUP-TOPIC-HOSTNAME. Returns 0,
 * or -errno with src->error set. */
static int txn_make(struct ksrc *c)
{
	char err[400], host[256] = "localhost", *id = NULL;
	int rc;

	if (!c->brokers &&
	    (rc = hop_kafka_parse_url(c->url, &c->brokers, &c->topic)))
		return rc;
	if (gethostname(host, sizeof(host) - 1))
		strcpy(host, "localhost");
	if (c->txn_id)
		id = strdup(c->txn_id);
	else if (asprintf(&id, "hopper-%s-%s-%s", c->group, c->topic, host) < 0)
		id = NULL;
	if (!id)
		return -ENOMEM;
	rd_kafka_conf_t *conf =
	    client_conf(c, RD_KAFKA_PRODUCER, err, sizeof(err));
	c->txn = conf ? hop_kafka_txn_new(conf, id, err, sizeof(err)) : NULL;
	if (!c->txn)
		snprintf(c->src->error, sizeof(c->src->error),
			 "kafka source: exactly once: transactional "
			 "producer %s: %s",
			 id, err);
	free(id);
	if (!c->txn)
		return -EIO;
	c->txn->owner = c;
	c->txn->stale = txn_stale;
	c->txn->failed = txn_failed;
	return 0;
}

static void teardown(struct hop_source *src);

/* The URL's form, the choices and the librdkafka settings, checked on a
 * configuration that is thrown away: no client, no broker. */
static int kafka_check(struct hop_source *src, const char **key)
{
	struct ksrc *c = src->ctx;
	char *brokers = NULL, *topic = NULL, err[400];
	int rc = -EINVAL;

	if (!c->url || hop_kafka_parse_url(c->url, &brokers, &topic)) {
		snprintf(src->error, sizeof(src->error),
			 "kafka source: '%s': expected "
			 "kafka://host:port/topic",
			 c->url ? c->url : "");
		*key = "url";
	} else if (strcmp(c->id_from, "offset") && strcmp(c->id_from, "key")) {
		snprintf(src->error, sizeof(src->error),
			 "kafka source: id '%s': expected offset or key",
			 c->id_from);
		*key = "id";
	} else if (strcmp(c->payload_as, "json") &&
		   strcmp(c->payload_as, "string")) {
		snprintf(src->error, sizeof(src->error),
			 "kafka source: payload '%s': expected json or string",
			 c->payload_as);
		*key = "payload";
	} else {
		rd_kafka_conf_t *conf = rd_kafka_conf_new();
		rc = hop_kafka_conf_set(conf, c->config, err, sizeof(err));
		rd_kafka_conf_destroy(conf);
		if (rc) {
			snprintf(src->error, sizeof(src->error),
				 "kafka source: %s", err);
			*key = "config";
		}
	}
	free(brokers);
	free(topic);
	return rc;
}

static int kafka_open(struct hop_source *src)
{
	struct ksrc *c = src->ctx;
	char err[400];
	const char *key;
	int rc;

	c->src = src;
	c->logged_depth = -1;
	c->cpipe[0] = c->cpipe[1] = c->dpipe[0] = c->dpipe[1] = -1;
	if ((rc = kafka_check(src, &key)))
		return rc;
	if (!c->brokers && /* the transaction op may have come first */
	    (rc = hop_kafka_parse_url(c->url, &c->brokers, &c->topic)))
		return rc;
	rc = -EINVAL;
	c->id_is_key = strcmp(c->id_from, "key") == 0;
	c->payload_is_string = strcmp(c->payload_as, "string") == 0;
	c->topic_len = strlen(c->topic);
	if (!c->dead_topic && asprintf(&c->dead_topic, "%s.dead", c->topic) < 0)
		return -ENOMEM;
	if (c->exactly_once && !c->txn && (rc = txn_make(c)))
		goto fail;
	rc = -EINVAL;
	if (c->txn) {
		c->dlq = c->txn->rk; /* dead letters in the transaction too */
		if (!c->txn->joined)
			hop_log(
			    HOP_WARN,
			    "kafka source: exactly_once: no kafka sink "
			    "writes in the transaction; only the input "
			    "offsets and the dead letters are exactly once");
	}
	if (!(c->rk = make_client(c, RD_KAFKA_CONSUMER, err, sizeof(err))) ||
	    (!c->dlq &&
	     !(c->dlq = make_client(c, RD_KAFKA_PRODUCER, err, sizeof(err))))) {
		snprintf(src->error, sizeof(src->error), "kafka source: %s",
			 err);
		goto fail;
	}
	/* Is anyone there? A broker that cannot be reached, or a topic that
	 * does not exist, is an error now rather than a silent wait. */
	rc = hop_kafka_ensure_topic(c->dlq, c->brokers, c->topic, c->create,
				    c->partitions, c->replication,
				    "kafka source", err, sizeof(err));
	if (rc) {
		snprintf(src->error, sizeof(src->error), "kafka source: %s",
			 err);
		goto fail;
	}
	if ((rc = check_dead_topic(c)))
		goto fail;
	rd_kafka_poll_set_consumer(c->rk);
	c->cq = rd_kafka_queue_get_consumer(c->rk);
	rd_kafka_queue_t *dq = rd_kafka_queue_get_main(c->dlq);
	rc = watch_queue(src, c->cq, c->cpipe, on_consumer, src);
	if (!rc)
		rc = watch_queue(src, dq, c->dpipe, on_dlq_event, c);
	rd_kafka_queue_destroy(dq);
	if (rc) {
		snprintf(src->error, sizeof(src->error), "kafka source: %s",
			 strerror(-rc));
		goto fail;
	}
	rd_kafka_topic_partition_list_t *sub =
	    rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(sub, c->topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, sub);
	rd_kafka_topic_partition_list_destroy(sub);
	if (e) {
		snprintf(src->error, sizeof(src->error),
			 "kafka source: subscribing to %s: %s", c->topic,
			 rd_kafka_err2str(e));
		rc = -EIO;
		goto fail;
	}
	c->timer = hop_loop_after(src->loop, 100, on_tick, src);
	return 0;

fail:
	/* A failed open leaves nothing behind: close is not called. */
	teardown(src);
	return rc;
}

static int kafka_fetch(struct hop_source *src, struct hop_queue *out,
		       size_t max)
{
	struct ksrc *c = src->ctx;
	struct krec *r;
	size_t asked = max;

	if (c->txn) {
		if (c->txn_fatal && !c->txn_reported) {
			c->txn_reported = true;
			return -EPERM;
		}
		if (c->txn_closed || c->txn_failed || c->txn_fatal)
			max = 0; /* the batch commits first */
		else if ((int64_t)max > c->txn_batch - c->txn_items)
			max = (size_t)(c->txn_batch - c->txn_items);
		asked = max;
	}
	if (!c->ahead.count) /* else on_consumer has taken what came */
		service(c);
	while (max > 0 && c->out < (size_t)c->max_inflight &&
	       (r = kbuf_peek(&c->ahead))) {
		struct part *p = &c->parts[r->partition];
		if (!p->assigned || r->epoch != p->epoch) {
			/* Revoked since: the new owner gets it. */
			kbuf_pop(&c->ahead);
			continue;
		}
		if (remember(p, r->offset))
			break; /* out of memory: try again later */
		struct hop_item *it = item_of(c, r);
		if (!it) {
			p->len--;
			break;
		}
		kbuf_pop(&c->ahead);
		hop_queue_push(out, it);
		p->out++;
		c->out++;
		max--;
	}
	if (c->txn)
		txn_handed(c, asked - max);
	/* Room was made: take what waits in librdkafka's queue, which says
	 * nothing more until it has been emptied. */
	service(c);
	return 0;
}

static int kafka_ack(struct hop_source *src, struct hop_item *it)
{
	struct ksrc *c = src->ctx;
	struct kref *k = it->src_data;

	finish_current(c, k);
	settle(c, k);
	return 0;
}

static int kafka_dead(struct hop_source *src, struct hop_item *it,
		      const char *record)
{
	struct ksrc *c = src->ctx;
	/* The item goes when this returns; its kref lives on, copied, until
	 * the delivery report. */
	size_t ksize = offsetof(struct kref, rec) +
		       krec_size(&((struct kref *)it->src_data)->rec);
	struct kref *k = malloc(ksize);
	if (!k) {
		settle(c, it->src_data);
		snprintf(src->error, sizeof(src->error),
			 "kafka source: dead-letter topic %s: out of memory: "
			 "message %s stays unacknowledged",
			 c->dead_topic, it->id);
		return -ENOMEM;
	}
	memcpy(k, it->src_data, ksize);
	k->dr.fn = on_dead_delivered;
	if (c->txn && txn_stale(c->txn, it)) {
		/* Its batch aborted: it is done again, and dies again. */
		settle(c, k);
		free(k);
		return 0;
	}
	const struct krec *r = &k->rec;
	rd_kafka_headers_t *hdrs = rd_kafka_headers_new(r->nhdrs + 6);
	const char *name, *val;
	size_t pos = 0, nlen, vlen;
	char num[32];

	while (krec_next_header(r, &pos, &name, &nlen, &val, &vlen))
		rd_kafka_header_add(hdrs, name, (ssize_t)nlen, val,
				    (ssize_t)vlen);
	const char *error = it->error ? it->error : "failed";
	rd_kafka_header_add(hdrs, "hopper-error", -1, error, -1);
	snprintf(num, sizeof(num), "%d", it->attempt);
	rd_kafka_header_add(hdrs, "hopper-attempts", -1, num, -1);
	rd_kafka_header_add(hdrs, "hopper-topic", -1, c->topic, -1);
	snprintf(num, sizeof(num), "%d", (int)r->partition);
	rd_kafka_header_add(hdrs, "hopper-partition", -1, num, -1);
	snprintf(num, sizeof(num), "%lld", (long long)r->offset);
	rd_kafka_header_add(hdrs, "hopper-offset", -1, num, -1);
	rd_kafka_header_add(hdrs, "hopper-record", -1, record, -1);
	rd_kafka_resp_err_t e = rd_kafka_producev(
	    c->dlq, RD_KAFKA_V_TOPIC(c->dead_topic),
	    RD_KAFKA_V_KEY(krec_key(r), krec_key(r) ? r->key_len : 0),
	    RD_KAFKA_V_VALUE((void *)krec_value(r),
			     krec_value(r) ? r->value_len : 0),
	    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
	    RD_KAFKA_V_OPAQUE(k), RD_KAFKA_V_END);
	if (e) {
		rd_kafka_headers_destroy(hdrs);
		snprintf(src->error, sizeof(src->error),
			 "kafka source: dead-letter topic %s: %s: message "
			 "%s stays unacknowledged",
			 c->dead_topic, rd_kafka_err2str(e), it->id);
		settle(c, k);
		free(k);
		return -EIO;
	}
	c->dead_pending++;
	return HOP_SOURCE_PENDING;
}

static int kafka_release(struct hop_source *src, struct hop_item *it)
{
	struct ksrc *c = src->ctx;
	struct kref *k = it->src_data;
	/* Not finished: its offset is never stored, the next run gets it. */
	settle(c, k);
	return 0;
}

static int64_t kafka_depth(struct hop_source *src)
{
	return depth_of(src->ctx);
}

static bool kafka_exhausted(struct hop_source *src)
{
	struct ksrc *c = src->ctx;

	if (src->watch || c->ahead.count || c->dead_pending || c->revoking ||
	    (c->txn && c->txn_items && !c->txn_fatal))
		return false; /* a batch not committed yet */
	return all_at_eof(c);
}

/* Lets go of the clients, pipes and bookkeeping: what open made. */
static void teardown(struct hop_source *src)
{
	struct ksrc *c = src->ctx;

	c->closing = true; /* revocations from here on are not delayed */
	end_revoke(c);
	if (c->rk)
		store_offsets(c);
	if (c->cq)
		rd_kafka_queue_destroy(c->cq);
	if (c->rk) {
		rd_kafka_consumer_close(c->rk); /* commits what is stored */
		rd_kafka_destroy(c->rk);
	}
	if (c->txn) {
		/* The producer outlives us while a sink holds it: its queue
		 * must not signal a pipe that is closed below. */
		rd_kafka_queue_t *q = rd_kafka_queue_get_main(c->txn->rk);
		rd_kafka_queue_io_event_enable(q, -1, NULL, 0);
		rd_kafka_queue_destroy(q);
		hop_loop_cancel(src->loop, c->txn_timer);
		c->txn_timer = 0;
		if (c->commits || c->aborts)
			hop_log(HOP_INFO,
				"kafka source: %llu transaction(s) committed, "
				"%llu aborted",
				(unsigned long long)c->commits,
				(unsigned long long)c->aborts);
		c->txn->owner = NULL;
		hop_kafka_txn_put(c->txn);
		c->txn = NULL;
	} else if (c->dlq) {
		rd_kafka_destroy(c->dlq);
	}
	int *fds[] = {c->cpipe, c->dpipe};
	for (int i = 0; i < 2; i++) {
		if (fds[i][0] >= 0)
			hop_loop_unwatch(src->loop, fds[i][0]);
		for (int j = 0; j < 2; j++)
			if (fds[i][j] >= 0)
				close(fds[i][j]);
	}
	for (int32_t i = 0; i < c->nparts; i++) {
		free(c->parts[i].off);
		free(c->parts[i].fin);
	}
	free(c->parts);
	free(c->brokers);
	free(c->topic);
	c->cq = NULL;
	c->rk = c->dlq = NULL;
	c->parts = NULL;
	c->brokers = c->topic = NULL;
}

static void kafka_close(struct hop_source *src)
{
	struct ksrc *c = src->ctx;

	hop_loop_cancel(src->loop, c->timer);
	kbuf_free(&c->ahead);
	if (c->dlq) {
		/* The dead letters on their way, with their offsets. */
		rd_kafka_flush(c->dlq, 10000);
		rd_kafka_poll(c->dlq, 0);
	}
	txn_end(c); /* the last batch, unless it did not finish */
	teardown(src);
}

static void *kafka_transaction(struct hop_source *src, const char *kind)
{
	struct ksrc *c = src->ctx;

	c->src = src;
	if (strcmp(kind, "kafka")) {
		snprintf(src->error, sizeof(src->error),
			 "kafka source: its transactions are Kafka's, not %s",
			 kind);
		return NULL;
	}
	if (!c->exactly_once) {
		snprintf(src->error, sizeof(src->error),
			 "kafka source: exactly_once is off (-S "
			 "exactly_once=true)");
		return NULL;
	}
	if (!c->txn && txn_make(c))
		return NULL;
	c->txn->refs++;
	c->txn->joined++;
	return c->txn;
}

/* A sink may have joined the source's transaction before the source was
 * opened, and the run may end before it is: what close would have let go
 * of goes here. After close, nothing is left. */
static void kafka_forget(struct hop_source *src)
{
	struct ksrc *c = src->ctx;
	if (c->txn) {
		c->txn->owner = NULL;
		hop_kafka_txn_put(c->txn);
		c->txn = NULL;
	}
	free(c->brokers);
	free(c->topic);
	c->brokers = c->topic = NULL;
}

/* ---- dead letters, for hopper dead (kdead.h) ---- */

static int kafka_dead_open(struct hop_source *src)
{
	struct ksrc *c = src->ctx;
	return hop_kafka_dead_open(&c->dead, c->url, c->dead_topic, c->group,
				   c->config, src->error, sizeof(src->error));
}

static int kafka_dead_list(struct hop_source *src, hop_dead_each_fn each,
			   void *arg)
{
	struct ksrc *c = src->ctx;
	return hop_kafka_dead_list(&c->dead, each, arg);
}

static int kafka_dead_retry(struct hop_source *src, const char *id, FILE *out)
{
	struct ksrc *c = src->ctx;
	return hop_kafka_dead_retry(&c->dead, id, src->error,
				    sizeof(src->error));
}

static int kafka_dead_discard(struct hop_source *src, const char *id)
{
	struct ksrc *c = src->ctx;
	return hop_kafka_dead_discard(&c->dead, id, src->error,
				      sizeof(src->error));
}

static void kafka_dead_close(struct hop_source *src)
{
	struct ksrc *c = src->ctx;
	hop_kafka_dead_close(&c->dead);
}

/* An edge's messages: the key is the item's id, the value its payload. */
static const char *const kafka_edge_fixed[] = {"id=key", "payload=json",
					       "headers=false", NULL};
static const char *const kafka_edge_defaults[] = {
    "group=hopper.%s", "create=true", "dead_create=true", NULL};

const struct hop_source_ops hop_src_kafka = {
    .name = "kafka",
    .forms = "kafka://HOST:PORT/TOPIC",
    .summary = "the messages of a topic, in a consumer group; offsets "
	       "stored only past finished messages",
    .options = kafka_options,
    .ctx_size = sizeof(struct ksrc),
    .check = kafka_check,
    .open = kafka_open,
    .fetch = kafka_fetch,
    .ack = kafka_ack,
    .dead = kafka_dead,
    .transaction = kafka_transaction,
    .dead_place = "the dead-letter topic; retry publishes a message to its "
		  "topic again (key, value, headers); both record it as "
		  "handled in the consumer group GROUP.dead, so that it is "
		  "listed and retried once",
    .dead_open = kafka_dead_open,
    .dead_list = kafka_dead_list,
    .dead_retry = kafka_dead_retry,
    .dead_discard = kafka_dead_discard,
    .dead_close = kafka_dead_close,
    .edge_fixed = kafka_edge_fixed,
    .edge_defaults = kafka_edge_defaults,
    .dead_live = true,
    .release = kafka_release,
    .forget = kafka_forget,
    .depth = kafka_depth,
    .exhausted = kafka_exhausted,
    .close = kafka_close,
};
