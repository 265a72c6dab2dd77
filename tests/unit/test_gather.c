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
	    {"{\"op\":\"count\",\"by\":\"x\"}", "not a JSON pointer"},
	    {"{\"op\":\"histogram\",\"field\":\"/x\",\"buckets\":[2,1]}",
	     "ascending"},
	    {"{\"op\":\"count\",\"every\":3,\"interval\":\"1s\",\"grace\":0}",
	     "both"},
	    {"{\"op\":\"count\",\"per\":3}", "unknown"},
	    {"{\"op\":\"count\",\"interval\":\"1m\"}", "needs 'grace'"},
	    {"{\"op\":\"count\",\"grace\":\"1m\"}", "give 'interval'"},
	    {"{\"op\":\"count\",\"interval\":60,\"grace\":1,"
	     "\"time\":\"ts\"}",
	     "'ts' is not a JSON pointer"},
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

static void
test_a_reducer_worker_takes_no_op_and_a_builtin_no_batch(void **state)
{
	char msg[300];
	struct hop_reduce_config *c = reduce("{\"field\":\"/x\"}");

	assert_int_equal(hop_reduce_check(c, false, msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "no 'op'"));
	assert_int_equal(hop_reduce_check(c, true, msg, sizeof(msg)), 0);
	hop_reduce_config_free(c);
	c = reduce("{\"op\":\"count\",\"batch\":5}");
	assert_int_equal(hop_reduce_check(c, false, msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "'batch' and 'merge' are for a reducer"));
	assert_int_equal(hop_reduce_check(c, true, msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "takes no 'command'"));
	hop_reduce_config_free(c);
	c = reduce("{\"by\":\"/k\",\"batch\":5,\"merge\":true}");
	assert_int_equal(hop_reduce_check(c, true, msg, sizeof(msg)), 0);
	assert_int_equal(c->batch, 5);
	assert_true(c->merge);
	hop_reduce_config_free(c);
}

static struct hop_join_config *join(const char *json)
{
	char msg[300];
	struct hop_join_config *c = NULL;
	json_t *v = json_loads(json, 0, NULL);
	int rc = hop_join_parse(v, &c, msg, sizeof(msg));
	json_decref(v);
	if (rc)
		fail_msg("%s", msg);
	return c;
}

static void test_a_part_says_its_key_and_its_group_s_size(void **state)
{
	struct hop_join_config *c = join("{\"by\":\"/v\",\"count\":\"/n\"}");
	struct hop_part_info pi;
	char msg[300];
	const char *ok = "{\"v\":\"a\",\"n\":3}", *nokey = "{\"n\":3}",
		   *frac = "{\"v\":\"a\",\"n\":2.5}", *none = "{\"v\":7}";

	assert_int_equal(
	    hop_part_info(c, ok, strlen(ok), NULL, &pi, msg, sizeof(msg)), 0);
	assert_string_equal(pi.key, "a");
	assert_int_equal(pi.count, 3);
	free(pi.key);
	assert_int_equal(
	    hop_part_info(c, nokey, strlen(nokey), NULL, &pi, msg, sizeof(msg)),
	    -EINVAL);
	assert_string_equal(msg, "no key at /v (join 'by')");
	assert_int_equal(
	    hop_part_info(c, frac, strlen(frac), NULL, &pi, msg, sizeof(msg)),
	    -EINVAL);
	assert_non_null(strstr(msg, "is 2.5, not a whole number"));
	/* A part need not carry the count: another of its group does. */
	assert_int_equal(
	    hop_part_info(c, none, strlen(none), NULL, &pi, msg, sizeof(msg)),
	    0);
	assert_string_equal(pi.key, "7");
	assert_int_equal(pi.count, -1);
	free(pi.key);
	hop_join_config_free(c);

	c = join("{\"by\":\"key\",\"end\":\"/last\",\"seq\":\"/i\"}");
	const char *last = "{\"i\":4,\"last\":true}", *mid = "{\"i\":1}",
		   *no = "{\"i\":2,\"last\":false}";
	assert_int_equal(
	    hop_part_info(c, last, strlen(last), "k", &pi, msg, sizeof(msg)),
	    0);
	assert_true(pi.last);
	assert_int_equal(pi.seq, 4);
	free(pi.key);
	assert_int_equal(
	    hop_part_info(c, no, strlen(no), "k", &pi, msg, sizeof(msg)), 0);
	assert_false(pi.last);
	free(pi.key);
	assert_int_equal(
	    hop_part_info(c, mid, strlen(mid), NULL, &pi, msg, sizeof(msg)),
	    -EINVAL);
	assert_non_null(strstr(msg, "emitted without one"));
	hop_join_config_free(c);
}

static void test_a_keyed_group_is_complete_with_its_dead_parts(void **state)
{
	struct hop_item *p[3] = {item("x/1", "{\"i\":1}"),
				 item("y/0", "{\"i\":0}"),
				 item("z", "{\"i\":3}")};
	struct hop_group g = {.key = NULL, .expected = -1};

	g.key = strdup("k");
	assert_int_equal(hop_group_add_seq(&g, p[0], 1), 0);
	assert_int_equal(hop_group_add_seq(&g, p[1], 0), 0);
	assert_false(hop_group_complete(&g));
	g.expected = 4;
	hop_group_error(&g, "w", "tag", "bad");
	g.ndead++;
	/* The dead part's id never counts a second time. */
	struct hop_item *again = item("w", "{}");
	assert_int_equal(hop_group_add_seq(&g, again, 2), 1);
	assert_true(hop_group_has(&g, "w") && hop_group_has(&g, "y/0"));
	assert_false(hop_group_complete(&g));
	assert_int_equal(hop_group_add_seq(&g, p[2], 3), 0);
	assert_true(hop_group_complete(&g));
	char *s = hop_group_payload(&g, false);
	assert_string_equal(s, "{\"key\":\"k\",\"parts\":[{\"i\":0},{\"i\":1},"
			       "{\"i\":3}],\"errors\":[{\"id\":\"w\","
			       "\"stage\":\"tag\",\"error\":\"bad\"}]}");
	free(s);
	free(g.parts);
	free(g.seqs);
	free(g.key);
	json_decref(g.errors);
	for (int i = 0; i < 3; i++)
		hop_item_free(p[i]);
	hop_item_free(again);
}

static void test_a_keyring_forgets_the_oldest(void **state)
{
	struct hop_keyring *k = hop_keyring_new(3);
	char key[16];

	for (int i = 0; i < 5; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(hop_keyring_add(k, key), 0);
	}
	assert_int_equal(hop_keyring_add(k, "k4"), 0); /* there already */
	assert_false(hop_keyring_has(k, "k0"));
	assert_false(hop_keyring_has(k, "k1"));
	for (int i = 2; i < 5; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_true(hop_keyring_has(k, key));
	}
	hop_keyring_free(k);

	struct hop_strmap *m = hop_strmap_new();
	static int vals[1000];
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "g%d", i);
		assert_int_equal(hop_strmap_put(m, key, &vals[i]), 0);
	}
	assert_int_equal(hop_strmap_len(m), 1000);
	assert_ptr_equal(hop_strmap_get(m, "g517"), &vals[517]);
	assert_ptr_equal(hop_strmap_del(m, "g517"), &vals[517]);
	assert_null(hop_strmap_get(m, "g517"));
	assert_null(hop_strmap_del(m, "nope"));
	assert_int_equal(hop_strmap_len(m), 999);
	hop_strmap_free(m);
}

/* The tumbler on a fake clock: the times below are all it knows. */
static void test_time_windows_close_after_their_grace(void **state)
{
	struct hop_tumbler t;
	int64_t w;

	hop_tumbler_init(&t, 10000, 3000); /* 10 s windows, 3 s grace */
	assert_int_equal(hop_tumbler_advance(&t, 25000), 2);
	/* At 25 s: [20, 30) is open and [10, 20) closed at 23 s. */
	assert_true(hop_tumbler_place(&t, 21000, &w));
	assert_int_equal(w, 2);
	assert_false(hop_tumbler_place(&t, 19999, &w));
	assert_int_equal(w, 1);
	assert_int_equal(hop_tumbler_close_at(&t, 2), 33000);
	/* At 32.999 s [20, 30) still takes a late item; at 33 s no more. */
	assert_int_equal(hop_tumbler_advance(&t, 32999), 2);
	assert_true(hop_tumbler_place(&t, 29999, &w));
	assert_int_equal(hop_tumbler_advance(&t, 33000), 3);
	assert_false(hop_tumbler_place(&t, 29999, &w));
	assert_true(hop_tumbler_place(&t, 30000, &w));
	assert_int_equal(w, 3);
	/* A clock that goes back never opens a window again. */
	assert_int_equal(hop_tumbler_advance(&t, 1000), 3);
	assert_false(hop_tumbler_place(&t, 25000, &w));
	/* Times before the epoch fall in negative windows. */
	hop_tumbler_init(&t, 10000, 0);
	assert_true(hop_tumbler_place(&t, -1, &w));
	assert_int_equal(w, -1);
	assert_int_equal(hop_tumbler_advance(&t, 0), 0);
	assert_false(hop_tumbler_place(&t, -1, &w));
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
	    cmocka_unit_test(
		test_a_reducer_worker_takes_no_op_and_a_builtin_no_batch),
	    cmocka_unit_test(test_a_part_says_its_key_and_its_group_s_size),
	    cmocka_unit_test(
		test_a_keyed_group_is_complete_with_its_dead_parts),
	    cmocka_unit_test(test_a_keyring_forgets_the_oldest),
	    cmocka_unit_test(test_time_windows_close_after_their_grace),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
