/* chain_floor.c - the least a coordinator can do for a chain of workers at
 * one item in flight per worker: start STAGES copies of WORKER, write each
 * item's envelope to the first, and each answer's id, as a fresh envelope,
 * to the next, with one write and one read per item per stage and one
 * epoll_wait per turn. Nothing is parsed but the id, nothing checked,
 * nothing acknowledged; the last stage's answers go to OUT with stdio.
 * The workers are kept busy at once: a stage takes its next item as soon
 * as it has answered its last one.
 *
 * usage: chain_floor ITEMS STAGES OUT WORKER [ARG...]
 * Exits 0 when every item came out of the last stage.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define MAX_STAGES 16

struct stage {
	pid_t pid;
	int in;		/* the worker's stdin */
	int out;	/* the worker's stdout */
	char buf[4096]; /* what was read and not yet a whole line */
	size_t len;
	long busy;    /* the item it holds, or -1 */
	long waiting; /* items answered upstream, not yet taken */
	long next;    /* the oldest of those (ids arrive in order) */
};

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void start(struct stage *s, char **argv)
{
	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
		die("pipe");
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	if (posix_spawn(&s->pid, argv[0], &fa, NULL, argv, environ) != 0)
		die(argv[0]);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	s->in = in[1];
	s->out = out[0];
	s->busy = -1;
}

static void give(struct stage *s, long id)
{
	char env[96];
	int n = snprintf(env, sizeof(env),
			 "{\"id\":\"%ld\",\"attempt\":1,\"payload\":%ld}\n", id,
			 id);
	if (write(s->in, env, (size_t)n) != n)
		die("write");
	s->busy = id;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: chain_floor ITEMS STAGES OUT WORKER "
				"[ARG...]\n");
		return 2;
	}
	long items = atol(argv[1]);
	int n = atoi(argv[2]);
	if (n < 1 || n > MAX_STAGES) {
		fprintf(stderr, "chain_floor: 1 to %d stages\n", MAX_STAGES);
		return 2;
	}
	FILE *out = fopen(argv[3], "w");
	if (!out)
		die(argv[3]);
	signal(SIGPIPE, SIG_IGN);

	static struct stage st[MAX_STAGES];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	for (int k = 0; k < n; k++) {
		start(&st[k], argv + 4);
		struct epoll_event ev = {.events = EPOLLIN,
					 .data.u32 = (uint32_t)k};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, st[k].out, &ev) < 0)
			die("epoll_ctl");
	}
	st[0].waiting = items;
	long done = 0;
	for (int k = 0; k < n; k++)
		if (st[k].waiting) {
			st[k].waiting--;
			give(&st[k], st[k].next++);
		}
	while (done < items) {
		struct epoll_event ev[MAX_STAGES];
		int got = epoll_wait(ep, ev, MAX_STAGES, -1);
		if (got < 0 && errno != EINTR)
			die("epoll_wait");
		for (int e = 0; e < got; e++) {
			int k = (int)ev[e].data.u32;
			struct stage *s = &st[k];
			ssize_t r = read(s->out, s->buf + s->len,
					 sizeof(s->buf) - s->len);
			if (r <= 0) {
				fprintf(stderr, "chain_floor: stage %d ended\n",
					k + 1);
				return 1;
			}
			s->len += (size_t)r;
			char *nl = memchr(s->buf, '\n', s->len);
			if (!nl)
				continue;
			size_t line = (size_t)(nl - s->buf) + 1;
			if (k + 1 < n) {
				st[k + 1].waiting++;
				if (st[k + 1].busy < 0) {
					st[k + 1].waiting--;
					give(&st[k + 1], st[k + 1].next++);
				}
			} else {
				fwrite(s->buf, 1, line, out);
				done++;
			}
			memmove(s->buf, s->buf + line, s->len - line);
			s->len -= line;
			s->busy = -1;
			if (s->waiting) {
				s->waiting--;
				give(s, s->next++);
			}
		}
	}
	if (fclose(out) != 0)
		die(argv[3]);
	for (int k = 0; k < n; k++) {
		close(st[k].in);
		waitpid(st[k].pid, NULL, 0);
	}
	return 0;
}
