/* spawner.h - starting processes off the event loop.
 *
 * Starting a process costs the caller the kernel's copy of the process and
 * a wait until the child has called execve: most of what exec mode spends
 * per item. A spawner runs hop_spawn on a few threads of its own and hands
 * each result back to the loop through an eventfd, so the loop goes on with
 * other work meanwhile and two starts can overlap. A start may wait for the
 * process before it to exit, so that a slot's next process follows its last
 * at once, with no trip through the loop in between. The threads touch
 * nothing but the requests given to them; all of hopper's state stays on
 * the loop.
 */
#ifndef HOP_SPAWNER_H
#define HOP_SPAWNER_H

#include <stddef.h>

#include "spawn.h"

struct hop_loop;
struct hop_spawner;

/* What to start. Everything is copied by hop_spawner_start. */
struct hop_spawn_args {
	char *const *argv;
	char *const *env_extra; /* "NAME=value" strings, NULL-terminated */
	const char *input;	/* for stdin, as hop_spawn_input takes it */
	size_t input_len;
	/* When file_fd >= 0, input becomes that file's whole content just
	 * before the start (file_len: what the file held until then, or
	 * SIZE_MAX when unknown). The descriptor stays the caller's and must
	 * outlive the spawner; file_path names it in errors. */
	int file_fd;
	size_t file_len;
	const char *file_path;
	/* When wait_fd >= 0 (a pidfd), the start waits until it is readable.
	 * The spawner keeps a duplicate: the caller may close its own. */
	int wait_fd;
	/* Starts with the same key are made by the same thread, in order. */
	unsigned key;
};

/* Called on the loop with the result: rc 0 and a started child, or -errno
 * with the message in err. The callee takes the child's descriptors. */
typedef void (*hop_spawned_cb)(void *arg, int rc, struct hop_child *child,
			       const char *err);

/* Starts `threads` spawner threads reporting to loop. Returns NULL with
 * errno set on failure. Call it after the signal mask is set: the threads
 * inherit it. */
struct hop_spawner *hop_spawner_new(struct hop_loop *loop, int threads);

/* Queues a start. cb runs on the loop once it is done, unless
 * hop_spawner_cancel(arg) came first. Returns 0 or -errno (-ENOMEM, or
 * -EMFILE when wait_fd cannot be duplicated). */
int hop_spawner_start(struct hop_spawner *sp, const struct hop_spawn_args *args,
		      hop_spawned_cb cb, void *arg);

/* Drops the requests made with arg, started or waiting: a child started
 * for them is killed (SIGKILL to its group) and reaped instead. */
void hop_spawner_cancel(struct hop_spawner *sp, void *arg);

/* Waits for starts under way to finish (killing what they start), drops
 * the rest, stops the threads and frees the spawner. */
void hop_spawner_free(struct hop_spawner *sp);

#endif
