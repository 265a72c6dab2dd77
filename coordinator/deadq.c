/* deadq.c - the console's dead-letter jobs, on a thread (see deadq.h). */
#include "deadq.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "console.h"
#include "loop.h"
#include "sources/source.h"

/* Bytes of an error, a payload or a stderr tail a page gets. */
#define CUT_BYTES 2048
/* The most dead letters one page lists. */
#define PAGE_MAX 200

struct hop_deadq_job {
	struct hop_deadq_job *next;
	enum hop_deadq_kind kind;
	int source;
	char *id;
	size_t offset, limit;
	hop_deadq_done_fn done;
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

struct hop_deadq {
	struct hop_loop *loop;
	const struct hop_config *cfg;
	struct hop_stats *stats;
	struct place *places;
	int nplaces;
	/* The thread: todo is its queue, done what it finished for the
	 * loop, both under mu; efd wakes the loop. */
	pthread_t thread;
	bool thread_on, quit;
	bool closing; /* the run is over: its sources may be closed */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct hop_deadq_job *todo, *todo_tail, *done;
	int efd;
};

static int source_index(const struct hop_deadq *k, const char *name)
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
	    hop_console_text(l->error, l->error ? strlen(l->error) : 0,
			     CUT_BYTES),
	    "attempts",
	    l->attempts >= 0 ? json_integer(l->attempts) : json_null(), "when",
	    l->when ? json_string(l->when) : json_null(), "stderr",
	    hop_console_text(stderr_text, stderr_text ? strlen(stderr_text) : 0,
			     CUT_BYTES),
	    "payload", hop_console_text(l->payload, plen, CUT_BYTES),
	    "payload_bytes", (json_int_t)plen, "payload_cut", plen > CUT_BYTES,
	    "stage", stage);
	json_decref(rec);
	if (!o)
		return -ENOMEM;
	return json_array_append_new(a, o) ? -ENOMEM : 0;
}

/* Does one job on the thread, on the source's own instance. */
static void run_job(struct hop_deadq *k, struct hop_deadq_job *job)
{
	struct place *p = &k->places[job->source];
	char err[1024] = "";
	int rc = hop_dead_place_open(p->own, err, sizeof(err));

	if (rc) {
		job->status = 502;
		job->body = hop_console_message("error", "%s", err);
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
			job->body = hop_console_message("error", "%s", err);
		} else {
			job->status = 200;
			job->body = hop_console_dump(json_pack(
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
			job->body = hop_console_message("error", "%s", err);
		} else {
			job->status = 200;
			job->body = hop_console_dump(json_pack(
			    "{s:s, s:s, s:s}", "source", p->name, "id", job->id,
			    "done",
			    act == HOP_DEAD_RETRY ? "retried" : "discarded"));
		}
	}
	hop_dead_place_close(p->own);
}

static void *dead_thread(void *arg)
{
	struct hop_deadq *k = arg;
	uint64_t one = 1;

	pthread_mutex_lock(&k->mu);
	for (;;) {
		while (!k->todo && !k->quit)
			pthread_cond_wait(&k->cv, &k->mu);
		if (k->quit)
			break;
		struct hop_deadq_job *job = k->todo;
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
static void tell_retried(struct hop_deadq *k, struct hop_deadq_job *job)
{
	struct hop_source *src = k->places[job->source].run;
	if (k->closing || job->kind != HOP_JOB_RETRY || job->status != 200)
		return;
	if (src->ops->dead_retried)
		src->ops->dead_retried(src, job->id);
	/* A finite run gives one item more than it counted at its start. */
	if (k->stats->total >= 0)
		k->stats->total++;
}

/* Hands the jobs the thread finished back on the loop, oldest first. */
static void deliver(struct hop_deadq *k)
{
	pthread_mutex_lock(&k->mu);
	struct hop_deadq_job *list = k->done, *rev = NULL;
	k->done = NULL;
	pthread_mutex_unlock(&k->mu);
	while (list) {
		struct hop_deadq_job *next = list->next;
		list->next = rev;
		rev = list;
		list = next;
	}
	while (rev) {
		struct hop_deadq_job *next = rev->next;
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

struct hop_deadq_job *hop_deadq_submit(struct hop_deadq *k,
				       enum hop_deadq_kind kind,
				       const char *source, const char *id,
				       size_t offset, size_t limit,
				       hop_deadq_done_fn done, void *arg,
				       unsigned *status, char **body)
{
	int i = source_index(k, source);

	if (i < 0) {
		*status = 404;
		*body =
		    hop_console_message("error", "no source '%.200s'", source);
		return NULL;
	}
	struct place *p = &k->places[i];
	if (!p->own) {
		*status = 409;
		*body = hop_console_message(
		    "error",
		    "%s: the %s source has no dead letters to "
		    "manage",
		    p->run->label, p->run->ops->name);
		return NULL;
	}
	if (kind != HOP_JOB_LIST && !hop_dead_live(p->run)) {
		*status = 409;
		*body = hop_console_message(
		    "error",
		    "%s: the %s source's dead letters cannot be "
		    "changed while it runs: use hopper dead after "
		    "the run",
		    p->run->label, p->run->ops->name);
		return NULL;
	}
	if (kind != HOP_JOB_LIST && (!id || !*id)) {
		*status = 400;
		*body = hop_console_message("error",
					    "name the dead letter: ?id=ID");
		return NULL;
	}
	if (!k->thread_on) {
		*status = 503;
		*body =
		    hop_console_message("error", "the console cannot read dead "
						 "letters: no thread");
		return NULL;
	}
	struct hop_deadq_job *job = calloc(1, sizeof(*job));
	if (!job || (id && !(job->id = strdup(id)))) {
		free(job);
		*status = 500;
		*body = hop_console_message("error", "out of memory");
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

unsigned hop_deadq_answer(struct hop_deadq_job *job, char **body)
{
	*body = job->body;
	job->body = NULL;
	return job->status;
}

void hop_deadq_job_free(struct hop_deadq_job *job)
{
	if (!job)
		return;
	free(job->id);
	free(job->body);
	free(job);
}

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

static int make_places(struct hop_deadq *k)
{
	const struct hop_config *cfg = k->cfg;
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

struct hop_deadq *hop_deadq_new(struct hop_loop *loop,
				const struct hop_config *cfg,
				struct hop_stats *stats, char *err,
				size_t errlen)
{
	struct hop_deadq *k = calloc(1, sizeof(*k));

	if (!k) {
		snprintf(err, errlen, "console: out of memory");
		return NULL;
	}
	k->loop = loop;
	k->cfg = cfg;
	k->stats = stats;
	k->efd = -1;
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->cv, NULL);
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
	return k;
fail:
	hop_deadq_free(k);
	return NULL;
}

void hop_deadq_free(struct hop_deadq *k)
{
	if (!k)
		return;
	k->closing = true;
	if (k->thread_on) {
		pthread_mutex_lock(&k->mu);
		k->quit = true;
		pthread_cond_signal(&k->cv);
		pthread_mutex_unlock(&k->mu);
		pthread_join(k->thread, NULL);
	}
	/* What the thread never took is answered so; then all goes back. */
	for (struct hop_deadq_job *j = k->todo, *next; j; j = next) {
		next = j->next;
		j->status = 503;
		j->body = hop_console_message("error", "hopper is stopping");
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
	pthread_mutex_destroy(&k->mu);
	pthread_cond_destroy(&k->cv);
	free(k);
}
