/* Unit tests for sources/exec/proto.c: the lines exec source and sink
 * programs and hopper exchange, and how a command becomes an argv. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/buf.h"
#include "sources/exec/proto.h"

static enum hop_exec_src_kind src_kind(const char *text,
				       struct hop_exec_src_line *l)
{
	static char line[512];
	snprintf(line, sizeof(line), "%s", text);
	return hop_exec_src_read(line, strlen(line), l);
}

static void items(void **state)
{
	struct hop_exec_src_line l;

	assert_int_equal(
	    src_kind("{\"id\":\"a1\",\"payload\":{\"n\":[1]}}", &l),
	    HOP_EXEC_ITEM);
	assert_int_equal(l.id_len, 2);
	assert_memory_equal(l.id, "a1", 2);
	assert_int_equal(l.payload_len, 9);
	assert_memory_equal(l.payload, "{\"n\":[1]}", 9);
	assert_int_equal(l.attempts, 0);

	/* An integer id is its digits; no payload is null; attempts kept. */
	assert_int_equal(src_kind("{\"id\": 42, \"attempts\": 2}", &l),
			 HOP_EXEC_ITEM);
	assert_string_equal(l.id, "42");
	assert_int_equal(l.payload_len, 4);
	assert_memory_equal(l.payload, "null", 4);
	assert_int_equal(l.attempts, 2);

	/* Escapes in an id are decoded. */
	assert_int_equal(src_kind("{\"id\":\"a\\u00e9\",\"payload\":1}", &l),
			 HOP_EXEC_ITEM);
	assert_string_equal(l.id, "a\xc3\xa9");

	/* A bare CR in the payload is compacted away. */
	assert_int_equal(src_kind("{\"id\":\"1\",\"payload\":[1,\r2]}", &l),
			 HOP_EXEC_ITEM);
	assert_non_null(l.owned);
	assert_string_equal(l.payload, "[1,2]");
	free(l.owned);
}

static void other_lines(void **state)
{
	struct hop_exec_src_line l;

	assert_int_equal(src_kind("{\"depth\": 1200}", &l), HOP_EXEC_DEPTH);
	assert_int_equal(l.depth, 1200);
	assert_int_equal(src_kind("{\"end\": true}", &l), HOP_EXEC_END);
}

static void bad_lines(void **state)
{
	struct hop_exec_src_line l;

	assert_int_equal(src_kind("this is not json", &l), HOP_EXEC_BAD);
	assert_non_null(strstr(l.why, "not JSON"));
	assert_int_equal(src_kind("[1, 2]", &l), HOP_EXEC_BAD);
	assert_non_null(strstr(l.why, "not a JSON object"));
	assert_int_equal(src_kind("{\"payload\": 1}", &l), HOP_EXEC_BAD);
	assert_non_null(strstr(l.why, "no \"id\""));
	assert_int_equal(src_kind("{\"id\": \"\"}", &l), HOP_EXEC_BAD);
	assert_int_equal(src_kind("{\"id\": 1.5}", &l), HOP_EXEC_BAD);
	assert_int_equal(src_kind("{\"id\": \"1\", \"attempts\": -1}", &l),
			 HOP_EXEC_BAD);
	assert_int_equal(src_kind("{\"depth\": \"many\"}", &l), HOP_EXEC_BAD);
	assert_int_equal(src_kind("{\"end\": false}", &l), HOP_EXEC_BAD);
}

static enum hop_exec_sink_kind sink_kind(const char *line,
					 struct hop_exec_sink_answer *a)
{
	return hop_exec_sink_read(line, strlen(line), a);
}

static void sink_answers(void **state)
{
	struct hop_exec_sink_answer a;

	assert_int_equal(sink_kind("{\"ok\": \"7\"}", &a), HOP_EXEC_SINK_OK);
	assert_string_equal(a.id, "7");
	hop_exec_sink_answer_free(&a);

	assert_int_equal(
	    sink_kind("{\"fail\": \"7\", \"error\": \"busy\"}", &a),
	    HOP_EXEC_SINK_FAIL);
	assert_true(a.retry); /* the default */
	assert_string_equal(a.error, "busy");
	hop_exec_sink_answer_free(&a);

	assert_int_equal(sink_kind("{\"fail\": 7, \"retry\": false}", &a),
			 HOP_EXEC_SINK_FAIL);
	assert_string_equal(a.id, "7");
	assert_false(a.retry);
	assert_null(a.error);
	hop_exec_sink_answer_free(&a);

	assert_int_equal(sink_kind("ok 7", &a), HOP_EXEC_SINK_BAD);
	assert_int_equal(sink_kind("{\"done\": \"7\"}", &a), HOP_EXEC_SINK_BAD);
	assert_int_equal(sink_kind("{\"fail\": \"7\", \"retry\": \"no\"}", &a),
			 HOP_EXEC_SINK_BAD);
	assert_null(a.id);
}

static void hoppers_lines(void **state)
{
	struct hop_buf b = {0};

	assert_int_equal(hop_exec_put_credit(&b, 5), 0);
	assert_int_equal(hop_exec_put_ack(&b, "a\"b"), 0);
	assert_int_equal(hop_exec_put_release(&b, "3"), 0);
	assert_int_equal(hop_exec_put_dead(&b, "4", "boom", "{\"id\":\"4\"}"),
			 0);
	assert_int_equal(
	    hop_exec_put_record(&b, "5", true, "[1]", NULL, NULL, 2), 0);
	assert_int_equal(
	    hop_exec_put_record(&b, "6", false, NULL, "bad", "b", 3), 0);
	hop_buf_append(&b, "", 1);
	assert_string_equal(hop_buf_head(&b),
			    "{\"credit\":5}\n"
			    "{\"ack\":\"a\\\"b\"}\n"
			    "{\"release\":\"3\"}\n"
			    "{\"dead\":\"4\",\"error\":\"boom\",\"record\":"
			    "{\"id\":\"4\"}}\n"
			    "{\"id\":\"5\",\"ok\":true,\"result\":[1],"
			    "\"attempts\":2}\n"
			    "{\"id\":\"6\",\"ok\":false,\"error\":\"bad\","
			    "\"stage\":\"b\","
			    "\"attempts\":3}\n");
	hop_buf_reset(&b);
	assert_int_equal(hop_exec_put_nack(&b, "7", 1, 2000, "later"), 0);
	hop_buf_append(&b, "", 1);
	assert_non_null(
	    strstr(hop_buf_head(&b), "{\"nack\":\"7\",\"retry_at\":"));
	assert_non_null(strstr(hop_buf_head(&b),
			       ",\"delay_ms\":2000,\"attempts\":1,"
			       "\"error\":\"later\"}\n"));
	hop_buf_free(&b);
}

static void hello_and_ack_lists(void **state)
{
	struct hop_exec_src_line l;
	struct hop_buf b = {0}, list = {0};

	/* A hello says what the program takes; unknown members are
	 * ignored, and a hello without ack_lists asks for none. */
	assert_int_equal(
	    src_kind("{\"hello\":{\"ack_lists\":true,\"later\":1}}", &l),
	    HOP_EXEC_HELLO);
	assert_true(l.ack_lists);
	assert_int_equal(src_kind("{\"hello\":{}}", &l), HOP_EXEC_HELLO);
	assert_false(l.ack_lists);
	assert_int_equal(src_kind("{\"hello\":{\"ack_lists\":1}}", &l),
			 HOP_EXEC_HELLO);
	assert_false(l.ack_lists);
	assert_int_equal(src_kind("{\"hello\":true}", &l), HOP_EXEC_BAD);
	assert_non_null(strstr(l.why, "\"hello\" must be an object"));
	/* An item line with a hello member is an item. */
	assert_int_equal(src_kind("{\"id\":\"1\",\"hello\":{}}", &l),
			 HOP_EXEC_ITEM);

	/* Nothing gathered: nothing written. */
	assert_int_equal(hop_exec_put_ack_list(&b, &list), 0);
	assert_int_equal(hop_buf_len(&b), 0);

	assert_int_equal(hop_exec_ack_list_add(&list, "17"), 0);
	assert_int_equal(hop_exec_put_ack_list(&b, &list), 0);
	assert_int_equal(hop_buf_len(&list), 0);
	assert_int_equal(hop_exec_ack_list_add(&list, "a\"b"), 0);
	assert_int_equal(hop_exec_ack_list_add(&list, "c"), 0);
	assert_int_equal(hop_exec_ack_list_add(&list, "d"), 0);
	assert_int_equal(hop_exec_put_ack_list(&b, &list), 0);
	assert_int_equal(hop_buf_len(&list), 0);
	assert_int_equal(hop_buf_len(&b),
			 strlen("{\"ack\":[\"17\"]}\n"
				"{\"ack\":[\"a\\\"b\",\"c\",\"d\"]}\n"));
	assert_memory_equal(hop_buf_head(&b),
			    "{\"ack\":[\"17\"]}\n"
			    "{\"ack\":[\"a\\\"b\",\"c\",\"d\"]}\n",
			    hop_buf_len(&b));
	hop_buf_free(&b);
	hop_buf_free(&list);
}

static void commands(void **state)
{
	char err[200];
	char **argv =
	    hop_exec_argv("  python3 src.py --key jobs ", err, sizeof(err));
	assert_non_null(argv);
	assert_string_equal(argv[0], "python3");
	assert_string_equal(argv[3], "jobs");
	assert_null(argv[4]);
	hop_exec_argv_free(argv);

	/* Shell characters: the shell reads it. */
	argv = hop_exec_argv("cd /tmp && ./src 'a b'", err, sizeof(err));
	assert_string_equal(argv[0], "/bin/sh");
	assert_string_equal(argv[1], "-c");
	assert_string_equal(argv[2], "cd /tmp && ./src 'a b'");
	hop_exec_argv_free(argv);

	/* An array, as a pipeline file gives it. */
	argv = hop_exec_argv("[\"./src\",\"a b\",3]", err, sizeof(err));
	assert_string_equal(argv[1], "a b");
	assert_string_equal(argv[2], "3");
	assert_null(argv[3]);
	hop_exec_argv_free(argv);

	assert_null(hop_exec_argv("[]", err, sizeof(err)));
	assert_null(hop_exec_argv("[\"a\", {}]", err, sizeof(err)));
	assert_non_null(strstr(err, "element 1"));
	assert_null(hop_exec_argv("   ", err, sizeof(err)));

	char name[100];
	char *args[] = {"/usr/bin/python3", "src.py", NULL};
	hop_exec_name(name, sizeof(name), "exec source", args, NULL);
	assert_string_equal(name, "exec source 'python3 src.py'");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(items),
	    cmocka_unit_test(other_lines),
	    cmocka_unit_test(bad_lines),
	    cmocka_unit_test(sink_answers),
	    cmocka_unit_test(hoppers_lines),
	    cmocka_unit_test(commands),
	    cmocka_unit_test(hello_and_ack_lists),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
