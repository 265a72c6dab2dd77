/* spawn.c - vfork and exec with a process group, reset signals and pidfds.
 *
 * vfork rather than posix_spawn: glibc's posix_spawn maps and unmaps a
 * stack for every child, which showed as a tenth of exec mode's cost.
 */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Builds hopper's environment plus extra. Returns NULL on no memory. */
static char **merged_env(char *const extra[])
{
	size_t n = 0, m = 0;
	while (environ[n])
		n++;
	while (extra && extra[m])
		m++;
	char **env = malloc(sizeof(char *) * (n + m + 1));
	if (!env)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < m; i++)
		env[k++] = extra[i];
	for (size_t i = 0; i < n; i++) {
		/* Drop inherited variables that extra sets. */
		const char *eq = strchr(environ[i], '=');
		size_t len = eq ? (size_t)(eq - environ[i]) + 1 : 0;
		bool shadowed = false;
		for (size_t j = 0; j < m && len; j++)
			if (strncmp(extra[j], environ[i], len) == 0)
				shadowed = true;
		if (!shadowed)
			env[k++] = environ[i];
	}
	env[k] = NULL;
	return env;
}

/* Starts the child with vfork: the parent waits only until the child has
 * called execve, and the child reports a failed exec through memory the
 * two share until then. Returns 0 or -errno. */
static int vfork_exec(char *const argv[], char **env, int in, int out, int err,
		      pid_t *pid)
{
	volatile int exec_errno = 0;
	sigset_t none, old;
	struct sigaction dfl = {.sa_handler = SIG_DFL};

	sigemptyset(&none);
	/* Block everything while the child shares our memory. */
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid_t p = vfork();
	if (p == 0) {
		/* The child: only async-signal-safe calls until execve. */
		setpgid(0, 0);
		sigaction(SIGPIPE, &dfl, NULL); /* SIG_IGN survives exec */
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) {
			exec_errno = errno;
			_exit(127);
		}
		execvpe(argv[0], argv, env);
		exec_errno = errno;
		_exit(127);
	}
	int saved = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (p < 0)
		return -saved;
	if (exec_errno) {
		waitpid(p, NULL, 0);
		return -exec_errno;
	}
	*pid = p;
	return 0;
}

/* Writes what the pipe takes of input without blocking. Returns the number
 * of bytes written. */
static size_t prefill(int fd, const char *input, size_t len)
{
	size_t done = 0;

	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
		return 0;
	while (done < len) {
		ssize_t n = write(fd, input + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	return done;
}

int hop_spawn(char *const argv[], char *const env_extra[],
	      struct hop_child *child, char *err, size_t errlen)
{
	return hop_spawn_input(argv, env_extra, NULL, 0, child, err, errlen);
}

int hop_spawn_input(char *const argv[], char *const env_extra[],
		    const char *input, size_t input_len,
		    struct hop_child *child, char *err, size_t errlen)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1};
	char **env = NULL;
	int rc;

	*child = (struct hop_child){
	    .pid = -1, .pidfd = -1, .in = -1, .out = -1, .err = -1};
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) ||
	    pipe2(errp, O_CLOEXEC)) {
		rc = -errno;
		snprintf(err, errlen, "cannot make pipes for '%s': %s", argv[0],
			 strerror(errno));
		goto out_close;
	}
	if (input) {
		child->in_done = prefill(in[1], input, input_len);
		if (child->in_done == input_len) {
			/* Closed before the fork: no child started meanwhile
			 * by another thread holds a copy, so the end of input
			 * is there at once. */
			close(in[1]);
			in[1] = -1;
		}
	}
	env = env_extra ? merged_env(env_extra) : environ;
	if (!env) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out_close;
	}

	rc = vfork_exec(argv, env, in[0], out[1], errp[1], &child->pid);
	if (rc) {
		snprintf(err, errlen, "cannot run '%s': %s", argv[0],
			 strerror(-rc));
		child->pid = -1;
		goto out_close;
	}
	child->pidfd = pidfd_open(child->pid, 0);
	if (child->pidfd < 0) {
		rc = -errno;
		snprintf(err, errlen, "pidfd_open for '%s': %s", argv[0],
			 strerror(errno));
		kill(-child->pid, SIGKILL);
		waitpid(child->pid, NULL, 0);
		child->pid = -1;
		goto out_close;
	}
	/* pidfd_open sets close-on-exec itself. */
	child->in = in[1];
	child->out = out[0];
	child->err = errp[0];
	in[1] = out[0] = errp[0] = -1;
	if (child->in >= 0)
		fcntl(child->in, F_SETFL, O_NONBLOCK);
	fcntl(child->out, F_SETFL, O_NONBLOCK);
	fcntl(child->err, F_SETFL, O_NONBLOCK);
	rc = 0;

out_close:
	if (env != environ)
		free(env);
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	return rc;
}

void hop_child_signal(const struct hop_child *child, int sig)
{
	if (child->pid > 0)
		kill(-child->pid, sig);
}

bool hop_child_reap(struct hop_child *child, int *status)
{
	if (child->pid <= 0)
		return true;
	pid_t r = waitpid(child->pid, status, WNOHANG);
	if (r == 0)
		return false;
	child->pid = -1;
	return true;
}

bool hop_child_reap_group(struct hop_child *child, int *status, bool *lingering)
{
	siginfo_t si = {0};

	*lingering = false;
	if (child->pid <= 0)
		return true;
	if (waitid(P_PID, (id_t)child->pid, &si, WEXITED | WNOHANG | WNOWAIT))
		return hop_child_reap(child, status);
	if (si.si_pid == 0)
		return false;
	kill(-child->pid, SIGTERM);
	pid_t pgid = child->pid;
	if (waitpid(child->pid, status, 0) < 0)
		*status = 127 << 8;
	child->pid = -1;
	/* While any process of the group lives, its number stays taken. */
	*lingering = hop_group_alive(pgid);
	return true;
}

bool hop_group_alive(pid_t pgid)
{
	return pgid > 0 && (kill(-pgid, 0) == 0 || errno == EPERM);
}

void hop_child_close(struct hop_child *child)
{
	int *fds[] = {&child->pidfd, &child->in, &child->out, &child->err};
	for (size_t i = 0; i < 4; i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

void hop_describe_status(int status, char *buf, size_t n)
{
	if (WIFEXITED(status))
		snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(buf, n, "stopped (status %#x)", status);
}
