/* spawn.h - starting worker processes.
 *
 * A worker runs in its own process group, so that a timeout can kill it and
 * everything it started. Its signal mask and dispositions are reset, it sees
 * only the three descriptors it is given (everything hopper opens is
 * close-on-exec), and a command that cannot be executed is reported by the
 * spawn call itself, not discovered later as a crash.
 */
#ifndef HOP_SPAWN_H
#define HOP_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct hop_child {
	pid_t pid;
	int pidfd;	/* readable when the child exits */
	int in;		/* our end of its stdin, non-blocking, or -1 */
	int out;	/* our end of its stdout, non-blocking, or -1 */
	int err;	/* our end of its stderr, non-blocking, or -1 */
	size_t in_done; /* bytes of the input written before it started */
};

/* Starts argv[0] (searched in PATH) with pipes for stdin, stdout and stderr
 * and with env_extra ("NAME=value" strings, NULL-terminated, may be NULL)
 * added to hopper's environment. Returns 0 and fills child, or -errno with a
 * message naming the command in err. */
int hop_spawn(char *const argv[], char *const env_extra[],
	      struct hop_child *child, char *err, size_t errlen);

/* Like hop_spawn, and puts the first bytes of input (as many as the pipe
 * holds) in the child's stdin before starting it; child->in_done says how
 * many. When all of input fits, stdin is closed (child->in is -1): the
 * child finds its input and the end of it waiting, whatever the caller
 * does next. */
int hop_spawn_input(char *const argv[], char *const env_extra[],
		    const char *input, size_t input_len,
		    struct hop_child *child, char *err, size_t errlen);

/* Sends sig to the child's whole process group. */
void hop_child_signal(const struct hop_child *child, int sig);

/* Reaps the child if it has exited. Returns true and sets *status (as from
 * waitpid) when it has, false when it is still running. */
bool hop_child_reap(struct hop_child *child, int *status);

/* Like hop_child_reap, and ends what the child leaves behind: when it has
 * exited, its process group gets SIGTERM before the child is reaped (while
 * the exited child still holds the group's number, so that the signal
 * cannot reach a group that took the number since). *lingering says
 * whether processes of the group outlived the child; they got SIGTERM, and
 * what remains of them is the caller's to follow up with SIGKILL. */
bool hop_child_reap_group(struct hop_child *child, int *status,
			  bool *lingering);

/* Whether any process of the process group pgid is still there. */
bool hop_group_alive(pid_t pgid);

/* Closes whatever descriptors of the child are still open. */
void hop_child_close(struct hop_child *child);

/* Describes a wait status in words: "exited with status 3", "killed by
 * signal 9 (Killed)". */
void hop_describe_status(int status, char *buf, size_t n);

#endif
