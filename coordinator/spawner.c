/* spawner.c - hop_spawn on worker threads, results through an eventfd.
 *
 * Requests go to the threads through a queue under a mutex and come back
 * through another, with an eventfd write to wake the loop. The lock guards
 * the two queues and nothing else.
 */
#include "spawner.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loop.h"

struct hop_spawn_req {
	struct hop_spawn_req *next;
	char **argv;
	char **env;
	hop_spawned_cb cb;
	void *arg;
	int rc;
	struct hop_child child;
	char err[256];
};

struct hop_spawner {
	struct hop_loop *loop;
	int efd;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct hop_spawn_req *todo, *todo_tail;
	struct hop_spawn_req *done;
	int busy; /* requests taken by threads and not yet done */
	bool stop;
	int nthreads;
	pthread_t tid[8];
};

static char **copy_strv(char *const v[])
{
	size_t n = 0;
	while (v && v[n])
		n++;
	char **c = calloc(n + 1, sizeof(char *));
	for (size_t i = 0; c && i < n; i++)
		if (!(c[i] = strdup(v[i])))
			return NULL;
	return c;
}

static void free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static void free_req(struct hop_spawn_req *r)
{
	free_strv(r->argv);
	free_strv(r->env);
	free(r);
}

/* A child nobody wants any more: stop it and reap it. */
static void discard(struct hop_spawn_req *r)
{
	if (r->rc == 0) {
		hop_child_signal(&r->child, SIGKILL);
		waitpid(r->child.pid, NULL, 0);
		hop_child_close(&r->child);
	}
	free_req(r);
}

static void *spawn_thread(void *arg)
{
	struct hop_spawner *sp = arg;
	pthread_mutex_lock(&sp->mu);
	for (;;) {
		while (!sp->todo && !sp->stop)
			pthread_cond_wait(&sp->cv, &sp->mu);
		if (!sp->todo)
			break;
		struct hop_spawn_req *r = sp->todo;
		sp->todo = r->next;
		if (!sp->todo)
			sp->todo_tail = NULL;
		sp->busy++;
		pthread_mutex_unlock(&sp->mu);

		r->rc = hop_spawn(r->argv, r->env, &r->child, r->err,
				  sizeof(r->err));

		pthread_mutex_lock(&sp->mu);
		sp->busy--;
		r->next = sp->done;
		sp->done = r;
		uint64_t one = 1;
		if (write(sp->efd, &one, sizeof(one)) < 0) {
			/* The counter cannot overflow at one write per child.
			 */
		}
		pthread_cond_broadcast(&sp->cv);
	}
	pthread_mutex_unlock(&sp->mu);
	return NULL;
}

static void on_done(struct hop_loop *loop, int fd, uint32_t events, void *arg)
{
	struct hop_spawner *sp = arg;
	uint64_t n;
	if (read(fd, &n, sizeof(n)) < 0)
		return;
	pthread_mutex_lock(&sp->mu);
	struct hop_spawn_req *list = sp->done;
	sp->done = NULL;
	pthread_mutex_unlock(&sp->mu);
	/* The list came back newest first: answer in request order. */
	struct hop_spawn_req *rev = NULL;
	while (list) {
		struct hop_spawn_req *next = list->next;
		list->next = rev;
		rev = list;
		list = next;
	}
	while (rev) {
		struct hop_spawn_req *r = rev;
		rev = r->next;
		if (!r->cb) {
			discard(r);
			continue;
		}
		r->cb(r->arg, r->rc, &r->child, r->err);
		free_req(r);
	}
}

struct hop_spawner *hop_spawner_new(struct hop_loop *loop, int threads)
{
	struct hop_spawner *sp = calloc(1, sizeof(*sp));
	if (!sp)
		return NULL;
	sp->loop = loop;
	sp->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sp->efd < 0)
		goto err_free;
	pthread_mutex_init(&sp->mu, NULL);
	pthread_cond_init(&sp->cv, NULL);
	if (hop_loop_watch(loop, sp->efd, EPOLLIN, on_done, sp))
		goto err_close;
	if (threads > 8)
		threads = 8;
	for (; sp->nthreads < threads; sp->nthreads++)
		if (pthread_create(&sp->tid[sp->nthreads], NULL, spawn_thread,
				   sp))
			break;
	if (sp->nthreads == 0)
		goto err_unwatch;
	return sp;

err_unwatch:
	hop_loop_unwatch(loop, sp->efd);
err_close:
	close(sp->efd);
err_free:
	free(sp);
	return NULL;
}

int hop_spawner_start(struct hop_spawner *sp, char *const argv[],
		      char *const env_extra[], hop_spawned_cb cb, void *arg)
{
	struct hop_spawn_req *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->argv = copy_strv(argv);
	r->env = copy_strv(env_extra);
	if (!r->argv || !r->env) {
		free_req(r);
		return -ENOMEM;
	}
	r->cb = cb;
	r->arg = arg;
	pthread_mutex_lock(&sp->mu);
	if (sp->todo_tail)
		sp->todo_tail->next = r;
	else
		sp->todo = r;
	sp->todo_tail = r;
	pthread_cond_signal(&sp->cv);
	pthread_mutex_unlock(&sp->mu);
	return 0;
}

void hop_spawner_cancel(struct hop_spawner *sp, void *arg)
{
	pthread_mutex_lock(&sp->mu);
	for (struct hop_spawn_req *r = sp->todo; r; r = r->next)
		if (r->arg == arg)
			r->cb = NULL;
	for (struct hop_spawn_req *r = sp->done; r; r = r->next)
		if (r->arg == arg)
			r->cb = NULL;
	pthread_mutex_unlock(&sp->mu);
	/* A request a thread holds right now is caught when it lands in done:
	 * wait for the threads to put it there. */
	pthread_mutex_lock(&sp->mu);
	while (sp->busy)
		pthread_cond_wait(&sp->cv, &sp->mu);
	for (struct hop_spawn_req *r = sp->done; r; r = r->next)
		if (r->arg == arg)
			r->cb = NULL;
	pthread_mutex_unlock(&sp->mu);
}

void hop_spawner_free(struct hop_spawner *sp)
{
	if (!sp)
		return;
	pthread_mutex_lock(&sp->mu);
	sp->stop = true;
	/* Requests not started yet are dropped unstarted. */
	while (sp->todo) {
		struct hop_spawn_req *r = sp->todo;
		sp->todo = r->next;
		r->rc = -ECANCELED;
		free_req(r);
	}
	sp->todo_tail = NULL;
	pthread_cond_broadcast(&sp->cv);
	pthread_mutex_unlock(&sp->mu);
	for (int i = 0; i < sp->nthreads; i++)
		pthread_join(sp->tid[i], NULL);
	while (sp->done) {
		struct hop_spawn_req *r = sp->done;
		sp->done = r->next;
		discard(r);
	}
	hop_loop_unwatch(sp->loop, sp->efd);
	close(sp->efd);
	pthread_mutex_destroy(&sp->mu);
	pthread_cond_destroy(&sp->cv);
	free(sp);
}
