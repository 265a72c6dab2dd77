/* Unit tests for suggest.c: the nearest name, and only when it is near. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "coordinator/suggest.h"

static const char *nearest(const char *word, const char *const *names)
{
	struct hop_suggest s;
	hop_suggest_init(&s, word);
	for (; *names; names++)
		hop_suggest_offer(&s, *names);
	return hop_suggest_best(&s);
}

static void distance(void **state)
{
	assert_int_equal(hop_suggest_distance("workers", "workers"), 0);
	assert_int_equal(hop_suggest_distance("wrokers", "workers"), 1);
	assert_int_equal(hop_suggest_distance("wokers", "workers"), 1);
	assert_int_equal(hop_suggest_distance("runn", "run"), 1);
	assert_int_equal(hop_suggest_distance("backoff-max", "backoff_max"), 0);
	assert_int_equal(hop_suggest_distance("", "abc"), 3);
	assert_int_equal(hop_suggest_distance("kitten", "sitting"), 3);
	char long_word[80];
	memset(long_word, 'a', sizeof(long_word) - 1);
	long_word[79] = '\0';
	assert_true(hop_suggest_distance(long_word, "a") == SIZE_MAX);
}

static void suggests_only_what_is_near(void **state)
{
	static const char *const keys[] = {"workers",  "min_workers", "timeout",
					   "attempts", "glob",	      NULL};
	static const char *const cmds[] = {"run", "validate", "check-worker",
					   "help", NULL};
	assert_string_equal(nearest("wrokers", keys), "workers");
	assert_string_equal(nearest("min-wokers", keys), "min_workers");
	assert_string_equal(nearest("timout", keys), "timeout");
	assert_string_equal(nearest("globb", keys), "glob");
	assert_string_equal(nearest("runn", cmds), "run");
	assert_string_equal(nearest("validte", cmds), "validate");
	assert_string_equal(nearest("checkworker", cmds), "check-worker");
	/* Too far to be a slip of the finger. */
	assert_null(nearest("colour", keys));
	assert_null(nearest("x", cmds));
	assert_null(nearest("rm", cmds));
	/* The word itself is no suggestion. */
	assert_null(nearest("run", cmds));
}

static void spelled_as_typed(void **state)
{
	struct hop_suggest s;
	char buf[64];
	hop_suggest_init(&s, "backof-max");
	hop_suggest_offer(&s, "backoff_max");
	assert_string_equal(hop_suggest_spelled(&s, buf, sizeof(buf)),
			    "backoff-max");
	hop_suggest_init(&s, "backof_max");
	hop_suggest_offer(&s, "backoff_max");
	assert_string_equal(hop_suggest_spelled(&s, buf, sizeof(buf)),
			    "backoff_max");
	hop_suggest_init(&s, "zzz");
	hop_suggest_offer(&s, "backoff_max");
	assert_null(hop_suggest_spelled(&s, buf, sizeof(buf)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(distance),
	    cmocka_unit_test(suggests_only_what_is_near),
	    cmocka_unit_test(spelled_as_typed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
