/* spawn_ceiling.c - the most exec mode could do: two threads that do
 * nothing but start the worker and wait for it, over and over.
 *
 * usage: spawn_ceiling ITEMS THREADS WORKER; prints spawns per second.
 */
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;
static long per_thread;
static char *worker;

static void *spawner(void *arg)
{
	char *argv[] = {worker, "item", NULL};
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	for (long i = 0; i < per_thread; i++) {
		pid_t pid;
		if (posix_spawn(&pid, worker, &fa, NULL, argv, environ) == 0)
			waitpid(pid, NULL, 0);
	}
	posix_spawn_file_actions_destroy(&fa);
	return arg;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: spawn_ceiling ITEMS THREADS WORKER\n");
		return 2;
	}
	int threads = atoi(argv[2]);
	pthread_t tid[64];
	struct timespec t0, t1;
	if (threads < 1 || threads > 64)
		return 2;
	per_thread = atol(argv[1]) / threads;
	worker = argv[3];
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < threads; i++)
		pthread_create(&tid[i], NULL, spawner, NULL);
	for (int i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) +
		      (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("%.0f\n", (double)(per_thread * threads) / secs);
	return 0;
}
