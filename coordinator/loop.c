/* loop.c - epoll, one timerfd for a heap of timers, and soon-callbacks. */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

struct fd_watch {
	hop_fd_cb cb;
	void *arg;
	bool used;
};

struct timer {
	int64_t when;
	uint64_t id;
	hop_timer_cb cb;
	void *arg;
};

struct soon {
	hop_timer_cb cb;
	void *arg;
};

struct hop_loop {
	int epfd;
	int tfd;
	int64_t armed; /* deadline the timerfd is set to, or 0 */
	struct fd_watch *fds;
	int nfds;
	struct timer *heap;
	size_t nheap, capheap;
	uint64_t next_id;
	struct soon *soon;
	size_t nsoon, capsoon;
	/* hop_now_ms() as this turn (or batch of callbacks) began */
	int64_t now;
	bool running;
	bool stop;
};

int64_t hop_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct hop_loop *hop_loop_new(void)
{
	struct hop_loop *loop = calloc(1, sizeof(*loop));
	if (!loop)
		return NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0)
		goto err_free;
	loop->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (loop->tfd < 0)
		goto err_close_ep;
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = loop->tfd};
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->tfd, &ev) < 0)
		goto err_close_tfd;
	return loop;

err_close_tfd:
	close(loop->tfd);
err_close_ep:
	close(loop->epfd);
err_free:
	free(loop);
	return NULL;
}

void hop_loop_free(struct hop_loop *loop)
{
	if (!loop)
		return;
	close(loop->tfd);
	close(loop->epfd);
	free(loop->fds);
	free(loop->heap);
	free(loop->soon);
	free(loop);
}

int hop_loop_watch(struct hop_loop *loop, int fd, uint32_t events, hop_fd_cb cb,
		   void *arg)
{
	if (fd >= loop->nfds) {
		int n = loop->nfds ? loop->nfds : 64;
		while (n <= fd)
			n *= 2;
		struct fd_watch *p = realloc(loop->fds, sizeof(*p) * (size_t)n);
		if (!p)
			return -ENOMEM;
		memset(p + loop->nfds, 0,
		       sizeof(*p) * (size_t)(n - loop->nfds));
		loop->fds = p;
		loop->nfds = n;
	}
	struct epoll_event ev = {.events = events, .data.fd = fd};
	int op = loop->fds[fd].used ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(loop->epfd, op, fd, &ev) < 0)
		return -errno;
	loop->fds[fd] = (struct fd_watch){.cb = cb, .arg = arg, .used = true};
	return 0;
}

void hop_loop_unwatch(struct hop_loop *loop, int fd)
{
	if (fd < 0 || fd >= loop->nfds || !loop->fds[fd].used)
		return;
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
	loop->fds[fd].used = false;
}

void hop_loop_forget(struct hop_loop *loop, int fd)
{
	if (fd >= 0 && fd < loop->nfds)
		loop->fds[fd].used = false;
}

static void heap_swap(struct hop_loop *l, size_t a, size_t b)
{
	struct timer t = l->heap[a];
	l->heap[a] = l->heap[b];
	l->heap[b] = t;
}

static void heap_up(struct hop_loop *l, size_t i)
{
	while (i > 0 && l->heap[(i - 1) / 2].when > l->heap[i].when) {
		heap_swap(l, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void heap_down(struct hop_loop *l, size_t i)
{
	for (;;) {
		size_t m = i, a = 2 * i + 1, b = 2 * i + 2;
		if (a < l->nheap && l->heap[a].when < l->heap[m].when)
			m = a;
		if (b < l->nheap && l->heap[b].when < l->heap[m].when)
			m = b;
		if (m == i)
			return;
		heap_swap(l, i, m);
		i = m;
	}
}

static void heap_remove(struct hop_loop *l, size_t i)
{
	l->heap[i] = l->heap[--l->nheap];
	if (i < l->nheap) {
		heap_up(l, i);
		heap_down(l, i);
	}
}

/* Sets the timerfd to the earliest timer, touching it only on a change. */
static void arm(struct hop_loop *l)
{
	int64_t when = l->nheap ? l->heap[0].when : 0;
	if (when == l->armed)
		return;
	struct itimerspec its = {0};
	if (when) {
		its.it_value.tv_sec = when / 1000;
		its.it_value.tv_nsec = (when % 1000) * 1000000;
	}
	timerfd_settime(l->tfd, TFD_TIMER_ABSTIME, &its, NULL);
	l->armed = when;
}

uint64_t hop_loop_after(struct hop_loop *loop, int64_t delay_ms,
			hop_timer_cb cb, void *arg)
{
	if (loop->nheap == loop->capheap) {
		size_t n = loop->capheap ? loop->capheap * 2 : 32;
		struct timer *p = realloc(loop->heap, sizeof(*p) * n);
		if (!p)
			return 0;
		loop->heap = p;
		loop->capheap = n;
	}
	if (delay_ms < 0)
		delay_ms = 0;
	struct timer *t = &loop->heap[loop->nheap];
	/* +1 keeps "when" non-zero: zero means "disarmed" to arm(). */
	*t = (struct timer){.when = hop_now_ms() + delay_ms + 1,
			    .id = ++loop->next_id,
			    .cb = cb,
			    .arg = arg};
	heap_up(loop, loop->nheap++);
	arm(loop);
	return loop->next_id;
}

void *hop_loop_cancel(struct hop_loop *loop, uint64_t id)
{
	if (!id)
		return NULL;
	for (size_t i = 0; i < loop->nheap; i++) {
		if (loop->heap[i].id == id) {
			void *arg = loop->heap[i].arg;
			heap_remove(loop, i);
			arm(loop);
			return arg;
		}
	}
	return NULL;
}

void hop_loop_soon(struct hop_loop *loop, hop_timer_cb cb, void *arg)
{
	for (size_t i = 0; i < loop->nsoon; i++)
		if (loop->soon[i].cb == cb && loop->soon[i].arg == arg)
			return;
	if (loop->nsoon == loop->capsoon) {
		size_t n = loop->capsoon ? loop->capsoon * 2 : 8;
		struct soon *p = realloc(loop->soon, sizeof(*p) * n);
		if (!p)
			return;
		loop->soon = p;
		loop->capsoon = n;
	}
	loop->soon[loop->nsoon++] = (struct soon){cb, arg};
}

static void run_timers(struct hop_loop *l)
{
	uint64_t expirations;
	if (read(l->tfd, &expirations, sizeof(expirations)) < 0) {
		/* EAGAIN: the timer was re-armed after it fired; check anyway.
		 */
	}
	l->armed = 0;
	int64_t now = hop_now_ms();
	while (l->nheap && l->heap[0].when <= now && !l->stop) {
		struct timer t = l->heap[0];
		heap_remove(l, 0);
		t.cb(l, t.arg);
	}
	arm(l);
}

/* At most this long in soon-callbacks before the fds and timers that are
 * ready get their turn: a callback that queues itself again (the Kafka
 * source copying what librdkafka holds) would otherwise keep them waiting
 * until it is done. */
#define SOON_SLICE_MS 20

static void run_soon(struct hop_loop *l)
{
	int64_t until = hop_now_ms() + SOON_SLICE_MS;

	/* Callbacks may queue more; those run in the same go, time allowing. */
	while (l->nsoon && !l->stop) {
		size_t n = l->nsoon;
		struct soon batch[16];
		if (n > 16)
			n = 16;
		l->now = hop_now_ms();
		if (l->now >= until)
			break;
		memcpy(batch, l->soon, sizeof(batch[0]) * n);
		memmove(l->soon, l->soon + n,
			sizeof(batch[0]) * (l->nsoon - n));
		l->nsoon -= n;
		for (size_t i = 0; i < n; i++)
			batch[i].cb(l, batch[i].arg);
	}
}

int hop_loop_run(struct hop_loop *loop)
{
	struct epoll_event evs[64];

	loop->stop = false;
	loop->running = true;
	loop->now = hop_now_ms();
	while (!loop->stop) {
		run_soon(loop);
		if (loop->stop)
			break;
		int n = epoll_wait(loop->epfd, evs, 64, loop->nsoon ? 0 : -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			loop->running = false;
			return -errno;
		}
		loop->now = hop_now_ms();
		for (int i = 0; i < n && !loop->stop; i++) {
			int fd = evs[i].data.fd;
			if (fd == loop->tfd) {
				run_timers(loop);
				continue;
			}
			/* A callback earlier in this batch may have dropped it.
			 */
			if (fd < loop->nfds && loop->fds[fd].used)
				loop->fds[fd].cb(loop, fd, evs[i].events,
						 loop->fds[fd].arg);
		}
	}
	loop->running = false;
	return 0;
}

int64_t hop_loop_now(const struct hop_loop *loop)
{
	return loop->running ? loop->now : hop_now_ms();
}

void hop_loop_stop(struct hop_loop *loop)
{
	loop->stop = true;
}
