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
extern const struct hop_sink_ops hop_sink_exec;

/* One driver per line. */
/* clang-format off */
const struct hop_sink_ops *const hop_sink_registry[] = {
    &hop_sink_jsonl,
    &hop_sink_dir,
    &hop_sink_kafka,
    &hop_sink_postgres,
    &hop_sink_exec,
    NULL,
};
/* clang-format on */

static bool entry(size_t i, struct hop_driver_desc *d)
{
	const struct hop_sink_ops *ops = hop_sink_registry[i];
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

const struct hop_registry hop_sink_drivers = {"sink", entry};

const struct hop_sink_ops *hop_sink_find(const char *name)
{
	struct hop_driver_desc d;
	return hop_driver_find(&hop_sink_drivers, name, &d) ? d.ops : NULL;
}

struct hop_sink *hop_sink_new(const char *spec, char *err, size_t errlen)
{
	struct hop_sink *sink = calloc(1, sizeof(*sink));
	struct hop_driver_desc d;

	if (!sink) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (hop_driver_new(&hop_sink_drivers, spec, &d, &sink->ctx,
			   &sink->label, err, errlen)) {
		free(sink);
		return NULL;
	}
	sink->ops = d.ops;
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
	hop_driver_free_ctx(sink->ops->options, sink->ctx);
	free(sink->label);
	free(sink);
}
