/* Unit tests for answer.c: what a worker's line says about the item. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/answer.h"

static enum hop_answer_kind kind_of(const char *line, const char *want)
{
	struct hop_answer a;
	enum hop_answer_kind k = hop_answer_read(line, strlen(line), want, &a);
	hop_answer_free(&a);
	return k;
}

static void final_answers(void **state)
{
	struct hop_answer a;
	const char *line = "{\"id\":\"7\",\"ok\":true,\"result\":{\"n\": [1]}}";
	assert_int_equal(hop_answer_read(line, strlen(line), "7", &a),
			 HOP_ANSWER_OK);
	assert_int_equal(a.result_len, 10);
	assert_memory_equal(a.result, "{\"n\": [1]}", 10);
	hop_answer_free(&a);

	line = "{\"ok\":true,\"id\":\"7\"}";
	assert_int_equal(hop_answer_read(line, strlen(line), "7", &a),
			 HOP_ANSWER_OK);
	assert_int_equal(a.result_len, 4);
	assert_memory_equal(a.result, "null", 4);
	hop_answer_free(&a);

	line = "{\"id\":\"7\",\"ok\":false,\"error\":\"bad \\u00e9\"}";
	assert_int_equal(hop_answer_read(line, strlen(line), "7", &a),
			 HOP_ANSWER_FAILED);
	assert_string_equal(a.text, "bad \xc3\xa9");
	assert_true(a.retry);
	hop_answer_free(&a);
	assert_null(a.text);

	line = "{\"id\":\"7\",\"ok\":false,\"retry\":false}";
	assert_int_equal(hop_answer_read(line, strlen(line), "7", &a),
			 HOP_ANSWER_FAILED);
	assert_null(a.text);
	assert_false(a.retry);
	hop_answer_free(&a);
}

/* A name given twice counts as its first, whatever else the line holds;
 * members of other names, and names that only share a length, are no
 * answer's. */
static void first_of_a_name(void **state)
{
	struct hop_answer a;
	const char *line = "{\"rid\":\"8\",\"id\":\"7\",\"oK\":false,\"ok\":"
			   "true,\"id\":\"8\",\"result\":1,\"ok\":false,"
			   "\"result\":2,\"resul\":3,\"drop\":false,\"drop\":"
			   "true}";
	assert_int_equal(hop_answer_read(line, strlen(line), "7", &a),
			 HOP_ANSWER_OK);
	assert_int_equal(a.result_len, 1);
	assert_memory_equal(a.result, "1", 1);
	assert_false(a.drop);
	hop_answer_free(&a);

	line = "{\"id\":\"7\",\"ok\":false,\"retry\":false,\"retry\":true,"
	       "\"error\":\"one\",\"error\":\"two\",\"progress\":1}";
	assert_int_equal(hop_answer_read(line, strlen(line), "7", &a),
			 HOP_ANSWER_FAILED);
	assert_false(a.retry);
	assert_string_equal(a.text, "one");
	hop_answer_free(&a);

	assert_int_equal(kind_of("{\"id\":\"7\",\"progresS\":0.4}", "7"),
			 HOP_ANSWER_NO_OK);
	assert_int_equal(kind_of("{\"di\":\"7\",\"ok\":true}", "7"),
			 HOP_ANSWER_NO_ID);
}

static void progress_and_broken_lines(void **state)
{
	assert_int_equal(kind_of("{\"id\":\"7\",\"progress\":0.4}", "7"),
			 HOP_ANSWER_PROGRESS);
	assert_int_equal(kind_of("{\"id\":\"7\"}", "7"), HOP_ANSWER_NO_OK);
	assert_int_equal(kind_of("{\"id\":\"7\",\"ok\":\"yes\"}", "7"),
			 HOP_ANSWER_NO_OK);
	assert_int_equal(kind_of("starting up", "7"), HOP_ANSWER_NOT_OBJECT);
	assert_int_equal(kind_of("[1]", "7"), HOP_ANSWER_NOT_OBJECT);
	assert_int_equal(kind_of("{\"ok\":true}", "7"), HOP_ANSWER_NO_ID);
	assert_int_equal(kind_of("{\"id\":null,\"ok\":true}", "7"),
			 HOP_ANSWER_NO_ID);
}

static void ids(void **state)
{
	struct hop_answer a;
	const char *line = "{\"id\":\"clip\\/7\",\"ok\":true}";
	assert_int_equal(hop_answer_read(line, strlen(line), "clip/7", &a),
			 HOP_ANSWER_OK);
	hop_answer_free(&a);
	line = "{\"id\":\"8\",\"ok\":true}";
	assert_int_equal(hop_answer_read(line, strlen(line), "7", &a),
			 HOP_ANSWER_OTHER_ID);
	assert_string_equal(a.text, "8");
	hop_answer_free(&a);
	/* The item's id as a number is named as such; another number, or a
	 * number for an id that is not one, has no string id. */
	assert_int_equal(kind_of("{\"id\":1,\"ok\":true}", "1"),
			 HOP_ANSWER_NUMBER_ID);
	assert_int_equal(kind_of("{\"id\": 7.0 ,\"ok\":true}", "7"),
			 HOP_ANSWER_NUMBER_ID);
	assert_int_equal(kind_of("{\"id\":7,\"ok\":true}", "007"),
			 HOP_ANSWER_NUMBER_ID);
	assert_int_equal(kind_of("{\"id\":2,\"ok\":true}", "1"),
			 HOP_ANSWER_NO_ID);
	assert_int_equal(kind_of("{\"id\":26,\"ok\":true}", "0x1A"),
			 HOP_ANSWER_NO_ID);
	assert_int_equal(kind_of("{\"id\":7,\"ok\":true}", "clip 7"),
			 HOP_ANSWER_NO_ID);
}

static void emit_lines(void **state)
{
	struct hop_answer a;
	const char *line = "{\"id\":\"7\",\"emit\":{\"to\":\"a\"},"
			   "\"port\":\"sms\",\"key\":\"user-\\u0034\"}";
	assert_int_equal(hop_answer_read(line, strlen(line), "7", &a),
			 HOP_ANSWER_EMIT);
	assert_int_equal(a.result_len, 10);
	assert_memory_equal(a.result, "{\"to\":\"a\"}", 10);
	assert_string_equal(a.port, "sms");
	assert_string_equal(a.key, "user-4");
	assert_true(a.emits);
	hop_answer_free(&a);
	assert_null(a.port);
	assert_null(a.key);

	line = "{\"emit\":null,\"id\":\"7\"}";
	assert_int_equal(hop_answer_read(line, strlen(line), "7", &a),
			 HOP_ANSWER_EMIT);
	assert_memory_equal(a.result, "null", 4);
	assert_null(a.port);
	assert_null(a.key);
	hop_answer_free(&a);

	/* Port and key are strings or absent; an emit is not an answer. */
	line = "{\"id\":\"7\",\"emit\":1,\"port\":3}";
	assert_int_equal(hop_answer_read(line, strlen(line), "7", &a),
			 HOP_ANSWER_BAD_EMIT);
	assert_string_equal(a.text, "\"port\" must be a string, not 3");
	assert_null(a.port);
	hop_answer_free(&a);
	line = "{\"id\":\"7\",\"emit\":1,\"port\":\"a\",\"key\":[1]}";
	assert_int_equal(hop_answer_read(line, strlen(line), "7", &a),
			 HOP_ANSWER_BAD_EMIT);
	assert_string_equal(a.text, "\"key\" must be a string, not [1]");
	assert_null(a.port);
	assert_null(a.key);
	hop_answer_free(&a);
	assert_int_equal(
	    kind_of("{\"id\":\"7\",\"emit\":1,\"port\":null}", "7"),
	    HOP_ANSWER_BAD_EMIT);
	assert_int_equal(kind_of("{\"id\":\"7\",\"emit\":1,\"ok\":true}", "7"),
			 HOP_ANSWER_BAD_EMIT);

	/* Another item's emit is a wrong id, and says it was an emit. */
	line = "{\"id\":\"8\",\"emit\":1}";
	assert_int_equal(hop_answer_read(line, strlen(line), "7", &a),
			 HOP_ANSWER_OTHER_ID);
	assert_string_equal(a.text, "8");
	assert_true(a.emits);
	hop_answer_free(&a);
	assert_int_equal(kind_of("{\"emit\":1}", "7"), HOP_ANSWER_NO_ID);
}

static void drop_answers(void **state)
{
	struct hop_answer a;
	const char *line = "{\"id\":\"7\",\"ok\":true,\"drop\":true}";
	assert_int_equal(hop_answer_read(line, strlen(line), "7", &a),
			 HOP_ANSWER_OK);
	assert_true(a.drop);
	assert_false(a.emits);
	hop_answer_free(&a);
	line = "{\"id\":\"7\",\"ok\":true,\"drop\":false}";
	assert_int_equal(hop_answer_read(line, strlen(line), "7", &a),
			 HOP_ANSWER_OK);
	assert_false(a.drop);
	hop_answer_free(&a);
	/* Only an ok answer drops; a failure is a failure. */
	line = "{\"id\":\"7\",\"ok\":false,\"drop\":true}";
	assert_int_equal(hop_answer_read(line, strlen(line), "7", &a),
			 HOP_ANSWER_FAILED);
	assert_false(a.drop);
	hop_answer_free(&a);
}

/* The exec worker's HOPPER_EMIT file: the same members, no id. */
static void emit_file_lines(void **state)
{
	struct hop_answer a;
	const char *line = "{\"emit\":\"x\",\"port\":\"email\"}";
	assert_int_equal(hop_answer_read_emit(line, strlen(line), &a),
			 HOP_ANSWER_EMIT);
	assert_memory_equal(a.result, "\"x\"", 3);
	assert_string_equal(a.port, "email");
	assert_null(a.key);
	hop_answer_free(&a);
	line = "{\"payload\":1}";
	assert_int_equal(hop_answer_read_emit(line, strlen(line), &a),
			 HOP_ANSWER_BAD_EMIT);
	assert_string_equal(a.text, "no \"emit\" member");
	hop_answer_free(&a);
	line = "{\"emit\":1,\"key\":42}";
	assert_int_equal(hop_answer_read_emit(line, strlen(line), &a),
			 HOP_ANSWER_BAD_EMIT);
	hop_answer_free(&a);
	line = "{\"emit\":1";
	assert_int_equal(hop_answer_read_emit(line, strlen(line), &a),
			 HOP_ANSWER_NOT_OBJECT);
	hop_answer_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(final_answers),
	    cmocka_unit_test(first_of_a_name),
	    cmocka_unit_test(progress_and_broken_lines),
	    cmocka_unit_test(ids),
	    cmocka_unit_test(emit_lines),
	    cmocka_unit_test(drop_answers),
	    cmocka_unit_test(emit_file_lines),
	};
	return cmocka_run_group_tests_name("answer", tests, NULL, NULL);
}
