/* spawn.c - posix_spawn with a process group, reset signals and pidfds.
 *
 * glibc's posix_spawn runs the child with a vfork-style clone and reports
 * a failed exec as the call's return value, which is the exec-error pipe
 * done for us.
 */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
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

int hop_spawn(char *const argv[], char *const env_extra[],
              struct hop_child *child, char *err, size_t errlen)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	char **env = NULL;
	int rc;

	*child = (struct hop_child){.pid = -1, .pidfd = -1, .in = -1, .out = -1,
	                            .err = -1};
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) ||
	    pipe2(errp, O_CLOEXEC)) {
		rc = -errno;
		snprintf(err, errlen, "cannot make pipes for '%s': %s", argv[0],
		         strerror(errno));
		goto out_close;
	}
	env = env_extra ? merged_env(env_extra) : environ;
	if (!env) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out_close;
	}

	sigemptyset(&none);
	sigfillset(&all);
	sigdelset(&all, SIGKILL);
	sigdelset(&all, SIGSTOP);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
	                                    POSIX_SPAWN_SETSIGMASK |
	                                    POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, errp[1], 2);

	rc = -posix_spawnp(&child->pid, argv[0], &fa, &attr, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (rc) {
		snprintf(err, errlen, "cannot run '%s': %s", argv[0], strerror(-rc));
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
	fcntl(child->pidfd, F_SETFD, FD_CLOEXEC);
	child->in = in[1];
	child->out = out[0];
	child->err = errp[0];
	in[1] = out[0] = errp[0] = -1;
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
