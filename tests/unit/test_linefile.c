/* Unit tests for linefile.c: a torn tail is cut when a file is taken over,
 * a failed write leaves no fragment, a cut that failed is done before the
 * next write, and a pipe gets a newline after a broken line.
 *
 * Writes are made to fail part way with RLIMIT_FSIZE (and SIGXFSZ ignored,
 * so that write answers EFBIG instead of killing the process), which needs
 * no privileges; a cut is made to fail with a memfd sealed against
 * shrinking. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coordinator/linefile.h"

static char path[64];

/* A line longer than the file size limit and the pipe used below. */
#define BIG 8192

static const char *big_line(void)
{
	static char line[BIG];
	memset(line, 'x', BIG - 1);
	line[BIG - 1] = '\n';
	return line;
}

static void put(const char *data)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(data, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* The file's contents, NUL-terminated, until the next call. */
static const char *contents(void)
{
	static char buf[65536];
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static void take_over(struct hop_linefile *lf, off_t expect_cut)
{
	off_t cut = -1;
	int fd = hop_linefile_open(path);
	assert_true(fd >= 0);
	assert_int_equal(hop_linefile_init(lf, fd, &cut), 0);
	assert_int_equal(cut, expect_cut);
	assert_true(lf->regular);
}

/* Appends len bytes with writes limited to limit bytes of file size, as a
 * full disk would stop them; returns what append returned. */
static int append_limited(struct hop_linefile *lf, const char *p, size_t len,
			  rlim_t limit)
{
	struct rlimit old, small;
	void (*was)(int) = signal(SIGXFSZ, SIG_IGN);

	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	small = (struct rlimit){.rlim_cur = limit, .rlim_max = old.rlim_max};
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	int rc = hop_linefile_append(lf, p, len, true);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, was);
	return rc;
}

static void a_torn_tail_is_cut_and_its_size_reported(void **state)
{
	struct hop_linefile lf;
	put("{\"a\":1}\n{\"b\":2}\n{\"c\":");

	take_over(&lf, 5);
	assert_string_equal(contents(), "{\"a\":1}\n{\"b\":2}\n");
	assert_int_equal(lf.good, 16);
	assert_int_equal(hop_linefile_append(&lf, "{\"d\":4}\n", 8, true), 0);
	assert_string_equal(contents(), "{\"a\":1}\n{\"b\":2}\n{\"d\":4}\n");
	hop_linefile_close(&lf);
	assert_int_equal(lf.fd, -1);
}

static void a_file_of_one_torn_line_is_emptied(void **state)
{
	struct hop_linefile lf;
	char big[70000];

	/* Longer than one read backwards, and no newline anywhere. */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	put(big);
	take_over(&lf, (off_t)sizeof(big) - 1);
	assert_int_equal(strlen(contents()), 0);
	hop_linefile_close(&lf);
}

static void a_whole_file_is_left_as_it_is(void **state)
{
	struct hop_linefile lf;
	struct stat before, after;
	put("one\ntwo\n");
	assert_int_equal(stat(path, &before), 0);

	take_over(&lf, 0);
	assert_int_equal(stat(path, &after), 0);
	assert_int_equal(after.st_size, 8);
	assert_true(after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
		    after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
	assert_int_equal(lf.good, 8);
	assert_int_equal(lf.cuts, 0);
	hop_linefile_close(&lf);

	put("");
	take_over(&lf, 0);
	assert_int_equal(lf.good, 0);
	hop_linefile_close(&lf);
}

static void a_failed_write_leaves_no_fragment(void **state)
{
	struct hop_linefile lf;
	put("");
	take_over(&lf, 0);
	assert_int_equal(hop_linefile_append(&lf, "one\n", 4, true), 0);

	/* The file may grow to 4096 bytes: the write gets part way. */
	assert_int_equal(append_limited(&lf, big_line(), BIG, 4096), -EFBIG);
	assert_string_equal(contents(), "one\n");
	assert_int_equal(lf.cuts, 1);
	assert_false(lf.cut_pending);

	/* The next line starts a line of its own. */
	assert_int_equal(hop_linefile_append(&lf, "two\n", 4, true), 0);
	assert_string_equal(contents(), "one\ntwo\n");
	hop_linefile_close(&lf);
}

static void a_failed_cut_holds_back_every_write(void **state)
{
	struct hop_linefile lf;
	char name[64];
	off_t cut;

	/* A memfd sealed against shrinking: writes grow it, cuts fail. */
	int mfd = memfd_create("linefile", MFD_ALLOW_SEALING);
	assert_true(mfd >= 0);
	snprintf(name, sizeof(name), "/proc/self/fd/%d", mfd);
	int fd = open(name, O_RDWR | O_APPEND | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(hop_linefile_init(&lf, fd, &cut), 0);
	assert_true(lf.regular);
	assert_int_equal(hop_linefile_append(&lf, "one\n", 4, true), 0);
	assert_int_equal(fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK), 0);

	assert_int_equal(append_limited(&lf, big_line(), BIG, 4096), -EFBIG);
	assert_true(lf.cut_pending);
	assert_int_equal(lf.cuts, 0);

	/* Nothing goes after the fragment while it cannot be cut. */
	assert_int_equal(hop_linefile_append(&lf, "two\n", 4, true), -EPERM);
	assert_true(lf.cut_pending);
	assert_int_equal(lseek(mfd, 0, SEEK_END), 4096);
	hop_linefile_close(&lf);
	close(mfd);
}

static void a_pending_cut_is_done_before_the_next_write(void **state)
{
	struct hop_linefile lf;
	put("one\n");
	take_over(&lf, 0);

	/* As a failed write whose cut failed too leaves it. */
	assert_int_equal(write(lf.fd, "tw", 2), 2);
	lf.cut_pending = true;

	assert_int_equal(hop_linefile_append(&lf, "three\n", 6, true), 0);
	assert_false(lf.cut_pending);
	assert_int_equal(lf.cuts, 1);
	assert_string_equal(contents(), "one\nthree\n");

	/* With nothing to write, the cut is still done. */
	assert_int_equal(write(lf.fd, "fo", 2), 2);
	lf.cut_pending = true;
	assert_int_equal(hop_linefile_append(&lf, "", 0, true), 0);
	assert_string_equal(contents(), "one\nthree\n");
	hop_linefile_close(&lf);
}

static void a_pipe_gets_a_newline_after_a_broken_line(void **state)
{
	struct hop_linefile lf;
	char got[2 * BIG];
	int p[2];
	off_t cut = -1;

	assert_int_equal(pipe(p), 0);
	assert_true(fcntl(p[1], F_SETPIPE_SZ, 4096) >= 4096);
	int size = fcntl(p[1], F_GETPIPE_SZ);
	assert_true(size < BIG);
	fcntl(p[1], F_SETFL, fcntl(p[1], F_GETFL) | O_NONBLOCK);
	assert_int_equal(hop_linefile_init(&lf, p[1], &cut), 0);
	assert_int_equal(cut, 0);
	assert_false(lf.regular);

	/* A full pipe stops the line part way. */
	assert_int_equal(hop_linefile_append(&lf, big_line(), BIG, true),
			 -EAGAIN);
	assert_true(lf.mid_line);
	assert_int_equal(read(p[0], got, sizeof(got)), size);

	assert_int_equal(hop_linefile_append(&lf, "next\n", 5, true), 0);
	assert_false(lf.mid_line);
	assert_int_equal(read(p[0], got, sizeof(got)), 6);
	assert_memory_equal(got, "\nnext\n", 6);
	hop_linefile_close(&lf);
	close(p[0]);
}

/* A file lent write-only (the shell's >>), ending in a torn line: the
 * fragment is someone else's and stays; the first line goes after a
 * newline, and a failed write is cut back to just after that newline. */
static void a_lent_file_keeps_its_torn_tail(void **state)
{
	struct hop_linefile lf;
	bool torn = false;

	put("theirs\nfrag");
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(hop_linefile_adopt(&lf, fd, &torn), 0);
	assert_true(torn && lf.regular);
	assert_string_equal(contents(), "theirs\nfrag");

	/* The newline goes out, the line stops part way and is cut. */
	assert_int_equal(append_limited(&lf, big_line(), BIG, 100), -EFBIG);
	assert_string_equal(contents(), "theirs\nfrag\n");
	assert_int_equal(hop_linefile_append(&lf, "one\n", 4, true), 0);
	assert_string_equal(contents(), "theirs\nfrag\none\n");
	hop_linefile_close(&lf);

	/* A whole file, or an empty one, gets no newline. */
	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	assert_int_equal(hop_linefile_adopt(&lf, fd, &torn), 0);
	assert_false(torn);
	assert_int_equal(hop_linefile_append(&lf, "two\n", 4, true), 0);
	assert_string_equal(contents(), "theirs\nfrag\none\ntwo\n");
	hop_linefile_close(&lf);
	put("");
	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	assert_int_equal(hop_linefile_adopt(&lf, fd, &torn), 0);
	assert_false(torn);
	hop_linefile_close(&lf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_torn_tail_is_cut_and_its_size_reported),
	    cmocka_unit_test(a_file_of_one_torn_line_is_emptied),
	    cmocka_unit_test(a_whole_file_is_left_as_it_is),
	    cmocka_unit_test(a_failed_write_leaves_no_fragment),
	    cmocka_unit_test(a_failed_cut_holds_back_every_write),
	    cmocka_unit_test(a_pending_cut_is_done_before_the_next_write),
	    cmocka_unit_test(a_pipe_gets_a_newline_after_a_broken_line),
	    cmocka_unit_test(a_lent_file_keeps_its_torn_tail),
	};
	/* One file for all: each test starts by writing what it holds. */
	snprintf(path, sizeof(path), "%s/hop-linefile-%d", P_tmpdir,
		 (int)getpid());
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	unlink(path);
	return rc;
}
