/* proc.c - a supervised long-lived program on the loop (proc.h). */
#include "sources/exec/proc.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "coordinator/log.h"
#include "coordinator/loop.h"

/* The wait before a restart, doubled at each crash in a row: at least a
 * second after the first, as s6 waits, and never more than half a minute.
 * An incarnation that lived LIVED_MS counts as a success: the next crash
 * waits the first time again. */
#define RESTART_FIRST_MS 1000
#define RESTART_MAX_MS 30000
#define LIVED_MS 10000
/* From SIGTERM to SIGKILL when stopping. */
#define TERM_GRACE_MS 2000
/* From EOF on its stdout to stopping a program that still runs: a process
 * closes its descriptors a moment before its exit shows (stream.c). */
#define EOF_GRACE_MS 1000

static void read_out(struct hop_proc *p);
static void gone(struct hop_proc *p, int status);

static void keep_tail(struct hop_proc *p, const char *line, size_t len)
{
	int k = p->ntail % 4;
	snprintf(p->tail[k], sizeof(p->tail[k]), "%.*s",
		 (int)(len > 199 ? 199 : len), line);
	p->ntail++;
}

void hop_proc_tail(const struct hop_proc *p, char *buf, size_t n)
{
	int first = p->ntail > 4 ? p->ntail - 4 : 0;
	size_t used = 0;
	buf[0] = '\0';
	for (int i = first; i < p->ntail && used + 1 < n; i++) {
		int w = snprintf(buf + used, n - used, "%s%s",
				 i > first ? " | " : "", p->tail[i % 4]);
		if (w < 0)
			break;
		used += (size_t)w;
	}
}

static void read_err(struct hop_proc *p)
{
	char *line;
	size_t len;
	for (;;) {
		enum hop_line_status st =
		    hop_lines_next(&p->err, p->child.err, &line, &len);
		if (st == HOP_LINE_OK) {
			hop_log(HOP_INFO, "%s: %.*s", p->name, (int)len, line);
			keep_tail(p, line, len);
		} else if (st != HOP_LINE_TOOLONG) {
			if (st == HOP_LINE_EOF || st == HOP_LINE_ERROR)
				hop_loop_unwatch(p->loop, p->child.err);
			return;
		}
	}
}

static void on_err(struct hop_loop *loop, int fd, uint32_t ev, void *arg)
{
	read_err(arg);
}

static void on_out(struct hop_loop *loop, int fd, uint32_t ev, void *arg)
{
	read_out(arg);
}

static void on_exit_fd(struct hop_loop *loop, int fd, uint32_t ev, void *arg)
{
	struct hop_proc *p = arg;
	pid_t pgid = p->child.pid;
	bool lingering;
	int status = 0;

	if (!hop_child_reap_group(&p->child, &status, &lingering))
		return;
	if (lingering) /* they had SIGTERM; the group is the program's */
		kill(-pgid, SIGKILL);
	/* What it wrote before exiting is still in the pipes. */
	if (!p->paused)
		read_out(p);
	read_err(p);
	gone(p, status);
}

static void on_in(struct hop_loop *loop, int fd, uint32_t ev, void *arg)
{
	hop_proc_flush(arg);
}

/* A program that closed its stdout and still runs can say nothing more:
 * it is stopped, and so started again. */
static void stdout_closed(struct hop_loop *loop, void *arg)
{
	struct hop_proc *p = arg;
	p->eof_timer = 0;
	if (!p->up || p->stopping)
		return;
	hop_log(HOP_ERROR,
		"%s: closed its stdout and kept running: it can say nothing "
		"more; stopping it",
		p->name);
	hop_child_signal(&p->child, SIGKILL);
}

/* Reads and hands over the lines waiting on stdout, until the pipe is
 * empty, the owner pauses, or the program is gone. */
static void read_out(struct hop_proc *p)
{
	unsigned inc = p->incarnation;
	char *line;
	size_t len;

	while (p->out_open && !p->paused && p->incarnation == inc) {
		enum hop_line_status st =
		    hop_lines_next(&p->out, p->child.out, &line, &len);
		switch (st) {
		case HOP_LINE_OK:
			p->lineno++;
			p->ops->line(p, line, len, p->lineno);
			break;
		case HOP_LINE_TOOLONG:
			p->lineno++;
			p->ops->too_long(p, p->lineno);
			break;
		case HOP_LINE_AGAIN:
			return;
		case HOP_LINE_EOF:
		case HOP_LINE_ERROR:
			hop_loop_unwatch(p->loop, p->child.out);
			p->out_open = false;
			if (!p->stopping && !p->eof_timer)
				p->eof_timer = hop_loop_after(
				    p->loop, EOF_GRACE_MS, stdout_closed, p);
			return;
		}
	}
}

static int spawn(struct hop_proc *p, char *err, size_t errlen)
{
	char inc[48], features[200];
	snprintf(inc, sizeof(inc), "HOPPER_INCARNATION=%u", p->incarnation + 1);
	snprintf(features, sizeof(features), "HOPPER_FEATURES=%s",
		 p->features ? p->features : "");
	/* Always set, so that one inherited from an outer run says
	 * nothing. */
	char *env[] = {"HOPPER_PROTOCOL=1", inc, features, NULL};
	int rc = hop_spawn(p->argv, env, &p->child, err, errlen);
	if (rc)
		return rc;
	p->incarnation++;
	hop_lines_free(&p->out);
	hop_lines_free(&p->err);
	hop_lines_init(&p->out, p->max_line);
	hop_lines_init(&p->err, 64 * 1024);
	hop_buf_reset(&p->in);
	p->lineno = 0;
	p->ntail = 0;
	p->paused = false;
	p->in_watch = false;
	p->out_open = true;
	p->up = true;
	p->started_ms = hop_now_ms();
	if (hop_loop_watch(p->loop, p->child.pidfd, EPOLLIN, on_exit_fd, p) ||
	    hop_loop_watch(p->loop, p->child.out, EPOLLIN, on_out, p) ||
	    hop_loop_watch(p->loop, p->child.err, EPOLLIN, on_err, p)) {
		snprintf(err, errlen, "%s: cannot watch its pipes", p->name);
		hop_child_signal(&p->child, SIGKILL);
		hop_proc_stop(p, 0);
		return -ENOMEM;
	}
	hop_log(HOP_DEBUG, "%s: started (pid %d)", p->name, (int)p->child.pid);
	return 0;
}

int hop_proc_start(struct hop_proc *p, char *err, size_t errlen)
{
	p->backoff_ms = RESTART_FIRST_MS;
	return spawn(p, err, errlen);
}

static void restart(struct hop_loop *loop, void *arg)
{
	struct hop_proc *p = arg;
	char err[300];

	p->restart_timer = 0;
	p->restart_due = 0;
	if (p->stopping)
		return;
	if (spawn(p, err, sizeof(err))) {
		hop_log(HOP_ERROR, "%s: %s; trying again in %.1f s", p->name,
			err, (double)p->backoff_ms / 1000);
		p->restart_due = hop_now_ms() + p->backoff_ms;
		p->restart_timer =
		    hop_loop_after(p->loop, p->backoff_ms, restart, p);
		if (p->backoff_ms < RESTART_MAX_MS)
			p->backoff_ms *= 2;
		return;
	}
	hop_log(HOP_INFO, "%s: started again (incarnation %u)", p->name,
		p->incarnation);
	if (p->ops->started)
		p->ops->started(p);
}

/* Lets go of a program that ended: its pipes, what was to be written to
 * it; tells the owner, and starts it again later unless stopping. */
static void gone(struct hop_proc *p, int status)
{
	char how[80], tail[600], why[800];

	hop_loop_cancel(p->loop, p->eof_timer);
	p->eof_timer = 0;
	hop_loop_unwatch(p->loop, p->child.pidfd);
	hop_loop_unwatch(p->loop, p->child.out);
	hop_loop_unwatch(p->loop, p->child.err);
	if (p->child.in >= 0)
		hop_loop_unwatch(p->loop, p->child.in);
	hop_child_close(&p->child);
	hop_buf_reset(&p->in);
	p->status = status;
	p->up = false;
	p->out_open = false;
	p->in_watch = false;
	if (p->stopping)
		return;
	hop_describe_status(status, how, sizeof(how));
	hop_proc_tail(p, tail, sizeof(tail));
	snprintf(why, sizeof(why), "%s%s%s", how,
		 tail[0] ? "; its stderr ended: " : " (nothing on stderr)",
		 tail);
	if (hop_now_ms() - p->started_ms >= LIVED_MS)
		p->backoff_ms = RESTART_FIRST_MS;
	if (p->ops->exited && !p->ops->exited(p, status, why)) {
		p->stopping = true;
		return;
	}
	hop_log(HOP_ERROR, "%s: %s; starting it again in %.1f s", p->name, why,
		(double)p->backoff_ms / 1000);
	p->restart_due = hop_now_ms() + p->backoff_ms;
	p->restart_timer = hop_loop_after(p->loop, p->backoff_ms, restart, p);
	if (p->backoff_ms < RESTART_MAX_MS)
		p->backoff_ms *= 2;
}

void hop_proc_flush(struct hop_proc *p)
{
	if (!p->up || p->child.in < 0)
		return;
	int rc = hop_buf_flush_fd(&p->in, p->child.in);
	if (rc == -EAGAIN) {
		if (!p->in_watch && hop_loop_watch(p->loop, p->child.in,
						   EPOLLOUT, on_in, p) == 0)
			p->in_watch = true;
		return;
	}
	if (rc)
		hop_buf_reset(&p->in); /* EPIPE: its exit will say why */
	if (p->in_watch) {
		hop_loop_unwatch(p->loop, p->child.in);
		p->in_watch = false;
	}
}

int hop_proc_send(struct hop_proc *p, const char *s, size_t n)
{
	if (!p->up)
		return 0;
	if (hop_buf_append(&p->in, s, n))
		return -ENOMEM;
	hop_proc_flush(p);
	return 0;
}

void hop_proc_pause(struct hop_proc *p, bool pause)
{
	if (p->paused == pause)
		return;
	p->paused = pause;
	if (!p->up || !p->out_open)
		return;
	if (pause) {
		hop_loop_unwatch(p->loop, p->child.out);
		return;
	}
	hop_loop_watch(p->loop, p->child.out, EPOLLIN, on_out, p);
	read_out(p);
}

bool hop_proc_poll(struct hop_proc *p, int timeout_ms)
{
	struct pollfd fds[4];
	int n = 0, iexit = -1, iout = -1, ierr = -1, iin = -1;

	if (!p->up)
		return false;
	fds[iexit = n++] = (struct pollfd){p->child.pidfd, POLLIN, 0};
	if (p->out_open && !p->paused)
		fds[iout = n++] = (struct pollfd){p->child.out, POLLIN, 0};
	fds[ierr = n++] = (struct pollfd){p->child.err, POLLIN, 0};
	if (p->child.in >= 0 && hop_buf_len(&p->in))
		fds[iin = n++] = (struct pollfd){p->child.in, POLLOUT, 0};
	int k = poll(fds, (nfds_t)n, timeout_ms);
	if (k <= 0)
		return false;
	if (iin >= 0 && fds[iin].revents)
		hop_proc_flush(p);
	if (iout >= 0 && fds[iout].revents)
		read_out(p);
	if (p->up && fds[ierr].revents)
		read_err(p);
	if (p->up && fds[iexit].revents)
		on_exit_fd(p->loop, p->child.pidfd, 0, p);
	return true;
}

/* Waits up to ms for the program to exit, serving its pipes. */
static void wait_exit(struct hop_proc *p, int64_t ms)
{
	int64_t end = hop_now_ms() + ms;
	while (p->up) {
		int64_t left = end - hop_now_ms();
		if (left <= 0)
			return;
		hop_proc_poll(p, (int)(left > 100 ? 100 : left));
	}
}

int hop_proc_stop(struct hop_proc *p, int64_t grace_ms)
{
	int status = -1;
	bool lingering;

	p->stopping = true;
	hop_loop_cancel(p->loop, p->restart_timer);
	p->restart_timer = 0;
	p->restart_due = 0;
	if (!p->up)
		goto out;
	/* What was sent last (acknowledgements) goes before the end of
	 * input. */
	int64_t end = hop_now_ms() + grace_ms;
	while (hop_buf_len(&p->in) && p->up && hop_now_ms() < end)
		hop_proc_poll(p, 50);
	if (p->child.in >= 0) {
		if (p->in_watch)
			hop_loop_unwatch(p->loop, p->child.in);
		p->in_watch = false;
		close(p->child.in);
		p->child.in = -1;
	}
	wait_exit(p, end - hop_now_ms());
	if (p->up) {
		hop_log(HOP_WARN,
			"%s: still running %.1f s after its stdin closed: "
			"SIGTERM",
			p->name, (double)grace_ms / 1000);
		hop_child_signal(&p->child, SIGTERM);
		wait_exit(p, TERM_GRACE_MS);
	}
	if (p->up) {
		hop_child_signal(&p->child, SIGKILL);
		while (p->up &&
		       !hop_child_reap_group(&p->child, &status, &lingering))
			poll(NULL, 0, 10);
		gone(p, status);
	}
	status = p->status;
out:
	hop_lines_free(&p->out);
	hop_lines_free(&p->err);
	hop_buf_free(&p->in);
	return status;
}
