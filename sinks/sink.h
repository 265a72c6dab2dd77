/* sink.h - the seam every sink driver plugs into.
 *
 * A driver is one folder under sinks/ holding one const struct hop_sink_ops
 * named hop_sink_<folder>, listed once in sinks/registry.c, with an option
 * table over its context struct as for sources.
 *
 * The coordinator writes each finished item (a success, or a dead letter when
 * the sink keeps those too) and later calls flush; only after flush returns
 * HOP_SINK_OK does it acknowledge the items written since the previous flush
 * to their source. A sink that cannot make a write durable must say so:
 * OK means "safe once flush says OK", never "probably".
 */
#ifndef HOP_SINK_H
#define HOP_SINK_H

#include <stdbool.h>
#include <stddef.h>

#include "coordinator/item.h"
#include "coordinator/opts.h"

struct hop_loop;
struct hop_sink;

enum hop_sink_status {
	HOP_SINK_OK,	/* accepted; durable after the next good flush */
	HOP_SINK_RETRY, /* failed now, may work later (disk full, no connection)
			 */
	HOP_SINK_FAIL,	/* can never work for this item */
};

struct hop_sink_ops {
	const char *name;
	const char *summary;
	const struct hop_option *options;
	size_t ctx_size;

	/* Returns 0 or -errno, with a message in sink->error. */
	int (*open)(struct hop_sink *sink);
	/* Writes one finished item: it->ok with it->result, or a dead item
	 * with it->error. On failure the reason is in sink->error. */
	enum hop_sink_status (*write)(struct hop_sink *sink,
				      struct hop_item *it);
	/* Makes every write so far durable. */
	enum hop_sink_status (*flush)(struct hop_sink *sink);
	void (*close)(struct hop_sink *sink);
};

struct hop_sink {
	const struct hop_sink_ops *ops;
	void *ctx;
	struct hop_loop *loop;
	char *label;
	char error[512];
};

const struct hop_sink_ops *hop_sink_find(const char *name);
extern const struct hop_sink_ops *const hop_sink_registry[];

/* Returns a sink for spec ("name:target"), context allocated and defaults
 * set, or NULL with a message in err. */
struct hop_sink *hop_sink_new(const char *spec, char *err, size_t errlen);
int hop_sink_set(struct hop_sink *sink, const char *key, const char *value,
		 char *err, size_t errlen);
void hop_sink_free(struct hop_sink *sink);

#endif
