/* registry.c - the table of source drivers. Adding a source is one folder
 * and one line here. */
#include "sources/source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/driver.h"

extern const struct hop_source_ops hop_src_jsonl;
extern const struct hop_source_ops hop_src_dir;
extern const struct hop_source_ops hop_src_postgres;
extern const struct hop_source_ops hop_src_kafka;
extern const struct hop_source_ops hop_src_http;
extern const struct hop_source_ops hop_src_exec;

/* One driver per line. */
/* clang-format off */
const struct hop_source_ops *const hop_source_registry[] = {
    &hop_src_jsonl,
    &hop_src_dir,
    &hop_src_postgres,
    &hop_src_kafka,
    &hop_src_http,
    &hop_src_exec,
    NULL,
};
/* clang-format on */

static bool entry(size_t i, struct hop_driver_desc *d)
{
	const struct hop_source_ops *ops = hop_source_registry[i];
	if (!ops)
		return false;
	*d = (struct hop_driver_desc){
	    .ops = ops,
	    .name = ops->name,
	    .summary = ops->summary,
	    .forms = ops->forms,
	    .options = ops->options,
	    .ctx_size = ops->ctx_size,
	};
	return true;
}

const struct hop_registry hop_source_drivers = {"source", entry};

const struct hop_source_ops *hop_source_find(const char *name)
{
	struct hop_driver_desc d;
	return hop_driver_find(&hop_source_drivers, name, &d) ? d.ops : NULL;
}

struct hop_source *hop_source_new(const char *spec, char *err, size_t errlen)
{
	struct hop_source *src = calloc(1, sizeof(*src));
	struct hop_driver_desc d;

	if (!src) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (hop_driver_new(&hop_source_drivers, spec, &d, &src->ctx,
			   &src->label, err, errlen)) {
		free(src);
		return NULL;
	}
	src->ops = d.ops;
	return src;
}

const struct hop_command *hop_source_command(const char *name)
{
	for (size_t i = 0; hop_source_registry[i]; i++) {
		const struct hop_command *c = hop_source_registry[i]->commands;
		for (; c && c->name; c++)
			if (strcmp(c->name, name) == 0)
				return c;
	}
	return NULL;
}

int hop_source_set(struct hop_source *src, const char *key, const char *value,
		   char *err, size_t errlen)
{
	return hop_opts_set(src->ops->options, src->ctx, key, value, err,
			    errlen);
}

int hop_source_check(struct hop_source *src, const char **key)
{
	*key = NULL;
	return src->ops->check ? src->ops->check(src, key) : 0;
}

void hop_source_free(struct hop_source *src)
{
	if (!src)
		return;
	if (src->ops->forget && src->ctx)
		src->ops->forget(src);
	hop_driver_free_ctx(src->ops->options, src->ctx);
	free(src->label);
	free(src);
}
