/* Unit tests for jsonscan.c: it must agree with jansson on what is JSON. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/jsonscan.h"

static bool jansson_valid(const char *s, size_t n)
{
	json_t *v = json_loadb(s, n, JSON_DECODE_ANY, NULL);
	json_decref(v);
	return v != NULL;
}

static const char *const cases[] = {
    "1",
    "-0",
    "0.5e+3",
    "-12.0E-1",
    "01",
    "1.",
    ".5",
    "-",
    "1e",
    "+1",
    "\"\"",
    "\"a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\"",
    "\"\\u00e9\\u65E5\"",
    "\"\\x\"",
    "\"\\u12\"",
    "\"tab\there\"",
    "\"caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x9a\x80\"",
    "\"\xc3\"",
    "\"\xc0\xaf\"",
    "\"\xed\xa0\x80\"",
    "\"\xf4\x90\x80\x80\"",
    "\"\xff\"",
    "true",
    "false",
    "null",
    "tru",
    "nul",
    "[]",
    "{}",
    "[1,]",
    "[,1]",
    "{\"a\":1,}",
    "{\"a\" 1}",
    "{1:2}",
    " { \"a\" : [ 1 , { } ] } ",
    "[1] [2]",
    "{\"a\":1}x",
    "[[[[[]]]]]",
    "\"unterminated",
    "[\"a\",\"b\"]",
};

static void agrees_with_jansson_on_cases(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *s = cases[i];
		if (hop_json_valid(s, strlen(s)) != jansson_valid(s, strlen(s)))
			fail_msg("disagree on case %zu: %s", i, s);
	}
}

static void agrees_with_jansson_on_mutations(void **state)
{
	const char *seed =
	    "{\"id\":\"k1\",\"ok\":true,\"result\":{\"a\":[1,2.5e3,"
	    "null,false,\"x\\ny\"],\"b\":\"caf\xc3\xa9\"}}";
	size_t n = strlen(seed);
	char buf[256];
	srand(42);
	for (int round = 0; round < 20000; round++) {
		memcpy(buf, seed, n);
		size_t len = n;
		int edits = 1 + rand() % 3;
		for (int e = 0; e < edits; e++) {
			if (len < 2)
				break;
			size_t at = (size_t)rand() % len;
			switch (rand() % 3) {
			case 0: /* flip to a JSON-ish byte */
				buf[at] = "{}[]\":,0123456789.eE+-tfnul \\x\xc3"
				    [rand() % 32];
				break;
			case 1: /* delete */
				memmove(buf + at, buf + at + 1, len - at - 1);
				len--;
				break;
			default: /* truncate */
				len = at + 1;
			}
		}
		if (hop_json_valid(buf, len) != jansson_valid(buf, len))
			fail_msg("disagree on '%.*s'", (int)len, buf);
	}
}

static void members_are_spans(void **state)
{
	struct hop_json_member m[4];
	const char *s = " {\"id\" : \"a\\\"b\", \"ok\":true, \"result\": "
			"{\"x\": [1, 2]} } ";
	int n = hop_json_members(s, strlen(s), m, 4);
	assert_int_equal(n, 3);
	const struct hop_json_member *r = hop_json_get(m, n, "result");
	assert_non_null(r);
	assert_int_equal(r->vlen, strlen("{\"x\": [1, 2]}"));
	assert_memory_equal(r->val, "{\"x\": [1, 2]}", r->vlen);
	const struct hop_json_member *id = hop_json_get(m, n, "id");
	assert_false(hop_json_plain_string(id->val, id->vlen));
	assert_null(hop_json_get(m, n, "missing"));
	assert_int_equal(hop_json_members("[1]", 3, m, 4), -1);
	assert_int_equal(hop_json_members("{\"a\":1", 6, m, 4), -1);
}

static void find_stops_at_the_first_match(void **state)
{
	const char *s = " {\"k\" : \"key7\", \"n\": [1, {\"k\": 2}], "
			"\"k\": 3, \"z\": null } ";
	struct hop_json_member m = {"k", 1, NULL, 0};
	assert_int_equal(hop_json_find(s, strlen(s), &m), 1);
	assert_int_equal(m.vlen, 6);
	assert_memory_equal(m.val, "\"key7\"", 6);
	assert_memory_equal(m.key, "k\"", 2); /* points into s */
	m = (struct hop_json_member){"z", 1, NULL, 0};
	assert_int_equal(hop_json_find(s, strlen(s), &m), 1);
	assert_memory_equal(m.val, "null", 4);
	/* Absent: the whole object read, and valid. */
	m = (struct hop_json_member){"x", 1, NULL, 0};
	assert_int_equal(hop_json_find(s, strlen(s), &m), 0);
	assert_null(m.val);
	/* Nested keys are not top-level members; a key longer or shorter
	 * than one present does not match it. */
	m = (struct hop_json_member){"kk", 2, NULL, 0};
	assert_int_equal(hop_json_find(s, strlen(s), &m), 0);
	/* Not an object, or broken before the key: -1. */
	m = (struct hop_json_member){"k", 1, NULL, 0};
	assert_int_equal(hop_json_find("[1]", 3, &m), -1);
	assert_int_equal(hop_json_find("{\"a\":tru, \"k\": 1}", 17, &m), -1);
	assert_int_equal(hop_json_find("{\"a\":1", 6, &m), -1);
	assert_int_equal(hop_json_find("{\"a\":1} x", 10, &m), -1);
	/* Many members: no limit on how far the key is. */
	char big[4096];
	size_t len = 0;
	big[len++] = '{';
	for (int i = 0; i < 200; i++)
		len += (size_t)snprintf(big + len, sizeof(big) - len,
					"\"m%d\":%d,", i, i);
	len += (size_t)snprintf(big + len, sizeof(big) - len, "\"k\":\"far\"}");
	m = (struct hop_json_member){"k", 1, NULL, 0};
	assert_int_equal(hop_json_find(big, len, &m), 1);
	assert_memory_equal(m.val, "\"far\"", 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(agrees_with_jansson_on_cases),
	    cmocka_unit_test(agrees_with_jansson_on_mutations),
	    cmocka_unit_test(members_are_spans),
	    cmocka_unit_test(find_stops_at_the_first_match),
	};
	return cmocka_run_group_tests_name("jsonscan", tests, NULL, NULL);
}
