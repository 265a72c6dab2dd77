/* Unit tests for journal.c: what one run records, the next one skips; a
 * torn last line is cut; another source is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/journal.h"

static char path[64];

static int make_path(void **state)
{
	snprintf(path, sizeof(path), "/tmp/hop-journal-XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int remove_path(void **state)
{
	unlink(path);
	return 0;
}

static void finish(struct hop_journal *j, const char *id, bool ok)
{
	struct hop_item it = {.id = (char *)id,
			      .attempt = 2,
			      .ok = ok,
			      .error = ok ? NULL : "told \"no\""};
	assert_int_equal(hop_journal_add(j, &it), 0);
}

static void a_rerun_skips_what_was_recorded(void **state)
{
	char err[512];
	struct hop_journal *j =
	    hop_journal_open(path, "jsonl:/in", false, err, sizeof(err));
	assert_non_null(j);
	assert_false(hop_journal_skip(j, "1"));
	finish(j, "1", true);
	finish(j, "2", false);
	assert_int_equal(hop_journal_sync(j), 0);
	assert_int_equal(hop_journal_close(j), 0);

	j = hop_journal_open(path, "jsonl:/in", false, err, sizeof(err));
	assert_non_null(j);
	assert_int_equal(hop_journal_done_count(j), 1);
	assert_int_equal(hop_journal_dead_count(j), 1);
	assert_true(hop_journal_skip(j, "1"));
	assert_true(hop_journal_skip(j, "2"));
	assert_true(hop_journal_dead(j, "2"));
	assert_false(hop_journal_skip(j, "3"));
	finish(j, "2", true); /* the latest outcome counts */
	hop_journal_close(j);

	j = hop_journal_open(path, "jsonl:/in", true, err, sizeof(err));
	assert_non_null(j);
	assert_int_equal(hop_journal_done_count(j), 2);
	assert_int_equal(hop_journal_dead_count(j), 0);
	hop_journal_close(j);
}

static void dead_items_run_again_with_resume_failed(void **state)
{
	char err[512];
	struct hop_journal *j =
	    hop_journal_open(path, "s", false, err, sizeof(err));
	assert_non_null(j);
	finish(j, "7", false);
	hop_journal_close(j);
	j = hop_journal_open(path, "s", true, err, sizeof(err));
	assert_non_null(j);
	assert_false(hop_journal_skip(j, "7"));
	assert_true(hop_journal_dead(j, "7"));
	hop_journal_close(j);
}

static void a_torn_last_line_is_cut(void **state)
{
	char err[512], text[4096];
	struct hop_journal *j =
	    hop_journal_open(path, "s", false, err, sizeof(err));
	finish(j, "1", true);
	hop_journal_close(j);
	FILE *f = fopen(path, "a");
	fputs("{\"id\": \"2\", \"outco", f);
	fclose(f);

	j = hop_journal_open(path, "s", false, err, sizeof(err));
	assert_non_null(j);
	assert_int_equal(hop_journal_done_count(j), 1);
	hop_journal_close(j);
	f = fopen(path, "r");
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	assert_null(strstr(text, "outco\""));
	assert_null(strstr(text, "\"outco{"));
	assert_int_equal(text[n - 1], '\n');
}

static void another_source_is_refused(void **state)
{
	char err[512];
	struct hop_journal *j =
	    hop_journal_open(path, "jsonl:/a", false, err, sizeof(err));
	hop_journal_close(j);
	assert_null(
	    hop_journal_open(path, "jsonl:/b", false, err, sizeof(err)));
	assert_non_null(
	    strstr(err, "records the source jsonl:/a, not jsonl:/b"));
}

static void a_line_that_is_not_the_journals_is_named(void **state)
{
	char err[512];
	FILE *f = fopen(path, "w");
	fputs("{\"journal\": 1, \"source\": \"s\"}\nhello\n", f);
	fclose(f);
	assert_null(hop_journal_open(path, "s", false, err, sizeof(err)));
	assert_non_null(strstr(err, ":2: not a journal line"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(a_rerun_skips_what_was_recorded,
					    make_path, remove_path),
	    cmocka_unit_test_setup_teardown(
		dead_items_run_again_with_resume_failed, make_path,
		remove_path),
	    cmocka_unit_test_setup_teardown(a_torn_last_line_is_cut, make_path,
					    remove_path),
	    cmocka_unit_test_setup_teardown(another_source_is_refused,
					    make_path, remove_path),
	    cmocka_unit_test_setup_teardown(
		a_line_that_is_not_the_journals_is_named, make_path,
		remove_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
