/* ids.c - the http source's table of ids (see ids.h). */
#include "sources/http/ids.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a: ids are short, and a table this size needs nothing better. */
static size_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (size_t)h;
}

static bool active(enum hop_http_state s)
{
	return s != HOP_HTTP_GONE && s != HOP_HTTP_STUCK;
}

struct hop_http_id *hop_http_ids_find(struct hop_http_ids *t, const char *id)
{
	if (!t->nslots)
		return NULL;
	struct hop_http_id *e = t->slots[hash(id) & (t->nslots - 1)];
	while (e && strcmp(e->id, id))
		e = e->bucket;
	return e;
}

/* Doubles the slots once the table holds as many ids as it has slots. */
static int grow(struct hop_http_ids *t)
{
	size_t n = t->nslots ? t->nslots * 2 : 64;
	struct hop_http_id **slots = calloc(n, sizeof(*slots));
	if (!slots)
		return -1;
	for (size_t i = 0; i < t->nslots; i++) {
		struct hop_http_id *e = t->slots[i], *next;
		for (; e; e = next) {
			next = e->bucket;
			size_t k = hash(e->id) & (n - 1);
			e->bucket = slots[k];
			slots[k] = e;
		}
	}
	free(t->slots);
	t->slots = slots;
	t->nslots = n;
	return 0;
}

struct hop_http_id *hop_http_ids_add(struct hop_http_ids *t, const char *id)
{
	if (t->n >= t->nslots && grow(t))
		return NULL;
	struct hop_http_id *e = calloc(1, sizeof(*e));
	if (!e || !(e->id = strdup(id))) {
		free(e);
		return NULL;
	}
	size_t k = hash(id) & (t->nslots - 1);
	e->state = HOP_HTTP_LISTED;
	e->bucket = t->slots[k];
	t->slots[k] = e;
	t->n++;
	t->active++;
	return e;
}

void hop_http_ids_set(struct hop_http_ids *t, struct hop_http_id *e,
		      enum hop_http_state s)
{
	t->active += (size_t)active(s) - (size_t)active(e->state);
	e->state = s;
}

void hop_http_ids_remove(struct hop_http_ids *t, struct hop_http_id *e)
{
	struct hop_http_id **p = &t->slots[hash(e->id) & (t->nslots - 1)];
	while (*p && *p != e)
		p = &(*p)->bucket;
	if (!*p)
		return;
	*p = e->bucket;
	t->n--;
	t->active -= active(e->state);
	free(e->id);
	free(e);
}

void hop_http_ids_free(struct hop_http_ids *t)
{
	for (size_t i = 0; i < t->nslots; i++) {
		struct hop_http_id *e = t->slots[i], *next;
		for (; e; e = next) {
			next = e->bucket;
			free(e->id);
			free(e);
		}
	}
	free(t->slots);
	*t = (struct hop_http_ids){0};
}
