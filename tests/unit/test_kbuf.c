/* Unit tests for the kafka source's read-ahead FIFO (sources/kafka/kbuf.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sources/kafka/kbuf.h"

/* Appends a record with the given key, value and one header "h" = n. */
static void push(struct kbuf *b, int64_t off, const char *key,
		 const char *value, size_t value_len)
{
	char hv[16];
	uint32_t lens[2] = {
	    1, (uint32_t)snprintf(hv, sizeof(hv), "%lld", (long long)off)};
	size_t klen = key ? strlen(key) : 0;
	size_t hlen = sizeof(lens) + 1 + lens[1];
	struct krec *r = kbuf_push(b, sizeof(*r) + klen + value_len + hlen);
	assert_non_null(r);
	*r =
	    (struct krec){.offset = off,
			  .partition = (int32_t)(off % 3),
			  .key_len = key ? (uint32_t)klen : UINT32_MAX,
			  .value_len = value ? (uint32_t)value_len : UINT32_MAX,
			  .hdr_len = (uint32_t)hlen,
			  .nhdrs = 1};
	char *p = (char *)(r + 1);
	if (klen)
		memcpy(p, key, klen);
	if (value)
		memcpy(p + klen, value, value_len);
	p += klen + (value ? value_len : 0);
	memcpy(p, lens, sizeof(lens));
	p[sizeof(lens)] = 'h';
	memcpy(p + sizeof(lens) + 1, hv, lens[1]);
}

static void records_come_back_in_order_with_their_parts(void **state)
{
	struct kbuf b = {0};
	char value[64];

	for (int i = 0; i < 100000; i++) {
		int n = snprintf(value, sizeof(value), "{\"n\":%d}", i);
		push(&b, i, i % 2 ? "k" : NULL, value, (size_t)n);
	}
	assert_int_equal(b.count, 100000);
	for (int i = 0; i < 100000; i++) {
		struct krec *r = kbuf_peek(&b);
		assert_non_null(r);
		assert_int_equal(r->offset, i);
		int n = snprintf(value, sizeof(value), "{\"n\":%d}", i);
		assert_int_equal(r->value_len, n);
		assert_memory_equal(krec_value(r), value, (size_t)n);
		if (i % 2)
			assert_memory_equal(krec_key(r), "k", 1);
		else
			assert_null(krec_key(r));
		size_t pos = 0, nl, vl;
		const char *name, *v;
		assert_true(krec_next_header(r, &pos, &name, &nl, &v, &vl));
		assert_int_equal(nl, 1);
		assert_memory_equal(name, "h", 1);
		char want[16];
		snprintf(want, sizeof(want), "%d", i);
		assert_int_equal(vl, strlen(want));
		assert_memory_equal(v, want, vl);
		assert_false(krec_next_header(r, &pos, &name, &nl, &v, &vl));
		kbuf_pop(&b);
	}
	assert_null(kbuf_peek(&b));
	assert_int_equal(b.count, 0);
	assert_int_equal(b.bytes, 0);
	kbuf_free(&b);
}

static void
a_record_bigger_than_a_chunk_fits_and_a_null_value_is_kept(void **state)
{
	struct kbuf b = {0};
	size_t big = 3u << 20;
	char *v = malloc(big);
	memset(v, 'x', big);

	/* Alone in an empty buffer, then between small ones. */
	push(&b, 0, NULL, v, big);
	assert_int_equal(kbuf_peek(&b)->value_len, big);
	kbuf_pop(&b);
	push(&b, 1, "a", "1", 1);
	push(&b, 2, "b", v, big);
	push(&b, 3, "c", NULL, 0);
	assert_int_equal(kbuf_peek(&b)->offset, 1);
	kbuf_pop(&b);
	struct krec *r = kbuf_peek(&b);
	assert_int_equal(r->offset, 2);
	assert_memory_equal(krec_value(r), v, big);
	kbuf_pop(&b);
	r = kbuf_peek(&b);
	assert_int_equal(r->offset, 3);
	assert_null(krec_value(r));
	kbuf_pop(&b);
	assert_null(kbuf_peek(&b));
	assert_int_equal(b.bytes, 0);
	kbuf_free(&b);
	free(v);
}

static void interleaved_pushes_and_pops_hold_only_what_is_unread(void **state)
{
	struct kbuf b = {0};
	int64_t next_in = 0, next_out = 0;

	/* A steady flow through many chunks: what is held stays small. */
	for (int round = 0; round < 2000; round++) {
		for (int i = 0; i < 50; i++, next_in++)
			push(&b, next_in, "key", "0123456789abcdef", 16);
		for (int i = 0; i < 50; i++, next_out++) {
			assert_int_equal(kbuf_peek(&b)->offset, next_out);
			kbuf_pop(&b);
		}
		assert_int_equal(b.count, 0);
	}
	assert_null(kbuf_peek(&b));
	kbuf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(records_come_back_in_order_with_their_parts),
	    cmocka_unit_test(
		a_record_bigger_than_a_chunk_fits_and_a_null_value_is_kept),
	    cmocka_unit_test(
		interleaved_pushes_and_pops_hold_only_what_is_unread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
