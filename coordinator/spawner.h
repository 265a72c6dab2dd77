/* spawner.h - starting processes off the event loop.
 *
 * Starting a process costs the caller the kernel's copy of the process and
 * a wait until the child has called execve: most of what exec mode spends
 * per item. A spawner runs hop_spawn on a few threads of its own and hands
 * each result back to the loop through an eventfd, so the loop goes on with
 * other work meanwhile and two starts can overlap. The threads touch nothing
 * but the requests given to them; all of hopper's state stays on the loop.
 */
#ifndef HOP_SPAWNER_H
#define HOP_SPAWNER_H

#include <stddef.h>

#include "spawn.h"

struct hop_loop;
struct hop_spawner;

struct hop_spawn_req;
/* Called on the loop with the result: rc 0 and a started child, or -errno
 * with the message in err. The callee takes the child's descriptors. */
typedef void (*hop_spawned_cb)(void *arg, int rc, struct hop_child *child,
			       const char *err);

/* Starts `threads` spawner threads reporting to loop. Returns NULL with
 * errno set on failure. Call it after the signal mask is set: the threads
 * inherit it. */
struct hop_spawner *hop_spawner_new(struct hop_loop *loop, int threads);

/* Queues a start of argv with env_extra (both copied). cb runs on the loop
 * once it is done, unless hop_spawner_cancel(arg) came first. Returns 0 or
 * -ENOMEM. */
int hop_spawner_start(struct hop_spawner *sp, char *const argv[],
		      char *const env_extra[], hop_spawned_cb cb, void *arg);

/* Drops the callbacks of requests made with arg: a child started for them
 * is killed (SIGKILL to its group) and reaped instead. */
void hop_spawner_cancel(struct hop_spawner *sp, void *arg);

/* Waits for queued starts to finish (killing what they start), stops the
 * threads and frees the spawner. */
void hop_spawner_free(struct hop_spawner *sp);

#endif
