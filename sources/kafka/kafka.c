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
 * too, so that rebalances are served while every worker is busy. About as
 * many messages as the pool takes at once wait in a local queue, the rest
 * in librdkafka's bounded prefetch. When the local queue is full, or it and
 * the items out reach `max_inflight`, the assigned partitions are paused
 * (polling then serves events only) until half of that is free again.
 *
 * A dead item (attempts used up, a permanent failure, a value that is not
 * JSON) goes to the dead-letter topic with its original key, value and
 * headers, plus headers that say why, how many attempts and where it came
 * from; its offset counts as finished once the broker has it.
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
#include "sources/source.h"

/* The offsets handed out of one partition, in order, and which finished. */
struct part {
	bool assigned;
	bool eof;
	uint32_t epoch; /* bumped at each assignment */
	int64_t *off;
	bool *fin;
	size_t head, len, cap; /* a ring */
};

struct kref {
	int32_t part;
	uint32_t epoch;
	rd_kafka_message_t *msg;
	struct hop_source *src;
};

struct ksrc {
	/* options */
	char *url;
	char *group;
	char *dead_topic;
	int64_t max_inflight;
	char *id_from;
	char *payload_as;
	bool headers;
	char *config;

	struct hop_source *src;
	char *brokers, *topic;
	rd_kafka_t *rk, *dlq;
	rd_kafka_queue_t *cq;
	int cpipe[2], dpipe[2];
	uint64_t timer;
	struct part *parts;
	int32_t nparts;
	struct hop_queue ready;
	size_t out;    /* items handed out, not finished */
	size_t window; /* how many to keep in ready */
	size_t dead_pending;
	bool paused;
	bool topic_missing;
};

static const struct hop_option kafka_options[] = {
    {"url", HOP_OPT_STR, NULL, offsetof(struct ksrc, url),
     "kafka://host:port[,host:port...]/topic"},
    {"group", HOP_OPT_STR, "hopper", offsetof(struct ksrc, group),
     "the consumer group"},
    {"dead_topic", HOP_OPT_STR, NULL, offsetof(struct ksrc, dead_topic),
     "where dead messages go (default: the topic's name + .dead)"},
    {"max_inflight", HOP_OPT_INT, "10000", offsetof(struct ksrc, max_inflight),
     "messages taken and not finished before partitions are paused"},
    {"id", HOP_OPT_STR, "offset", offsetof(struct ksrc, id_from),
     "an item's id: offset (topic/partition/offset) or key"},
    {"payload", HOP_OPT_STR, "json", offsetof(struct ksrc, payload_as),
     "the value as json, or as a string"},
    {"headers", HOP_OPT_BOOL, "false", offsetof(struct ksrc, headers),
     "hand the worker {value, key, headers, topic, partition, offset}"},
    {"config", HOP_OPT_STR, NULL, offsetof(struct ksrc, config),
     "librdkafka settings, key=value,key=value"},
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

int hop_kafka_conf_set(rd_kafka_conf_t *conf, const char *settings, char *err,
		       size_t errlen)
{
	char *copy = strdup(settings ? settings : "");
	int rc = 0;

	if (!copy)
		return -ENOMEM;
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
		if (rd_kafka_conf_set(conf, kv, val, err, errlen) !=
		    RD_KAFKA_CONF_OK)
			rc = -EINVAL;
		kv = next;
	}
	free(copy);
	return rc;
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
			o[i] = p->off[(p->head + i) % p->cap];
			f[i] = p->fin[(p->head + i) % p->cap];
		}
		free(p->off);
		free(p->fin);
		p->off = o;
		p->fin = f;
		p->head = 0;
		p->cap = cap;
	}
	p->off[(p->head + p->len) % p->cap] = off;
	p->fin[(p->head + p->len) % p->cap] = false;
	p->len++;
	return 0;
}

/* Marks off finished and stores the offset after the finished prefix. */
static void finish_offset(struct ksrc *c, int32_t part, int64_t off)
{
	struct part *p = part < c->nparts ? &c->parts[part] : NULL;
	size_t lo = 0, hi = p ? p->len : 0;

	while (lo < hi) { /* offsets in the ring are increasing */
		size_t mid = (lo + hi) / 2;
		if (p->off[(p->head + mid) % p->cap] < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!p || lo == p->len || p->off[(p->head + lo) % p->cap] != off)
		return;
	p->fin[(p->head + lo) % p->cap] = true;
	int64_t next = -1;
	while (p->len && p->fin[p->head]) {
		next = p->off[p->head] + 1;
		p->head = (p->head + 1) % p->cap;
		p->len--;
	}
	if (next < 0)
		return;
	rd_kafka_topic_partition_list_t *l =
	    rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, c->topic, part)->offset = next;
	rd_kafka_resp_err_t err = rd_kafka_offsets_store(c->rk, l);
	if (err)
		hop_log(HOP_WARN, "kafka source: storing offset %s/%d@%lld: %s",
			c->topic, (int)part, (long long)next,
			rd_kafka_err2str(err));
	rd_kafka_topic_partition_list_destroy(l);
}

/* ---- backpressure ---- */

static void set_paused(struct ksrc *c, bool pause)
{
	rd_kafka_topic_partition_list_t *l;
	if (c->paused == pause || rd_kafka_assignment(c->rk, &l))
		return;
	hop_log(HOP_DEBUG, "kafka source: %s: %zu out, %zu waiting",
		pause ? "pausing" : "resuming", c->out, c->ready.len);
	if (pause)
		rd_kafka_pause_partitions(c->rk, l);
	else
		rd_kafka_resume_partitions(c->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	c->paused = pause;
}

/* Resumes paused partitions once there is room again: half the window
 * and half the in-flight bound. */
static void maybe_resume(struct ksrc *c)
{
	if (c->paused && c->ready.len <= c->window / 2 &&
	    c->out + c->ready.len <= (size_t)c->max_inflight / 2)
		set_paused(c, false);
}

static void one_less(struct ksrc *c)
{
	c->out--;
	maybe_resume(c);
}

/* ---- rebalances ---- */

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct ksrc *c = opaque;
	bool assign = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;

	for (int i = 0; i < parts->cnt; i++) {
		struct part *p = part_of(c, parts->elems[i].partition);
		if (!p)
			continue;
		p->assigned = assign;
		p->eof = false;
		p->epoch++;
		/* What was out of a revoked partition is its new owner's
		 * now: forget it (its offsets are not stored by us). */
		p->len = p->head = 0;
	}
	if (!assign) {
		/* Messages waiting locally from revoked partitions: drop. */
		struct hop_queue keep = {0};
		struct hop_item *it;
		while ((it = hop_queue_pop(&c->ready))) {
			struct kref *k = it->src_data;
			if (c->parts[k->part].assigned) {
				hop_queue_push(&keep, it);
				continue;
			}
			rd_kafka_message_destroy(k->msg);
			free(k);
			hop_item_free(it);
		}
		c->ready = keep;
	}
	if (!assign) {
		/* What finished is the new owner's starting point. */
		rd_kafka_resp_err_t ce = rd_kafka_commit(rk, NULL, 0);
		if (ce && ce != RD_KAFKA_RESP_ERR__NO_OFFSET)
			hop_log(HOP_WARN,
				"kafka source: committing on revoke: %s",
				rd_kafka_err2str(ce));
	}
	hop_log(HOP_INFO, "kafka source: %s %d partition(s) of %s",
		assign ? "assigned" : "revoked", parts->cnt, c->topic);
	rd_kafka_error_t *e = assign ? rd_kafka_incremental_assign(rk, parts)
				     : rd_kafka_incremental_unassign(rk, parts);
	if (e) {
		hop_log(HOP_ERROR, "kafka source: %s",
			rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
	}
	if (assign && c->paused) {
		c->paused = false; /* new partitions start resumed */
		set_paused(c, true);
	}
}

/* ---- messages to items ---- */

static char *payload_of(struct ksrc *c, const rd_kafka_message_t *m, char *why,
			size_t n)
{
	const char *v = m->payload;
	size_t len = m->len;
	json_t *j = NULL;

	if (strcmp(c->payload_as, "string") == 0) {
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
		return strndup(v, len); /* the fast path: as it stands */
	} else {
		j = json_loadb(v, len, JSON_DECODE_ANY, NULL);
	}
	if (c->headers) {
		json_t *o = json_object(), *h = json_object();
		rd_kafka_headers_t *hdrs;
		json_object_set_new(o, "value", j);
		json_object_set_new(o, "key",
				    m->key ? json_stringn(m->key, m->key_len)
					   : json_null());
		if (rd_kafka_message_headers(m, &hdrs) == 0) {
			const char *name;
			const void *val;
			size_t vlen;
			for (size_t i = 0; !rd_kafka_header_get_all(
				 hdrs, i, &name, &val, &vlen);
			     i++)
				json_object_set_new(
				    h, name,
				    val ? json_stringn(val, vlen)
					: json_null());
		}
		json_object_set_new(o, "headers", h);
		json_object_set_new(o, "topic", json_string(c->topic));
		json_object_set_new(o, "partition", json_integer(m->partition));
		json_object_set_new(o, "offset", json_integer(m->offset));
		j = o;
	}
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(j);
	if (!s)
		snprintf(why, n, "value cannot be passed on as JSON text");
	return s;
}

static struct hop_item *item_of(struct ksrc *c, rd_kafka_message_t *m,
				uint32_t epoch)
{
	char id[512], why[400];
	struct kref *k = malloc(sizeof(*k));

	if (!k)
		return NULL;
	*k = (struct kref){m->partition, epoch, m, c->src};
	if (strcmp(c->id_from, "key") == 0 && m->key && m->key_len &&
	    m->key_len < sizeof(id))
		snprintf(id, sizeof(id), "%.*s", (int)m->key_len,
			 (const char *)m->key);
	else
		snprintf(id, sizeof(id), "%s/%d/%lld", c->topic,
			 (int)m->partition, (long long)m->offset);
	why[0] = '\0';
	char *payload = payload_of(c, m, why, sizeof(why));
	struct hop_item *it =
	    hop_item_new(strdup(id), payload ? payload : strdup("null"),
			 payload ? strlen(payload) : 4);
	if (!it) {
		free(k);
		return NULL;
	}
	it->src_data = k;
	if (!payload) {
		it->invalid = true;
		hop_item_fail(it, false, "%s/%d/%lld: %s", c->topic,
			      (int)m->partition, (long long)m->offset, why);
	}
	return it;
}

/* Polls the consumer: serves rebalances, and moves messages to the local
 * queue while the in-flight bound allows. */
static bool full(const struct ksrc *c)
{
	return c->ready.len >= c->window ||
	       c->out + c->ready.len >= (size_t)c->max_inflight;
}

static void service(struct ksrc *c)
{
	rd_kafka_message_t *m;

	if (full(c)) {
		/* Still serve rebalances: with the partitions paused a poll
		 * gives events, not messages. */
		set_paused(c, true);
	}
	while ((!full(c) || c->paused) &&
	       (m = rd_kafka_consumer_poll(c->rk, 0))) {
		struct part *p = part_of(c, m->partition);
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			if (p)
				p->eof = true;
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
		if (!p || !p->assigned || remember(p, m->offset)) {
			rd_kafka_message_destroy(m);
			continue;
		}
		p->eof = false;
		struct hop_item *it = item_of(c, m, p->epoch);
		if (!it) {
			p->len--; /* forget it: it comes again next run */
			rd_kafka_message_destroy(m);
			continue;
		}
		hop_queue_push(&c->ready, it);
	}
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
	c->timer = hop_loop_after(loop, 200, on_tick, src);
	hop_source_wake(src);
}

/* ---- the dead-letter topic ---- */

static void on_dead_delivered(rd_kafka_t *rk, const rd_kafka_message_t *m,
			      void *opaque)
{
	struct kref *k = m->_private;
	struct ksrc *c = k->src->ctx;

	c->dead_pending--;
	if (m->err) {
		hop_log(HOP_ERROR,
			"kafka source: dead-letter topic %s: %s: message "
			"%s/%d/%lld stays unacknowledged and comes again",
			rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err),
			c->topic, (int)k->msg->partition,
			(long long)k->msg->offset);
	} else if (k->epoch == c->parts[k->part].epoch) {
		finish_offset(c, k->part, k->msg->offset);
	}
	one_less(c);
	rd_kafka_message_destroy(k->msg);
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

static rd_kafka_t *make_client(struct ksrc *c, rd_kafka_type_t type, char *err,
			       size_t errlen)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	bool consumer = type == RD_KAFKA_CONSUMER;
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
	    {consumer ? "auto.commit.interval.ms" : NULL, "1000"},
	    {consumer ? "queued.max.messages.kbytes" : NULL, "16384"},
	};
	for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++)
		if (set[i][0] &&
		    rd_kafka_conf_set(conf, set[i][0], set[i][1], err,
				      errlen) != RD_KAFKA_CONF_OK)
			goto fail;
	if (hop_kafka_conf_set(conf, c->config, err, errlen))
		goto fail;
	rd_kafka_conf_set_opaque(conf, c);
	rd_kafka_conf_set_log_cb(conf, hop_kafka_log);
	if (consumer)
		rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	else
		rd_kafka_conf_set_dr_msg_cb(conf, on_dead_delivered);
	rd_kafka_t *rk = rd_kafka_new(type, conf, err, errlen);
	if (rk)
		return rk;
fail:
	rd_kafka_conf_destroy(conf);
	return NULL;
}

static void teardown(struct hop_source *src);

static int kafka_open(struct hop_source *src)
{
	struct ksrc *c = src->ctx;
	char err[400];
	int rc = -EINVAL;

	c->src = src;
	c->window = 64;
	c->cpipe[0] = c->cpipe[1] = c->dpipe[0] = c->dpipe[1] = -1;
	if (!c->url || hop_kafka_parse_url(c->url, &c->brokers, &c->topic)) {
		snprintf(src->error, sizeof(src->error),
			 "kafka source: '%s': expected "
			 "kafka://host:port/topic",
			 c->url ? c->url : "");
		return -EINVAL;
	}
	if (strcmp(c->id_from, "offset") && strcmp(c->id_from, "key")) {
		snprintf(src->error, sizeof(src->error),
			 "kafka source: id '%s': expected offset or key",
			 c->id_from);
		return -EINVAL;
	}
	if (strcmp(c->payload_as, "json") && strcmp(c->payload_as, "string")) {
		snprintf(src->error, sizeof(src->error),
			 "kafka source: payload '%s': expected json or string",
			 c->payload_as);
		return -EINVAL;
	}
	if (c->max_inflight < 1) {
		snprintf(src->error, sizeof(src->error),
			 "kafka source: max_inflight must be at least 1");
		return -EINVAL;
	}
	if (!c->dead_topic && asprintf(&c->dead_topic, "%s.dead", c->topic) < 0)
		return -ENOMEM;
	if (!(c->rk = make_client(c, RD_KAFKA_CONSUMER, err, sizeof(err))) ||
	    !(c->dlq = make_client(c, RD_KAFKA_PRODUCER, err, sizeof(err)))) {
		snprintf(src->error, sizeof(src->error), "kafka source: %s",
			 err);
		goto fail;
	}
	/* Is anyone there? A broker that cannot be reached, or a topic that
	 * does not exist, is an error now rather than a silent wait. */
	rc = hop_kafka_check_topic(c->rk, c->brokers, c->topic, err,
				   sizeof(err));
	if (rc) {
		snprintf(src->error, sizeof(src->error), "kafka source: %s",
			 err);
		goto fail;
	}
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
	struct hop_item *it;

	/* Keep about what the pool takes at once waiting here; the rest
	 * waits in librdkafka's own bounded prefetch. */
	if (max + 64 > c->window)
		c->window = max + 64;
	if (c->ready.len < max)
		service(c);
	while (max > 0 && (it = hop_queue_pop(&c->ready))) {
		hop_queue_push(out, it);
		c->out++;
		max--;
	}
	maybe_resume(c);
	return 0;
}

static int kafka_ack(struct hop_source *src, struct hop_item *it)
{
	struct ksrc *c = src->ctx;
	struct kref *k = it->src_data;

	if (k->epoch == c->parts[k->part].epoch)
		finish_offset(c, k->part, k->msg->offset);
	one_less(c);
	rd_kafka_message_destroy(k->msg);
	free(k);
	it->src_data = NULL;
	return 0;
}

static int kafka_dead(struct hop_source *src, struct hop_item *it,
		      const char *record)
{
	struct ksrc *c = src->ctx;
	struct kref *k = it->src_data;
	rd_kafka_message_t *m = k->msg;
	rd_kafka_headers_t *hdrs = NULL, *orig;
	char num[32];

	if (rd_kafka_message_headers(m, &orig) == 0)
		hdrs = rd_kafka_headers_copy(orig);
	else
		hdrs = rd_kafka_headers_new(6);
	const char *error = it->error ? it->error : "failed";
	rd_kafka_header_add(hdrs, "hopper-error", -1, error, -1);
	snprintf(num, sizeof(num), "%d", it->attempt);
	rd_kafka_header_add(hdrs, "hopper-attempts", -1, num, -1);
	rd_kafka_header_add(hdrs, "hopper-topic", -1, c->topic, -1);
	snprintf(num, sizeof(num), "%d", (int)m->partition);
	rd_kafka_header_add(hdrs, "hopper-partition", -1, num, -1);
	snprintf(num, sizeof(num), "%lld", (long long)m->offset);
	rd_kafka_header_add(hdrs, "hopper-offset", -1, num, -1);
	rd_kafka_header_add(hdrs, "hopper-record", -1, record, -1);
	rd_kafka_resp_err_t e = rd_kafka_producev(
	    c->dlq, RD_KAFKA_V_TOPIC(c->dead_topic),
	    RD_KAFKA_V_KEY(m->key, m->key_len),
	    RD_KAFKA_V_VALUE(m->payload, m->len),
	    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
	    RD_KAFKA_V_OPAQUE(k), RD_KAFKA_V_END);
	it->src_data = NULL;
	if (e) {
		rd_kafka_headers_destroy(hdrs);
		snprintf(src->error, sizeof(src->error),
			 "kafka source: dead-letter topic %s: %s; message "
			 "%s stays unacknowledged and comes again",
			 c->dead_topic, rd_kafka_err2str(e), it->id);
		one_less(c);
		rd_kafka_message_destroy(m);
		free(k);
		return -EIO;
	}
	c->dead_pending++;
	return 0;
}

static int kafka_release(struct hop_source *src, struct hop_item *it)
{
	struct ksrc *c = src->ctx;
	struct kref *k = it->src_data;
	/* Not finished: its offset is never stored, the next run gets it. */
	one_less(c);
	rd_kafka_message_destroy(k->msg);
	free(k);
	it->src_data = NULL;
	return 0;
}

static int64_t kafka_depth(struct hop_source *src)
{
	struct ksrc *c = src->ctx;
	int64_t lag = (int64_t)c->ready.len;
	for (int32_t i = 0; i < c->nparts; i++) {
		int64_t lo, hi;
		if (!c->parts[i].assigned || rd_kafka_get_watermark_offsets(
						 c->rk, c->topic, i, &lo, &hi))
			continue;
		rd_kafka_topic_partition_list_t *l =
		    rd_kafka_topic_partition_list_new(1);
		rd_kafka_topic_partition_list_add(l, c->topic, i);
		if (rd_kafka_position(c->rk, l) == 0 &&
		    l->elems[0].offset >= 0 && hi > l->elems[0].offset)
			lag += hi - l->elems[0].offset;
		rd_kafka_topic_partition_list_destroy(l);
	}
	return lag;
}

static bool kafka_exhausted(struct hop_source *src)
{
	struct ksrc *c = src->ctx;
	bool any = false;

	if (src->watch || c->ready.head || c->dead_pending)
		return false;
	for (int32_t i = 0; i < c->nparts; i++) {
		if (!c->parts[i].assigned)
			continue;
		if (!c->parts[i].eof)
			return false;
		any = true;
	}
	return any;
}

/* Lets go of the clients, pipes and bookkeeping: what open made. */
static void teardown(struct hop_source *src)
{
	struct ksrc *c = src->ctx;

	if (c->cq)
		rd_kafka_queue_destroy(c->cq);
	if (c->rk) {
		rd_kafka_consumer_close(c->rk); /* commits what is stored */
		rd_kafka_destroy(c->rk);
	}
	if (c->dlq)
		rd_kafka_destroy(c->dlq);
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
	struct hop_item *it;

	hop_loop_cancel(src->loop, c->timer);
	while ((it = hop_queue_pop(&c->ready))) {
		kafka_release(src, it);
		hop_item_free(it);
	}
	if (c->dlq) {
		/* The dead letters on their way, with their offsets. */
		rd_kafka_flush(c->dlq, 10000);
		rd_kafka_poll(c->dlq, 0);
	}
	teardown(src);
}

const struct hop_source_ops hop_src_kafka = {
    .name = "kafka",
    .summary = "the messages of a topic, in a consumer group; offsets "
	       "stored only past finished messages",
    .options = kafka_options,
    .ctx_size = sizeof(struct ksrc),
    .open = kafka_open,
    .fetch = kafka_fetch,
    .ack = kafka_ack,
    .dead = kafka_dead,
    .release = kafka_release,
    .depth = kafka_depth,
    .exhausted = kafka_exhausted,
    .close = kafka_close,
};
