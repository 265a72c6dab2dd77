/* kbuf.c - a FIFO of byte records in chunks of a mebibyte.
 *
 * Records are appended to the last chunk and taken from the first; a chunk
 * is let go when its last record is, and one is kept spare so that a
 * steady flow allocates nothing.
 */
#include "sources/kafka/kbuf.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK (1u << 20)
#define ALIGN(n) (((n) + 7) & ~(size_t)7)

struct kbuf_chunk {
	struct kbuf_chunk *next;
	size_t cap;   /* bytes of data */
	size_t end;   /* bytes used */
	size_t start; /* the first record not taken */
	_Alignas(8) char data[];
};

bool krec_next_header(const struct krec *r, size_t *pos, const char **name,
		      size_t *name_len, const char **value, size_t *value_len)
{
	const char *h = krec_headers(r);
	uint32_t len[2];

	if (*pos + sizeof(len) > r->hdr_len)
		return false;
	memcpy(len, h + *pos, sizeof(len));
	*pos += sizeof(len);
	*name = h + *pos;
	*name_len = len[0];
	*pos += len[0];
	if (len[1] == UINT32_MAX) {
		*value = NULL;
		*value_len = 0;
	} else {
		*value = h + *pos;
		*value_len = len[1];
		*pos += len[1];
	}
	return true;
}

static struct kbuf_chunk *new_chunk(struct kbuf *b, size_t need)
{
	struct kbuf_chunk *c = NULL;

	if (need <= CHUNK && b->spare) {
		c = b->spare;
		b->spare = NULL;
	} else {
		size_t cap = need > CHUNK ? need : CHUNK;
		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->cap = cap;
	}
	c->next = NULL;
	c->start = c->end = 0;
	return c;
}

struct krec *kbuf_push(struct kbuf *b, size_t size)
{
	size_t need = ALIGN(size);
	struct kbuf_chunk *t = b->tail;

	if (!t || t->cap - t->end < need) {
		struct kbuf_chunk *c = new_chunk(b, need);
		if (!c)
			return NULL;
		if (t && t->start == t->end) {
			/* An empty last chunk is the only one: replace it. */
			if (!b->spare && t->cap == CHUNK)
				b->spare = t;
			else
				free(t);
			t = NULL;
		}
		if (t)
			t->next = c;
		else
			b->head = c;
		b->tail = t = c;
	}
	struct krec *r = (struct krec *)(t->data + t->end);
	t->end += need;
	b->bytes += need;
	b->count++;
	return r;
}

struct krec *kbuf_peek(const struct kbuf *b)
{
	struct kbuf_chunk *h = b->head;
	return h && h->start < h->end ? (struct krec *)(h->data + h->start)
				      : NULL;
}

void kbuf_pop(struct kbuf *b)
{
	struct kbuf_chunk *h = b->head;
	struct krec *r = kbuf_peek(b);

	if (!r)
		return;
	size_t size = ALIGN(krec_size(r));
	h->start += size;
	b->bytes -= size;
	b->count--;
	if (h->start < h->end)
		return;
	/* The chunk is spent: the last one is only rewound. */
	if (h == b->tail) {
		h->start = h->end = 0;
		return;
	}
	b->head = h->next;
	if (!b->spare && h->cap == CHUNK)
		b->spare = h;
	else
		free(h);
}

void kbuf_free(struct kbuf *b)
{
	while (b->head) {
		struct kbuf_chunk *n = b->head->next;
		free(b->head);
		b->head = n;
	}
	free(b->spare);
	*b = (struct kbuf){0};
}
