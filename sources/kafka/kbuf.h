/* kbuf.h - the kafka source's read-ahead: messages copied out of
 * librdkafka into a FIFO of byte records.
 *
 * librdkafka 2.0's consumer stops fetching when its own queue reaches
 * queued.min.messages or queued.max.messages.kbytes and looks again a
 * whole second later, however soon the queue drains; a pause or resume
 * throws its queue away. So the source takes messages out of librdkafka as
 * they come, keeps more than a second's worth here, and pauses the
 * partitions only once this is full. A record costs its
 * key, value and headers plus 32 bytes, against about 350 for a message
 * librdkafka holds.
 */
#ifndef HOP_SOURCES_KAFKA_KBUF_H
#define HOP_SOURCES_KAFKA_KBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One message. The bytes that follow it: key, value, then headers, each
 * header as two uint32 lengths (name, value; UINT32_MAX for a null value)
 * and the bytes of both. */
struct krec {
	int64_t offset;
	int32_t partition;
	uint32_t epoch;	    /* the partition's assignment it was taken in */
	uint32_t key_len;   /* UINT32_MAX: no key */
	uint32_t value_len; /* UINT32_MAX: a null value */
	uint32_t hdr_len;   /* bytes of packed headers */
	uint32_t nhdrs;
};

/* The parts of a record, found in its bytes. */
static inline const char *krec_key(const struct krec *r)
{
	return r->key_len == UINT32_MAX ? NULL : (const char *)(r + 1);
}

static inline const char *krec_value(const struct krec *r)
{
	size_t k = r->key_len == UINT32_MAX ? 0 : r->key_len;
	return r->value_len == UINT32_MAX ? NULL : (const char *)(r + 1) + k;
}

static inline const char *krec_headers(const struct krec *r)
{
	size_t k = r->key_len == UINT32_MAX ? 0 : r->key_len;
	size_t v = r->value_len == UINT32_MAX ? 0 : r->value_len;
	return (const char *)(r + 1) + k + v;
}

/* The record's whole size, header included. */
static inline size_t krec_size(const struct krec *r)
{
	return (size_t)(krec_headers(r) - (const char *)r) + r->hdr_len;
}

/* Walks packed headers: from *pos, sets name, value (NULL for a null
 * value) and their lengths; returns false past the last. */
bool krec_next_header(const struct krec *r, size_t *pos, const char **name,
		      size_t *name_len, const char **value, size_t *value_len);

struct kbuf_chunk;

struct kbuf {
	struct kbuf_chunk *head, *tail, *spare;
	size_t bytes; /* of the records held */
	size_t count;
};

/* Makes room for a record of size bytes (krec_size) at the tail and
 * returns it, to be filled in; NULL when memory ran out. */
struct krec *kbuf_push(struct kbuf *b, size_t size);
/* The oldest record, or NULL. */
struct krec *kbuf_peek(const struct kbuf *b);
/* Lets the oldest record go. */
void kbuf_pop(struct kbuf *b);
void kbuf_free(struct kbuf *b);

#endif
