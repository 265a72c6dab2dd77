/* Unit tests for the http source's id table: found once added, counted
 * while active, gone when removed, through the table's growth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "sources/http/ids.h"

static void finds_what_was_added(void **state)
{
	struct hop_http_ids t = {0};
	char id[32];

	assert_null(hop_http_ids_find(&t, "a"));
	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "item-%d", i);
		struct hop_http_id *e = hop_http_ids_add(&t, id);
		assert_non_null(e);
		assert_int_equal(e->state, HOP_HTTP_LISTED);
	}
	assert_int_equal(t.n, 1000);
	assert_int_equal(t.active, 1000);
	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "item-%d", i);
		struct hop_http_id *e = hop_http_ids_find(&t, id);
		assert_non_null(e);
		assert_string_equal(e->id, id);
	}
	assert_null(hop_http_ids_find(&t, "item-1000"));
	hop_http_ids_free(&t);
	assert_int_equal(t.n, 0);
}

static void counts_the_active(void **state)
{
	struct hop_http_ids t = {0};
	struct hop_http_id *a = hop_http_ids_add(&t, "a");
	struct hop_http_id *b = hop_http_ids_add(&t, "b");

	hop_http_ids_set(&t, a, HOP_HTTP_HELD);
	assert_int_equal(t.active, 2);
	hop_http_ids_set(&t, a, HOP_HTTP_GONE);
	assert_int_equal(t.active, 1);
	hop_http_ids_set(&t, b, HOP_HTTP_STUCK);
	assert_int_equal(t.active, 0);
	/* Gone ids stay found: listed again, they are not taken again. */
	assert_ptr_equal(hop_http_ids_find(&t, "a"), a);
	hop_http_ids_remove(&t, a);
	assert_null(hop_http_ids_find(&t, "a"));
	assert_ptr_equal(hop_http_ids_find(&t, "b"), b);
	assert_int_equal(t.n, 1);
	assert_int_equal(t.active, 0);
	hop_http_ids_remove(&t, b);
	assert_int_equal(t.n, 0);
	hop_http_ids_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(finds_what_was_added),
	    cmocka_unit_test(counts_the_active),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
