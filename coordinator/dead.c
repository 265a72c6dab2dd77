/* dead.c - a source's dead letters, over the source's dead_* operations. */
#include "dead.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sources/source.h"

bool hop_dead_supported(const struct hop_source *src)
{
	const struct hop_source_ops *o = src->ops;
	return o->dead_open && o->dead_list && o->dead_retry &&
	       o->dead_discard && o->dead_close;
}

bool hop_dead_live(const struct hop_source *src)
{
	return hop_dead_supported(src) && src->ops->dead_live;
}

/* Says why the source's last call failed, in err. */
static void why(struct hop_source *src, int rc, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s", src->error[0] ? src->error : strerror(-rc));
}

int hop_dead_place_open(struct hop_source *src, char *err, size_t errlen)
{
	int rc;

	if (!hop_dead_supported(src)) {
		snprintf(err, errlen,
			 "%s: the %s source has no dead letters to manage",
			 src->label, src->ops->name);
		return -ENOTSUP;
	}
	src->error[0] = '\0';
	if ((rc = src->ops->dead_open(src)))
		why(src, rc, err, errlen);
	return rc;
}

void hop_dead_place_close(struct hop_source *src)
{
	src->ops->dead_close(src);
}

int hop_dead_apply(struct hop_source *src, enum hop_dead_action action,
		   const char *id, FILE *out, char *err, size_t errlen)
{
	bool retry = action == HOP_DEAD_RETRY;
	int rc;

	src->error[0] = '\0';
	rc = retry ? src->ops->dead_retry(src, id, out)
		   : src->ops->dead_discard(src, id);
	if (rc)
		snprintf(err, errlen, "%s: %s: cannot %s: %s", src->label, id,
			 retry ? "retry" : "discard",
			 src->error[0] ? src->error : strerror(-rc));
	return rc;
}

struct page {
	size_t offset, limit, seen;
	hop_dead_each_fn each;
	void *arg;
};

/* Passes on the dead letters of the page, and counts them all. */
static int page_one(void *arg, const struct hop_dead_letter *l)
{
	struct page *p = arg;
	size_t i = p->seen++;
	if (i < p->offset || i - p->offset >= p->limit)
		return 0;
	return p->each(p->arg, l);
}

int hop_dead_page(struct hop_source *src, size_t offset, size_t limit,
		  hop_dead_each_fn each, void *arg, size_t *total, char *err,
		  size_t errlen)
{
	struct page p = {offset, limit, 0, each, arg};
	int rc;

	src->error[0] = '\0';
	if (src->ops->dead_page) {
		rc = src->ops->dead_page(src, offset, limit, each, arg, total);
		if (rc < 0)
			why(src, rc, err, errlen);
		return rc;
	}
	rc = src->ops->dead_list(src, page_one, &p);
	if (rc < 0)
		why(src, rc, err, errlen);
	*total = p.seen;
	return rc;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void free_entry(struct hop_dead_entry *e)
{
	free(e->id);
	free(e->item);
	free(e->error);
	free(e->when);
	free(e->payload);
	free(e->record);
}

/* Copies one dead letter that the source lists into d. */
static int keep(void *arg, const struct hop_dead_letter *l)
{
	struct hop_dead *d = arg;
	struct hop_dead_entry *v = realloc(d->v, (d->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	d->v = v;
	struct hop_dead_entry *e = &v[d->n];
	*e = (struct hop_dead_entry){
	    .id = strdup(l->id),
	    .item = strdup(l->item ? l->item : l->id),
	    .error = strdup(l->error ? l->error : ""),
	    .attempts = l->attempts,
	    .when = dup_or_null(l->when),
	    .payload = dup_or_null(l->payload),
	    .record = dup_or_null(l->record),
	};
	if (!e->id || !e->item || !e->error || (l->when && !e->when) ||
	    (l->payload && !e->payload) || (l->record && !e->record)) {
		free_entry(e);
		return -ENOMEM;
	}
	d->n++;
	return 0;
}

static void free_entries(struct hop_dead *d)
{
	for (size_t i = 0; i < d->n; i++)
		free_entry(&d->v[i]);
	free(d->v);
	d->v = NULL;
	d->n = 0;
}

int hop_dead_open(struct hop_dead *d, struct hop_source *src, char *err,
		  size_t errlen)
{
	int rc;

	*d = (struct hop_dead){0};
	if ((rc = hop_dead_place_open(src, err, errlen)))
		return rc;
	d->src = src;
	rc = src->ops->dead_list(src, keep, d);
	if (rc) {
		snprintf(err, errlen, "%s",
			 src->error[0] ? src->error : strerror(-rc));
		free_entries(d);
		src->ops->dead_close(src);
		d->src = NULL;
	}
	return rc;
}

const struct hop_dead_entry *hop_dead_find(const struct hop_dead *d,
					   const char *id)
{
	for (size_t i = 0; i < d->n; i++)
		if (!d->v[i].gone && strcmp(d->v[i].id, id) == 0)
			return &d->v[i];
	return NULL;
}

/* Retries (out set) or discards the dead letter named id. */
static int act(struct hop_dead *d, const char *id, bool retry, FILE *out,
	       char *err, size_t errlen)
{
	struct hop_source *src = d->src;
	struct hop_dead_entry *e =
	    (struct hop_dead_entry *)hop_dead_find(d, id);
	int rc;

	if (!e) {
		snprintf(err, errlen, "%s: no dead letter '%s'", src->label,
			 id);
		return -ENOENT;
	}
	rc = hop_dead_apply(src, retry ? HOP_DEAD_RETRY : HOP_DEAD_DISCARD, id,
			    out, err, errlen);
	if (rc)
		return rc;
	/* Every dead letter of that id went (a jsonl file may hold several).
	 */
	for (size_t i = 0; i < d->n; i++)
		if (!strcmp(d->v[i].id, id))
			d->v[i].gone = true;
	return 0;
}

int hop_dead_retry(struct hop_dead *d, const char *id, FILE *out, char *err,
		   size_t errlen)
{
	return act(d, id, true, out, err, errlen);
}

int hop_dead_discard(struct hop_dead *d, const char *id, char *err,
		     size_t errlen)
{
	return act(d, id, false, NULL, err, errlen);
}

void hop_dead_close(struct hop_dead *d)
{
	if (d->src)
		d->src->ops->dead_close(d->src);
	free_entries(d);
	d->src = NULL;
}
