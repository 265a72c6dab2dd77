/* Unit tests for opts.c: one table parses text and JSON and names errors. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/opts.h"

struct ctx {
	char *name;
	int64_t n;
	bool flag;
	int64_t size;
	double secs;
};

static const struct hop_option table[] = {
    {"name", HOP_OPT_STR, "anon", offsetof(struct ctx, name), "a name"},
    {"n", HOP_OPT_INT, "3", offsetof(struct ctx, n), "a count"},
    {"flag", HOP_OPT_BOOL, "false", offsetof(struct ctx, flag), "a flag"},
    {"size", HOP_OPT_SIZE, "16M", offsetof(struct ctx, size), "a size"},
    {"secs", HOP_OPT_SECONDS, "1.5", offsetof(struct ctx, secs), "a time"},
    {NULL},
};

static void defaults_then_text(void **state)
{
	struct ctx c = {0};
	char err[256];
	assert_int_equal(hop_opts_defaults(table, &c, err, sizeof(err)), 0);
	assert_string_equal(c.name, "anon");
	assert_int_equal(c.n, 3);
	assert_int_equal(c.size, 16 << 20);
	assert_true(c.secs == 1.5);
	assert_int_equal(
	    hop_opts_set(table, &c, "secs", "250ms", err, sizeof(err)), 0);
	assert_true(c.secs == 0.25);
	assert_int_equal(
	    hop_opts_set(table, &c, "secs", "2m", err, sizeof(err)), 0);
	assert_true(c.secs == 120);
	assert_int_equal(
	    hop_opts_set(table, &c, "flag", "yes", err, sizeof(err)), 0);
	assert_true(c.flag);
	assert_int_equal(hop_opts_set(table, &c, "name", "x", err, sizeof(err)),
			 0);
	assert_string_equal(c.name, "x");
	hop_opts_free(table, &c);
	assert_null(c.name);
}

static void errors_name_the_key(void **state)
{
	struct ctx c = {0};
	char err[256];
	hop_opts_defaults(table, &c, err, sizeof(err));
	assert_int_equal(hop_opts_set(table, &c, "nn", "1", err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(
	    err, "unknown option 'nn' (known: name, n, flag, size, secs)");
	assert_int_equal(hop_opts_set(table, &c, "n", "1x", err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "option 'n': '1x' is not an integer");
	assert_int_equal(
	    hop_opts_set(table, &c, "size", "-1", err, sizeof(err)), -EINVAL);
	assert_int_equal(
	    hop_opts_set(table, &c, "secs", "soon", err, sizeof(err)), -EINVAL);
	hop_opts_free(table, &c);
}

static void json_values(void **state)
{
	struct ctx c = {0};
	char err[256];
	json_t *v;
	hop_opts_defaults(table, &c, err, sizeof(err));
	v = json_integer(7);
	assert_int_equal(hop_opts_set_json(table, &c, "n", v, err, sizeof(err)),
			 0);
	assert_int_equal(c.n, 7);
	assert_int_equal(
	    hop_opts_set_json(table, &c, "secs", v, err, sizeof(err)), 0);
	assert_true(c.secs == 7);
	assert_int_equal(
	    hop_opts_set_json(table, &c, "name", v, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "option 'name' must be a string");
	json_decref(v);
	v = json_string("12");
	assert_int_equal(hop_opts_set_json(table, &c, "n", v, err, sizeof(err)),
			 0);
	assert_int_equal(c.n, 12);
	json_decref(v);
	hop_opts_free(table, &c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(defaults_then_text),
	    cmocka_unit_test(errors_name_the_key),
	    cmocka_unit_test(json_values),
	};
	return cmocka_run_group_tests_name("opts", tests, NULL, NULL);
}
