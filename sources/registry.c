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

/* One driver per line. */
/* clang-format off */
const struct hop_source_ops *const hop_source_registry[] = {
    &hop_src_jsonl,
    &hop_src_dir,
    &hop_src_postgres,
    &hop_src_kafka,
    NULL,
};
/* clang-format on */

const struct hop_source_ops *hop_source_find(const char *name)
{
	for (size_t i = 0; hop_source_registry[i]; i++)
		if (strcmp(hop_source_registry[i]->name, name) == 0)
			return hop_source_registry[i];
	return NULL;
}

struct hop_source *hop_source_new(const char *spec, char *err, size_t errlen)
{
	char *name, *target;
	struct hop_source *src = NULL;

	if (hop_driver_spec(spec, &name, &target, err, errlen))
		return NULL;
	const struct hop_source_ops *ops = hop_source_find(name);
	if (!ops) {
		const char *names[sizeof(hop_source_registry) /
				  sizeof(*hop_source_registry)] = {NULL};
		for (size_t i = 0; hop_source_registry[i]; i++)
			names[i] = hop_source_registry[i]->name;
		hop_driver_unknown("source", spec, name, names, err, errlen);
		goto out;
	}
	src = calloc(1, sizeof(*src));
	if (!src || !(src->label = hop_driver_label(spec))) {
		snprintf(err, errlen, "out of memory");
		goto err_free;
	}
	src->ops = ops;
	src->ctx =
	    hop_driver_ctx(ops->options, ops->ctx_size, target, err, errlen);
	if (!src->ctx)
		goto err_free;
	goto out;

err_free:
	if (src)
		free(src->label);
	free(src);
	src = NULL;
out:
	free(name);
	free(target);
	return src;
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
	hop_opts_free(src->ops->options, src->ctx);
	free(src->ctx);
	free(src->label);
	free(src);
}
