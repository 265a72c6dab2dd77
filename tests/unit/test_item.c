/* Unit tests for item.c: items in one allocation, and the outcome fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/item.h"
#include "coordinator/spool.h"

static void a_block_item_holds_copies_and_room_for_its_source(void **state)
{
	char id[] = "topic/2/41", payload[] = "{\"n\":41}xyz";
	struct hop_item *it = hop_item_new_block(id, 10, payload, 8, 100);

	assert_non_null(it);
	assert_true(it->one_block);
	id[0] = payload[0] = '!'; /* copies, not the caller's bytes */
	assert_string_equal(it->id, "topic/2/41");
	assert_string_equal(it->payload, "{\"n\":41}"); /* terminated */
	assert_int_equal(it->payload_len, 8);
	assert_non_null(it->src_data);
	assert_int_equal((uintptr_t)it->src_data % 16, 0);
	/* The source's room is its own: filling it leaves id and payload. */
	memset(it->src_data, 0x5a, 100);
	assert_string_equal(it->id, "topic/2/41");
	assert_string_equal(it->payload, "{\"n\":41}");
	/* An outcome is malloc'd apart and freed with the item. */
	hop_item_fail(it, true, "attempt %d failed", 1);
	assert_string_equal(it->error, "attempt 1 failed");
	hop_item_free(it);

	it = hop_item_new_block("", 0, "null", 4, 0);
	assert_non_null(it);
	assert_null(it->src_data);
	assert_string_equal(it->id, "");
	assert_string_equal(it->payload, "null");
	hop_item_free(it);
}

/* Gives the item an attempt's emits, as a worker's answer would. */
static void emit_two(struct hop_item *it)
{
	struct hop_emit e = {"1", 1, "p", NULL};

	it->emits = hop_spool_new("/tmp", 1024);
	assert_non_null(it->emits);
	assert_int_equal(hop_spool_add(it->emits, &e), 0);
	assert_int_equal(hop_spool_add(it->emits, &e), 0);
}

/* An attempt's emits and drop go with its outcome: a new attempt, or a
 * failure, leaves none of them (the sanitizers see any leak). */
static void a_new_attempt_or_a_failure_discards_the_emits(void **state)
{
	struct hop_item *it = hop_item_new_block("7", 1, "{}", 2, 0);

	assert_non_null(it);
	emit_two(it);
	it->drop = true;
	it->ok = true;
	hop_item_reset_outcome(it);
	assert_null(it->emits);
	assert_false(it->drop);
	assert_false(it->ok);

	emit_two(it);
	it->drop = true;
	hop_item_fail(it, false, "the worker crashed");
	assert_null(it->emits);
	assert_false(it->drop);
	assert_string_equal(it->error, "the worker crashed");

	emit_two(it); /* and freeing the item frees them */
	hop_item_free(it);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_block_item_holds_copies_and_room_for_its_source),
	    cmocka_unit_test(a_new_attempt_or_a_failure_discards_the_emits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
