/* Unit tests for buf.c: the line reader's limits and edge cases. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/buf.h"

static int pipe_with(const char *data)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], data, strlen(data)),
			 (ssize_t)strlen(data));
	close(p[1]);
	return p[0];
}

static void lines_split_and_keep_a_last_unterminated_line(void **state)
{
	struct hop_lines r;
	char *line;
	size_t len;
	int fd = pipe_with("one\ntwo\r\n\nlast");

	hop_lines_init(&r, 100);
	assert_int_equal(hop_lines_next(&r, fd, &line, &len), HOP_LINE_OK);
	assert_string_equal(line, "one");
	assert_int_equal(hop_lines_next(&r, fd, &line, &len), HOP_LINE_OK);
	assert_string_equal(line, "two");
	assert_int_equal(hop_lines_next(&r, fd, &line, &len), HOP_LINE_OK);
	assert_int_equal(len, 0);
	assert_int_equal(hop_lines_next(&r, fd, &line, &len), HOP_LINE_OK);
	assert_string_equal(line, "last");
	assert_int_equal(hop_lines_next(&r, fd, &line, &len), HOP_LINE_EOF);
	hop_lines_free(&r);
	close(fd);
}

static void an_over_long_line_is_reported_once_and_skipped(void **state)
{
	struct hop_lines r;
	char *line, *big = malloc(300 * 1024 + 16);
	size_t len;

	memset(big, 'x', 300 * 1024);
	strcpy(big + 300 * 1024, "\nok\n");
	int p[2];
	assert_int_equal(pipe(p), 0);
	if (fork() == 0) {
		close(p[0]);
		size_t n = strlen(big), off = 0;
		while (off < n)
			off += (size_t)write(p[1], big + off, n - off);
		_exit(0);
	}
	close(p[1]);
	hop_lines_init(&r, 1000);
	assert_int_equal(hop_lines_next(&r, p[0], &line, &len),
			 HOP_LINE_TOOLONG);
	assert_int_equal(hop_lines_next(&r, p[0], &line, &len), HOP_LINE_OK);
	assert_string_equal(line, "ok");
	assert_int_equal(hop_lines_next(&r, p[0], &line, &len), HOP_LINE_EOF);
	/* It never held the whole line. */
	assert_true(r.buf.cap < 300 * 1024);
	hop_lines_free(&r);
	close(p[0]);
	free(big);
}

static void each_line_s_offset_is_where_it_starts(void **state)
{
	struct hop_lines r;
	char *line, *data = malloc(200 * 1024);
	size_t len, n = 0, want = 0;
	int p[2];

	/* Lines of many lengths, over several reads, and one too long. */
	for (int i = 0; n < 190 * 1024; i++) {
		size_t k = (size_t)(i * 37 % 1500);
		memset(data + n, i == 50 ? 'y' : 'a' + i % 26,
		       i == 50 ? 3000 : k);
		n += i == 50 ? 3000 : k;
		data[n++] = '\n';
	}
	assert_int_equal(pipe(p), 0);
	if (fork() == 0) {
		close(p[0]);
		size_t off = 0;
		while (off < n)
			off += (size_t)write(p[1], data + off, n - off);
		_exit(0);
	}
	close(p[1]);
	hop_lines_init(&r, 2000);
	for (;;) {
		enum hop_line_status st = hop_lines_next(&r, p[0], &line, &len);
		if (st == HOP_LINE_EOF)
			break;
		if (st == HOP_LINE_TOOLONG) {
			want += 3001;
			continue;
		}
		assert_int_equal(st, HOP_LINE_OK);
		assert_int_equal(hop_lines_offset(&r, line), want);
		assert_memory_equal(line, data + want, len);
		want += len + 1;
	}
	assert_int_equal(want, n);
	hop_lines_free(&r);
	close(p[0]);
	free(data);
}

static void json_strings_are_escaped(void **state)
{
	struct hop_buf b = {0};
	assert_int_equal(hop_buf_append_json_str(&b, "a\"b\\c\n\x01 é"), 0);
	hop_buf_append(&b, "", 1);
	assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\u0001 é\"");
	hop_buf_free(&b);
}

static void consume_and_append_reuse_space(void **state)
{
	struct hop_buf b = {0};
	for (int i = 0; i < 10000; i++) {
		hop_buf_appendf(&b, "item %d\n", i);
		hop_buf_consume(&b, hop_buf_len(&b));
	}
	assert_true(b.cap <= 4096);
	hop_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(lines_split_and_keep_a_last_unterminated_line),
	    cmocka_unit_test(an_over_long_line_is_reported_once_and_skipped),
	    cmocka_unit_test(each_line_s_offset_is_where_it_starts),
	    cmocka_unit_test(json_strings_are_escaped),
	    cmocka_unit_test(consume_and_append_reuse_space),
	};
	return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
