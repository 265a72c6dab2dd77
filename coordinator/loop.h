/* loop.h - the single-threaded event loop that owns all of hopper's state.
 *
 * File descriptors are watched with epoll; timers live in a small binary heap
 * whose earliest deadline arms one timerfd, so every wake-up, timers
 * included, is an fd event. Callbacks run on the loop's thread, one at a
 * time, and may add or remove watches and timers freely.
 */
#ifndef HOP_LOOP_H
#define HOP_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct hop_loop;

typedef void (*hop_fd_cb)(struct hop_loop *loop, int fd, uint32_t events,
			  void *arg);
typedef void (*hop_timer_cb)(struct hop_loop *loop, void *arg);

/* Milliseconds on the monotonic clock. */
int64_t hop_now_ms(void);

/* Returns a new loop, or NULL with errno set. */
struct hop_loop *hop_loop_new(void);
void hop_loop_free(struct hop_loop *loop);

/* Watches fd for events (EPOLLIN, EPOLLOUT). A second call for the same fd
 * replaces its events, callback and argument. Returns 0 or -errno. */
int hop_loop_watch(struct hop_loop *loop, int fd, uint32_t events, hop_fd_cb cb,
		   void *arg);
/* Stops watching fd; call it before closing the fd. */
void hop_loop_unwatch(struct hop_loop *loop, int fd);
/* Forgets fd without telling epoll: for an fd about to be closed, whose
 * close ends its registration anyway (no other descriptor shares it). */
void hop_loop_forget(struct hop_loop *loop, int fd);

/* Calls cb once, delay_ms from now. Returns a timer id (> 0) for
 * hop_loop_cancel, or 0 when memory ran out. */
uint64_t hop_loop_after(struct hop_loop *loop, int64_t delay_ms,
			hop_timer_cb cb, void *arg);
/* Cancels a pending timer and returns the arg it was to be called with (for
 * the caller to free); an id that already fired or is 0 is ignored and
 * gives NULL. */
void *hop_loop_cancel(struct hop_loop *loop, uint64_t id);

/* Runs cb on the next turn of the loop, before it sleeps again. At most one
 * idle callback is kept per (cb, arg) pair. */
void hop_loop_soon(struct hop_loop *loop, hop_timer_cb cb, void *arg);

/* hop_now_ms() as the callback running now was called, give or take the
 * callbacks called before it in the same go: one clock read for many
 * items, where a millisecond is fine. Only from a callback. */
int64_t hop_loop_now(const struct hop_loop *loop);

/* Runs until hop_loop_stop. Returns 0, or -errno if epoll failed. */
int hop_loop_run(struct hop_loop *loop);
void hop_loop_stop(struct hop_loop *loop);

#endif
