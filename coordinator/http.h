/* http.h - /metrics, /healthz, /readyz, /status and the console (/ and
 * /api/, console.h), served on the run's loop.
 *
 * libmicrohttpd runs without a thread of its own (MHD_USE_EPOLL): its epoll
 * fd is watched by hopper's loop, which calls MHD_run when it is readable
 * and when MHD's next timeout is due. Handlers therefore run on the loop's
 * thread and read the run's stats without locks, and a /healthz answer
 * proves that the loop is turning. Connections are limited in number (when
 * all are taken, a new one closes the one that waited longest for a
 * request, so slow clients cannot starve a probe), in memory (huge headers
 * get 431) and in time (a silent client is dropped after a few seconds);
 * none of it ever blocks the loop.
 */
#ifndef HOP_HTTP_H
#define HOP_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "stats.h"

struct hop_loop;
struct hop_http;
struct hop_item;
struct hop_stage;

/* What the endpoints read, all borrowed for the server's life. */
struct hop_http_view {
	struct hop_stats *stats;
	const struct hop_config *cfg; /* pipeline: labels, command, mode */
	/* Brings the gauges of stats up to date; called before each read. */
	void (*refresh)(void *arg);
	/* Returns true when the run can take work; otherwise writes why
	 * into why. */
	bool (*ready)(void *arg, char *why, size_t n);
	/* Lists the run's stages, for their series and /status's "stages". */
	hop_stats_stages_fn *stages;
	/* The console's: the run's stage i of those stages lists, NULL when
	 * there is none; and a call that makes the run look at its queues
	 * again (a stage was resumed or given more workers). */
	struct hop_stage *(*stage)(void *arg, int i);
	void (*kick)(void *arg);
	void *arg;
};

/* Checks a listen address: "HOST:PORT", "[V6]:PORT" or a bare "PORT"
 * (loopback). Returns 0, or -EINVAL with a message in err. */
int hop_http_check_address(const char *spec, char *err, size_t errlen);

/* Binds spec and starts serving on loop. Returns the server, or NULL with a
 * message naming the address in err (a port in use, say). */
struct hop_http *hop_http_start(struct hop_loop *loop, const char *spec,
				const struct hop_http_view *view, char *err,
				size_t errlen);

/* Tells the console that an attempt of it failed in stage (final: it
 * will not be tried again). NULL http is ignored. */
void hop_http_failure(struct hop_http *http, const char *stage,
		      const struct hop_item *it, bool final);

/* Closes every connection and the listening socket, and frees the server.
 * NULL is ignored. */
void hop_http_stop(struct hop_http *http);

#endif
