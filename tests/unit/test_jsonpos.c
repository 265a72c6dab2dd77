/* Unit tests for jsonpos.c: key positions and ${VAR} expansion. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/jsonpos.h"

static void finds_nested_keys(void **state)
{
	const char *text = "{\n  \"a\": [1, {\"x\": 2}],\n  \"b\": {\n"
			   "    \"s\\\"q\": 1, \"c\": \"}\"\n  }\n}";
	int line, col;
	assert_int_equal(
	    hop_json_locate(text, (const char *[]){"b"}, 1, &line, &col), 0);
	assert_int_equal(line, 3);
	assert_int_equal(col, 3);
	assert_int_equal(
	    hop_json_locate(text, (const char *[]){"b", "c"}, 2, &line, &col),
	    0);
	assert_int_equal(line, 4);
	assert_int_equal(col, 16);
	assert_int_equal(
	    hop_json_locate(text, (const char *[]){"zz"}, 1, &line, &col),
	    -ENOENT);
}

static void finds_values(void **state)
{
	const char *text = "{\n  \"a\": [1, {\"x\": 2}],\n  \"b\": {\n"
			   "    \"s\\\"q\": 1, \"c\":\n\t-3\n  },\n"
			   "  \"d\"  :  \"v\"\n}";
	int line, col;
	assert_int_equal(hop_json_locate_value(text, (const char *[]){"b", "c"},
					       2, &line, &col),
			 0);
	assert_int_equal(line, 5);
	assert_int_equal(col, 2);
	assert_int_equal(
	    hop_json_locate_value(text, (const char *[]){"d"}, 1, &line, &col),
	    0);
	assert_int_equal(line, 7);
	assert_int_equal(col, 11);
	assert_int_equal(
	    hop_json_locate_value(text, (const char *[]){"a"}, 1, &line, &col),
	    0);
	assert_int_equal(line, 2);
	assert_int_equal(col, 8);
}

static void expands_the_environment(void **state)
{
	char err[256], *s;
	setenv("HOP_T_SET", "val", 1);
	setenv("HOP_T_EMPTY", "", 1);
	unsetenv("HOP_T_UNSET");
	s = hop_expand_env(
	    "a-${HOP_T_SET}-${HOP_T_UNSET:-dflt}-${HOP_T_EMPTY:-e}-$$x", err,
	    sizeof(err));
	assert_non_null(s);
	assert_string_equal(s, "a-val-dflt-e-$x");
	free(s);
	assert_null(hop_expand_env("${HOP_T_UNSET}", err, sizeof(err)));
	assert_non_null(strstr(err, "HOP_T_UNSET is not set"));
	assert_null(hop_expand_env("${HOP_T_SET", err, sizeof(err)));
	s = hop_expand_env("", err, sizeof(err));
	assert_string_equal(s, "");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(finds_nested_keys),
	    cmocka_unit_test(finds_values),
	    cmocka_unit_test(expands_the_environment),
	};
	return cmocka_run_group_tests_name("jsonpos", tests, NULL, NULL);
}
