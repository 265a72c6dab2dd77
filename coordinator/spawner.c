/* spawner.c - hop_spawn on worker threads, results through an eventfd.
 *
 * Requests go to the threads through a queue under a mutex and come back
 * through another, with an eventfd write to wake the loop. The lock guards
 * the two queues and nothing else.
 *
 * A request may wait for a descriptor (the pidfd of the process before it)
 * to become readable. Each request belongs to one thread, chosen by its key,
 * and each thread polls its own requests' descriptors and an eventfd of its
 * own: the next process of a slot starts the moment the one before exits,
 * with no trip through the loop and no hand-off between threads. That is
 * the shape of the fastest spawner, a thread that starts a process and
 * waits for it, over and over.
 */
#include "spawner.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loop.h"

#define MAX_THREADS 8

struct hop_spawn_req {
	struct hop_spawn_req *next;
	char **argv;
	char **env;
	char *input;
	size_t input_len;
	int file_fd;	 /* gets input as its whole content, or -1 */
	size_t file_len; /* bytes file_fd held before */
	char *file_path;
	int wait_fd; /* start once this is readable; -1: at once */
	bool exited; /* wait_fd was seen readable */
	int owner;   /* the thread that starts it */
	hop_spawned_cb cb;
	void *arg;
	int rc;
	struct hop_child child;
	char err[256];
};

struct spawn_thread {
	struct hop_spawner *sp;
	int index;
	int wake; /* eventfd: this thread's requests changed */
	pthread_t tid;
};

struct hop_spawner {
	struct hop_loop *loop;
	int efd; /* results are ready for the loop */
	pthread_mutex_t mu;
	pthread_cond_t idle_cv; /* for cancel: no request is being started */
	struct hop_spawn_req *todo, *todo_tail;
	struct hop_spawn_req *done;
	int busy;	/* requests taken by threads and not yet done */
	int cancelling; /* callers waiting on idle_cv */
	bool stop;
	int nthreads;
	struct spawn_thread th[MAX_THREADS];
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
	if (r->wait_fd >= 0)
		close(r->wait_fd);
	free_strv(r->argv);
	free_strv(r->env);
	free(r->input);
	free(r->file_path);
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

static void wake(struct spawn_thread *t)
{
	uint64_t one = 1;
	if (write(t->wake, &one, sizeof(one)) < 0) {
		/* Already readable: it wakes anyway. */
	}
}

/* Unlinks and returns the first of the thread's requests that may start
 * now. Requests dropped by hop_spawner_cancel are freed on the way. Called
 * locked. */
static struct hop_spawn_req *take_ready(struct spawn_thread *t)
{
	struct hop_spawner *sp = t->sp;
	struct hop_spawn_req **pp = &sp->todo, *prev = NULL;

	while (*pp) {
		struct hop_spawn_req *r = *pp;
		if (r->owner != t->index ||
		    (r->cb && r->wait_fd >= 0 && !r->exited)) {
			prev = r;
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		if (sp->todo_tail == r)
			sp->todo_tail = prev;
		if (!r->cb) { /* cancelled */
			free_req(r);
			continue;
		}
		r->next = NULL;
		return r;
	}
	return NULL;
}

/* Waits, unlocked, until one of the thread's wait_fds or its wake fd is
 * readable, and marks the requests whose process has exited. Called
 * locked. Only this thread frees its requests, so a descriptor polled here
 * still belongs to the same request afterwards. */
static void poll_waiting(struct spawn_thread *t)
{
	struct hop_spawner *sp = t->sp;
	nfds_t n = 1;

	for (struct hop_spawn_req *r = sp->todo; r; r = r->next)
		n += r->owner == t->index && r->wait_fd >= 0;
	struct pollfd one, *pfd = n > 1 ? malloc(sizeof(*pfd) * n) : &one;
	int timeout = -1;
	if (!pfd) { /* out of memory: look again in a while */
		pfd = &one;
		n = 1;
		timeout = 100;
	}
	pfd[0] = (struct pollfd){.fd = t->wake, .events = POLLIN};
	nfds_t k = 1;
	for (struct hop_spawn_req *r = sp->todo; r && k < n; r = r->next)
		if (r->owner == t->index && r->wait_fd >= 0)
			pfd[k++] =
			    (struct pollfd){.fd = r->wait_fd, .events = POLLIN};
	pthread_mutex_unlock(&sp->mu);
	int got = poll(pfd, n, timeout);
	if (got > 0 && pfd[0].revents) {
		uint64_t v;
		if (read(t->wake, &v, sizeof(v)) < 0) {
			/* Drained already. */
		}
	}
	pthread_mutex_lock(&sp->mu);
	for (nfds_t i = 1; got > 0 && i < n; i++) {
		if (!pfd[i].revents)
			continue;
		for (struct hop_spawn_req *r = sp->todo; r; r = r->next)
			if (r->owner == t->index && r->wait_fd == pfd[i].fd)
				r->exited = true;
	}
	if (pfd != &one)
		free(pfd);
}

/* Gives the request's input to the file that the process will read it
 * from, replacing what the process before it had there. */
static int fill_file(struct hop_spawn_req *r)
{
	for (size_t off = 0; off < r->input_len;) {
		ssize_t k = pwrite(r->file_fd, r->input + off,
				   r->input_len - off, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		off += (size_t)k;
	}
	/* Truncating costs an inode update; only a shorter input needs it. */
	if (r->input_len < r->file_len &&
	    ftruncate(r->file_fd, (off_t)r->input_len) < 0)
		return -errno;
	return 0;
}

static void run_req(struct hop_spawn_req *r)
{
	if (r->file_fd >= 0 && (r->rc = fill_file(r)) != 0) {
		snprintf(r->err, sizeof(r->err), "cannot write %s: %s",
			 r->file_path, strerror(-r->rc));
		return;
	}
	r->rc = hop_spawn_input(r->argv, r->env, r->input, r->input_len,
				&r->child, r->err, sizeof(r->err));
}

static void *spawn_thread(void *arg)
{
	struct spawn_thread *t = arg;
	struct hop_spawner *sp = t->sp;

	pthread_mutex_lock(&sp->mu);
	while (!sp->stop) {
		struct hop_spawn_req *r = take_ready(t);
		if (!r) {
			poll_waiting(t);
			continue;
		}
		sp->busy++;
		pthread_mutex_unlock(&sp->mu);

		if (r->wait_fd >= 0) {
			close(r->wait_fd);
			r->wait_fd = -1;
		}
		run_req(r);

		pthread_mutex_lock(&sp->mu);
		sp->busy--;
		r->next = sp->done;
		sp->done = r;
		uint64_t one = 1;
		if (write(sp->efd, &one, sizeof(one)) < 0) {
			/* The counter cannot overflow at one write per child.
			 */
		}
		if (sp->cancelling && !sp->busy)
			pthread_cond_broadcast(&sp->idle_cv);
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
	pthread_cond_init(&sp->idle_cv, NULL);
	if (hop_loop_watch(loop, sp->efd, EPOLLIN, on_done, sp))
		goto err_close;
	if (threads > MAX_THREADS)
		threads = MAX_THREADS;
	for (; sp->nthreads < threads; sp->nthreads++) {
		struct spawn_thread *t = &sp->th[sp->nthreads];
		*t = (struct spawn_thread){.sp = sp, .index = sp->nthreads};
		t->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (t->wake < 0)
			break;
		if (pthread_create(&t->tid, NULL, spawn_thread, t)) {
			close(t->wake);
			break;
		}
	}
	if (sp->nthreads == 0)
		goto err_unwatch;
	return sp;

err_unwatch:
	hop_loop_unwatch(loop, sp->efd);
err_close:
	pthread_mutex_destroy(&sp->mu);
	pthread_cond_destroy(&sp->idle_cv);
	close(sp->efd);
err_free:
	free(sp);
	return NULL;
}

int hop_spawner_start(struct hop_spawner *sp, const struct hop_spawn_args *args,
		      hop_spawned_cb cb, void *arg)
{
	struct hop_spawn_req *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->wait_fd = -1;
	r->argv = copy_strv(args->argv);
	r->env = copy_strv(args->env_extra);
	r->input_len = args->input_len;
	r->input = malloc(r->input_len ? r->input_len : 1);
	if (!r->argv || !r->env || !r->input) {
		free_req(r);
		return -ENOMEM;
	}
	if (r->input_len)
		memcpy(r->input, args->input, r->input_len);
	if (args->wait_fd >= 0) {
		r->wait_fd = fcntl(args->wait_fd, F_DUPFD_CLOEXEC, 0);
		if (r->wait_fd < 0) {
			int rc = -errno;
			free_req(r);
			return rc;
		}
	}
	r->file_fd = args->file_fd;
	r->file_len = args->file_len;
	if (args->file_path && !(r->file_path = strdup(args->file_path))) {
		free_req(r);
		return -ENOMEM;
	}
	r->owner = (int)(args->key % (unsigned)sp->nthreads);
	r->cb = cb;
	r->arg = arg;
	pthread_mutex_lock(&sp->mu);
	if (sp->todo_tail)
		sp->todo_tail->next = r;
	else
		sp->todo = r;
	sp->todo_tail = r;
	pthread_mutex_unlock(&sp->mu);
	wake(&sp->th[r->owner]);
	return 0;
}

void hop_spawner_cancel(struct hop_spawner *sp, void *arg)
{
	pthread_mutex_lock(&sp->mu);
	/* Requests still queued are freed by their thread, woken for it. */
	for (struct hop_spawn_req *r = sp->todo; r; r = r->next) {
		if (r->arg == arg) {
			r->cb = NULL;
			wake(&sp->th[r->owner]);
		}
	}
	for (struct hop_spawn_req *r = sp->done; r; r = r->next)
		if (r->arg == arg)
			r->cb = NULL;
	/* A request a thread holds right now is caught when it lands in done:
	 * wait for the threads to put it there. */
	sp->cancelling++;
	while (sp->busy)
		pthread_cond_wait(&sp->idle_cv, &sp->mu);
	sp->cancelling--;
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
		free_req(r);
	}
	sp->todo_tail = NULL;
	pthread_mutex_unlock(&sp->mu);
	for (int i = 0; i < sp->nthreads; i++)
		wake(&sp->th[i]);
	for (int i = 0; i < sp->nthreads; i++) {
		pthread_join(sp->th[i].tid, NULL);
		close(sp->th[i].wake);
	}
	while (sp->done) {
		struct hop_spawn_req *r = sp->done;
		sp->done = r->next;
		discard(r);
	}
	hop_loop_unwatch(sp->loop, sp->efd);
	close(sp->efd);
	pthread_mutex_destroy(&sp->mu);
	pthread_cond_destroy(&sp->idle_cv);
	free(sp);
}
