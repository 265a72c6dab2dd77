/* item.c - items and item queues. */
#include "item.h"
#include "spool.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How much of a worker's stderr the dead letter keeps. */
#define STDERR_TAIL_MAX 4096

struct hop_item *hop_item_new(char *id, char *payload, size_t payload_len)
{
	struct hop_item *it = calloc(1, sizeof(*it));
	if (!it) {
		free(id);
		free(payload);
		return NULL;
	}
	it->id = id;
	it->payload = payload;
	it->payload_len = payload_len;
	return it;
}

struct hop_item *hop_item_new_block(const char *id, size_t id_len,
				    const char *payload, size_t payload_len,
				    size_t extra)
{
	size_t head = (sizeof(struct hop_item) + 15) & ~(size_t)15;
	size_t ext = (extra + 15) & ~(size_t)15;
	struct hop_item *it = malloc(head + ext + id_len + 1 + payload_len + 1);
	if (!it)
		return NULL;
	*it = (struct hop_item){.one_block = true};
	char *p = (char *)it + head;
	it->src_data = extra ? p : NULL;
	it->id = p + ext;
	memcpy(it->id, id, id_len);
	it->id[id_len] = '\0';
	it->payload = it->id + id_len + 1;
	memcpy(it->payload, payload, payload_len);
	it->payload[payload_len] = '\0';
	it->payload_len = payload_len;
	return it;
}

/* Forgets what the attempt would have output: it did not succeed, or a
 * new attempt starts. */
static void drop_outputs(struct hop_item *it)
{
	free(it->result);
	it->result = NULL;
	hop_spool_free(it->emits);
	it->emits = NULL;
	it->drop = false;
}

void hop_item_reset_outcome(struct hop_item *it)
{
	drop_outputs(it);
	free(it->error);
	it->error = NULL;
	it->ok = false;
	it->retry = true;
}

void hop_item_free(struct hop_item *it)
{
	if (!it)
		return;
	hop_item_reset_outcome(it);
	free(it->stderr_tail);
	free(it->key);
	if (!it->one_block) {
		free(it->id);
		free(it->payload);
	}
	free(it);
}

void hop_item_fail(struct hop_item *it, bool retry, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	free(it->error);
	drop_outputs(it);
	it->error = strdup(msg);
	it->ok = false;
	it->retry = retry;
}

void hop_item_add_stderr(struct hop_item *it, const char *line, size_t len)
{
	size_t have = it->stderr_tail ? strlen(it->stderr_tail) : 0;
	if (len > STDERR_TAIL_MAX / 2)
		len = STDERR_TAIL_MAX / 2;
	char *p = realloc(it->stderr_tail, have + len + 2);
	if (!p)
		return;
	memcpy(p + have, line, len);
	p[have + len] = '\n';
	p[have + len + 1] = '\0';
	have += len + 1;
	/* Drop whole lines from the front until the tail fits. */
	char *keep = p;
	while (have - (size_t)(keep - p) > STDERR_TAIL_MAX) {
		char *nl = strchr(keep, '\n');
		if (!nl)
			break;
		keep = nl + 1;
	}
	if (keep != p)
		memmove(p, keep, strlen(keep) + 1);
	it->stderr_tail = p;
}

void hop_queue_push(struct hop_queue *q, struct hop_item *it)
{
	it->next = NULL;
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	q->len++;
}

struct hop_item *hop_queue_pop(struct hop_queue *q)
{
	struct hop_item *it = q->head;
	if (!it)
		return NULL;
	q->head = it->next;
	if (!q->head)
		q->tail = NULL;
	it->next = NULL;
	q->len--;
	return it;
}

bool hop_queue_remove(struct hop_queue *q, struct hop_item *it)
{
	struct hop_item *prev = NULL;
	for (struct hop_item *p = q->head; p; prev = p, p = p->next) {
		if (p != it)
			continue;
		if (prev)
			prev->next = p->next;
		else
			q->head = p->next;
		if (q->tail == p)
			q->tail = prev;
		p->next = NULL;
		q->len--;
		return true;
	}
	return false;
}
