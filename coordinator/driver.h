/* driver.h - what sources and sinks share: parsing a spec and building a
 * driver's option context. */
#ifndef HOP_DRIVER_H
#define HOP_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "opts.h"

/* Splits "name:target" (or "scheme://rest", whose target is the whole spec)
 * into a malloc'd name and target (NULL when the spec has no target).
 * Returns 0 or -EINVAL/-ENOMEM with a message in err. */
int hop_driver_spec(const char *spec, char **name, char **target, char *err,
		    size_t errlen);

/* Returns a malloc'd copy of spec fit for logs: a URL's password is
 * replaced by "***". NULL when memory ran out. */
char *hop_driver_label(const char *spec);

/* Allocates a zeroed context of size bytes, sets the table's defaults and,
 * when target is not NULL, the table's first option to it. Returns the
 * context or NULL with a message in err. */
void *hop_driver_ctx(const struct hop_option *t, size_t size,
		     const char *target, char *err, size_t errlen);

/* Writes why no driver is called name, from spec (a source's or sink's, as
 * kind says), into err with what was likely meant: "jsonl:my/small.jsonl"
 * for a spec that is a bare jsonl file or "-", "dir:videos" for a bare
 * folder, else the nearest of names (NULL-terminated) if one is near. */
void hop_driver_unknown(const char *kind, const char *spec, const char *name,
			const char *const *names, char *err, size_t errlen);

/* A driver as the code both registries share sees it: its ops (a struct
 * hop_source_ops or hop_sink_ops) and the parts of them that building one
 * needs. */
struct hop_driver_desc {
	const void *ops;
	const char *name;
	const char *summary;
	const char *forms; /* how a spec names it: "dir:FOLDER" */
	const struct hop_option *options;
	size_t ctx_size;
};

/* One registry, for the shared code: its kind ("source" or "sink"), for
 * messages, and its drivers. */
struct hop_registry {
	const char *kind;
	/* Fills d with the i-th driver and returns true; false past the
	 * last one. */
	bool (*entry)(size_t i, struct hop_driver_desc *d);
};

/* Finds the driver called name in r. Returns true with d filled, or false. */
bool hop_driver_find(const struct hop_registry *r, const char *name,
		     struct hop_driver_desc *d);

/* Builds what a source or sink for spec is made of: its driver (d), its
 * context with the defaults and the target set (*ctx, freed with
 * hop_driver_free_ctx), and its label for messages (*label, malloc'd).
 * Returns 0, or -EINVAL/-ENOMEM with a message in err that names the likely
 * driver when spec names none; nothing is left allocated then. */
int hop_driver_new(const struct hop_registry *r, const char *spec,
		   struct hop_driver_desc *d, void **ctx, char **label,
		   char *err, size_t errlen);

/* Frees a context built by hop_driver_new: its options, then itself. */
void hop_driver_free_ctx(const struct hop_option *t, void *ctx);

/* Writes the ways a spec names the drivers of r ("jsonl:FILE, jsonl:-,
 * dir:FOLDER, ..."), in registry order, into buf. */
void hop_driver_forms(const struct hop_registry *r, char *buf, size_t n);

/* Lists every driver of r for hopper help sources or sinks: its name, its
 * summary and its options. */
void hop_driver_help(FILE *out, const struct hop_registry *r);

#endif
