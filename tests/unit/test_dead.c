/* Unit tests for dead.c: the dead-letter operations over a fake source,
 * and what they say when a dead letter is not there or cannot be acted on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/dead.h"
#include "sources/source.h"

/* The fake dead-letter place: three letters, "b" twice (a jsonl file run
 * twice), and "c" refuses to go. */
static const char *const ids[] = {"a", "b", "b", "c"};
static bool taken[4];
static int opened, closed, retried;

static int fake_open(struct hop_source *src)
{
	opened++;
	memset(taken, 0, sizeof(taken));
	return 0;
}

static int fake_list(struct hop_source *src, hop_dead_each_fn each, void *arg)
{
	for (size_t i = 0; i < 4; i++) {
		struct hop_dead_letter l = {.id = ids[i],
					    .error = "bad input",
					    .attempts = (int64_t)i + 1,
					    .payload = "{\"n\":1}"};
		int rc = each(arg, &l);
		if (rc)
			return rc;
	}
	return 0;
}

static int take(struct hop_source *src, const char *id)
{
	if (!strcmp(id, "c")) {
		snprintf(src->error, sizeof(src->error), "the disk is full");
		return -ENOSPC;
	}
	for (size_t i = 0; i < 4; i++)
		if (!strcmp(ids[i], id))
			taken[i] = true;
	return 0;
}

static int fake_retry(struct hop_source *src, const char *id, FILE *out)
{
	retried++;
	return take(src, id);
}

static int fake_discard(struct hop_source *src, const char *id)
{
	return take(src, id);
}

static void fake_close(struct hop_source *src)
{
	closed++;
}

static const struct hop_source_ops fake_ops = {
    .name = "fake",
    .dead_open = fake_open,
    .dead_list = fake_list,
    .dead_retry = fake_retry,
    .dead_discard = fake_discard,
    .dead_close = fake_close,
};

static const struct hop_source_ops plain_ops = {.name = "plain"};

static void test_lists_and_finds(void **state)
{
	struct hop_source src = {.ops = &fake_ops, .label = "fake:x"};
	struct hop_dead d;
	char err[256];

	assert_int_equal(hop_dead_open(&d, &src, err, sizeof(err)), 0);
	assert_int_equal(d.n, 4);
	assert_string_equal(d.v[3].id, "c");
	assert_string_equal(d.v[3].item, "c"); /* none given: the id */
	assert_int_equal(d.v[3].attempts, 4);
	assert_string_equal(d.v[0].payload, "{\"n\":1}");
	assert_null(d.v[0].when);
	assert_non_null(hop_dead_find(&d, "b"));
	assert_null(hop_dead_find(&d, "z"));
	hop_dead_close(&d);
	assert_int_equal(closed, 1);
}

static void test_retry_takes_every_letter_of_an_id(void **state)
{
	struct hop_source src = {.ops = &fake_ops, .label = "fake:x"};
	struct hop_dead d;
	char err[256];

	assert_int_equal(hop_dead_open(&d, &src, err, sizeof(err)), 0);
	assert_int_equal(hop_dead_retry(&d, "b", NULL, err, sizeof(err)), 0);
	assert_true(taken[1] && taken[2]);
	assert_null(hop_dead_find(&d, "b"));
	/* Gone: not asked of the source again. */
	retried = 0;
	assert_int_equal(hop_dead_retry(&d, "b", NULL, err, sizeof(err)),
			 -ENOENT);
	assert_int_equal(retried, 0);
	assert_string_equal(err, "fake:x: no dead letter 'b'");
	hop_dead_close(&d);
}

static void test_a_failure_names_the_letter(void **state)
{
	struct hop_source src = {.ops = &fake_ops, .label = "fake:x"};
	struct hop_dead d;
	char err[256];

	assert_int_equal(hop_dead_open(&d, &src, err, sizeof(err)), 0);
	assert_int_equal(hop_dead_discard(&d, "c", err, sizeof(err)), -ENOSPC);
	assert_string_equal(err, "fake:x: c: cannot discard: the disk is full");
	/* Still there, to be tried again. */
	assert_non_null(hop_dead_find(&d, "c"));
	hop_dead_close(&d);
}

static void test_a_source_without_a_place(void **state)
{
	struct hop_source src = {.ops = &plain_ops, .label = "plain:x"};
	struct hop_dead d;
	char err[256];

	assert_false(hop_dead_supported(&src));
	assert_int_equal(hop_dead_open(&d, &src, err, sizeof(err)), -ENOTSUP);
	assert_string_equal(
	    err, "plain:x: the plain source has no dead letters to manage");
	hop_dead_close(&d); /* harmless after a failed open */
}

static int collect(void *arg, const struct hop_dead_letter *l)
{
	char *got = arg;
	strcat(got, l->id);
	return 0;
}

/* A page is cut from the whole listing when the driver has no dead_page,
 * and the place is changed through hop_dead_apply with no listing. */
static void test_a_page_and_an_action_without_a_listing(void **state)
{
	struct hop_source src = {.ops = &fake_ops, .label = "fake:x"};
	char err[256], got[16] = "";
	size_t total = 0;

	assert_int_equal(hop_dead_place_open(&src, err, sizeof(err)), 0);
	assert_int_equal(
	    hop_dead_page(&src, 1, 2, collect, got, &total, err, sizeof(err)),
	    0);
	assert_string_equal(got, "bb");
	assert_int_equal(total, 4);
	got[0] = '\0';
	assert_int_equal(
	    hop_dead_page(&src, 3, 10, collect, got, &total, err, sizeof(err)),
	    0);
	assert_string_equal(got, "c");
	got[0] = '\0';
	assert_int_equal(
	    hop_dead_page(&src, 9, 10, collect, got, &total, err, sizeof(err)),
	    0);
	assert_string_equal(got, "");
	assert_int_equal(total, 4);
	assert_int_equal(
	    hop_dead_apply(&src, HOP_DEAD_RETRY, "a", NULL, err, sizeof(err)),
	    0);
	assert_true(taken[0]);
	assert_int_equal(
	    hop_dead_apply(&src, HOP_DEAD_DISCARD, "c", NULL, err, sizeof(err)),
	    -ENOSPC);
	assert_string_equal(err, "fake:x: c: cannot discard: the disk is full");
	hop_dead_place_close(&src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lists_and_finds),
	    cmocka_unit_test(test_retry_takes_every_letter_of_an_id),
	    cmocka_unit_test(test_a_failure_names_the_letter),
	    cmocka_unit_test(test_a_source_without_a_place),
	    cmocka_unit_test(test_a_page_and_an_action_without_a_listing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
