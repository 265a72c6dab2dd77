/* console.c - the web console's state, history, failures, actions and
 * dead-letter jobs (see console.h). */
#include "console.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "loop.h"
#include "stage.h"
#include "sources/source.h"

/* The history: one sample a second, for the last five minutes. */
#define SAMPLE_MS 1000
#define SAMPLES 300
/* Failed attempts the page shows. */
#define FAILURES 50
/* Bytes of a payload or a stderr tail the page gets; the rest is cut. */
#define CUT_BYTES 2048
/* The most dead letters one page lists. */
#define PAGE_MAX 200

struct sample {
	int64_t at_ms;
	int64_t depth, inflight;
	uint64_t done, dead;
	int workers, busy;
};

struct failure {
	int64_t at_ms;
	char *stage, *id, *error, *stderr_tail, *payload;
	size_t payload_len;
	int attempt;
	bool final;
};

struct hop_console_job {
	struct hop_console_job *next;
	enum hop_console_job_kind kind;
	int source;
	char *id;
	size_t offset, limit;
	hop_console_done_fn done;
	void *arg;
	/* The answer, set by the thread. */
	unsigned status;
	char *body;
};

/* A source of the run, and the instance the thread works on. */
struct place {
	const char *name;
	struct hop_source *run; /* the run's, read on the loop only */
	struct hop_source *own; /* the thread's; NULL without dead letters */
};

struct hop_console {
	struct hop_loop *loop;
	struct hop_http_view view;
	char *token;
	uint64_t timer;

	/* The history ring: samples[i % SAMPLES], nsamples taken; per stage,
	 * stage_samples[(i % SAMPLES) * nstages + s]. */
	struct sample samples[SAMPLES];
	struct sample *stage_samples;
	int nstages;
	uint64_t nsamples;

	struct failure failures[FAILURES];
	uint64_t nfailures;

	struct place *places;
	int nplaces;

	/* The dead-letter thread: todo is its queue, done what it finished
	 * for the loop, both under mu; efd wakes the loop. */
	pthread_t thread;
	bool thread_on, quit;
	bool closing; /* the run is over: its sources may be closed */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct hop_console_job *todo, *todo_tail, *done;
	int efd;
};

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const struct hop_console_asset *hop_console_asset(const char *path)
{
	if (!strcmp(path, "/"))
		path = "/console.html";
	for (const struct hop_console_asset *a = hop_console_assets; a->path;
	     a++)
		if (!strcmp(a->path, path))
			return a;
	return NULL;
}

/* ---- the admin token ---- */

/* Reads the token from path into *token. Returns 0 or -errno, with err. */
static int read_token(const char *path, char **token, char *err, size_t errlen)
{
	char buf[4096];
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f) {
		int e = errno;
		snprintf(err, errlen, "admin token file %s: %s", path,
			 strerror(e));
		return -e;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *s = buf + strspn(buf, " \t\r\n");
	size_t len = strlen(s);
	while (len && strchr(" \t\r\n", s[len - 1]))
		s[--len] = '\0';
	if (len < 8 || strpbrk(s, " \t\r\n")) {
		snprintf(err, errlen,
			 "admin token file %s: expected one token of at least "
			 "8 characters, no spaces",
			 path);
		return -EINVAL;
	}
	*token = strdup(s);
	return *token ? 0 : -ENOMEM;
}

bool hop_console_admin(const struct hop_console *k)
{
	return k->token != NULL;
}

bool hop_console_token_ok(const struct hop_console *k, const char *given)
{
	if (!k->token || !given)
		return false;
	size_t a = strlen(k->token), b = strlen(given);
	unsigned char diff = a != b;
	for (size_t i = 0; i < a; i++)
		diff |= (unsigned char)(k->token[i] ^ given[i < b ? i : 0]);
	return diff == 0;
}

/* ---- text for the page ---- */

/* The first max bytes of s (len bytes), not cutting a UTF-8 character, as
 * a JSON string. */
static json_t *cut_text(const char *s, size_t len, size_t max)
{
	if (!s)
		return json_null();
	if (len > max) {
		len = max;
		while (len && ((unsigned char)s[len] & 0xC0) == 0x80)
			len--;
	}
	json_t *v = json_stringn(s, len);
	/* Not UTF-8: say so rather than lose the field. */
	return v ? v : json_string("(not UTF-8 text)");
}

static json_t *iso_time(int64_t ms)
{
	char when[40];
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + strlen(when), sizeof(when) - strlen(when), ".%03dZ",
		 (int)(ms % 1000));
	return json_string(when);
}

/* Dumps o (taken) as the answer's text. */
static char *dump(json_t *o)
{
	char *s =
	    o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
	json_decref(o);
	return s;
}

static char *message(const char *key, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* {"key": "formatted text"} as JSON text. */
static char *message(const char *key, const char *fmt, ...)
{
	char text[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return dump(json_pack("{s:s}", key, text));
}

/* ---- the history ---- */

static void sample_tick(struct hop_loop *loop, void *arg);

static void take_sample(struct hop_console *k)
{
	const struct hop_stats_stage *st = NULL;
	const struct hop_stats *s = k->view.stats;
	int n;

	k->view.refresh(k->view.arg);
	n = k->view.stages(k->view.arg, &st);
	if (n && !k->nstages) {
		k->stage_samples = calloc((size_t)SAMPLES * (size_t)n,
					  sizeof(*k->stage_samples));
		if (k->stage_samples)
			k->nstages = n;
	}
	unsigned i = (unsigned)(k->nsamples % SAMPLES);
	int64_t now = wall_ms();
	k->samples[i] =
	    (struct sample){now,     s->depth,	 s->inflight,	 s->done,
			    s->dead, s->workers, s->workers_busy};
	for (int j = 0; j < k->nstages && j < n; j++) {
		const struct hop_stats *ss = st[j].stats;
		k->stage_samples[i * (unsigned)k->nstages + (unsigned)j] =
		    (struct sample){
			now,	  ss->depth,   ss->inflight,	ss->done,
			ss->dead, ss->workers, ss->workers_busy};
	}
	k->nsamples++;
}

static void sample_tick(struct hop_loop *loop, void *arg)
{
	struct hop_console *k = arg;
	take_sample(k);
	k->timer = hop_loop_after(loop, SAMPLE_MS, sample_tick, k);
}

/* The series of one field over the samples kept, oldest first; a rate
 * per second from the counter's steps when rate is set. */
static json_t *series(const struct hop_console *k, int stage, bool rate,
		      int64_t (*get)(const struct sample *))
{
	json_t *a = json_array();
	uint64_t n = k->nsamples < SAMPLES ? k->nsamples : SAMPLES;
	uint64_t first = k->nsamples - n;
	const struct sample *prev = NULL;

	for (uint64_t i = first; a && i < k->nsamples; i++) {
		unsigned at = (unsigned)(i % SAMPLES);
		const struct sample *s =
		    stage < 0 ? &k->samples[at]
			      : &k->stage_samples[at * (unsigned)k->nstages +
						  (unsigned)stage];
		if (!rate) {
			int64_t v = get(s);
			json_array_append_new(a, v >= 0 ? json_integer(v)
							: json_null());
		} else if (prev && s->at_ms > prev->at_ms) {
			double r = (double)(get(s) - get(prev)) * 1000 /
				   (double)(s->at_ms - prev->at_ms);
			json_array_append_new(a, json_real(round(r * 10) / 10));
		} else {
			json_array_append_new(a, json_real(0));
		}
		prev = s;
	}
	return a;
}

static int64_t get_depth(const struct sample *s)
{
	return s->depth;
}
static int64_t get_inflight(const struct sample *s)
{
	return s->inflight;
}
static int64_t get_done(const struct sample *s)
{
	return (int64_t)s->done;
}
static int64_t get_dead(const struct sample *s)
{
	return (int64_t)s->dead;
}
static int64_t get_at(const struct sample *s)
{
	return s->at_ms;
}

char *hop_console_history(struct hop_console *k)
{
	const struct hop_stats_stage *st = NULL;
	int n = k->view.stages(k->view.arg, &st);
	json_t *stages = json_array();

	for (int j = 0; j < k->nstages && j < n; j++)
		json_array_append_new(
		    stages,
		    json_pack("{s:s, s:i, s:o, s:o, s:o}", "name", st[j].name,
			      "shard", st[j].shard, "depth",
			      series(k, j, false, get_depth), "in_flight",
			      series(k, j, false, get_inflight), "rate",
			      series(k, j, true, get_done)));
	return dump(json_pack("{s:i, s:o, s:o, s:o, s:o, s:o, s:o}",
			      "interval_ms", SAMPLE_MS, "at",
			      series(k, -1, false, get_at), "depth",
			      series(k, -1, false, get_depth), "in_flight",
			      series(k, -1, false, get_inflight), "rate",
			      series(k, -1, true, get_done), "dead_rate",
			      series(k, -1, true, get_dead), "stages", stages));
}

/* ---- failures ---- */

static void free_failure(struct failure *f)
{
	free(f->stage);
	free(f->id);
	free(f->error);
	free(f->stderr_tail);
	free(f->payload);
	memset(f, 0, sizeof(*f));
}

static char *dup_cut(const char *s, size_t len, size_t max)
{
	if (!s)
		return NULL;
	return strndup(s, len < max ? len : max + 4); /* cut_text cuts */
}

void hop_console_failure(struct hop_console *k, const char *stage,
			 const struct hop_item *it, bool final)
{
	struct failure *f = &k->failures[k->nfailures++ % FAILURES];
	const char *tail = it->stderr_tail;

	free_failure(f);
	/* A stderr tail ends with its last lines: keep those. */
	if (tail && strlen(tail) > CUT_BYTES)
		tail += strlen(tail) - CUT_BYTES;
	*f = (struct failure){
	    .at_ms = wall_ms(),
	    .stage = strdup(stage ? stage : ""),
	    .id = strdup(it->id),
	    .error = dup_cut(it->error, it->error ? strlen(it->error) : 0,
			     CUT_BYTES),
	    .stderr_tail = tail ? strdup(tail) : NULL,
	    .payload = dup_cut(it->payload, it->payload_len, CUT_BYTES),
	    .payload_len = it->payload_len,
	    .attempt = it->attempt,
	    .final = final,
	};
}

char *hop_console_failures(struct hop_console *k)
{
	json_t *a = json_array();
	uint64_t n = k->nfailures < FAILURES ? k->nfailures : FAILURES;

	for (uint64_t i = 1; a && i <= n; i++) {
		const struct failure *f =
		    &k->failures[(k->nfailures - i) % FAILURES];
		json_array_append_new(
		    a,
		    json_pack(
			"{s:o, s:s, s:s?, s:o, s:i, s:o, s:o, s:I, s:b, s:b}",
			"at", iso_time(f->at_ms), "stage",
			f->stage ? f->stage : "", "id", f->id, "error",
			cut_text(f->error, f->error ? strlen(f->error) : 0,
				 CUT_BYTES),
			"attempt", f->attempt, "stderr",
			cut_text(f->stderr_tail,
				 f->stderr_tail ? strlen(f->stderr_tail) : 0,
				 CUT_BYTES),
			"payload",
			cut_text(f->payload,
				 f->payload ? strlen(f->payload) : 0,
				 CUT_BYTES),
			"payload_bytes", (json_int_t)f->payload_len,
			"payload_cut", f->payload_len > CUT_BYTES, "final",
			f->final));
	}
	return dump(json_pack("{s:I, s:o}", "count", (json_int_t)k->nfailures,
			      "failures", a));
}

/* ---- the state ---- */

static const struct hop_stage_config *stage_cfg(const struct hop_config *cfg,
						int i)
{
	return i < cfg->nstages ? &cfg->stages[i] : NULL;
}

/* The node of target t: "stage:NAME" (a config stage) or "sink:NAME". */
static json_t *target_node(const struct hop_config *cfg,
			   const struct hop_target *t)
{
	char node[200];
	if (t->sink)
		snprintf(node, sizeof(node), "sink:%s",
			 cfg->nsinks ? cfg->sink_names[t->index] : "main");
	else
		snprintf(node, sizeof(node), "stage:%s",
			 stage_cfg(cfg, t->index)
			     ? stage_cfg(cfg, t->index)->name
			     : "main");
	return json_string(node);
}

static void add_edges(json_t *edges, const struct hop_config *cfg,
		      const char *from, const struct hop_route *routes, int n)
{
	for (int i = 0; i < n; i++)
		for (int t = 0; t < routes[i].nto; t++)
			json_array_append_new(
			    edges,
			    json_pack("{s:s, s:o, s:s?}", "from", from, "to",
				      target_node(cfg, &routes[i].to[t]),
				      "port", routes[i].port));
}

static json_t *command_of(const struct hop_stage_config *c)
{
	if (c->shell_command)
		return json_string(c->shell_command);
	json_t *a = json_array();
	for (char **p = c->argv; p && *p; p++)
		json_array_append_new(a, json_string(*p));
	return a;
}

/* The pipeline as configured: its stages with their settings, and the
 * edges between sources, stages and sinks. */
static json_t *configuration(struct hop_console *k)
{
	const struct hop_config *cfg = k->view.cfg;
	json_t *edges = json_array(), *stages = json_array();
	json_t *sources = json_array(), *sinks = json_array();
	int nsrc = cfg->nsources ? cfg->nsources : 1;
	int nsink = cfg->nsinks ? cfg->nsinks : 1;
	char from[200];

	for (int i = 0; i < nsrc; i++) {
		const char *name =
		    cfg->nsources ? cfg->source_names[i] : "main";
		struct hop_source *s =
		    cfg->nsources ? cfg->sources[i] : cfg->source;
		json_array_append_new(
		    sources,
		    json_pack("{s:s, s:s, s:s, s:b, s:b}", "name", name,
			      "label", s->label, "driver", s->ops->name,
			      "dead_letters", hop_dead_supported(s), "actions",
			      hop_dead_live(s)));
		snprintf(from, sizeof(from), "source:%s", name);
		if (cfg->nsources)
			add_edges(edges, cfg, from, &cfg->source_routes[i], 1);
		else
			json_array_append_new(
			    edges, json_pack("{s:s, s:s}", "from", from, "to",
					     "stage:main"));
	}
	for (int i = 0; i < nsink; i++) {
		struct hop_sink *s = cfg->nsinks ? cfg->sinks[i] : cfg->sink;
		json_array_append_new(
		    sinks, json_pack("{s:s, s:s}", "name",
				     cfg->nsinks ? cfg->sink_names[i] : "main",
				     "label", s->label));
	}
	const struct hop_stats_stage *views = NULL;
	int n = k->view.stages(k->view.arg, &views);
	const struct hop_stage_config *last = NULL;
	for (int i = 0; i < n; i++) {
		struct hop_stage *st = k->view.stage(k->view.arg, i);
		const struct hop_stage_config *c = st ? st->cfg : NULL;
		if (!c || c == last)
			continue; /* a sharder's shards share one */
		last = c;
		snprintf(from, sizeof(from), "stage:%s", c->name);
		if (cfg->nstages)
			add_edges(edges, cfg, from, c->routes, c->nroutes);
		else
			json_array_append_new(
			    edges, json_pack("{s:s, s:s}", "from", from, "to",
					     "sink:main"));
		json_array_append_new(
		    stages,
		    json_pack("{s:s, s:o, s:s, s:I, s:I, s:I, s:b, s:I, s:I,"
			      " s:f, s:f, s:I, s:s?, s:b, s:b}",
			      "name", c->name, "command", command_of(c), "mode",
			      c->mode ? c->mode : "stream", "workers",
			      (json_int_t)c->workers, "min_workers",
			      (json_int_t)c->min_workers, "max_workers",
			      (json_int_t)c->max_workers, "autoscale",
			      c->autoscale, "attempts", (json_int_t)c->attempts,
			      "prefetch", (json_int_t)c->prefetch, "timeout",
			      c->timeout, "backoff", c->backoff, "shards",
			      (json_int_t)c->shards, "key", c->key, "join",
			      c->join != NULL, "reduce", c->reduce != NULL));
	}
	return json_pack("{s:o, s:o, s:o, s:o, s:b, s:s?, s:s?, s:I, s:f}",
			 "sources", sources, "sinks", sinks, "stages", stages,
			 "edges", edges, "watch", cfg->watch, "listen",
			 cfg->listen, "journal", cfg->journal, "max_line",
			 (json_int_t)cfg->max_line, "grace", cfg->grace);
}

/* Each worker slot of st, with what it works on and for how long. */
static void add_workers(json_t *a, const struct hop_stage *st, int64_t now)
{
	int n = st->pool ? hop_pool_size(st->pool) : 0;
	for (int i = 0; i < n; i++) {
		struct hop_pool_slot sl;
		hop_pool_slot(st->pool, i, &sl);
		if (!strcmp(sl.state, "down"))
			continue;
		json_t *w = json_pack("{s:s, s:i, s:s, s:i, s:i}", "stage",
				      st->name, "slot", i, "state", sl.state,
				      "pid", sl.pid, "held", sl.held);
		if (sl.item) {
			json_object_set_new(w, "item",
					    json_string(sl.item->id));
			json_object_set_new(w, "attempt",
					    json_integer(sl.item->attempt));
			json_object_set_new(
			    w, "running_ms",
			    json_integer(sl.item->started_ms
					     ? now - sl.item->started_ms
					     : 0));
		}
		json_array_append_new(a, w);
	}
}

/* The rate of stage j from the last samples: items per second over the
 * last ten seconds; null before two samples. */
static json_t *recent_rate(const struct hop_console *k, int stage)
{
	uint64_t n = k->nsamples < 11 ? k->nsamples : 11;
	if (n < 2 || (stage >= 0 && stage >= k->nstages))
		return json_null();
	unsigned a = (unsigned)((k->nsamples - n) % SAMPLES);
	unsigned b = (unsigned)((k->nsamples - 1) % SAMPLES);
	const struct sample *x, *y;
	if (stage < 0) {
		x = &k->samples[a];
		y = &k->samples[b];
	} else {
		x = &k->stage_samples[a * (unsigned)k->nstages +
				      (unsigned)stage];
		y = &k->stage_samples[b * (unsigned)k->nstages +
				      (unsigned)stage];
	}
	if (y->at_ms <= x->at_ms)
		return json_null();
	double r =
	    (double)(y->done - x->done) * 1000 / (double)(y->at_ms - x->at_ms);
	return json_real(round(r * 10) / 10);
}

char *hop_console_state(struct hop_console *k)
{
	const struct hop_stats *s = k->view.stats;
	const struct hop_stats_stage *views = NULL;
	int64_t now = hop_now_ms();
	json_t *stages = json_array(), *workers = json_array();
	char why[256] = "";

	k->view.refresh(k->view.arg);
	int n = k->view.stages(k->view.arg, &views);
	for (int i = 0; i < n; i++) {
		const struct hop_stats *ss = views[i].stats;
		struct hop_stage *st = k->view.stage(k->view.arg, i);
		int slots = st && st->pool ? hop_pool_size(st->pool) : 0;
		json_array_append_new(
		    stages,
		    json_pack(
			"{s:s, s:s, s:i, s:i, s:s, s:I, s:I, s:I, s:i,"
			" s:i, s:i, s:i, s:i, s:i, s:b, s:b, s:o, s:I,"
			" s:I, s:I, s:I}",
			"name", views[i].name, "stage",
			st ? st->cfg->name : views[i].name, "shard",
			views[i].shard, "shards", views[i].shards, "mode",
			views[i].mode, "depth", (json_int_t)ss->depth,
			"in_flight", (json_int_t)ss->inflight, "blocked",
			(json_int_t)ss->held, "workers", ss->workers, "busy",
			ss->workers_busy, "idle",
			ss->workers - ss->workers_busy, "desired",
			ss->workers_desired, "max", st ? hop_stage_max(st) : 0,
			"slots", slots, "paused", st && st->paused, "autoscale",
			st && st->scaler_on, "rate", recent_rate(k, i), "done",
			(json_int_t)ss->done, "dead", (json_int_t)ss->dead,
			"retried", (json_int_t)ss->retries, "dropped",
			(json_int_t)ss->dropped));
		if (st)
			add_workers(workers, st, now);
	}
	bool ready = k->view.ready(k->view.arg, why, sizeof(why));
	json_t *o = json_pack(
	    "{s:b, s:s?, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:i,"
	    " s:o, s:b, s:o, s:o, s:o}",
	    "ready", ready, "not_ready", ready ? NULL : why, "uptime_seconds",
	    json_real(round((double)(now - s->started_ms) / 100) / 10), "done",
	    (json_int_t)s->done, "dead", (json_int_t)s->dead, "retried",
	    (json_int_t)s->retries, "fetched", (json_int_t)s->fetched, "total",
	    (json_int_t)s->total, "depth", (json_int_t)s->depth, "in_flight",
	    (json_int_t)s->inflight, "workers", s->workers, "busy",
	    s->workers_busy, "rate", recent_rate(k, -1), "admin",
	    k->token != NULL, "stages", stages, "workers_now", workers,
	    "config", configuration(k));
	if (!s->started_ms)
		json_object_set_new(o, "uptime_seconds", json_null());
	return dump(o);
}

/* ---- stage actions ---- */

unsigned hop_console_stage_action(struct hop_console *k, const char *action,
				  const char *name, const char *value,
				  char **body)
{
	const struct hop_stats_stage *views = NULL;
	int n = k->view.stages(k->view.arg, &views), hits = 0;
	char err[512] = "";
	long max = 0;

	if (!name) {
		*body = message("error", "name the stage: ?stage=NAME");
		return 400;
	}
	if (!strcmp(action, "max")) {
		char *end;
		max = value ? strtol(value, &end, 10) : 0;
		if (!value || !*value || *end || max < 1 || max > 100000) {
			*body = message("error",
					"workers: expected a whole number of "
					"at least 1, got '%.40s'",
					value ? value : "");
			return 400;
		}
	}
	/* A stage's name takes in all its shards; "name[2]" one of them. */
	for (int i = 0; i < n; i++) {
		struct hop_stage *st = k->view.stage(k->view.arg, i);
		if (!st ||
		    (strcmp(st->name, name) && strcmp(st->cfg->name, name)))
			continue;
		hits++;
		if (hop_stage_bare(st)) {
			/* A join or a reduce hands nothing to workers. */
			*body = message("error",
					"stage %s runs no worker: nothing to "
					"%s",
					st->name, action);
			return 409;
		}
		if (!strcmp(action, "pause")) {
			if (!st->paused)
				hop_log(HOP_INFO,
					"stage %s: paused from the console",
					st->name);
			st->paused = true;
		} else if (!strcmp(action, "resume")) {
			if (st->paused)
				hop_log(HOP_INFO,
					"stage %s: resumed from the console",
					st->name);
			st->paused = false;
		} else if (hop_stage_set_max(st, (int)max, hop_now_ms(), err,
					     sizeof(err))) {
			*body = message("error", "%s", err);
			return 409;
		} else {
			hop_log(HOP_INFO,
				"stage %s: most workers set to %ld from the "
				"console",
				st->name, max);
		}
	}
	if (!hits) {
		*body = message("error", "no stage '%.200s'", name);
		return 404;
	}
	k->view.kick(k->view.arg);
	*body = dump(json_pack("{s:s, s:s, s:i}", "stage", name, "done", action,
			       "stages", hits));
	return 200;
}

/* ---- dead letters, on the thread ---- */

static int source_index(const struct hop_console *k, const char *name)
{
	if (!name || !*name)
		return 0;
	for (int i = 0; i < k->nplaces; i++)
		if (!strcmp(k->places[i].name, name))
			return i;
	return -1;
}

/* Adds one dead letter to the page being listed. */
static int list_one(void *arg, const struct hop_dead_letter *l)
{
	json_t *a = arg;
	size_t plen = l->payload ? strlen(l->payload) : 0;
	json_t *rec = l->record ? json_loads(l->record, 0, NULL) : NULL;
	const char *stderr_text =
	    json_string_value(json_object_get(rec, "stderr"));
	const char *stage = json_string_value(json_object_get(rec, "stage"));
	json_t *o = json_pack(
	    "{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:I, s:b, s:s?}", "id", l->id,
	    "item", l->item ? l->item : l->id, "error",
	    cut_text(l->error, l->error ? strlen(l->error) : 0, CUT_BYTES),
	    "attempts",
	    l->attempts >= 0 ? json_integer(l->attempts) : json_null(), "when",
	    l->when ? json_string(l->when) : json_null(), "stderr",
	    cut_text(stderr_text, stderr_text ? strlen(stderr_text) : 0,
		     CUT_BYTES),
	    "payload", cut_text(l->payload, plen, CUT_BYTES), "payload_bytes",
	    (json_int_t)plen, "payload_cut", plen > CUT_BYTES, "stage", stage);
	json_decref(rec);
	if (!o)
		return -ENOMEM;
	return json_array_append_new(a, o) ? -ENOMEM : 0;
}

/* Does one job on the thread, on the source's own instance. */
static void run_job(struct hop_console *k, struct hop_console_job *job)
{
	struct place *p = &k->places[job->source];
	char err[1024] = "";
	int rc = hop_dead_place_open(p->own, err, sizeof(err));

	if (rc) {
		job->status = 502;
		job->body = message("error", "%s", err);
		return;
	}
	if (job->kind == HOP_JOB_LIST) {
		json_t *a = json_array();
		size_t total = 0;
		rc = hop_dead_page(p->own, job->offset, job->limit, list_one, a,
				   &total, err, sizeof(err));
		if (rc) {
			json_decref(a);
			job->status = 502;
			job->body = message("error", "%s", err);
		} else {
			job->status = 200;
			job->body = dump(json_pack(
			    "{s:s, s:I, s:I, s:I, s:o}", "source", p->name,
			    "total", (json_int_t)total, "offset",
			    (json_int_t)job->offset, "limit",
			    (json_int_t)job->limit, "letters", a));
		}
	} else {
		enum hop_dead_action act = job->kind == HOP_JOB_RETRY
					       ? HOP_DEAD_RETRY
					       : HOP_DEAD_DISCARD;
		rc = hop_dead_apply(p->own, act, job->id, NULL, err,
				    sizeof(err));
		if (rc) {
			job->status = rc == -ENOENT ? 404 : 502;
			job->body = message("error", "%s", err);
		} else {
			job->status = 200;
			job->body = dump(json_pack(
			    "{s:s, s:s, s:s}", "source", p->name, "id", job->id,
			    "done",
			    act == HOP_DEAD_RETRY ? "retried" : "discarded"));
		}
	}
	hop_dead_place_close(p->own);
}

static void *dead_thread(void *arg)
{
	struct hop_console *k = arg;
	uint64_t one = 1;

	pthread_mutex_lock(&k->mu);
	for (;;) {
		while (!k->todo && !k->quit)
			pthread_cond_wait(&k->cv, &k->mu);
		if (k->quit)
			break;
		struct hop_console_job *job = k->todo;
		k->todo = job->next;
		if (!k->todo)
			k->todo_tail = NULL;
		pthread_mutex_unlock(&k->mu);
		run_job(k, job);
		pthread_mutex_lock(&k->mu);
		job->next = k->done;
		k->done = job;
		if (write(k->efd, &one, sizeof(one)) < 0) {
			/* The counter is far from full: cannot happen. */
		}
	}
	pthread_mutex_unlock(&k->mu);
	return NULL;
}

/* Tells the running source that job retried one of its dead letters,
 * unless the run is over (its source closed). */
static void tell_retried(struct hop_console *k, struct hop_console_job *job)
{
	struct hop_source *src = k->places[job->source].run;
	if (k->closing || job->kind != HOP_JOB_RETRY || job->status != 200)
		return;
	if (src->ops->dead_retried)
		src->ops->dead_retried(src, job->id);
	/* A finite run gives one item more than it counted at its start. */
	if (k->view.stats->total >= 0)
		k->view.stats->total++;
}

/* Hands the jobs the thread finished back on the loop, oldest first. */
static void deliver(struct hop_console *k)
{
	pthread_mutex_lock(&k->mu);
	struct hop_console_job *list = k->done, *rev = NULL;
	k->done = NULL;
	pthread_mutex_unlock(&k->mu);
	while (list) {
		struct hop_console_job *next = list->next;
		list->next = rev;
		rev = list;
		list = next;
	}
	while (rev) {
		struct hop_console_job *next = rev->next;
		rev->next = NULL;
		tell_retried(k, rev);
		rev->done(rev->arg);
		rev = next;
	}
}

static void jobs_done(struct hop_loop *loop, int fd, uint32_t events, void *arg)
{
	uint64_t n;
	if (read(fd, &n, sizeof(n)) < 0) {
		/* EAGAIN: another read took it; deliver anyway. */
	}
	deliver(arg);
}

struct hop_console_job *hop_console_dead(struct hop_console *k,
					 enum hop_console_job_kind kind,
					 const char *source, const char *id,
					 size_t offset, size_t limit,
					 hop_console_done_fn done, void *arg,
					 unsigned *status, char **body)
{
	int i = source_index(k, source);

	if (i < 0) {
		*status = 404;
		*body = message("error", "no source '%.200s'", source);
		return NULL;
	}
	struct place *p = &k->places[i];
	if (!p->own) {
		*status = 409;
		*body = message("error",
				"%s: the %s source has no dead letters to "
				"manage",
				p->run->label, p->run->ops->name);
		return NULL;
	}
	if (kind != HOP_JOB_LIST && !hop_dead_live(p->run)) {
		*status = 409;
		*body = message("error",
				"%s: the %s source's dead letters cannot be "
				"changed while it runs: use hopper dead after "
				"the run",
				p->run->label, p->run->ops->name);
		return NULL;
	}
	if (kind != HOP_JOB_LIST && (!id || !*id)) {
		*status = 400;
		*body = message("error", "name the dead letter: ?id=ID");
		return NULL;
	}
	if (!k->thread_on) {
		*status = 503;
		*body = message("error", "the console cannot read dead "
					 "letters: no thread");
		return NULL;
	}
	struct hop_console_job *job = calloc(1, sizeof(*job));
	if (!job || (id && !(job->id = strdup(id)))) {
		free(job);
		*status = 500;
		*body = message("error", "out of memory");
		return NULL;
	}
	job->kind = kind;
	job->source = i;
	job->offset = offset;
	job->limit = limit < 1 ? 1 : limit > PAGE_MAX ? PAGE_MAX : limit;
	job->done = done;
	job->arg = arg;
	pthread_mutex_lock(&k->mu);
	if (k->todo_tail)
		k->todo_tail->next = job;
	else
		k->todo = job;
	k->todo_tail = job;
	pthread_cond_signal(&k->cv);
	pthread_mutex_unlock(&k->mu);
	return job;
}

unsigned hop_console_job_answer(struct hop_console_job *job, char **body)
{
	*body = job->body;
	job->body = NULL;
	return job->status;
}

void hop_console_job_free(struct hop_console_job *job)
{
	if (!job)
		return;
	free(job->id);
	free(job->body);
	free(job);
}

/* ---- making and freeing ---- */

/* A second instance of src, with the same options, never opened: the
 * thread's, for its dead letters. NULL when memory ran out. */
static struct hop_source *clone_source(const struct hop_source *src)
{
	struct hop_source *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->ops = src->ops;
	c->label = strdup(src->label);
	c->ctx = calloc(1, src->ops->ctx_size ? src->ops->ctx_size : 1);
	c->max_line = src->max_line;
	c->watch = src->watch;
	if (!c->label || !c->ctx)
		goto fail;
	for (const struct hop_option *o = src->ops->options; o && o->key; o++) {
		const char *from = (const char *)src->ctx + o->offset;
		char *to = (char *)c->ctx + o->offset;
		switch (o->type) {
		case HOP_OPT_STR: {
			const char *s = *(char *const *)from;
			if (s && !(*(char **)to = strdup(s)))
				goto fail;
			break;
		}
		case HOP_OPT_BOOL:
			memcpy(to, from, sizeof(bool));
			break;
		case HOP_OPT_SECONDS:
			memcpy(to, from, sizeof(double));
			break;
		default: /* INT, SIZE */
			memcpy(to, from, sizeof(int64_t));
			break;
		}
	}
	return c;
fail:
	hop_source_free(c);
	return NULL;
}

static int make_places(struct hop_console *k)
{
	const struct hop_config *cfg = k->view.cfg;
	int n = cfg->nsources ? cfg->nsources : 1;

	k->places = calloc((size_t)n, sizeof(*k->places));
	if (!k->places)
		return -ENOMEM;
	k->nplaces = n;
	for (int i = 0; i < n; i++) {
		struct place *p = &k->places[i];
		p->name = cfg->nsources ? cfg->source_names[i] : "main";
		p->run = cfg->nsources ? cfg->sources[i] : cfg->source;
		if (hop_dead_supported(p->run) &&
		    !(p->own = clone_source(p->run)))
			return -ENOMEM;
	}
	return 0;
}

struct hop_console *hop_console_new(struct hop_loop *loop,
				    const struct hop_http_view *view,
				    const char *token_file, char *err,
				    size_t errlen)
{
	struct hop_console *k = calloc(1, sizeof(*k));

	if (!k) {
		snprintf(err, errlen, "console: out of memory");
		return NULL;
	}
	k->loop = loop;
	k->view = *view;
	k->efd = -1;
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->cv, NULL);
	if (token_file && read_token(token_file, &k->token, err, errlen))
		goto fail;
	if (make_places(k)) {
		snprintf(err, errlen, "console: out of memory");
		goto fail;
	}
	k->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (k->efd < 0 || hop_loop_watch(loop, k->efd, EPOLLIN, jobs_done, k)) {
		snprintf(err, errlen, "console: cannot make an eventfd: %s",
			 strerror(errno));
		goto fail;
	}
	if (pthread_create(&k->thread, NULL, dead_thread, k)) {
		snprintf(err, errlen, "console: cannot start a thread");
		goto fail;
	}
	k->thread_on = true;
	k->timer = hop_loop_after(loop, SAMPLE_MS, sample_tick, k);
	return k;
fail:
	hop_console_free(k);
	return NULL;
}

void hop_console_free(struct hop_console *k)
{
	if (!k)
		return;
	hop_loop_cancel(k->loop, k->timer);
	k->closing = true;
	if (k->thread_on) {
		pthread_mutex_lock(&k->mu);
		k->quit = true;
		pthread_cond_signal(&k->cv);
		pthread_mutex_unlock(&k->mu);
		pthread_join(k->thread, NULL);
	}
	/* What the thread never took is answered so; then all goes back. */
	for (struct hop_console_job *j = k->todo, *next; j; j = next) {
		next = j->next;
		j->status = 503;
		j->body = message("error", "hopper is stopping");
		j->next = k->done;
		k->done = j;
	}
	k->todo = k->todo_tail = NULL;
	deliver(k);
	if (k->efd >= 0) {
		hop_loop_unwatch(k->loop, k->efd);
		close(k->efd);
	}
	for (int i = 0; i < k->nplaces; i++)
		hop_source_free(k->places[i].own);
	free(k->places);
	for (int i = 0; i < FAILURES; i++)
		free_failure(&k->failures[i]);
	free(k->stage_samples);
	free(k->token);
	pthread_mutex_destroy(&k->mu);
	pthread_cond_destroy(&k->cv);
	free(k);
}
