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
 *
 * RETRY (from write or flush) says the sink is out for now: the
 * coordinator holds the items, results intact, takes no new ones, and
 * writes them again after a backoff; it never costs an item an attempt. So
 * a driver answers RETRY only for what may pass (a full disk, a lost
 * server) and FAIL for what never will for this item, which fails it. A
 * write or flush that failed must leave nothing a reader could take for a
 * whole result (the jsonl sink cuts a partial line back).
 *
 * A sink that talks to a server does not make the loop wait for it: its
 * flush returns HOP_SINK_PENDING and it calls hop_sink_flushed once the
 * server answered (from the loop's thread). The coordinator starts no other
 * flush meanwhile (or up to max_flushes); writes go on and wait for the
 * next one.
 *
 * Exactly once. A sink may write in its source's transaction (the
 * source's transaction op, sources/source.h): then its writes, the
 * source's dead letters and the source's acknowledgements of the items
 * they came from commit together or not at all. Such a sink still
 * answers write and flush as above (a flush says its writes are in the
 * transaction, not yet committed); it writes nothing for an item the
 * transaction says no longer counts (aborted, or its input moved to
 * another coordinator), answering OK, as the item is done again from the
 * start; and it refuses to open when it was asked for exactly once and its
 * source cannot give it a transaction.
 */
#ifndef HOP_SINK_H
#define HOP_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coordinator/item.h"
#include "coordinator/opts.h"

struct hop_loop;
struct hop_registry;
struct hop_sink;

enum hop_sink_status {
	HOP_SINK_OK,	/* accepted; durable after the next good flush */
	HOP_SINK_RETRY, /* failed now, may work later (disk full, no connection)
			 */
	HOP_SINK_FAIL,	/* can never work for this item */
	HOP_SINK_PENDING, /* flush only: the answer comes later */
};

struct hop_sink_ops {
	const char *name;
	const char *summary;
	const char *forms; /* how a spec names it, for --help: "dir:FOLDER" */
	const struct hop_option *options;
	size_t ctx_size;

	/* Optional. Refuses what open would refuse about the options alone,
	 * without touching anything outside the process, as a source's check
	 * does (sources/source.h): 0, or -EINVAL with sink->error and *key. */
	int (*check)(struct hop_sink *sink, const char **key);
	/* Returns 0 or -errno, with a message in sink->error. */
	int (*open)(struct hop_sink *sink);
	/* Writes one finished item: it->ok with it->result, or a dead item
	 * with it->error. On failure the reason is in sink->error. */
	enum hop_sink_status (*write)(struct hop_sink *sink,
				      struct hop_item *it);
	/* Makes every write so far durable. */
	enum hop_sink_status (*flush)(struct hop_sink *sink);
	/* Optional, for a sink whose flush may be pending: blocks until the
	 * oldest pending flush has been answered through hop_sink_flushed.
	 * Used when the run ends. */
	void (*wait)(struct hop_sink *sink);
	/* Optional: as the source driver of the same name has them (see
	 * sources/source.h): what makes this sink the writing end of a
	 * durable edge into a stage. */
	const char *const *edge_fixed;
	const char *const *edge_defaults;
	/* How many flushes may wait for their answers at once (0 means 1).
	 * A sink that takes more answers them in the order they were made,
	 * and answers a flush at once only when none is pending. */
	int max_flushes;
	void (*close)(struct hop_sink *sink);
};

struct hop_sink {
	const struct hop_sink_ops *ops;
	void *ctx;
	struct hop_loop *loop;
	char *label;
	char error[512];
	/* The run's source, set before open: a sink on the same server may
	 * join it so that results and acknowledgements commit together. */
	struct hop_source *source;
	/* Set by a sink that joined it: the source writes each item's result
	 * with its acknowledgement, so only an item's own result is written. */
	bool joined;
	/* The run's source when it has only one, else NULL; set before open:
	 * a sink may write in its transaction (exactly once, above). */
	struct hop_source *only_source;

	/* Counted by the driver for /metrics: half-written lines or files
	 * it cut away, at open or after a failed write. */
	uint64_t repairs;
	/* Counted by a driver whose place may refuse a record it holds
	 * already (a queue table and an id it has): good writes that added
	 * nothing, known once their flush is answered. */
	uint64_t skipped;

	/* Set by the coordinator: hears the answer to a pending flush. */
	void (*on_flushed)(void *arg, enum hop_sink_status st);
	void *flushed_arg;
};

static inline void hop_sink_flushed(struct hop_sink *sink,
				    enum hop_sink_status st)
{
	if (sink->on_flushed)
		sink->on_flushed(sink->flushed_arg, st);
}

const struct hop_sink_ops *hop_sink_find(const char *name);
extern const struct hop_sink_ops *const hop_sink_registry[];
/* The same, for the code sources and sinks share (coordinator/driver.h). */
extern const struct hop_registry hop_sink_drivers;

/* Returns a sink for spec ("name:target"), context allocated and defaults
 * set, or NULL with a message in err. */
struct hop_sink *hop_sink_new(const char *spec, char *err, size_t errlen);
int hop_sink_set(struct hop_sink *sink, const char *key, const char *value,
		 char *err, size_t errlen);
/* Runs the driver's check, if it has one (see the check op). */
int hop_sink_check(struct hop_sink *sink, const char **key);
void hop_sink_free(struct hop_sink *sink);

#endif
