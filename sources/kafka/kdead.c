/* kdead.c - the kafka source's dead letters (see kdead.h). */
#include "sources/kafka/kdead.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coordinator/buf.h"
#include "coordinator/loop.h"
#include "sources/kafka/kafka.h"

/* How long a broker may take to answer, in ms. */
#define KD_TIMEOUT_MS 30000
/* What a commit's metadata starts with; the handled offsets follow. */
#define KD_MARK "hopper-dead:1:"

struct kd_msg {
	int32_t partition;
	int64_t offset;
	int64_t ts; /* ms, or -1 */
	char *key, *value;
	size_t key_len, value_len;
	rd_kafka_headers_t *hdrs; /* or NULL */
	char *id;
	bool handled;
};

struct kd_part {
	int64_t start;	  /* the committed offset: all before it handled */
	int64_t high;	  /* the end of the partition when read */
	bool read;	  /* read from start to high */
	int64_t *handled; /* offsets past start handled, from the metadata */
	size_t nhandled;
};

/* A retried message's delivery report: its answer, for publish. */
static void on_delivered(rd_kafka_t *rk, const rd_kafka_message_t *m,
			 void *opaque)
{
	*(rd_kafka_resp_err_t *)m->_private = m->err;
}

/* Makes a client of type with settings set[n][2], then the user's that
 * apply to it. */
static rd_kafka_t *client(struct hop_kafka_dead *d, rd_kafka_type_t type,
			  const char *const set[][2], size_t n, char *err,
			  size_t errlen)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	for (size_t i = 0; i < n; i++)
		if (rd_kafka_conf_set(conf, set[i][0], set[i][1], err,
				      errlen) != RD_KAFKA_CONF_OK)
			goto fail;
	if (hop_kafka_conf_set_for(conf, type, d->config, err, errlen))
		goto fail;
	rd_kafka_conf_set_log_cb(conf, hop_kafka_log);
	if (type == RD_KAFKA_PRODUCER)
		rd_kafka_conf_set_dr_msg_cb(conf, on_delivered);
	rd_kafka_t *rk = rd_kafka_new(type, conf, err, errlen);
	if (rk)
		return rk;
fail:
	rd_kafka_conf_destroy(conf);
	return NULL;
}

/* Reads "hopper-dead:1:7,9" into p's handled offsets. Anything else (no
 * metadata, another's) means none. */
static void parse_handled(struct kd_part *p, const char *meta, size_t len)
{
	size_t k = strlen(KD_MARK);
	if (!meta || len <= k || strncmp(meta, KD_MARK, k))
		return;
	char *s = strndup(meta + k, len - k), *save = NULL;
	for (char *t = s ? strtok_r(s, ",", &save) : NULL; t;
	     t = strtok_r(NULL, ",", &save)) {
		int64_t *v =
		    realloc(p->handled, (p->nhandled + 1) * sizeof(*v));
		if (!v)
			break;
		p->handled = v;
		v[p->nhandled++] = strtoll(t, NULL, 10);
	}
	free(s);
}

static bool was_handled(const struct kd_part *p, int64_t off)
{
	for (size_t i = 0; i < p->nhandled; i++)
		if (p->handled[i] == off)
			return true;
	return off < p->start;
}

/* True for the errors of a group coordinator that is not there yet: a new
 * group's, right after a broker starts or a coordinator moves. They pass
 * once the broker has settled, so a call that gets one is made again. */
static bool settling(rd_kafka_resp_err_t e)
{
	return e == RD_KAFKA_RESP_ERR_NOT_COORDINATOR ||
	       e == RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE ||
	       e == RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS;
}

/* Until when a call may be made again after settling() errors; then waits
 * a little before the next. Returns false once it is time to give up. */
static bool again(int64_t *until)
{
	struct timespec now, pause = {0, 100 * 1000 * 1000};
	clock_gettime(CLOCK_MONOTONIC, &now);
	int64_t ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	if (!*until)
		*until = ms + KD_TIMEOUT_MS;
	if (ms >= *until)
		return false;
	nanosleep(&pause, NULL);
	return true;
}

/* The group's committed offsets into l, made again while the group's
 * coordinator settles. */
static rd_kafka_resp_err_t committed(struct hop_kafka_dead *d,
				     rd_kafka_topic_partition_list_t *l)
{
	int64_t until = 0;
	rd_kafka_resp_err_t e;
	while (
	    settling(e = rd_kafka_committed(d->consumer, l, KD_TIMEOUT_MS)) &&
	    again(&until))
		;
	return e;
}

/* Finds where each partition's unhandled messages start and end. */
static int find_range(struct hop_kafka_dead *d, char *err, size_t errlen)
{
	rd_kafka_topic_partition_list_t *l =
	    rd_kafka_topic_partition_list_new(d->nparts);
	for (int32_t i = 0; i < d->nparts; i++)
		rd_kafka_topic_partition_list_add(l, d->dead_topic, i);
	rd_kafka_resp_err_t e = committed(d, l);
	for (int32_t i = 0; !e && i < d->nparts; i++) {
		rd_kafka_topic_partition_t *t = &l->elems[i];
		struct kd_part *p = &d->parts[t->partition];
		int64_t low, high;
		e = rd_kafka_query_watermark_offsets(d->consumer, d->dead_topic,
						     t->partition, &low, &high,
						     KD_TIMEOUT_MS);
		if (e)
			break;
		p->high = high;
		p->start = t->offset >= low ? t->offset : low;
		if (t->offset >= 0)
			parse_handled(p, t->metadata, t->metadata_size);
	}
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		snprintf(err, errlen, "kafka source: dead-letter topic %s: %s",
			 d->dead_topic, rd_kafka_err2str(e));
		return -EIO;
	}
	return 0;
}

static int keep(struct hop_kafka_dead *d, const rd_kafka_message_t *m)
{
	struct kd_msg *v = realloc(d->msgs, (d->n + 1) * sizeof(*v));
	rd_kafka_headers_t *h = NULL;
	if (!v)
		return -ENOMEM;
	d->msgs = v;
	struct kd_msg *k = &v[d->n];
	*k = (struct kd_msg){
	    .partition = m->partition,
	    .offset = m->offset,
	    .ts = rd_kafka_message_timestamp(m, NULL),
	    .key_len = m->key_len,
	    .value_len = m->len,
	    .handled = was_handled(&d->parts[m->partition], m->offset),
	};
	if (m->key && !(k->key = malloc(m->key_len + 1)))
		return -ENOMEM;
	if (m->payload && !(k->value = malloc(m->len + 1))) {
		free(k->key);
		return -ENOMEM;
	}
	if (m->key)
		memcpy(k->key, m->key, m->key_len);
	if (m->payload) {
		memcpy(k->value, m->payload, m->len);
		k->value[m->len] = '\0';
	}
	if (rd_kafka_message_headers(m, &h) == 0)
		k->hdrs = rd_kafka_headers_copy(h);
	if (asprintf(&k->id, "%s/%d/%lld", d->dead_topic, (int)m->partition,
		     (long long)m->offset) < 0) {
		free(k->key);
		free(k->value);
		if (k->hdrs)
			rd_kafka_headers_destroy(k->hdrs);
		return -ENOMEM;
	}
	d->n++;
	return 0;
}

/* Reads every partition from its start to the end it had when asked. */
static int read_all(struct hop_kafka_dead *d, char *err, size_t errlen)
{
	rd_kafka_topic_partition_list_t *l =
	    rd_kafka_topic_partition_list_new(d->nparts);
	int32_t left = 0;
	int rc = 0;

	for (int32_t i = 0; i < d->nparts; i++) {
		d->parts[i].read = d->parts[i].start >= d->parts[i].high;
		if (d->parts[i].read)
			continue;
		rd_kafka_topic_partition_list_add(l, d->dead_topic, i)->offset =
		    d->parts[i].start;
		left++;
	}
	rd_kafka_resp_err_t e = left ? rd_kafka_assign(d->consumer, l) : 0;
	rd_kafka_topic_partition_list_destroy(l);
	int64_t until = hop_now_ms() + KD_TIMEOUT_MS;
	while (!e && !rc && left > 0 && hop_now_ms() < until) {
		rd_kafka_message_t *m =
		    rd_kafka_consumer_poll(d->consumer, 200);
		if (!m)
			continue;
		struct kd_part *p =
		    m->partition >= 0 && m->partition < d->nparts
			? &d->parts[m->partition]
			: NULL;
		bool eof = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
		if (m->err && !eof) {
			snprintf(err, errlen,
				 "kafka source: dead-letter topic %s: %s",
				 d->dead_topic, rd_kafka_message_errstr(m));
			rc = -EIO;
		} else if (p && !p->read && !eof && m->offset < p->high) {
			rc = keep(d, m);
		}
		/* A message's offset is its own, an end's the next one's. */
		if (!rc && p && !p->read &&
		    (eof ? m->offset : m->offset + 1) >= p->high) {
			p->read = true;
			left--;
		}
		rd_kafka_message_destroy(m);
	}
	if (left && !rc) {
		snprintf(err, errlen, "kafka source: dead-letter topic %s: %s",
			 d->dead_topic,
			 e ? rd_kafka_err2str(e) : "timed out reading it");
		rc = -ETIMEDOUT;
	}
	rd_kafka_assign(d->consumer, NULL);
	return rc;
}

static void free_msgs(struct hop_kafka_dead *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->msgs[i].key);
		free(d->msgs[i].value);
		free(d->msgs[i].id);
		if (d->msgs[i].hdrs)
			rd_kafka_headers_destroy(d->msgs[i].hdrs);
	}
	free(d->msgs);
	d->msgs = NULL;
	d->n = 0;
}

void hop_kafka_dead_close(struct hop_kafka_dead *d)
{
	free_msgs(d);
	for (int32_t i = 0; i < d->nparts; i++)
		free(d->parts[i].handled);
	free(d->parts);
	if (d->producer)
		rd_kafka_destroy(d->producer);
	if (d->consumer) {
		rd_kafka_consumer_close(d->consumer);
		rd_kafka_destroy(d->consumer);
	}
	free(d->brokers);
	free(d->topic);
	free(d->dead_topic);
	free(d->group);
	*d = (struct hop_kafka_dead){0};
}

/* The number of partitions of the dead-letter topic, into d->nparts. */
static int count_parts(struct hop_kafka_dead *d, char *err, size_t errlen)
{
	const struct rd_kafka_metadata *md = NULL;
	int rc = hop_kafka_check_topic(d->consumer, d->brokers, d->dead_topic,
				       err, errlen);
	if (rc)
		return rc;
	rd_kafka_topic_t *t =
	    rd_kafka_topic_new(d->consumer, d->dead_topic, NULL);
	rd_kafka_resp_err_t e =
	    rd_kafka_metadata(d->consumer, 0, t, &md, KD_TIMEOUT_MS);
	rd_kafka_topic_destroy(t);
	if (e || md->topic_cnt != 1) {
		snprintf(err, errlen, "%s: %s", d->dead_topic,
			 rd_kafka_err2str(e ? e : RD_KAFKA_RESP_ERR__FAIL));
		rc = -EIO;
	} else {
		d->nparts = md->topics[0].partition_cnt;
		d->parts = calloc((size_t)d->nparts + 1, sizeof(*d->parts));
		rc = d->parts ? 0 : -ENOMEM;
	}
	if (md)
		rd_kafka_metadata_destroy(md);
	return rc;
}

int hop_kafka_dead_open(struct hop_kafka_dead *d, const char *url,
			const char *dead_topic, const char *group,
			const char *config, char *err, size_t errlen)
{
	char why[512];
	int rc;

	*d = (struct hop_kafka_dead){.config = config};
	if (!url || hop_kafka_parse_url(url, &d->brokers, &d->topic)) {
		snprintf(err, errlen,
			 "kafka source: '%s': expected kafka://host:port/topic",
			 url ? url : "");
		hop_kafka_dead_close(d);
		return -EINVAL;
	}
	if ((dead_topic ? !(d->dead_topic = strdup(dead_topic))
			: asprintf(&d->dead_topic, "%s.dead", d->topic) < 0) ||
	    asprintf(&d->group, "%s.dead", group) < 0) {
		d->group = NULL;
		hop_kafka_dead_close(d);
		return -ENOMEM;
	}
	const char *set[][2] = {
	    {"bootstrap.servers", d->brokers},
	    {"client.id", "hopper-dead"},
	    {"group.id", d->group},
	    {"enable.auto.commit", "false"},
	    {"enable.auto.offset.store", "false"},
	    {"enable.partition.eof", "true"},
	    {"auto.offset.reset", "earliest"},
	};
	d->consumer = client(d, RD_KAFKA_CONSUMER, set,
			     sizeof(set) / sizeof(set[0]), why, sizeof(why));
	if (!d->consumer) {
		snprintf(err, errlen, "kafka source: %s", why);
		hop_kafka_dead_close(d);
		return -EINVAL;
	}
	if ((rc = count_parts(d, why, sizeof(why)))) {
		snprintf(err, errlen, "kafka source: dead-letter topic %s",
			 why);
		hop_kafka_dead_close(d);
		return rc;
	}
	if ((rc = find_range(d, err, errlen)) ||
	    (rc = read_all(d, err, errlen))) {
		hop_kafka_dead_close(d);
		return rc;
	}
	return 0;
}

/* The header name's last value as a string (malloc'd), or NULL. */
static char *header(const struct kd_msg *m, const char *name)
{
	const void *v;
	size_t n;
	if (!m->hdrs || rd_kafka_header_get_last(m->hdrs, name, &v, &n) || !v)
		return NULL;
	return strndup(v, n);
}

static int show(struct hop_kafka_dead *d, const struct kd_msg *m,
		hop_dead_each_fn each, void *arg)
{
	char *error = header(m, "hopper-error");
	char *attempts = header(m, "hopper-attempts");
	char *record = header(m, "hopper-record");
	char *payload = NULL, when[32];
	json_t *rec = record ? json_loads(record, 0, NULL) : NULL;
	struct hop_dead_letter l = {
	    .id = m->id,
	    .item = json_string_value(json_object_get(rec, "id")),
	    .error = error ? error : "no hopper-error header",
	    .attempts = attempts ? strtoll(attempts, NULL, 10) : -1,
	    .record = record,
	};
	json_t *p = json_object_get(rec, "payload");
	if (p && !json_is_null(p))
		l.payload = payload =
		    json_dumps(p, JSON_COMPACT | JSON_ENCODE_ANY);
	else if (m->value)
		l.payload = payload =
		    json_dumps(json_stringn(m->value, m->value_len),
			       JSON_COMPACT | JSON_ENCODE_ANY);
	if (m->ts >= 0) {
		time_t t = (time_t)(m->ts / 1000);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		l.when = when;
	}
	int rc = each(arg, &l);
	json_decref(rec);
	free(error);
	free(attempts);
	free(record);
	free(payload);
	return rc;
}

int hop_kafka_dead_list(struct hop_kafka_dead *d, hop_dead_each_fn each,
			void *arg)
{
	int rc = 0;
	for (size_t i = 0; i < d->n && !rc; i++)
		if (!d->msgs[i].handled)
			rc = show(d, &d->msgs[i], each, arg);
	return rc;
}

static struct kd_msg *find(struct hop_kafka_dead *d, const char *id, char *err,
			   size_t errlen)
{
	for (size_t i = 0; i < d->n; i++)
		if (!d->msgs[i].handled && !strcmp(d->msgs[i].id, id))
			return &d->msgs[i];
	snprintf(err, errlen, "no dead message %s not handled yet", id);
	return NULL;
}

/* Records m as handled: commits its partition's first offset not handled,
 * and the handled ones past it as metadata. */
static int mark_handled(struct hop_kafka_dead *d, struct kd_msg *m, char *err,
			size_t errlen)
{
	struct kd_part *p = &d->parts[m->partition];
	int64_t start = p->high;
	struct hop_buf meta = {0};
	int rc = 0;

	m->handled = true;
	for (size_t i = 0; i < d->n; i++)
		if (d->msgs[i].partition == m->partition &&
		    !d->msgs[i].handled && d->msgs[i].offset < start)
			start = d->msgs[i].offset;
	hop_buf_appendf(&meta, "%s", KD_MARK);
	for (size_t i = 0; i < d->n; i++)
		if (d->msgs[i].partition == m->partition &&
		    d->msgs[i].handled && d->msgs[i].offset > start)
			hop_buf_appendf(
			    &meta, "%s%lld",
			    hop_buf_len(&meta) > strlen(KD_MARK) ? "," : "",
			    (long long)d->msgs[i].offset);
	rd_kafka_topic_partition_list_t *l =
	    rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_t *t =
	    rd_kafka_topic_partition_list_add(l, d->dead_topic, m->partition);
	t->offset = start;
	t->metadata = hop_buf_head(&meta); /* borrowed until the commit */
	t->metadata_size = hop_buf_len(&meta);
	rd_kafka_resp_err_t e;
	int64_t until = 0;
	do {
		e = rd_kafka_commit(d->consumer, l, 0);
		if (!e)
			e = l->elems[0].err;
	} while (settling(e) && again(&until));
	t->metadata = NULL;
	t->metadata_size = 0;
	rd_kafka_topic_partition_list_destroy(l);
	hop_buf_free(&meta);
	if (e) {
		m->handled = false;
		snprintf(err, errlen,
			 "cannot record it as handled in group %s: %s",
			 d->group, rd_kafka_err2str(e));
		rc = -EIO;
	}
	return rc;
}

/* A copy of m's headers without hopper's own. */
static rd_kafka_headers_t *own_headers(const struct kd_msg *m)
{
	size_t n = m->hdrs ? rd_kafka_header_cnt(m->hdrs) : 0;
	rd_kafka_headers_t *h = rd_kafka_headers_new(n ? n : 1);
	const char *name;
	const void *v;
	size_t len;
	for (size_t i = 0;
	     m->hdrs && !rd_kafka_header_get_all(m->hdrs, i, &name, &v, &len);
	     i++)
		if (strncmp(name, "hopper-", 7))
			rd_kafka_header_add(h, name, -1, v,
					    v ? (ssize_t)len : 0);
	return h;
}

/* Publishes m to topic and waits until the broker has it. */
static int publish(struct hop_kafka_dead *d, const struct kd_msg *m,
		   const char *topic, char *err, size_t errlen)
{
	char why[512];
	if (!d->producer) {
		const char *set[][2] = {
		    {"bootstrap.servers", d->brokers},
		    {"client.id", "hopper-dead"},
		    {"enable.idempotence", "true"},
		    {"acks", "all"},
		};
		d->producer =
		    client(d, RD_KAFKA_PRODUCER, set,
			   sizeof(set) / sizeof(set[0]), why, sizeof(why));
		if (!d->producer) {
			snprintf(err, errlen, "%s", why);
			return -EINVAL;
		}
	}
	rd_kafka_resp_err_t done = RD_KAFKA_RESP_ERR__IN_PROGRESS;
	rd_kafka_headers_t *h = own_headers(m);
	rd_kafka_resp_err_t e = rd_kafka_producev(
	    d->producer, RD_KAFKA_V_TOPIC(topic),
	    RD_KAFKA_V_KEY(m->key, m->key ? m->key_len : 0),
	    RD_KAFKA_V_VALUE(m->value, m->value ? m->value_len : 0),
	    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
	    RD_KAFKA_V_OPAQUE(&done), RD_KAFKA_V_END);
	if (e) {
		rd_kafka_headers_destroy(h);
	} else {
		rd_kafka_flush(d->producer, KD_TIMEOUT_MS);
		e = done == RD_KAFKA_RESP_ERR__IN_PROGRESS
			? RD_KAFKA_RESP_ERR__TIMED_OUT
			: done;
	}
	if (e) {
		snprintf(err, errlen, "cannot publish it to %s: %s", topic,
			 rd_kafka_err2str(e));
		return -EIO;
	}
	return 0;
}

int hop_kafka_dead_retry(struct hop_kafka_dead *d, const char *id, char *err,
			 size_t errlen)
{
	struct kd_msg *m = find(d, id, err, errlen);
	if (!m)
		return -ENOENT;
	char *topic = header(m, "hopper-topic");
	int rc = publish(d, m, topic ? topic : d->topic, err, errlen);
	if (!rc && (rc = mark_handled(d, m, err, errlen))) {
		/* Published, but not recorded: say what a second try does. */
		size_t n = strlen(err);
		snprintf(err + n, errlen - n,
			 "; it was published to %s, and a second retry "
			 "publishes it again",
			 topic ? topic : d->topic);
	}
	free(topic);
	return rc;
}

int hop_kafka_dead_discard(struct hop_kafka_dead *d, const char *id, char *err,
			   size_t errlen)
{
	struct kd_msg *m = find(d, id, err, errlen);
	return m ? mark_handled(d, m, err, errlen) : -ENOENT;
}
