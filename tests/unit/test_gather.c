/* Unit tests for gather.c: the order of derived ids, a group's payload and
 * its duplicates, the reducers' exact results, and JSON pointers over raw
 * text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/gather.h"

static void test_ids_sort_by_their_numbers(void **state)
{
	assert_true(hop_id_cmp("a/2", "a/10") < 0);
	assert_true(hop_id_cmp("a/10", "a/2") > 0);
	assert_true(hop_id_cmp("a/10/3", "a/10/12") < 0);
	assert_true(hop_id_cmp("a/007", "a/7") == 0);
	assert_true(hop_id_cmp("a", "a/0") < 0);
	assert_true(hop_id_cmp("b/1", "a/9") > 0);
	assert_int_equal(hop_id_cmp("x", "x"), 0);
}

static struct hop_item *item(const char *id, const char *payload)
{
	return hop_item_new(strdup(id), strdup(payload), strlen(payload));
}

static void test_a_group_orders_its_parts_and_refuses_a_copy(void **state)
{
	struct hop_item *root = item("v", "{\"f\":1}");
	struct hop_item *p[3] = {item("v/10", "10"), item("v/2", "2"),
				 item("v/0", "0")};
	struct hop_item *copy = item("v/2", "2");
	struct hop_group g = {.root = root};

	for (int i = 0; i < 3; i++)
		assert_int_equal(hop_group_add(&g, p[i]), 0);
	assert_int_equal(hop_group_add(&g, copy), 1);
	assert_int_equal(g.nparts, 3);
	hop_group_error(&g, "v/5", "tag", "bad \"frame\"");
	char *s = hop_group_payload(&g, true);
	assert_string_equal(
	    s, "{\"id\":\"v\",\"root\":{\"f\":1},\"parts\":[0,2,10],"
	       "\"errors\":[{\"id\":\"v/5\",\"stage\":\"tag\",\"error\":"
	       "\"bad \\\"frame\\\"\"}],\"missing\":true}");
	free(s);
	free(g.parts);
	json_decref(g.errors);
	for (int i = 0; i < 3; i++)
		hop_item_free(p[i]);
	hop_item_free(copy);
	hop_item_free(root);
}

static struct hop_reduce_config *reduce(const char *json)
{
	char msg[300];
	struct hop_reduce_config *c = NULL;
	json_t *v = json_loads(json, 0, NULL);
	int rc = hop_reduce_parse(v, &c, msg, sizeof(msg));
	json_decref(v);
	if (rc)
		fail_msg("%s", msg);
	return c;
}

/* The results of folding in payloads, one "id=json" line each. */
static char *fold(const char *cfg, const char *const *payloads)
{
	struct hop_reduce_config *c = reduce(cfg);
	struct hop_reducer *rd = hop_reducer_new(c);
	char msg[300], *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	for (; *payloads; payloads++)
		assert_int_equal(hop_reducer_add(rd, *payloads,
						 strlen(*payloads), msg,
						 sizeof(msg)),
				 0);
	for (size_t i = 0; i < hop_reducer_keys(rd); i++) {
		char *id, *json;
		assert_int_equal(hop_reducer_result(rd, i, &id, &json), 0);
		fprintf(f, "%s=%s\n", id, json);
		free(id);
		free(json);
	}
	fclose(f);
	hop_reducer_free(rd);
	hop_reduce_config_free(c);
	return out;
}

static const char *const items[] = {
    "{\"c\":\"h264\",\"n\":1.5}", "{\"c\":\"vp9\",\"n\":4}",
    "{\"c\":\"h264\",\"n\":-3}", "{\"c\":\"h\\u0032\",\"n\":10}", NULL};

static void test_reducers_are_exact(void **state)
{
	char *s =
	    fold("{\"op\":\"mean\",\"field\":\"/n\",\"by\":\"/c\"}", items);
	assert_string_equal(
	    s, "h264={\"key\":\"h264\",\"op\":\"mean\",\"field\":\"/n\","
	       "\"count\":2,\"sum\":-1.5,\"value\":-0.75}\n"
	       "vp9={\"key\":\"vp9\",\"op\":\"mean\",\"field\":\"/n\","
	       "\"count\":1,\"sum\":4,\"value\":4}\n"
	       "h2={\"key\":\"h2\",\"op\":\"mean\",\"field\":\"/n\","
	       "\"count\":1,\"sum\":10,\"value\":10}\n");
	free(s);
	s = fold("{\"op\":\"histogram\",\"field\":\"/n\",\"buckets\":[0,4]}",
		 items);
	assert_string_equal(s, "all={\"op\":\"histogram\",\"field\":\"/n\","
			       "\"count\":4,\"buckets\":[0,4],"
			       "\"counts\":[1,1,2]}\n");
	free(s);
	s = fold("{\"op\":\"histogram\",\"field\":\"/c\"}", items);
	assert_string_equal(s, "all={\"op\":\"histogram\",\"field\":\"/c\","
			       "\"count\":4,\"counts\":{\"h264\":2,\"vp9\":1,"
			       "\"h2\":1}}\n");
	free(s);
}

static void test_a_bad_value_is_named(void **state)
{
	struct hop_reduce_config *c =
	    reduce("{\"op\":\"max\",\"field\":\"/a/b\"}");
	struct hop_reducer *rd = hop_reducer_new(c);
	char msg[300];
	const char *no = "{\"a\":{}}", *text = "{\"a\":{\"b\":\"x\"}}";

	assert_int_equal(hop_reducer_add(rd, no, strlen(no), msg, sizeof(msg)),
			 -EINVAL);
	assert_string_equal(msg, "no value at /a/b (\"field\")");
	assert_int_equal(
	    hop_reducer_add(rd, text, strlen(text), msg, sizeof(msg)), -EINVAL);
	assert_string_equal(
	    msg, "the value at /a/b (\"field\") is \"x\", not a number");
	assert_int_equal(hop_reducer_items(rd), 0);
	hop_reducer_free(rd);
	hop_reduce_config_free(c);
}

static void test_pointers_read_raw_text(void **state)
{
	const char *t = "{\"a\":{\"b c\":[1,2],\"s\":\"x\\ny\",\"n\":7},"
			"\"a~b\":{\"c/d\":true}}";
	bool missing;
	char *s;

	s = hop_json_pointer_text(t, strlen(t), "/a/n", &missing);
	assert_string_equal(s, "7");
	free(s);
	s = hop_json_pointer_text(t, strlen(t), "/a/s", &missing);
	assert_string_equal(s, "x\ny");
	free(s);
	s = hop_json_pointer_text(t, strlen(t), "/a/b c/1", &missing);
	assert_string_equal(s, "2");
	free(s);
	s = hop_json_pointer_text(t, strlen(t), "/a~0b/c~1d", &missing);
	assert_string_equal(s, "true");
	free(s);
	s = hop_json_pointer_text(t, strlen(t), "/a/zz", &missing);
	assert_null(s);
	assert_true(missing);
}

static void test_options_are_checked(void **state)
{
	static const char *const bad[][2] = {
	    {"{\"op\":\"sum\"}", "needs a 'field'"},
	    {"{\"field\":\"/x\"}", "no 'op'"},
	    {"{\"op\":\"count\",\"by\":\"x\"}", "not a JSON pointer"},
	    {"{\"op\":\"histogram\",\"field\":\"/x\",\"buckets\":[2,1]}",
	     "ascending"},
	    {"{\"op\":\"count\",\"every\":3,\"interval\":\"1s\"}", "both"},
	    {"{\"op\":\"count\",\"per\":3}", "unknown"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		char msg[300];
		struct hop_reduce_config *c = NULL;
		json_t *v = json_loads(bad[i][0], 0, NULL);
		assert_int_equal(hop_reduce_parse(v, &c, msg, sizeof(msg)),
				 -EINVAL);
		if (!strstr(msg, bad[i][1]))
			fail_msg("%s: %s", bad[i][0], msg);
		assert_null(c);
		json_decref(v);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ids_sort_by_their_numbers),
	    cmocka_unit_test(test_a_group_orders_its_parts_and_refuses_a_copy),
	    cmocka_unit_test(test_reducers_are_exact),
	    cmocka_unit_test(test_a_bad_value_is_named),
	    cmocka_unit_test(test_pointers_read_raw_text),
	    cmocka_unit_test(test_options_are_checked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
