/* console.c - the web console's state, history, failures, actions and
 * dead-letter jobs (see console.h). */
#include "console.h"

#include <errno.h>
#include <stdarg.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dead.h"
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

json_t *hop_console_text(const char *s, size_t len, size_t max)
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

char *hop_console_dump(json_t *o)
{
	char *s =
	    o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
	json_decref(o);
	return s;
}

char *hop_console_message(const char *key, const char *fmt, ...)
{
	char text[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return hop_console_dump(json_pack("{s:s}", key, text));
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
	return hop_console_dump(
	    json_pack("{s:i, s:o, s:o, s:o, s:o, s:o, s:o}", "interval_ms",
		      SAMPLE_MS, "at", series(k, -1, false, get_at), "depth",
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
			hop_console_text(f->error,
					 f->error ? strlen(f->error) : 0,
					 CUT_BYTES),
			"attempt", f->attempt, "stderr",
			hop_console_text(f->stderr_tail,
					 f->stderr_tail ? strlen(f->stderr_tail)
							: 0,
					 CUT_BYTES),
			"payload",
			hop_console_text(f->payload,
					 f->payload ? strlen(f->payload) : 0,
					 CUT_BYTES),
			"payload_bytes", (json_int_t)f->payload_len,
			"payload_cut", f->payload_len > CUT_BYTES, "final",
			f->final));
	}
	return hop_console_dump(json_pack(
	    "{s:I, s:o}", "count", (json_int_t)k->nfailures, "failures", a));
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
			" s:I, s:I, s:I, s:i}",
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
			(json_int_t)ss->dropped, "max_limit",
			HOP_POOL_MAX_SLOTS));
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
	return hop_console_dump(o);
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
		*body =
		    hop_console_message("error", "name the stage: ?stage=NAME");
		return 400;
	}
	if (!strcmp(action, "max")) {
		char *end;
		max = value ? strtol(value, &end, 10) : 0;
		if (!value || !*value || *end || max < 1 || max > 100000) {
			*body = hop_console_message(
			    "error",
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
			*body = hop_console_message(
			    "error",
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
			*body = hop_console_message("error", "%s", err);
			return 409;
		} else {
			hop_log(HOP_INFO,
				"stage %s: most workers set to %ld from the "
				"console",
				st->name, max);
		}
	}
	if (!hits) {
		*body = hop_console_message("error", "no stage '%.200s'", name);
		return 404;
	}
	k->view.kick(k->view.arg);
	*body = hop_console_dump(json_pack("{s:s, s:s, s:i}", "stage", name,
					   "done", action, "stages", hits));
	return 200;
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
	if (token_file && read_token(token_file, &k->token, err, errlen))
		goto fail;
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
	for (int i = 0; i < FAILURES; i++)
		free_failure(&k->failures[i]);
	free(k->stage_samples);
	free(k->token);
	free(k);
}
