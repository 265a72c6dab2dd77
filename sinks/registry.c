/* registry.c - the table of sink drivers. Adding a sink is one folder
 * and one line here. */
#include "sinks/sink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/driver.h"

extern const struct hop_sink_ops hop_sink_jsonl;
extern const struct hop_sink_ops hop_sink_dir;
extern const struct hop_sink_ops hop_sink_kafka;
extern const struct hop_sink_ops hop_sink_postgres;

/* One driver per line. */
/* clang-format off */
const struct hop_sink_ops *const hop_sink_registry[] = {
    &hop_sink_jsonl,
    &hop_sink_dir,
    &hop_sink_kafka,
    &hop_sink_postgres,
    NULL,
};
/* clang-format on */

const struct hop_sink_ops *hop_sink_find(const char *name)
{
	for (size_t i = 0; hop_sink_registry[i]; i++)
		if (strcmp(hop_sink_registry[i]->name, name) == 0)
			return hop_sink_registry[i];
	return NULL;
}

struct hop_sink *hop_sink_new(const char *spec, char *err, size_t errlen)
{
	char *name, *target;
	struct hop_sink *sink = NULL;

	if (hop_driver_spec(spec, &name, &target, err, errlen))
		return NULL;
	const struct hop_sink_ops *ops = hop_sink_find(name);
	if (!ops) {
		const char *names[sizeof(hop_sink_registry) /
				  sizeof(*hop_sink_registry)] = {NULL};
		for (size_t i = 0; hop_sink_registry[i]; i++)
			names[i] = hop_sink_registry[i]->name;
		hop_driver_unknown("sink", spec, name, names, err, errlen);
		goto out;
	}
	sink = calloc(1, sizeof(*sink));
	if (!sink || !(sink->label = hop_driver_label(spec))) {
		snprintf(err, errlen, "out of memory");
		goto err_free;
	}
	sink->ops = ops;
	sink->ctx =
	    hop_driver_ctx(ops->options, ops->ctx_size, target, err, errlen);
	if (!sink->ctx)
		goto err_free;
	goto out;

err_free:
	if (sink)
		free(sink->label);
	free(sink);
	sink = NULL;
out:
	free(name);
	free(target);
	return sink;
}

int hop_sink_set(struct hop_sink *sink, const char *key, const char *value,
		 char *err, size_t errlen)
{
	return hop_opts_set(sink->ops->options, sink->ctx, key, value, err,
			    errlen);
}

int hop_sink_check(struct hop_sink *sink, const char **key)
{
	*key = NULL;
	return sink->ops->check ? sink->ops->check(sink, key) : 0;
}

void hop_sink_free(struct hop_sink *sink)
{
	if (!sink)
		return;
	hop_opts_free(sink->ops->options, sink->ctx);
	free(sink->ctx);
	free(sink->label);
	free(sink);
}
