/* Unit tests for yamlpos.c: YAML into a JSON tree, with positions. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "coordinator/yamlpos.h"

static json_t *load(const char *text, struct hop_yaml_pos **pos, char *err,
		    size_t n)
{
	return hop_yaml_load(text, strlen(text), pos, err, n);
}

static void plain_scalars_are_typed_quoted_ones_are_text(void **state)
{
	struct hop_yaml_pos *pos;
	char err[256];
	json_t *v = load("# a comment\n"
			 "n: 2\nneg: -7\nx: 0.5\nt: true\nf: False\nz: ~\n"
			 "e:\ns: 30s\nq: \"2\"\nsq: 'true'\nyes: yes\n"
			 "list: [a, 320, \"b\"]\n",
			 &pos, err, sizeof(err));
	assert_non_null(v);
	assert_int_equal(json_integer_value(json_object_get(v, "n")), 2);
	assert_int_equal(json_integer_value(json_object_get(v, "neg")), -7);
	assert_true(json_real_value(json_object_get(v, "x")) == 0.5);
	assert_true(json_is_true(json_object_get(v, "t")));
	assert_true(json_is_false(json_object_get(v, "f")));
	assert_true(json_is_null(json_object_get(v, "z")));
	assert_true(json_is_null(json_object_get(v, "e")));
	assert_string_equal(json_string_value(json_object_get(v, "s")), "30s");
	assert_string_equal(json_string_value(json_object_get(v, "q")), "2");
	assert_string_equal(json_string_value(json_object_get(v, "sq")),
			    "true");
	/* YAML 1.2: yes is a word, not a boolean. */
	assert_string_equal(json_string_value(json_object_get(v, "yes")),
			    "yes");
	json_t *list = json_object_get(v, "list");
	assert_int_equal(json_array_size(list), 3);
	assert_int_equal(json_integer_value(json_array_get(list, 1)), 320);
	json_decref(v);
	hop_yaml_pos_free(pos);
}

static void positions_of_keys_and_values(void **state)
{
	struct hop_yaml_pos *pos;
	char err[256];
	int line, col;
	json_t *v = load("# top\nsource:\n  type: dir\n  keep_done: false\n"
			 "backoff-max:   5s\n",
			 &pos, err, sizeof(err));
	assert_non_null(v);
	const char *p1[] = {"source", "keep-done"};
	assert_int_equal(hop_yaml_locate(pos, p1, 2, false, &line, &col), 0);
	assert_int_equal(line, 4);
	assert_int_equal(col, 3);
	assert_int_equal(hop_yaml_locate(pos, p1, 2, true, &line, &col), 0);
	assert_int_equal(line, 4);
	assert_int_equal(col, 14);
	const char *p2[] = {"backoff_max"};
	assert_int_equal(hop_yaml_locate(pos, p2, 1, true, &line, &col), 0);
	assert_int_equal(line, 5);
	assert_int_equal(col, 16);
	const char *p3[] = {"type"}; /* only under source */
	assert_int_equal(hop_yaml_locate(pos, p3, 1, false, &line, &col),
			 -ENOENT);
	json_decref(v);
	hop_yaml_pos_free(pos);
}

static void anchors_and_aliases(void **state)
{
	struct hop_yaml_pos *pos;
	char err[256];
	json_t *v = load("x-cmd: &c [w, --n, 3]\ncommand: *c\n", &pos, err,
			 sizeof(err));
	assert_non_null(v);
	assert_true(json_equal(json_object_get(v, "x-cmd"),
			       json_object_get(v, "command")));
	json_decref(v);
	hop_yaml_pos_free(pos);
}

static void errors_name_line_and_column(void **state)
{
	struct hop_yaml_pos *pos = NULL;
	char err[256];
	assert_null(load("a: 1\na: 2\n", &pos, err, sizeof(err)));
	assert_string_equal(err, "2:1: 'a' is given twice");
	assert_null(pos);
	assert_null(load("a: [1\n", &pos, err, sizeof(err)));
	assert_non_null(strstr(err, "invalid YAML"));
	assert_null(load("a: 1\n---\nb: 2\n", &pos, err, sizeof(err)));
	assert_string_equal(err, "2:1: a pipeline file holds one document");
	assert_null(load("# nothing\n", &pos, err, sizeof(err)));
	assert_string_equal(err, "1:1: the file is empty");
	assert_null(load("a: *nope\n", &pos, err, sizeof(err)));
	assert_non_null(strstr(err, "1:4: no anchor named 'nope'"));
}

static void named_by_extension(void **state)
{
	assert_true(hop_yaml_named("p.yaml"));
	assert_true(hop_yaml_named("dir/p.yml"));
	assert_false(hop_yaml_named("p.json"));
	assert_false(hop_yaml_named("yaml"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(plain_scalars_are_typed_quoted_ones_are_text),
	    cmocka_unit_test(positions_of_keys_and_values),
	    cmocka_unit_test(anchors_and_aliases),
	    cmocka_unit_test(errors_name_line_and_column),
	    cmocka_unit_test(named_by_extension),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
