/* driver.c - the ceiling: the least a coordinator could do.
 *
 * It starts one worker and keeps `window` items in flight on its stdin,
 * counting answer lines, with blocking I/O and no JSON. Whatever hopper does
 * beyond this (parsing, bookkeeping, the sink) shows as the gap between the
 * two rates.
 *
 * usage: driver ITEMS WINDOW WORKER [ARGS...]; prints items per second.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr,
			"usage: driver ITEMS WINDOW WORKER [ARGS...]\n");
		return 2;
	}
	long items = atol(argv[1]), window = atol(argv[2]);
	int to[2], from[2];
	if (pipe(to) || pipe(from))
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(to[0], 0);
		dup2(from[1], 1);
		close(to[1]);
		close(from[0]);
		execvp(argv[3], argv + 3);
		_exit(127);
	}
	close(to[0]);
	close(from[1]);
	signal(SIGPIPE, SIG_IGN);

	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	static char buf[1 << 20], line[256];
	long sent = 0, got = 0;
	while (got < items) {
		size_t o = 0;
		while (sent < items && sent - got < window) {
			int n = snprintf(
			    line, sizeof(line),
			    "{\"id\":\"%ld\",\"attempt\":1,\"payload\":%ld}\n",
			    sent + 1, sent);
			memcpy(buf + o, line, (size_t)n);
			o += (size_t)n;
			sent++;
		}
		for (size_t w = 0; w < o;) {
			ssize_t k = write(to[1], buf + w, o - w);
			if (k <= 0)
				return 1;
			w += (size_t)k;
		}
		ssize_t n = read(from[0], buf, sizeof(buf));
		if (n <= 0)
			return 1;
		for (ssize_t i = 0; i < n; i++)
			got += buf[i] == '\n';
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	close(to[1]);
	waitpid(pid, NULL, 0);
	double secs = (double)(t1.tv_sec - t0.tv_sec) +
		      (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("%.0f\n", (double)items / secs);
	return 0;
}
