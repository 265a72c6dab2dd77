/* http.c - the http source: a source container's API, polled over HTTP
 * (Burns, Designing Distributed Systems, 10.1.1).
 *
 * The container serves its queue at a URL U:
 *
 *   GET U            the ids of the items: a JSON array of strings or
 *                    integers, or an object whose "items" member is one
 *   GET U/ID         one item: its JSON body is the payload; 404 or 410
 *                    means the item is gone, and it is skipped
 *   DELETE U/ID      the item's result is safe: forget it (2xx, or 404)
 *   POST U/ID/dead   the item failed for good: the body is the dead-letter
 *                    record, and the server takes the item out of its list
 *
 * IDs are percent-encoded into the path, and U's query string is kept on
 * every request. With dead=FILE the dead letters go to a local file of JSON
 * lines instead, and the item is then deleted on the server.
 *
 * Every request runs on libcurl's multi interface, whose sockets and timer
 * are watched by the coordinator's loop: no request ever holds it up. An
 * id is in a table (ids.h) from its listing until a listing started after
 * its deletion, so an id listed again while it is at work is never taken
 * twice. A server that cannot be reached, or answers 5xx, 408, 429, 401,
 * 403 or a list that is not JSON, starts an outage: it is logged once, the
 * source is not ready, and one request at a time probes it with a backoff
 * of 0.1 s doubling to 5 s (a listing, after an item's request failed),
 * until one that was sent during the outage gets an answer. What failed
 * meanwhile is sent again, each request after a backoff of its own.
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "coordinator/buf.h"
#include "coordinator/driver.h"
#include "coordinator/jsonscan.h"
#include "coordinator/linefile.h"
#include "coordinator/log.h"
#include "coordinator/loop.h"
#include "sources/http/ids.h"
#include "sources/jsonl/deadfile.h"
#include "sources/source.h"

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
/* A GET that fails this often while the server answers other requests is
 * the item's fault: it is dead, named with the status. */
#define GET_FAILS_MAX 5

enum req_type { R_LIST, R_GET, R_DELETE, R_DEAD };
static const char *const req_method[] = {"GET", "GET", "DELETE", "POST"};

struct req {
	enum req_type type;
	struct hop_http_id *e; /* NULL for R_LIST */
	char *url;	       /* owned, the request's whole URL */
	char *body;	       /* R_DEAD: the dead-letter record */
	char *item;	       /* R_DEAD: the item's id, for dead_done */
	uint64_t seq;	       /* R_LIST: the listing's number */
	uint64_t gen;	       /* outages begun before it started */
	bool sent_up;	       /* started while no outage was on */
	int fails;	       /* R_GET: failures while the server was up */
	int tries;	       /* failures in all, for its own backoff */
	int64_t due;	       /* failed: when it may go again */
	size_t limit;	       /* R_GET: the longest body taken, 0: any */
	bool too_big;	       /* the body passed the limit */
	CURL *easy;
	struct hop_buf resp;
	char why[CURL_ERROR_SIZE];
	struct req *next;
};

struct sock {
	curl_socket_t fd;
	int what; /* CURL_POLL_IN, _OUT, _INOUT */
};

struct http_src {
	/* options */
	char *url;
	double poll;
	double timeout;
	int64_t concurrency;
	char *headers; /* a file of "Name: value" lines */
	char *dead;    /* a file for the dead letters, or NULL: POST them */

	struct hop_source *src;
	char *shown; /* the URL for messages, its password masked */
	CURLU *base;
	char *base_path;
	CURLM *multi;
	struct curl_slist *hdrs, *post_hdrs;
	bool curl_up;
	uint64_t timer;	  /* curl's timeout, on the loop */
	int64_t curl_due; /* the same as a time, -1 for none */
	struct sock *socks;
	size_t nsocks, capsocks;
	size_t running;			  /* requests curl has */
	struct req *started;		  /* those requests */
	struct req *again, *again_tail;	  /* failed ones waiting to go again */
	struct req *urgent, *urgent_tail; /* DELETEs and dead letters */

	struct hop_http_ids ids;
	struct hop_http_id *listed, *listed_tail; /* LISTED, in order */
	size_t nlisted;
	struct hop_http_id *gone, *gone_tail; /* GONE, by gone_seq */
	struct hop_queue ready;
	size_t fetching; /* GETs started or waiting to go again */
	size_t want;	 /* items the coordinator last asked for */
	bool listing;
	uint64_t list_seq;   /* listings started */
	uint64_t poll_timer; /* the next listing after one found nothing */
	bool drained;	     /* finite: nothing more to list */
	bool failed;	     /* the list URL is wrong: src->error says */

	bool down; /* an outage is on */
	int64_t down_since;
	uint64_t outages;
	int64_t backoff_ms, probe_at;
	bool probe_list; /* the next probe is a listing */
	bool loud;	 /* this outage was logged as a warning */
	uint64_t probe_timer;
	int64_t probe_timer_at;
	char down_why[1024];
	char last_cause[600]; /* what started the last outage logged */
	bool closing;

	struct hop_linefile dead_file;
	bool dead_open;
	struct hop_jsonl_dead deadfile; /* hopper dead's reading of it */
};

static const struct hop_option http_options[] = {
    {"url", HOP_OPT_STR, NULL, offsetof(struct http_src, url),
     "http://HOST:PORT/PATH (or https://): the list of items"},
    {"poll", HOP_OPT_SECONDS, "1", offsetof(struct http_src, poll),
     "list again this long after a listing found nothing new", .min = "1ms"},
    {"timeout", HOP_OPT_SECONDS, "30", offsetof(struct http_src, timeout),
     "the longest a request may take", .min = "1ms"},
    {"concurrency", HOP_OPT_INT, "8", offsetof(struct http_src, concurrency),
     "requests on their way at once, at most", .min = "1", .max = "1024"},
    {"headers", HOP_OPT_STR, NULL, offsetof(struct http_src, headers),
     "a file of 'Name: value' lines sent with every request (never logged)"},
    {"dead", HOP_OPT_STR, NULL, offsetof(struct http_src, dead),
     "append dead letters to this file and DELETE the items, instead of "
     "POST URL/ID/dead"},
    {NULL},
};

static void pump(struct http_src *c);
static void finish(struct http_src *c);

static void push_req(struct req **head, struct req **tail, struct req *r)
{
	r->next = NULL;
	if (*tail)
		(*tail)->next = r;
	else
		*head = r;
	*tail = r;
}

static struct req *pop_req(struct req **head, struct req **tail)
{
	struct req *r = *head;
	if (r && !(*head = r->next))
		*tail = NULL;
	return r;
}

static void free_req(struct req *r)
{
	free(r->url);
	free(r->body);
	free(r->item);
	hop_buf_free(&r->resp);
	free(r);
}

static void push_id(struct hop_http_id **head, struct hop_http_id **tail,
		    struct hop_http_id *e)
{
	e->next = NULL;
	if (*tail)
		(*tail)->next = e;
	else
		*head = e;
	*tail = e;
}

/* ---- curl on the loop ---- */

static void on_socket(struct hop_loop *loop, int fd, uint32_t ev, void *arg)
{
	struct http_src *c = arg;
	int flags = 0, running;

	if (ev & EPOLLIN)
		flags |= CURL_CSELECT_IN;
	if (ev & EPOLLOUT)
		flags |= CURL_CSELECT_OUT;
	if (ev & (EPOLLERR | EPOLLHUP))
		flags |= CURL_CSELECT_ERR;
	curl_multi_socket_action(c->multi, fd, flags, &running);
	finish(c);
}

static void on_curl_timer(struct hop_loop *loop, void *arg)
{
	struct http_src *c = arg;
	int running;

	c->timer = 0;
	c->curl_due = -1;
	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	finish(c);
}

static uint32_t epoll_events(int what)
{
	return (what & CURL_POLL_IN ? EPOLLIN : 0) |
	       (what & CURL_POLL_OUT ? EPOLLOUT : 0);
}

/* curl says which sockets to watch for what; the table keeps them for
 * close, which waits on them without the loop. */
static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *arg,
		     void *sockp)
{
	struct http_src *c = arg;
	size_t i = 0;

	while (i < c->nsocks && c->socks[i].fd != fd)
		i++;
	if (what == CURL_POLL_REMOVE) {
		if (i < c->nsocks) {
			c->socks[i] = c->socks[--c->nsocks];
			if (!c->closing)
				hop_loop_unwatch(c->src->loop, fd);
		}
		return 0;
	}
	if (i == c->nsocks) {
		if (c->nsocks == c->capsocks) {
			size_t n = c->capsocks ? c->capsocks * 2 : 16;
			struct sock *s = realloc(c->socks, n * sizeof(*s));
			if (!s)
				return -1;
			c->socks = s;
			c->capsocks = n;
		}
		c->nsocks++;
	}
	c->socks[i] = (struct sock){fd, what};
	if (!c->closing &&
	    hop_loop_watch(c->src->loop, fd, epoll_events(what), on_socket, c))
		return -1;
	return 0;
}

static int timer_cb(CURLM *multi, long ms, void *arg)
{
	struct http_src *c = arg;

	c->curl_due = ms < 0 ? -1 : hop_now_ms() + ms;
	if (c->closing)
		return 0;
	hop_loop_cancel(c->src->loop, c->timer);
	c->timer =
	    ms < 0 ? 0 : hop_loop_after(c->src->loop, ms, on_curl_timer, c);
	return ms >= 0 && !c->timer ? -1 : 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct req *r = arg;
	size_t len = size * n;

	if (r->limit && hop_buf_len(&r->resp) + len > r->limit) {
		r->too_big = true;
		return 0;
	}
	return hop_buf_append(&r->resp, p, len) ? 0 : len;
}

/* ---- requests ---- */

/* Returns the URL of the item, with suffix after it ("/dead"), or NULL. */
static char *item_url(struct http_src *c, CURL *easy, const char *id,
		      const char *suffix)
{
	char *esc = curl_easy_escape(easy, id, 0), *url = NULL;
	CURLU *u = curl_url_dup(c->base);
	struct hop_buf path = {0};
	size_t plen = strlen(c->base_path);

	while (plen > 0 && c->base_path[plen - 1] == '/')
		plen--;
	if (esc && u && !hop_buf_append(&path, c->base_path, plen) &&
	    !hop_buf_appendf(&path, "/%s%s", esc, suffix) &&
	    !hop_buf_append(&path, "", 1) &&
	    curl_url_set(u, CURLUPART_PATH, hop_buf_head(&path), 0) ==
		CURLUE_OK)
		curl_url_get(u, CURLUPART_URL, &url, 0);
	hop_buf_free(&path);
	curl_url_cleanup(u);
	curl_free(esc);
	if (!url)
		return NULL;
	char *own = strdup(url);
	curl_free(url);
	return own;
}

/* The request's URL for a message: its password masked. */
static void shown_url(const struct req *r, char *buf, size_t n)
{
	char *s = hop_driver_label(r->url);
	snprintf(buf, n, "%s", s ? s : "(URL)");
	free(s);
}

/* Hands r to curl. Returns 0 or -errno; r stays the caller's then. */
static int start(struct http_src *c, struct req *r)
{
	CURL *h = curl_easy_init();
	if (!h)
		return -ENOMEM;
	if (!r->url) {
		r->url = r->type == R_LIST
			     ? strdup(c->url)
			     : item_url(c, h, r->e->id,
					r->type == R_DEAD ? "/dead" : "");
		if (!r->url) {
			curl_easy_cleanup(h);
			return -ENOMEM;
		}
	}
	hop_buf_reset(&r->resp);
	r->too_big = false;
	r->why[0] = '\0';
	r->gen = c->outages;
	r->sent_up = !c->down;
	curl_easy_setopt(h, CURLOPT_URL, r->url);
	curl_easy_setopt(h, CURLOPT_PRIVATE, r);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->why);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(c->timeout * 1000));
	curl_easy_setopt(h, CURLOPT_HTTPHEADER,
			 r->type == R_DEAD ? c->post_hdrs : c->hdrs);
	if (r->type == R_DELETE)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
	if (r->type == R_DEAD) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE,
				 (long)strlen(r->body));
	}
	if (curl_multi_add_handle(c->multi, h) != CURLM_OK) {
		curl_easy_cleanup(h);
		return -ENOMEM;
	}
	r->easy = h;
	r->next = c->started;
	c->started = r;
	c->running++;
	return 0;
}

/* Ends an outage, when r was sent during it: the server answers again. */
static void server_ok(struct http_src *c, const struct req *r)
{
	if (!c->down || r->sent_up || r->gen != c->outages)
		return;
	c->down = false;
	hop_log(c->loud ? HOP_INFO : HOP_DEBUG,
		"http source: %s answers again after %.1f s", c->shown,
		(double)(hop_now_ms() - c->down_since) / 1000);
}

/* r failed in a way that may pass (why says how): it goes again after its
 * own backoff, and, in an outage, once the server answers. The first such
 * failure starts an outage, logged once: as a warning, unless the same
 * item's request started the last one too (an item the server keeps
 * failing while it answers the rest), which then goes to the debug log. */
static void failed_for_now(struct http_src *c, struct req *r, const char *why)
{
	char url[512];
	int64_t now = hop_now_ms(), wait;
	const char *id = r->e ? r->e->id : NULL;

	shown_url(r, url, sizeof(url));
	if (!c->down) {
		char cause[sizeof(c->last_cause)];
		snprintf(cause, sizeof(cause), "%s %s", req_method[r->type],
			 url);
		c->down = true;
		c->down_since = now;
		c->outages++;
		c->backoff_ms = BACKOFF_FIRST_MS;
		c->loud = r->type == R_LIST || strcmp(cause, c->last_cause);
		memcpy(c->last_cause, cause, sizeof(cause));
		hop_log_ev(c->loud ? HOP_WARN : HOP_DEBUG, -1, id,
			   "http source: %s %s: %s; retrying with backoff "
			   "until the server answers",
			   req_method[r->type], url, why);
	} else if (!r->sent_up && r->gen == c->outages) {
		/* A probe failed: wait longer. */
		c->backoff_ms *= 2;
		if (c->backoff_ms > BACKOFF_MAX_MS)
			c->backoff_ms = BACKOFF_MAX_MS;
		hop_log_ev(HOP_DEBUG, -1, id,
			   "http source: %s %s: %s; next try in %lld ms",
			   req_method[r->type], url, why,
			   (long long)c->backoff_ms);
	}
	snprintf(c->down_why, sizeof(c->down_why), "%s %s: %s",
		 req_method[r->type], url, why);
	/* After an item's request, a listing asks whether the server is up
	 * at all; after a listing, the item's request goes again. */
	c->probe_list = r->type != R_LIST;
	/* Jitter of up to a quarter, so that coordinators sharing a server
	 * do not probe it in step. */
	c->probe_at = now + c->backoff_ms + random() % (c->backoff_ms / 4 + 1);
	r->tries++;
	wait = BACKOFF_FIRST_MS << (r->tries < 7 ? r->tries - 1 : 6);
	if (wait > BACKOFF_MAX_MS)
		wait = BACKOFF_MAX_MS;
	r->due = now + wait + random() % (wait / 4 + 1);
	push_req(&c->again, &c->again_tail, r);
}

/* Gives the coordinator an item that is dead on arrival, with why. */
static void invalid_item(struct http_src *c, struct hop_http_id *e,
			 const char *why)
{
	struct hop_item *it = hop_item_new(strdup(e->id), strdup("null"), 4);
	if (!it) {
		hop_log_ev(HOP_ERROR, -1, e->id, "out of memory: %s", why);
		hop_http_ids_remove(&c->ids, e);
		return;
	}
	it->invalid = true;
	hop_item_fail(it, false, "%s", why);
	it->src_data = e;
	hop_http_ids_set(&c->ids, e, HOP_HTTP_READY);
	hop_queue_push(&c->ready, it);
}

/* The body of an item's GET, as its payload: compact JSON on one line. */
static void got_item(struct http_src *c, struct req *r)
{
	struct hop_buf *b = &r->resp;
	size_t len = hop_buf_len(b);
	char url[512], why[768];
	json_error_t jerr;
	char *payload;

	if (len && hop_json_valid(hop_buf_head(b), len) &&
	    !memchr(hop_buf_head(b), '\n', len) &&
	    !memchr(hop_buf_head(b), '\r', len)) {
		payload = strndup(hop_buf_head(b), len);
	} else {
		json_t *v = json_loadb(len ? hop_buf_head(b) : "", len,
				       JSON_DECODE_ANY, &jerr);
		if (!v) {
			shown_url(r, url, sizeof(url));
			snprintf(why, sizeof(why),
				 "http source: GET %s (item %s): the body is "
				 "not JSON: %s (line %d, column %d)",
				 url, r->e->id, jerr.text, jerr.line,
				 jerr.column);
			invalid_item(c, r->e, why);
			return;
		}
		payload = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		json_decref(v);
	}
	struct hop_item *it =
	    payload ? hop_item_new(strdup(r->e->id), payload, strlen(payload))
		    : NULL;
	if (!it) {
		invalid_item(c, r->e, "http source: out of memory");
		return;
	}
	it->src_data = r->e;
	hop_http_ids_set(&c->ids, r->e, HOP_HTTP_READY);
	hop_queue_push(&c->ready, it);
}

/* Lists again at once when a finite run waits for its last items to be
 * deleted before it can tell whether the server has more. */
static void relist_if_idle(struct http_src *c)
{
	if (c->poll_timer && !c->src->watch && c->ids.active == 0) {
		hop_loop_cancel(c->src->loop, c->poll_timer);
		c->poll_timer = 0;
	}
}

static void gone(struct http_src *c, struct hop_http_id *e)
{
	hop_http_ids_set(&c->ids, e, HOP_HTTP_GONE);
	/* A listing that starts from now on no longer has it. */
	e->gone_seq = c->list_seq + 1;
	push_id(&c->gone, &c->gone_tail, e);
	relist_if_idle(c);
}

static void on_poll(struct hop_loop *loop, void *arg)
{
	struct http_src *c = arg;
	c->poll_timer = 0;
	pump(c);
}

/* Adds the ids of the list in r that the table does not have. Returns how
 * many were new, or -1 (with why) when the body is not a list of ids. */
static long take_list(struct http_src *c, struct req *r, char *why, size_t n)
{
	json_error_t jerr;
	size_t len = hop_buf_len(&r->resp), bad = 0;
	long fresh = 0;
	json_t *doc =
	    json_loadb(len ? hop_buf_head(&r->resp) : "", len, 0, &jerr);
	json_t *list =
	    json_is_object(doc) ? json_object_get(doc, "items") : doc;

	if (!doc) {
		snprintf(why, n,
			 "the list is not JSON: %s (line %d, column %d)",
			 jerr.text, jerr.line, jerr.column);
		return -1;
	}
	if (!json_is_array(list)) {
		snprintf(why, n,
			 "the list is neither an array of ids nor an object "
			 "with an \"items\" array");
		json_decref(doc);
		return -1;
	}
	/* Deleted before this listing started: gone from it for good. The
	 * list is in order of gone_seq but for the skipped GETs' later one,
	 * which holds those behind it back one listing at most. */
	while (c->gone && c->gone->gone_seq <= r->seq) {
		struct hop_http_id *e = c->gone;
		if (!(c->gone = e->next))
			c->gone_tail = NULL;
		hop_http_ids_remove(&c->ids, e);
	}
	size_t i;
	json_t *v;
	json_array_foreach(list, i, v)
	{
		char num[32];
		const char *id = json_string_value(v);
		if (json_is_integer(v)) {
			snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
				 json_integer_value(v));
			id = num;
		}
		if (!id || !*id) {
			bad++;
			continue;
		}
		if (hop_http_ids_find(&c->ids, id))
			continue;
		struct hop_http_id *e = hop_http_ids_add(&c->ids, id);
		if (!e)
			break; /* the next listing has it again */
		push_id(&c->listed, &c->listed_tail, e);
		c->nlisted++;
		fresh++;
	}
	if (bad)
		hop_log(HOP_WARN,
			"http source: GET %s: %zu entr%s of the list %s not an "
			"id (a string or an integer): skipped",
			c->shown, bad, bad == 1 ? "y" : "ies",
			bad == 1 ? "is" : "are");
	json_decref(doc);
	return fresh;
}

static void listed(struct http_src *c, struct req *r)
{
	char why[256];
	long fresh = take_list(c, r, why, sizeof(why));

	if (fresh < 0) {
		failed_for_now(c, r, why);
		return;
	}
	server_ok(c, r);
	c->listing = false;
	/* A probe may have listed while a poll was pending: one timer. */
	hop_loop_cancel(c->src->loop, c->poll_timer);
	c->poll_timer = 0;
	if (fresh == 0) {
		if (!c->src->watch && c->ids.active == 0)
			c->drained = true;
		else
			c->poll_timer = hop_loop_after(
			    c->src->loop, (int64_t)(c->poll * 1000), on_poll,
			    c);
	}
	free_req(r);
}

/* The list URL answered with a status that will not change: the source
 * fails, with why. */
static void list_refused(struct http_src *c, struct req *r, long status)
{
	snprintf(c->src->error, sizeof(c->src->error),
		 "http source: GET %s: HTTP %ld: no list of items there",
		 c->shown, status);
	c->failed = true;
	c->listing = false;
	free_req(r);
}

enum outcome { OK, GONE, FOR_NOW, REFUSED };

static enum outcome classify(CURLcode res, long status, struct req *r,
			     char *why, size_t n)
{
	if (res != CURLE_OK) {
		snprintf(why, n, "%s",
			 r->why[0] ? r->why : curl_easy_strerror(res));
		return FOR_NOW;
	}
	snprintf(why, n, "HTTP %ld", status);
	if (status >= 200 && status < 300)
		return OK;
	if (status == 404 || status == 410)
		return GONE;
	if (status >= 500 || status == 408 || status == 429 || status == 401 ||
	    status == 403)
		return FOR_NOW;
	return REFUSED;
}

static void got_answer(struct http_src *c, struct req *r, enum outcome o,
		       long status, const char *why)
{
	char url[512], msg[1024];
	struct hop_http_id *e = r->e;

	if (o == FOR_NOW && !c->closing) {
		if (r->type == R_GET && r->sent_up &&
		    ++r->fails >= GET_FAILS_MAX) {
			shown_url(r, url, sizeof(url));
			snprintf(msg, sizeof(msg),
				 "http source: GET %s (item %s): %s, %d times "
				 "while the server answered other requests",
				 url, e->id, why, r->fails);
			c->fetching--;
			invalid_item(c, e, msg);
			free_req(r);
			return;
		}
		if (r->type == R_LIST || r->type == R_GET)
			r->resp.start = r->resp.end = 0;
		failed_for_now(c, r, why);
		return;
	}
	/* A list is an answer only once it parses: listed() says. */
	if (o != FOR_NOW && !(r->type == R_LIST && o == OK))
		server_ok(c, r);
	shown_url(r, url, sizeof(url));
	switch (r->type) {
	case R_LIST:
		if (o == OK)
			listed(c, r);
		else if (o == FOR_NOW) /* closing */
			free_req(r);
		else
			list_refused(c, r, status);
		return;
	case R_GET:
		c->fetching--;
		if (o == OK && !r->too_big) {
			got_item(c, r);
		} else if (o == OK || r->too_big) {
			snprintf(msg, sizeof(msg),
				 "http source: GET %s (item %s): the body is "
				 "over the %zu-byte limit",
				 url, e->id, c->src->max_line);
			invalid_item(c, e, msg);
		} else if (o == GONE) {
			hop_log_ev(HOP_INFO, -1, e->id,
				   "http source: GET %s: %s: the item is gone, "
				   "skipped",
				   url, why);
			/* Not new to the next listing either, which may
			 * have been started before the server let it go: a
			 * list that keeps naming it costs a GET per poll,
			 * not a loop. */
			hop_http_ids_set(&c->ids, e, HOP_HTTP_GONE);
			e->gone_seq = c->list_seq + 2;
			push_id(&c->gone, &c->gone_tail, e);
		} else if (o == REFUSED) {
			snprintf(msg, sizeof(msg),
				 "http source: GET %s (item %s): %s", url,
				 e->id, why);
			invalid_item(c, e, msg);
		} else {
			hop_http_ids_remove(&c->ids, e); /* closing */
		}
		break;
	case R_DELETE:
		if (o == OK || o == GONE) {
			gone(c, e);
			break;
		}
		hop_log_ev(HOP_ERROR, -1, e->id,
			   "http source: DELETE %s: %s: not acknowledged; %s",
			   url, why,
			   o == REFUSED ? "the item stays on the server and "
					  "this run does not take it again"
					: "the next run does it again");
		hop_http_ids_set(&c->ids, e, HOP_HTTP_STUCK);
		break;
	case R_DEAD:
		if (o == OK) {
			gone(c, e);
			hop_source_dead_done(c->src, r->item, true);
			break;
		}
		snprintf(c->src->error, sizeof(c->src->error),
			 "http source: POST %.200s (item %.100s): %.100s: the "
			 "dead letter "
			 "was not written; the item stays on the server",
			 url, r->item, why);
		hop_http_ids_set(&c->ids, e, HOP_HTTP_STUCK);
		hop_source_dead_done(c->src, r->item, false);
		break;
	}
	free_req(r);
}

/* Takes what curl finished, and starts what may start now. */
static void finish(struct http_src *c)
{
	CURLMsg *m;
	int left;
	bool woke = false;

	while ((m = curl_multi_info_read(c->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		CURL *h = m->easy_handle;
		CURLcode res = m->data.result;
		struct req *r = NULL, **p;
		long status = 0;
		char why[CURL_ERROR_SIZE + 32];

		curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&r);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		curl_multi_remove_handle(c->multi, h);
		curl_easy_cleanup(h);
		for (p = &c->started; *p && *p != r; p = &(*p)->next)
			;
		if (*p)
			*p = r->next;
		r->easy = NULL;
		c->running--;
		if (res == CURLE_WRITE_ERROR && r->too_big)
			res = CURLE_OK;
		enum outcome o = classify(res, status, r, why, sizeof(why));
		got_answer(c, r, o, status, why);
		woke = true;
	}
	if (woke && !c->closing) {
		pump(c);
		hop_source_wake(c->src);
	}
}

/* Takes the first failed request that is due at now (any of them when
 * now is INT64_MAX); *next is set to the earliest due time of those left
 * waiting, when earlier than it was. */
static struct req *take_due(struct http_src *c, int64_t now, int64_t *next)
{
	struct req **p = &c->again, *prev = NULL;

	for (; *p; prev = *p, p = &(*p)->next) {
		struct req *r = *p;
		if (r->due <= now) {
			*p = r->next;
			if (c->again_tail == r)
				c->again_tail = prev;
			return r;
		}
		if (r->due < *next)
			*next = r->due;
	}
	return NULL;
}

static struct req *new_list(struct http_src *c)
{
	struct req *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->type = R_LIST;
	r->seq = ++c->list_seq;
	c->listing = true;
	return r;
}

/* The next new request to send: acknowledgements and dead letters, then a
 * listing, then the GETs that keep `want` items on their way. NULL when
 * there is none, or no memory. */
static struct req *next_req(struct http_src *c)
{
	struct req *r = pop_req(&c->urgent, &c->urgent_tail);
	if (r)
		return r;
	if (!c->listing && !c->poll_timer && !c->drained && !c->failed &&
	    !c->listed && c->ready.len + c->fetching < c->want)
		return new_list(c);
	if (c->listed && c->ready.len + c->fetching < c->want) {
		if (!(r = calloc(1, sizeof(*r))))
			return NULL;
		struct hop_http_id *e = c->listed;
		if (!(c->listed = e->next))
			c->listed_tail = NULL;
		c->nlisted--;
		hop_http_ids_set(&c->ids, e, HOP_HTTP_FETCHING);
		r->type = R_GET;
		r->e = e;
		r->limit = c->src->max_line;
		c->fetching++;
		return r;
	}
	return NULL;
}

static void on_probe(struct hop_loop *loop, void *arg)
{
	struct http_src *c = arg;
	c->probe_timer = 0;
	pump(c);
}

/* Calls pump at `at`, unless it is called before then anyway. */
static void pump_at(struct http_src *c, int64_t at, int64_t now)
{
	if (c->probe_timer && c->probe_timer_at <= at)
		return;
	hop_loop_cancel(c->src->loop, c->probe_timer);
	c->probe_timer = hop_loop_after(c->src->loop, at - now, on_probe, c);
	c->probe_timer_at = at;
}

/* In an outage, one request at a time, when the backoff says: a listing
 * after an item's request failed, else what failed first. */
static void probe(struct http_src *c)
{
	int64_t now = hop_now_ms(), none = INT64_MAX;
	struct req *r = NULL;

	if (c->running > 0)
		return;
	if (now < c->probe_at) {
		pump_at(c, c->probe_at, now);
		return;
	}
	if (c->probe_list && !c->listing && !c->failed)
		r = new_list(c);
	if (!r)
		r = take_due(c, INT64_MAX, &none);
	if (!r)
		r = next_req(c);
	if (r && start(c, r))
		failed_for_now(c, r, "out of memory");
}

static void pump(struct http_src *c)
{
	int64_t now = hop_now_ms(), next = INT64_MAX;

	if (c->closing)
		return;
	if (c->down) {
		probe(c);
		return;
	}
	while (c->running < (size_t)c->concurrency) {
		struct req *r = take_due(c, now, &next);
		if (!r)
			r = next_req(c);
		if (!r)
			break;
		if (start(c, r)) {
			/* No memory for curl now: try again with the backoff
			 * of an outage. */
			failed_for_now(c, r, "out of memory");
			return;
		}
	}
	if (next != INT64_MAX)
		pump_at(c, next, now);
}

/* ---- the source ---- */

static int http_check(struct hop_source *src, const char **key)
{
	struct http_src *c = src->ctx;
	char *scheme = NULL;

	*key = "url";
	if (!c->url) {
		snprintf(src->error, sizeof(src->error),
			 "http source: no url: give -s http://HOST:PORT/PATH "
			 "or -S url=...");
		return -EINVAL;
	}
	CURLU *u = curl_url();
	CURLUcode rc = u ? curl_url_set(u, CURLUPART_URL, c->url, 0)
			 : CURLUE_OUT_OF_MEMORY;
	if (rc == CURLUE_OK)
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
	bool ok =
	    scheme && (!strcmp(scheme, "http") || !strcmp(scheme, "https"));
	curl_free(scheme);
	curl_url_cleanup(u);
	if (!ok) {
		char *shown = hop_driver_label(c->url);
		snprintf(
		    src->error, sizeof(src->error),
		    "http source: '%s' is not an http:// or https:// URL%s%s",
		    shown ? shown : "", rc == CURLUE_OK ? "" : ": ",
		    rc == CURLUE_OK ? "" : curl_url_strerror(rc));
		free(shown);
		return -EINVAL;
	}
	*key = NULL;
	return 0;
}

/* Reads the headers file into c->hdrs. Its lines are never logged: an
 * error names the file and the line's number only. */
static int read_headers(struct hop_source *src)
{
	struct http_src *c = src->ctx;
	FILE *f = fopen(c->headers, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int lineno = 0, rc = 0;

	if (!f) {
		rc = -errno;
		snprintf(src->error, sizeof(src->error),
			 "http source: headers file %s: %s", c->headers,
			 strerror(errno));
		return rc;
	}
	while (!rc && (len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (len > 0 &&
		       (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (strspn(line, " \t") == (size_t)len || line[0] == '#')
			continue;
		char *colon = strchr(line, ':');
		if (!colon || colon == line ||
		    strcspn(line, " \t") < (size_t)(colon - line)) {
			snprintf(src->error, sizeof(src->error),
				 "http source: headers file %s:%d: not a "
				 "'Name: value' line",
				 c->headers, lineno);
			rc = -EINVAL;
			break;
		}
		struct curl_slist *l = curl_slist_append(c->hdrs, line);
		if (!l) {
			rc = -ENOMEM;
			break;
		}
		c->hdrs = l;
	}
	/* The line held a secret: leave no copy of it behind. */
	if (line)
		explicit_bzero(line, cap);
	free(line);
	fclose(f);
	return rc;
}

static int add_header(struct curl_slist **l, const char *h)
{
	struct curl_slist *n = curl_slist_append(*l, h);
	if (!n)
		return -ENOMEM;
	*l = n;
	return 0;
}

static int open_dead(struct hop_source *src)
{
	struct http_src *c = src->ctx;
	off_t cut;
	int fd = hop_linefile_open(c->dead), rc;

	if (fd < 0) {
		snprintf(src->error, sizeof(src->error),
			 "http source: dead-letter file %s: %s", c->dead,
			 strerror(-fd));
		return fd;
	}
	if ((rc = hop_linefile_init(&c->dead_file, fd, &cut)) < 0) {
		snprintf(src->error, sizeof(src->error),
			 "http source: dead-letter file %s: %s", c->dead,
			 strerror(-rc));
		return rc;
	}
	if (cut > 0)
		hop_log(HOP_WARN,
			"http source: dead-letter file %s: cut a torn last "
			"line of %lld byte(s) that a stopped run left",
			c->dead, (long long)cut);
	c->dead_open = true;
	return 0;
}

static void release_curl(struct http_src *c)
{
	curl_multi_cleanup(c->multi);
	c->multi = NULL;
	curl_slist_free_all(c->hdrs);
	curl_slist_free_all(c->post_hdrs);
	c->hdrs = c->post_hdrs = NULL;
	curl_url_cleanup(c->base);
	c->base = NULL;
	curl_free(c->base_path);
	c->base_path = NULL;
	free(c->shown);
	c->shown = NULL;
	if (c->curl_up)
		curl_global_cleanup();
	c->curl_up = false;
}

static int http_open(struct hop_source *src)
{
	struct http_src *c = src->ctx;
	const char *key;
	int rc;

	c->src = src;
	c->curl_due = -1;
	if ((rc = http_check(src, &key)))
		return rc;
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		snprintf(src->error, sizeof(src->error),
			 "http source: libcurl does not start");
		return -EIO;
	}
	c->curl_up = true;
	rc = -ENOMEM;
	if (!(c->shown = hop_driver_label(c->url)) || !(c->base = curl_url()) ||
	    curl_url_set(c->base, CURLUPART_URL, c->url, 0) != CURLUE_OK ||
	    curl_url_get(c->base, CURLUPART_PATH, &c->base_path, 0) !=
		CURLUE_OK ||
	    !(c->multi = curl_multi_init()))
		goto err;
	if (c->headers && (rc = read_headers(src)))
		goto err;
	rc = -ENOMEM;
	if (add_header(&c->hdrs, "Accept: application/json"))
		goto err;
	for (struct curl_slist *l = c->hdrs; l; l = l->next)
		if (add_header(&c->post_hdrs, l->data))
			goto err;
	if (add_header(&c->post_hdrs, "Content-Type: application/json") ||
	    add_header(&c->post_hdrs, "Expect:"))
		goto err;
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	if (c->dead && (rc = open_dead(src)))
		goto err;
	return 0;

err:
	/* A failed open leaves nothing behind: close is not called. */
	if (rc == -ENOMEM && !src->error[0])
		snprintf(src->error, sizeof(src->error),
			 "http source: %s: out of memory, or a URL libcurl "
			 "cannot take",
			 c->shown ? c->shown : "");
	release_curl(c);
	return rc;
}

static int http_fetch(struct hop_source *src, struct hop_queue *out, size_t max)
{
	struct http_src *c = src->ctx;
	struct hop_item *it;

	if (c->failed)
		return -EIO;
	c->want = max;
	while (max > 0 && (it = hop_queue_pop(&c->ready))) {
		hop_http_ids_set(&c->ids, it->src_data, HOP_HTTP_HELD);
		hop_queue_push(out, it);
		max--;
	}
	pump(c);
	return 0;
}

/* Queues r (a DELETE or a dead letter) for e. */
static int send_urgent(struct http_src *c, struct hop_http_id *e,
		       enum req_type type, const char *record, const char *item)
{
	struct req *r = calloc(1, sizeof(*r));
	if (!r || (record && !(r->body = strdup(record))) ||
	    (item && !(r->item = strdup(item)))) {
		if (r)
			free_req(r);
		return -ENOMEM;
	}
	r->type = type;
	r->e = e;
	hop_http_ids_set(&c->ids, e,
			 type == R_DEAD ? HOP_HTTP_DYING : HOP_HTTP_ACKING);
	push_req(&c->urgent, &c->urgent_tail, r);
	pump(c);
	return 0;
}

static int http_ack(struct hop_source *src, struct hop_item *it)
{
	struct http_src *c = src->ctx;
	struct hop_http_id *e = it->src_data;
	it->src_data = NULL;
	int rc = send_urgent(c, e, R_DELETE, NULL, NULL);
	if (rc) {
		snprintf(src->error, sizeof(src->error),
			 "http source: %s: no memory to delete it; the next "
			 "run does it again",
			 it->id);
		hop_http_ids_set(&c->ids, e, HOP_HTTP_STUCK);
	}
	return rc;
}

/* Into the file: dead once the line is synced, then deleted on the server
 * as an acknowledgement is. A write that fails (a full disk) is cut back
 * and answers -EAGAIN, the item still ours. */
static int dead_to_file(struct http_src *c, struct hop_item *it,
			const char *record)
{
	size_t len = strlen(record);
	char *line = malloc(len + 1);
	int rc = -ENOMEM;

	if (line) {
		memcpy(line, record, len);
		line[len] = '\n';
		rc = hop_linefile_append(&c->dead_file, line, len + 1, true);
		free(line);
	}
	if (rc) {
		snprintf(c->src->error, sizeof(c->src->error),
			 "http source: dead-letter file %s: %s", c->dead,
			 strerror(-rc));
		return -EAGAIN;
	}
	struct hop_http_id *e = it->src_data;
	it->src_data = NULL;
	if (send_urgent(c, e, R_DELETE, NULL, NULL)) {
		hop_log_ev(HOP_ERROR, -1, it->id,
			   "http source: no memory to delete the dead item; "
			   "the next run does it again");
		hop_http_ids_set(&c->ids, e, HOP_HTTP_STUCK);
	}
	return 0;
}

static int http_dead(struct hop_source *src, struct hop_item *it,
		     const char *record)
{
	struct http_src *c = src->ctx;
	if (c->dead_open)
		return dead_to_file(c, it, record);
	struct hop_http_id *e = it->src_data;
	if (send_urgent(c, e, R_DEAD, record, it->id)) {
		snprintf(src->error, sizeof(src->error),
			 "http source: %s: no memory for its dead letter",
			 it->id);
		return -ENOMEM;
	}
	it->src_data = NULL;
	return HOP_SOURCE_PENDING;
}

/* Not finished: the server still has it, and the next run takes it. */
static int http_release(struct hop_source *src, struct hop_item *it)
{
	struct http_src *c = src->ctx;
	if (it->src_data)
		hop_http_ids_remove(&c->ids, it->src_data);
	it->src_data = NULL;
	return 0;
}

static int64_t http_depth(struct hop_source *src)
{
	struct http_src *c = src->ctx;
	return (int64_t)(c->nlisted + c->fetching + c->ready.len);
}

static bool http_exhausted(struct hop_source *src)
{
	struct http_src *c = src->ctx;
	return !src->watch && c->drained && c->ids.active == 0;
}

static bool http_ready(struct hop_source *src, char *why, size_t n)
{
	struct http_src *c = src->ctx;
	if (!c->down)
		return true;
	snprintf(why, n, "http source: %s; retrying", c->down_why);
	return false;
}

static void give_up(struct http_src *c, struct req *r);

/* Sends the DELETEs and dead letters still to go, concurrency at a time,
 * and waits for their answers until the timeout, with no loop: the run is
 * over. Failures are final now. */
static void drain(struct http_src *c)
{
	int64_t deadline = hop_now_ms() + (int64_t)(c->timeout * 1000) + 1000;
	struct pollfd *p = NULL;

	for (;;) {
		struct req *r;
		while (c->running < (size_t)c->concurrency &&
		       (r = pop_req(&c->urgent, &c->urgent_tail)))
			if (start(c, r))
				give_up(c, r);
		if (!c->running || hop_now_ms() >= deadline)
			break;
		struct pollfd *np = realloc(p, (c->nsocks + 1) * sizeof(*p));
		if (!np)
			break;
		p = np;
		for (size_t i = 0; i < c->nsocks; i++)
			p[i] = (struct pollfd){
			    c->socks[i].fd,
			    (short)((c->socks[i].what & CURL_POLL_IN ? POLLIN
								     : 0) |
				    (c->socks[i].what & CURL_POLL_OUT ? POLLOUT
								      : 0)),
			    0};
		size_t n = c->nsocks;
		int64_t now = hop_now_ms(), wait = deadline - now;
		if (c->curl_due >= 0 && c->curl_due - now < wait)
			wait = c->curl_due - now;
		if (wait < 0)
			wait = 0;
		int got = poll(p, n, (int)wait);
		int running;
		for (size_t i = 0; got > 0 && i < n; i++) {
			if (!p[i].revents)
				continue;
			int flags =
			    (p[i].revents & POLLIN ? CURL_CSELECT_IN : 0) |
			    (p[i].revents & POLLOUT ? CURL_CSELECT_OUT : 0) |
			    (p[i].revents & (POLLERR | POLLHUP)
				 ? CURL_CSELECT_ERR
				 : 0);
			curl_multi_socket_action(c->multi, p[i].fd, flags,
						 &running);
		}
		if (c->curl_due >= 0 && hop_now_ms() >= c->curl_due) {
			c->curl_due = -1;
			curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT,
						 0, &running);
		}
		finish(c);
	}
	free(p);
}

/* What the end of the run leaves unsent or unanswered: a DELETE is done
 * again by the next run; a dead letter is not written, and says so. */
static void give_up(struct http_src *c, struct req *r)
{
	char url[512];

	if (r->easy) {
		curl_multi_remove_handle(c->multi, r->easy);
		curl_easy_cleanup(r->easy);
		r->easy = NULL;
	}
	shown_url(r, url, sizeof(url));
	if (r->type == R_DELETE)
		hop_log_ev(HOP_WARN, -1, r->e->id,
			   "http source: DELETE %s: no answer before the run "
			   "ended; the next run does the item again",
			   url);
	if (r->type == R_DEAD) {
		snprintf(
		    c->src->error, sizeof(c->src->error),
		    "http source: POST %.200s (item %.100s): no answer before "
		    "the run ended: the dead letter was not written",
		    url, r->item);
		hop_source_dead_done(c->src, r->item, false);
	}
	free_req(r);
}

static void http_close(struct hop_source *src)
{
	struct http_src *c = src->ctx;
	struct hop_item *it;
	struct req *r, *keep = NULL, *keep_tail = NULL;

	if (!c->multi)
		return;
	hop_loop_cancel(src->loop, c->poll_timer);
	hop_loop_cancel(src->loop, c->probe_timer);
	hop_loop_cancel(src->loop, c->timer);
	c->poll_timer = c->probe_timer = c->timer = 0;
	for (size_t i = 0; i < c->nsocks; i++)
		hop_loop_unwatch(src->loop, c->socks[i].fd);
	c->closing = true;
	/* Fetched and never handed over: the server still has them. */
	while ((it = hop_queue_pop(&c->ready)))
		hop_item_free(it);
	/* Listings and GETs end here; DELETEs and dead letters get a last
	 * try each, in drain. */
	for (struct req **q = &c->again; *q;) {
		r = pop_req(q, &c->again_tail);
		if (r->type == R_DELETE || r->type == R_DEAD)
			push_req(&keep, &keep_tail, r);
		else
			free_req(r);
	}
	while ((r = pop_req(&c->urgent, &c->urgent_tail)))
		push_req(&keep, &keep_tail, r);
	c->urgent = keep;
	c->urgent_tail = keep_tail;
	for (struct req **p = &c->started; (r = *p);) {
		if (r->type == R_DELETE || r->type == R_DEAD) {
			p = &r->next;
			continue;
		}
		*p = r->next;
		curl_multi_remove_handle(c->multi, r->easy);
		curl_easy_cleanup(r->easy);
		c->running--;
		free_req(r);
	}
	drain(c);
	while ((r = c->started)) {
		c->started = r->next;
		give_up(c, r);
	}
	while ((r = pop_req(&c->urgent, &c->urgent_tail)))
		give_up(c, r);
	c->running = 0;
	release_curl(c);
	hop_http_ids_free(&c->ids);
	free(c->socks);
	c->socks = NULL;
	c->nsocks = c->capsocks = 0;
	if (c->dead_open)
		hop_linefile_close(&c->dead_file);
	c->dead_open = false;
}

/* ---- dead letters, for hopper dead: the dead=FILE ones ---- */

static int http_dead_open(struct hop_source *src)
{
	struct http_src *c = src->ctx;
	if (!c->dead) {
		snprintf(src->error, sizeof(src->error),
			 "http source: the dead letters are on the server "
			 "(POST URL/ID/dead); hopper dead reads them only from "
			 "a -S dead=FILE");
		return -EINVAL;
	}
	return hop_jsonl_dead_open(&c->deadfile, c->dead, src->error,
				   sizeof(src->error));
}

static int http_dead_list(struct hop_source *src, hop_dead_each_fn each,
			  void *arg)
{
	struct http_src *c = src->ctx;
	return hop_jsonl_dead_list(&c->deadfile, each, arg);
}

static int http_dead_retry(struct hop_source *src, const char *id, FILE *out)
{
	struct http_src *c = src->ctx;
	return hop_jsonl_dead_retry(&c->deadfile, id, out, src->error,
				    sizeof(src->error));
}

static int http_dead_discard(struct hop_source *src, const char *id)
{
	struct http_src *c = src->ctx;
	return hop_jsonl_dead_discard(&c->deadfile, id, src->error,
				      sizeof(src->error));
}

static void http_dead_close(struct hop_source *src)
{
	struct http_src *c = src->ctx;
	hop_jsonl_dead_close(&c->deadfile);
}

const struct hop_source_ops hop_src_http = {
    .name = "http",
    .forms = "http://HOST:PORT/PATH",
    .summary = "a source container's API: GET the list of ids, GET each "
	       "item, DELETE it when done",
    .options = http_options,
    .ctx_size = sizeof(struct http_src),
    .check = http_check,
    .open = http_open,
    .fetch = http_fetch,
    .ack = http_ack,
    .dead = http_dead,
    .dead_place = "POST URL/ID/dead on the server; with -S dead=FILE, that "
		  "file, whose retry writes the payloads as JSON lines to "
		  "--to FILE",
    .dead_open = http_dead_open,
    .dead_list = http_dead_list,
    .dead_retry = http_dead_retry,
    .dead_discard = http_dead_discard,
    .dead_close = http_dead_close,
    .release = http_release,
    .depth = http_depth,
    .exhausted = http_exhausted,
    .ready = http_ready,
    .close = http_close,
};
