/* driver.h - what sources and sinks share: parsing a spec and building a
 * driver's option context. */
#ifndef HOP_DRIVER_H
#define HOP_DRIVER_H

#include <stddef.h>

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

#endif
