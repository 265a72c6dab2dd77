/* http.c - the endpoints on libmicrohttpd, driven by hopper's own loop.
 *
 * Slow clients: a connection that sends a byte now and then is never idle
 * long enough for MHD's timeout, and enough of them would take every slot
 * and starve /healthz. So when every slot is taken, a new connection
 * closes the one that has waited longest for a request, in the manner of
 * nginx reusing its idle keep-alive connections: a probe's request, sent
 * at once, is answered however many clients trickle. A limit per address
 * would not do: a kubelet or Prometheus probes from one address, which
 * may be the slow clients' own.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "console.h"
#include "deadq.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "progress.h"

/* Connections served at once; a new one beyond closes the connection that
 * waited longest for a request. */
#define HTTP_CONNECTIONS 128
/* Room in MHD's own count for connections closed so and not yet reaped. */
#define HTTP_CLOSING 64
/* Seconds a connection may stay idle (a slow client) before it is closed. */
#define HTTP_IDLE_SECONDS 5
/* Memory per connection: headers past this get 431. */
#define HTTP_CONNECTION_MEMORY (32 * 1024)

/* A connection, as far as choosing one to close goes. */
struct conn {
	struct conn *prev, *next; /* in waiting while no request is served */
	struct MHD_Connection *c;
	bool closing; /* shut down here; MHD reaps it */
};

/* One request, from its headers to its end: a dead-letter job keeps the
 * connection suspended until the console's thread is done with it. */
struct req {
	struct hop_http *h;
	struct MHD_Connection *c;
	struct hop_deadq_job *job;
	bool job_done;
};

struct hop_http {
	struct hop_loop *loop;
	struct MHD_Daemon *d;
	struct hop_console *console;
	struct hop_deadq *deadq;
	int epfd;
	uint64_t timer;
	struct hop_http_view view;
	struct hop_rate rate;	/* for /status, measured at each request */
	struct hop_rate *rates; /* the same for each stage */
	int nrates;
	/* Connections waiting for a request (new or kept alive), the one
	 * waiting longest first. */
	struct conn *waiting, *waiting_tail;
	unsigned open;	 /* connections not closing */
	uint64_t closed; /* closed to make room, since the last warning */
	int64_t warned_ms;
};

/* Splits spec into host and port. Returns 0 or -EINVAL with err filled. */
static int split_address(const char *spec, char *host, size_t hostlen,
			 char *port, size_t portlen, char *err, size_t errlen)
{
	const char *p;
	size_t hl;

	if (spec[0] && strspn(spec, "0123456789") == strlen(spec)) {
		snprintf(host, hostlen, "127.0.0.1");
		p = spec;
		hl = 0;
	} else if (spec[0] == '[') {
		const char *close = strchr(spec, ']');
		if (!close || close[1] != ':')
			goto bad;
		hl = (size_t)(close - spec - 1);
		if (hl == 0 || hl >= hostlen)
			goto bad;
		memcpy(host, spec + 1, hl);
		host[hl] = '\0';
		p = close + 2;
	} else {
		const char *colon = strrchr(spec, ':');
		if (!colon || colon == spec || strchr(spec, ':') != colon)
			goto bad;
		hl = (size_t)(colon - spec);
		if (hl >= hostlen)
			goto bad;
		memcpy(host, spec, hl);
		host[hl] = '\0';
		p = colon + 1;
	}
	if (!*p || strspn(p, "0123456789") != strlen(p) || strlen(p) > 5 ||
	    atoi(p) > 65535 || strlen(p) >= portlen)
		goto bad;
	snprintf(port, portlen, "%s", p);
	return 0;
bad:
	snprintf(err, errlen,
		 "listen address '%s': expected HOST:PORT (127.0.0.1:9464, "
		 "0.0.0.0:9464, [::1]:9464) or a port",
		 spec);
	return -EINVAL;
}

int hop_http_check_address(const char *spec, char *err, size_t errlen)
{
	char host[256], port[8];
	return split_address(spec, host, sizeof(host), port, sizeof(port), err,
			     errlen);
}

/* Binds and listens on spec; returns the socket or -errno with err filled,
 * and the address actually bound (the port chosen for port 0) in bound. */
static int bind_address(const char *spec, char *bound, size_t boundlen,
			char *err, size_t errlen)
{
	char host[256], port[8];
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
			*res, *ai;
	int fd = -1, rc, e = 0;

	if (split_address(spec, host, sizeof(host), port, sizeof(port), err,
			  errlen))
		return -EINVAL;
	if ((rc = getaddrinfo(host, port, &hints, &res))) {
		snprintf(err, errlen, "cannot listen on %s: %s", spec,
			 gai_strerror(rc));
		return -EINVAL;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		int one = 1;
		fd = socket(ai->ai_family,
			    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			e = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, 64) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", spec,
			 strerror(e));
		return -e;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char name[INET6_ADDRSTRLEN] = "?";
	int bport = 0;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &s6->sin6_addr, name, sizeof(name));
			bport = ntohs(s6->sin6_port);
		} else {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &s4->sin_addr, name, sizeof(name));
			bport = ntohs(s4->sin_port);
		}
	}
	snprintf(bound, boundlen,
		 ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", name, bport);
	return fd;
}

/* The headers every answer carries: the console's page runs its own
 * script and style and nothing else, in no other site's frame. */
static void guard(struct MHD_Response *r)
{
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(
	    r, "Content-Security-Policy",
	    "default-src 'none'; script-src 'self'; style-src 'self'; "
	    "img-src 'self'; connect-src 'self'; base-uri 'none'; "
	    "form-action 'none'; frame-ancestors 'none'");
}

/* Queues a response whose body is body (taken over: freed by MHD); a 405
 * names the methods allowed (NULL: GET and HEAD). */
static enum MHD_Result reply_allow(struct MHD_Connection *c, unsigned status,
				   const char *type, char *body, size_t len,
				   const char *allowed)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	guard(r);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW,
					allowed ? allowed : "GET, HEAD");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status,
			     const char *type, char *body, size_t len)
{
	return reply_allow(c, status, type, body, len, NULL);
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status,
				  const char *fmt, ...)
{
	char *body = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&body, fmt, ap);
	va_end(ap);
	if (n < 0)
		return MHD_NO;
	return reply(c, status, "text/plain; charset=utf-8", body, (size_t)n);
}

static enum MHD_Result get_metrics(struct hop_http *h, struct MHD_Connection *c)
{
	char *body = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&body, &len);
	if (!f)
		return MHD_NO;
	const struct hop_stats_stage *stages = NULL;
	int n = h->view.stages(h->view.arg, &stages);
	int rc = hop_metrics_write(f, h->view.stats, stages, n, hop_now_ms());
	if (fclose(f) || rc) {
		free(body);
		return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				  "cannot render the metrics\n");
	}
	return reply(c, MHD_HTTP_OK, HOP_METRICS_CONTENT_TYPE, body, len);
}

static enum MHD_Result get_readyz(struct hop_http *h, struct MHD_Connection *c)
{
	char why[256] = "not ready";
	if (h->view.ready(h->view.arg, why, sizeof(why)))
		return reply_text(c, MHD_HTTP_OK, "ready\n");
	return reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready: %s\n",
			  why);
}

static json_t *maybe(int64_t v)
{
	return v >= 0 ? json_integer(v) : json_null();
}

static json_t *last_errors(const struct hop_stats *s)
{
	json_t *a = json_array();
	unsigned n = s->errors_next < HOP_STATS_ERRORS ? s->errors_next
						       : HOP_STATS_ERRORS;
	for (unsigned i = 1; i <= n; i++) {
		unsigned k = (s->errors_next - i) % HOP_STATS_ERRORS;
		char when[40];
		time_t t = (time_t)(s->errors[k].at_ms / 1000);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(when + strlen(when), sizeof(when) - strlen(when),
			 ".%03dZ", (int)(s->errors[k].at_ms % 1000));
		json_array_append_new(a, json_pack("{s:s, s:s}", "at", when,
						   "error", s->errors[k].text));
	}
	return a;
}

static json_t *pipeline(const struct hop_config *cfg)
{
	json_t *cmd = json_array();
	for (char **p = cfg->argv; p && *p; p++)
		json_array_append_new(cmd, json_string(*p));
	return json_pack("{s:s, s:s, s:o, s:s, s:I, s:b}", "source",
			 cfg->source->label, "sink", cfg->sink->label,
			 "command", cmd, "mode", cfg->mode, "workers",
			 (json_int_t)cfg->workers, "watch", cfg->watch);
}

/* A number rounded to tenths, as people read it (9.1, not
 * 9.1340000000000003). */
static json_t *tenths(double v)
{
	return json_real(round(v * 10) / 10);
}

/* The backlog: when the source told its total, the items neither finished
 * nor in hand (what the progress line counts down), else what the source
 * last reported. */
static json_t *depth(const struct hop_stats *s)
{
	if (s->total >= 0) {
		int64_t left = hop_progress_remaining(s) - s->inflight;
		return json_integer(left > 0 ? left : 0);
	}
	return maybe(s->depth);
}

/* The rate and time left, as the progress line shows them: "rate" in items
 * per second, "eta" as M:SS and "eta_seconds"; null while unknown. */
static void add_speed(struct hop_http *h, json_t *o)
{
	const struct hop_stats *s = h->view.stats;
	double rate = hop_rate_update(&h->rate, s, hop_now_ms());
	char eta[32];
	double secs =
	    hop_progress_eta(eta, sizeof(eta), hop_progress_remaining(s), rate);
	json_object_set_new(o, "rate", rate >= 0 ? tenths(rate) : json_null());
	json_object_set_new(o, "eta",
			    secs >= 0 ? json_string(eta) : json_null());
	json_object_set_new(o, "eta_seconds",
			    secs >= 0 ? json_integer((json_int_t)(secs + 0.5))
				      : json_null());
}

/* The rate of items finished by stage i of n, as /status gives it (the
 * mean since the run started, then an average over the last seconds): null
 * before the run starts, or when memory ran out. */
static json_t *stage_rate(struct hop_http *h, int i, int n,
			  const struct hop_stats *s)
{
	if (n > h->nrates) {
		struct hop_rate *more =
		    realloc(h->rates, (size_t)n * sizeof(*more));
		if (!more)
			return json_null();
		memset(more + h->nrates, 0,
		       (size_t)(n - h->nrates) * sizeof(*more));
		h->rates = more;
		h->nrates = n;
	}
	if (!s->started_ms)
		return json_null(); /* the run has not started */
	if (!h->rates[i].last_ms)
		hop_rate_init(&h->rates[i], s->started_ms);
	double rate = hop_rate_update(&h->rates[i], s, hop_now_ms());
	return rate >= 0 ? tenths(rate) : json_null();
}

/* Stage i of the n in st, as /status shows it. */
static json_t *stage_status(struct hop_http *h,
			    const struct hop_stats_stage *st, int i, int n)
{
	const struct hop_stats *s = st[i].stats;
	json_t *shard =
	    st[i].shards > 1 ? json_integer(st[i].shard) : json_null();
	json_t *workers =
	    json_pack("{s:i, s:i, s:i, s:I, s:I}", "live", s->workers, "busy",
		      s->workers_busy, "desired", s->workers_desired, "starts",
		      (json_int_t)s->worker_starts, "restarts",
		      (json_int_t)s->worker_restarts);
	json_t *items = json_pack(
	    "{s:I, s:I, s:I, s:I}", "done", (json_int_t)s->done, "failed",
	    (json_int_t)s->dead, "retried", (json_int_t)s->retries, "dropped",
	    (json_int_t)s->dropped);
	json_t *gather = json_pack(
	    "{s:I, s:I, s:I, s:I}", "groups", (json_int_t)s->groups, "gathered",
	    (json_int_t)s->gathered, "late", (json_int_t)s->late, "duplicates",
	    (json_int_t)s->duplicates);
	return json_pack("{s:s, s:o, s:i, s:s, s:o, s:I, s:I, s:o, s:o, s:I,"
			 " s:o, s:o}",
			 "name", st[i].name, "shard", shard, "shards",
			 st[i].shards, "mode", st[i].mode, "depth",
			 maybe(s->depth), "in_flight", (json_int_t)s->inflight,
			 "blocked", (json_int_t)s->held, "workers", workers,
			 "items", items, "timeouts", (json_int_t)s->timeouts,
			 "rate", stage_rate(h, i, n, s), "gather", gather);
}

/* The stages, in the pipeline's order, a sharder's shards side by side. */
static json_t *stages(struct hop_http *h)
{
	const struct hop_stats_stage *st = NULL;
	int n = h->view.stages(h->view.arg, &st);
	json_t *a = json_array();
	for (int i = 0; a && i < n; i++)
		json_array_append_new(a, stage_status(h, st, i, n));
	return a;
}

static enum MHD_Result get_status(struct hop_http *h, struct MHD_Connection *c)
{
	const struct hop_stats *s = h->view.stats;
	char why[256] = "";
	bool ready = h->view.ready(h->view.arg, why, sizeof(why));
	json_t *o = json_pack(
	    "{s:o, s:b, s:s?, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:o},"
	    " s:{s:i, s:i, s:i, s:I, s:I, s:I},"
	    " s:o, s:I, s:{s:I, s:I, s:I}, s:{s:I, s:I}, s:o}",
	    "pipeline", pipeline(h->view.cfg), "ready", ready, "not_ready",
	    ready ? NULL : why, "uptime_seconds",
	    tenths((double)(hop_now_ms() - s->started_ms) / 1000), "items",
	    "done", (json_int_t)s->done, "dead", (json_int_t)s->dead, "retried",
	    (json_int_t)s->retries, "released", (json_int_t)s->released,
	    "dropped", (json_int_t)s->dropped, "fetched",
	    (json_int_t)s->fetched, "total", maybe(s->total), "workers", "live",
	    s->workers, "busy", s->workers_busy, "desired", s->workers_desired,
	    "starts", (json_int_t)s->worker_starts, "restarts",
	    (json_int_t)s->worker_restarts, "timeouts", (json_int_t)s->timeouts,
	    "depth", depth(s), "in_flight", (json_int_t)s->inflight, "errors",
	    "source", (json_int_t)s->source_errors, "sink",
	    (json_int_t)s->sink_errors, "count", (json_int_t)s->errors_next,
	    "scale_events", "up", (json_int_t)s->scale_ups, "down",
	    (json_int_t)s->scale_downs, "last_errors", last_errors(s));
	if (o) {
		add_speed(h, o);
		json_object_set_new(o, "stages", stages(h));
	}
	/* Ten digits print a rounded number as it was rounded. */
	char *body =
	    o ? json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) : NULL;
	json_decref(o);
	if (!body)
		return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				  "cannot render the status\n");
	size_t len = strlen(body);
	/* One more byte for a final newline, as curl users expect. */
	char *nl = realloc(body, len + 2);
	if (nl) {
		body = nl;
		body[len++] = '\n';
		body[len] = '\0';
	}
	return reply(c, MHD_HTTP_OK, "application/json", body, len);
}

/* Answers with JSON text (taken over), or 500 when it could not be made. */
static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status,
				  char *body)
{
	if (!body)
		return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				  "out of memory\n");
	return reply(c, status, "application/json", body, strlen(body));
}

static enum MHD_Result get_state(struct hop_http *h, struct MHD_Connection *c)
{
	return reply_json(c, MHD_HTTP_OK, hop_console_state(h->console));
}

static enum MHD_Result get_history(struct hop_http *h, struct MHD_Connection *c)
{
	return reply_json(c, MHD_HTTP_OK, hop_console_history(h->console));
}

static enum MHD_Result get_failures(struct hop_http *h,
				    struct MHD_Connection *c)
{
	return reply_json(c, MHD_HTTP_OK, hop_console_failures(h->console));
}

static void http_run(struct hop_loop *loop, void *arg);

static const struct route {
	const char *path;
	enum MHD_Result (*get)(struct hop_http *h, struct MHD_Connection *c);
} routes[] = {
    {"/metrics", get_metrics},
    {"/readyz", get_readyz},
    {"/status", get_status},
    {"/api/state", get_state},
    {"/api/history", get_history},
    {"/api/failures", get_failures},
    {"/healthz", NULL}, /* answered without touching the run */
};

/* The console's actions: POST only, with the admin token. */
static const char *const actions[] = {
    "/api/dead/retry",	 "/api/dead/discard", "/api/stage/pause",
    "/api/stage/resume", "/api/stage/max",
};

static const char *arg(struct MHD_Connection *c, const char *key)
{
	return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
}

static size_t arg_size(struct MHD_Connection *c, const char *key, size_t def)
{
	const char *v = arg(c, key);
	char *end;
	unsigned long long n = v && *v ? strtoull(v, &end, 10) : def;
	return v && *v && (*end || v[0] == '-') ? def : (size_t)n;
}

/* A dead-letter job is over: the connection goes on, to be answered. */
static void job_done(void *arg)
{
	struct req *q = arg;
	q->job_done = true;
	MHD_resume_connection(q->c);
	hop_loop_soon(q->h->loop, http_run, q->h); /* MHD serves it now */
}

/* Starts a dead-letter job for q, suspending its connection until it is
 * done; or answers at once when it is refused. */
static enum MHD_Result start_job(struct req *q, enum hop_deadq_kind kind)
{
	struct MHD_Connection *c = q->c;
	unsigned status = 500;
	char *body = NULL;

	q->job =
	    hop_deadq_submit(q->h->deadq, kind, arg(c, "source"), arg(c, "id"),
			     arg_size(c, "offset", 0), arg_size(c, "limit", 50),
			     job_done, q, &status, &body);
	if (!q->job)
		return reply_json(c, status, body);
	MHD_suspend_connection(c);
	return MHD_YES;
}

/* True when the request comes from the page hopper serves, not from
 * another site's: a browser says where a request comes from in
 * Sec-Fetch-Site and Origin; a client that is no browser says neither. */
static bool same_origin(struct MHD_Connection *c)
{
	const char *site =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
	const char *origin =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						       MHD_HTTP_HEADER_HOST);
	if (site && strcmp(site, "same-origin") && strcmp(site, "none"))
		return false;
	if (!origin)
		return true;
	/* https: behind a proxy that ends TLS and keeps the Host header. */
	if (!strncmp(origin, "https://", 8))
		origin += 8;
	else if (!strncmp(origin, "http://", 7))
		origin += 7;
	else
		return false;
	return host && !strcmp(origin, host);
}

/* The token a request carries: "Authorization: Bearer T" or
 * "X-Hopper-Token: T"; NULL for none. */
static const char *token_of(struct MHD_Connection *c)
{
	const char *t =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Hopper-Token");
	const char *a = MHD_lookup_connection_value(
	    c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (t)
		return t;
	if (a && !strncasecmp(a, "Bearer ", 7))
		return a + 7 + strspn(a + 7, " ");
	return NULL;
}

/* An action, once its checks passed. */
static enum MHD_Result act(struct req *q, const char *url)
{
	struct MHD_Connection *c = q->c;
	unsigned status;
	char *body = NULL;

	if (!strcmp(url, "/api/dead/retry"))
		return start_job(q, HOP_JOB_RETRY);
	if (!strcmp(url, "/api/dead/discard"))
		return start_job(q, HOP_JOB_DISCARD);
	status =
	    hop_console_stage_action(q->h->console, url + strlen("/api/stage/"),
				     arg(c, "stage"), arg(c, "workers"), &body);
	return reply_json(c, status, body);
}

/* Checks an action's request: POST (405), from the console's own page
 * (403), with the admin token (403). Nothing changes before all pass. */
static enum MHD_Result action(struct req *q, const char *url,
			      const char *method)
{
	struct hop_http *h = q->h;
	struct MHD_Connection *c = q->c;

	if (strcmp(method, MHD_HTTP_METHOD_POST)) {
		char *body = NULL;
		int n = asprintf(&body,
				 "method %s not allowed: actions are POST "
				 "only\n",
				 method);
		if (n < 0)
			return MHD_NO;
		return reply_allow(c, MHD_HTTP_METHOD_NOT_ALLOWED,
				   "text/plain; charset=utf-8", body, (size_t)n,
				   "POST");
	}
	if (!same_origin(c))
		return reply_text(c, MHD_HTTP_FORBIDDEN,
				  "refused: a request from another site\n");
	if (!hop_console_admin(h->console))
		return reply_text(c, MHD_HTTP_FORBIDDEN,
				  "refused: actions are off; start hopper "
				  "with --admin-token-file FILE\n");
	if (!hop_console_token_ok(h->console, token_of(c)))
		return reply_text(c, MHD_HTTP_FORBIDDEN,
				  "refused: %s admin token\n",
				  token_of(c) ? "wrong" : "no");
	h->view.refresh(h->view.arg);
	return act(q, url);
}

/* Serves a file of the page, or NULL's 404 when there is none. */
static enum MHD_Result asset(struct MHD_Connection *c,
			     const struct hop_console_asset *a)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
	    a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, a->type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	guard(r);
	enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---- making room ---- */

static void waiting_add(struct hop_http *h, struct conn *k)
{
	k->next = NULL;
	k->prev = h->waiting_tail;
	if (h->waiting_tail)
		h->waiting_tail->next = k;
	else
		h->waiting = k;
	h->waiting_tail = k;
}

static void waiting_remove(struct hop_http *h, struct conn *k)
{
	if (k->prev)
		k->prev->next = k->next;
	else if (h->waiting == k)
		h->waiting = k->next;
	else
		return; /* not in the list */
	if (k->next)
		k->next->prev = k->prev;
	else
		h->waiting_tail = k->prev;
	k->prev = k->next = NULL;
}

/* Closes the connection that has waited longest for a request, unless
 * that is the newcomer itself. shutdown, not close: MHD owns the socket,
 * sees it end and reaps it. */
static void make_room(struct hop_http *h, const struct conn *newcomer)
{
	struct conn *k = h->waiting;
	if (!k || k == newcomer)
		return;
	const union MHD_ConnectionInfo *info =
	    MHD_get_connection_info(k->c, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!info)
		return;
	shutdown(info->connect_fd, SHUT_RDWR);
	waiting_remove(h, k);
	k->closing = true;
	h->open--;
	h->closed++;
	int64_t now = hop_now_ms();
	if (!h->warned_ms || now - h->warned_ms >= 60000) {
		hop_log(HOP_WARN,
			"http: all %d connections taken: closed %llu that "
			"waited longest for a request",
			HTTP_CONNECTIONS, (unsigned long long)h->closed);
		h->warned_ms = now;
		h->closed = 0;
	}
}

static void on_connection(void *cls, struct MHD_Connection *c,
			  void **socket_context,
			  enum MHD_ConnectionNotificationCode what)
{
	struct hop_http *h = cls;
	struct conn *k = *socket_context;

	if (what == MHD_CONNECTION_NOTIFY_STARTED) {
		k = calloc(1, sizeof(*k));
		if (!k)
			return; /* served, but never chosen to close */
		k->c = c;
		*socket_context = k;
		waiting_add(h, k);
		if (++h->open > HTTP_CONNECTIONS)
			make_room(h, k);
		return;
	}
	if (!k)
		return;
	waiting_remove(h, k);
	if (!k->closing)
		h->open--;
	free(k);
	*socket_context = NULL;
}

static struct conn *conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *info =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return info ? info->socket_context : NULL;
}

/* A request is answered (or abandoned): the connection waits again. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct hop_http *h = cls;
	struct conn *k = conn_of(c);
	struct req *q = *con_cls;
	if (k && !k->closing) {
		waiting_remove(h, k);
		waiting_add(h, k);
	}
	if (q) {
		hop_deadq_job_free(q->job);
		free(q);
		*con_cls = NULL;
	}
}

/* The endpoints that stay open with --private: Prometheus's and the
 * orchestrator's. */
static bool is_probe(const char *url)
{
	return !strcmp(url, "/metrics") || !strcmp(url, "/healthz") ||
	       !strcmp(url, "/readyz");
}

/* Routes a request, once its whole body (unwanted: every route takes its
 * arguments in the query) has come. */
static enum MHD_Result route(struct req *q, const char *url, const char *method)
{
	struct hop_http *h = q->h;
	struct MHD_Connection *c = q->c;
	const struct route *rt = NULL;
	const struct hop_console_asset *a = hop_console_asset(url);
	bool get = !strcmp(method, MHD_HTTP_METHOD_GET) ||
		   !strcmp(method, MHD_HTTP_METHOD_HEAD);

	for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
		if (!strcmp(url, actions[i]))
			return action(q, url, method);
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (strcmp(url, routes[i].path) == 0)
			rt = &routes[i];
	if (!rt && !a && strcmp(url, "/api/dead"))
		return reply_text(c, MHD_HTTP_NOT_FOUND,
				  "not found: try /, /metrics, /healthz, "
				  "/readyz or /status\n");
	if (!get)
		return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED,
				  "method %s not allowed: GET or HEAD\n",
				  method);
	if (a)
		return asset(c, a);
	/* What a run does is private when asked: its data, not its health. */
	if (h->view.cfg->private_reads && !is_probe(url) &&
	    !hop_console_token_ok(h->console, token_of(c)))
		return reply_text(c, MHD_HTTP_FORBIDDEN,
				  "refused: %s admin token (--private)\n",
				  token_of(c) ? "wrong" : "no");
	if (!rt)
		return start_job(q, HOP_JOB_LIST);
	if (!rt->get)
		return reply_text(c, MHD_HTTP_OK, "ok\n");
	h->view.refresh(h->view.arg);
	return rt->get(h, c);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct hop_http *h = cls;
	struct req *q = *con_cls;

	if (!q) {
		q = calloc(1, sizeof(*q));
		if (!q)
			return MHD_NO;
		q->h = h;
		q->c = c;
		*con_cls = q;
		struct conn *k = conn_of(c);
		if (k) /* served now: not one to close */
			waiting_remove(h, k);
		return MHD_YES; /* the body, if any, comes next */
	}
	if (*upload_size) {
		*upload_size = 0; /* not wanted */
		return MHD_YES;
	}
	if (q->job) {
		if (!q->job_done)
			return MHD_YES;
		char *body = NULL;
		unsigned status = hop_deadq_answer(q->job, &body);
		return reply_json(c, status, body);
	}
	return route(q, url, method);
}

/* MHD's own messages concern a client's misbehaviour, mostly: debug. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	hop_log(HOP_DEBUG, "http: %s", msg);
}

/* Arms the timer for MHD's next deadline (an idle connection to close, or
 * work it has buffered): the loop must not sleep past it. */
static void rearm(struct hop_http *h)
{
	MHD_UNSIGNED_LONG_LONG ms;
	hop_loop_cancel(h->loop, h->timer);
	h->timer = 0;
	if (MHD_get_timeout(h->d, &ms) != MHD_YES)
		return;
	if (ms == 0)
		hop_loop_soon(h->loop, http_run, h);
	else
		h->timer = hop_loop_after(h->loop, (int64_t)ms, http_run, h);
}

static void http_run(struct hop_loop *loop, void *arg)
{
	struct hop_http *h = arg;
	h->timer = 0;
	MHD_run(h->d);
	rearm(h);
}

static void http_readable(struct hop_loop *loop, int fd, uint32_t events,
			  void *arg)
{
	http_run(loop, arg);
}

struct hop_http *hop_http_start(struct hop_loop *loop, const char *spec,
				const struct hop_http_view *view, char *err,
				size_t errlen)
{
	char bound[300];
	struct hop_http *h = calloc(1, sizeof(*h));
	if (!h) {
		snprintf(err, errlen, "http: out of memory");
		return NULL;
	}
	h->loop = loop;
	h->view = *view;
	hop_rate_init(&h->rate, hop_now_ms());
	int fd = bind_address(spec, bound, sizeof(bound), err, errlen);
	if (fd < 0)
		goto out_free;
	h->console = hop_console_new(loop, view, view->cfg->admin_token_file,
				     err, errlen);
	if (!h->console)
		goto out_close;
	h->deadq = hop_deadq_new(loop, view->cfg, view->stats, err, errlen);
	if (!h->deadq)
		goto out_close;
	/* The logger comes first, so that no message takes MHD's own. */
	h->d = MHD_start_daemon(
	    MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME, 0,
	    NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log,
	    NULL, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)(HTTP_CONNECTIONS + HTTP_CLOSING),
	    MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_SECONDS,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONNECTION_MEMORY,
	    MHD_OPTION_END);
	if (!h->d) {
		snprintf(err, errlen, "cannot serve http on %s", spec);
		goto out_close;
	}
	const union MHD_DaemonInfo *info =
	    MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
	h->epfd = info ? info->epoll_fd : -1;
	if (h->epfd < 0 ||
	    hop_loop_watch(loop, h->epfd, EPOLLIN, http_readable, h)) {
		snprintf(err, errlen, "cannot serve http on %s: no epoll fd",
			 spec);
		goto out_stop;
	}
	rearm(h);
	hop_log(HOP_INFO,
		"http: the console on http://%s/ (actions %s); /metrics, "
		"/healthz, /readyz, /status",
		bound,
		hop_console_admin(h->console) ? "need the admin token"
					      : "off: no --admin-token-file");
	return h;
out_stop:
	hop_deadq_free(h->deadq);
	hop_console_free(h->console);
	MHD_stop_daemon(h->d); /* closes the listening socket */
	free(h);
	return NULL;
out_close:
	hop_deadq_free(h->deadq);
	hop_console_free(h->console);
	close(fd);
out_free:
	free(h);
	return NULL;
}

void hop_http_failure(struct hop_http *h, const char *stage,
		      const struct hop_item *it, bool final)
{
	if (h)
		hop_console_failure(h->console, stage, it, final);
}

void hop_http_stop(struct hop_http *h)
{
	if (!h)
		return;
	hop_loop_cancel(h->loop, h->timer);
	hop_loop_unwatch(h->loop, h->epfd);
	/* Every suspended connection is resumed first: MHD stops none. */
	hop_deadq_free(h->deadq);
	hop_console_free(h->console);
	MHD_stop_daemon(h->d);
	free(h->rates);
	free(h);
}
