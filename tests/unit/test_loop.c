/* Unit tests for loop.c: timers fire in order, cancel works, fds wake. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "coordinator/loop.h"

static char order[16];
static int norder;

static void mark(struct hop_loop *loop, void *arg)
{
	order[norder++] = *(const char *)arg;
	if (norder == 3)
		hop_loop_stop(loop);
}

static void timers_fire_in_deadline_order(void **state)
{
	struct hop_loop *loop = hop_loop_new();
	norder = 0;
	hop_loop_after(loop, 30, mark, "c");
	uint64_t id = hop_loop_after(loop, 5, mark, "x");
	hop_loop_after(loop, 10, mark, "a");
	hop_loop_after(loop, 20, mark, "b");
	hop_loop_cancel(loop, id);
	int64_t t0 = hop_now_ms();
	assert_int_equal(hop_loop_run(loop), 0);
	assert_memory_equal(order, "abc", 3);
	assert_true(hop_now_ms() - t0 >= 30);
	hop_loop_free(loop);
}

static void on_readable(struct hop_loop *loop, int fd, uint32_t ev, void *arg)
{
	char c;
	assert_int_equal(read(fd, &c, 1), 1);
	*(char *)arg = c;
	hop_loop_stop(loop);
}

static void soon_then_fd(struct hop_loop *loop, void *arg)
{
	assert_int_equal(write(*(int *)arg, "z", 1), 1);
}

static void fds_wake_the_loop(void **state)
{
	struct hop_loop *loop = hop_loop_new();
	int p[2];
	char got = 0;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(hop_loop_watch(loop, p[0], EPOLLIN, on_readable, &got),
			 0);
	hop_loop_soon(loop, soon_then_fd, &p[1]);
	hop_loop_soon(loop, soon_then_fd, &p[1]); /* deduplicated */
	assert_int_equal(hop_loop_run(loop), 0);
	assert_int_equal(got, 'z');
	char c;
	/* Only one byte was written: the duplicate soon-callback never ran. */
	hop_loop_unwatch(loop, p[0]);
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 0);
	close(p[0]);
	hop_loop_free(loop);
}

static void check_now(struct hop_loop *loop, void *arg)
{
	int64_t t0 = *(int64_t *)arg, now = hop_loop_now(loop);
	/* The turn that ran this timer began when it was due, or later. */
	assert_true(now >= t0 + 20);
	assert_true(now <= hop_now_ms());
	hop_loop_stop(loop);
}

static void loop_now_is_the_turns_time(void **state)
{
	struct hop_loop *loop = hop_loop_new();
	int64_t t0 = hop_now_ms();
	/* Not running: the clock itself (not 0), on a slow machine too. */
	assert_in_range(hop_loop_now(loop), t0, t0 + 1000);
	hop_loop_after(loop, 20, check_now, &t0);
	assert_int_equal(hop_loop_run(loop), 0);
	usleep(30000);
	int64_t later = hop_loop_now(loop);
	assert_true(later >= t0 + 50);
	hop_loop_free(loop);
}

/* A callback that queues itself again, as work done in slices does. */
struct busy {
	int64_t t0;
	int64_t served; /* ms from t0 to the fd's turn, or -1 */
	long runs;
};

static void busy_again(struct hop_loop *loop, void *arg)
{
	struct busy *b = arg;
	b->runs++;
	if (hop_now_ms() - b->t0 > 2000) /* starved: end it, and fail below */
		hop_loop_stop(loop);
	else
		hop_loop_soon(loop, busy_again, b);
}

static void busy_fd(struct hop_loop *loop, int fd, uint32_t ev, void *arg)
{
	struct busy *b = arg;
	char c;
	assert_int_equal(read(fd, &c, 1), 1);
	b->served = hop_now_ms() - b->t0;
	hop_loop_stop(loop);
}

static void busy_callbacks_let_fds_in(void **state)
{
	struct hop_loop *loop = hop_loop_new();
	struct busy b = {.t0 = hop_now_ms(), .served = -1};
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(hop_loop_watch(loop, p[0], EPOLLIN, busy_fd, &b), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	hop_loop_soon(loop, busy_again, &b);
	assert_int_equal(hop_loop_run(loop), 0);
	/* Served within a slice of soon-callbacks (20 ms), give or take a
	 * slow machine; the callback ran on meanwhile. */
	assert_in_range(b.served, 0, 500);
	assert_true(b.runs > 1);
	hop_loop_unwatch(loop, p[0]);
	close(p[0]);
	close(p[1]);
	hop_loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(timers_fire_in_deadline_order),
	    cmocka_unit_test(fds_wake_the_loop),
	    cmocka_unit_test(loop_now_is_the_turns_time),
	    cmocka_unit_test(busy_callbacks_let_fds_in),
	};
	return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
