/* Unit tests for driver.c: specs split into name and target, and labels
 * never carry a password. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/driver.h"

static void label_is(const char *spec, const char *want)
{
	char *got = hop_driver_label(spec);
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void test_label_masks_password(void **state)
{
	label_is("postgres://hop:s3cret@db:5432/q",
		 "postgres://hop:***@db:5432/q");
	label_is("postgres://u:a@h/d", "postgres://u:***@h/d");
	label_is("postgres://u:p@ss@h/d", "postgres://u:***@h/d");
	label_is("postgres://u:pw@h/d?x=a@b", "postgres://u:***@h/d?x=a@b");
}

static void test_label_keeps_the_rest(void **state)
{
	label_is("postgres://hop@db/q", "postgres://hop@db/q");
	label_is("postgres://db/q", "postgres://db/q");
	label_is("jsonl:items.jsonl", "jsonl:items.jsonl");
	label_is("dir:a:b@c", "dir:a:b@c");
}

static void test_spec_names(void **state)
{
	char *name, *target, err[128];
	assert_int_equal(hop_driver_spec("postgresql://h/d", &name, &target,
					 err, sizeof(err)),
			 0);
	assert_string_equal(name, "postgres");
	assert_string_equal(target, "postgresql://h/d");
	free(name);
	free(target);
	assert_int_equal(
	    hop_driver_spec("dir:in", &name, &target, err, sizeof(err)), 0);
	assert_string_equal(name, "dir");
	assert_string_equal(target, "in");
	free(name);
	free(target);
	assert_int_not_equal(
	    hop_driver_spec(":x", &name, &target, err, sizeof(err)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_label_masks_password),
	    cmocka_unit_test(test_label_keeps_the_rest),
	    cmocka_unit_test(test_spec_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
