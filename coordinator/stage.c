/* stage.c - a stage's own parts: its folder, its pool, its autoscaler. */
#include "stage.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gather.h"
#include "gstore.h"

int hop_stage_init(struct hop_stage *st, const struct hop_stage_config *cfg,
		   int index, int shard, char *err, size_t errlen)
{
	*st = (struct hop_stage){.cfg = cfg, .index = index, .shard = shard};
	if (cfg->shards > 1)
		snprintf(st->name, sizeof(st->name), "%.60s[%d]", cfg->name,
			 shard);
	else
		snprintf(st->name, sizeof(st->name), "%.70s", cfg->name);
	st->stats.depth = -1;
	st->stats.total = -1;
	/* Payload files and spilled emits live in memory when the machine
	 * allows it. */
	const char *tmp = getenv("TMPDIR");
	if (!tmp || !*tmp)
		tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(st->tmpdir, sizeof(st->tmpdir), "%.40s/hopper.XXXXXX", tmp);
	if (!mkdtemp(st->tmpdir)) {
		int e = errno;
		snprintf(err, errlen,
			 "stage %s: cannot make a temporary folder in %s: %s",
			 st->name, tmp, strerror(e));
		st->tmpdir[0] = '\0';
		return -e;
	}
	return 0;
}

int hop_stage_start(struct hop_stage *st, struct hop_loop *loop,
		    const struct hop_pool_events *ev, int64_t kill_ms,
		    size_t max_line, char *err, size_t errlen)
{
	const struct hop_stage_config *c = st->cfg;
	struct hop_pool_config pc = {
	    .argv = c->argv,
	    .exec_mode = c->exec_mode,
	    .size = (int)c->workers,
	    .start = c->autoscale ? (int)c->min_workers : (int)c->workers,
	    .prefetch = (int)c->prefetch,
	    .timeout_ms = (int64_t)(c->timeout * 1000),
	    .kill_ms = kill_ms,
	    .max_line = max_line,
	    .tmpdir = st->tmpdir,
	    .stats = &st->stats,
	};
	if (hop_stage_bare(st))
		pc.size = pc.start = 0;
	st->pool = hop_pool_new(loop, &pc, ev);
	if (!st->pool) {
		snprintf(err, errlen, "stage %s: out of memory", st->name);
		return -ENOMEM;
	}
	if (c->reduce && c->reduce->op_name &&
	    !(st->reducer = hop_reducer_new(c->reduce))) {
		snprintf(err, errlen, "stage %s: out of memory", st->name);
		return -ENOMEM;
	}
	/* No worker: an empty pool that is never started. */
	if (hop_stage_bare(st))
		return 0;
	return hop_pool_start(st->pool, err, errlen);
}

int hop_stage_max(const struct hop_stage *st)
{
	return st->scaler_on ? st->scaler.cfg.max : hop_stage_workers(st);
}

int hop_stage_set_max(struct hop_stage *st, int max, int64_t now_ms, char *err,
		      size_t errlen)
{
	int slots = st->pool ? hop_pool_size(st->pool) : 0;

	if (hop_stage_bare(st) || !slots) {
		snprintf(err, errlen, "stage %s runs no worker", st->name);
		return -ENOTSUP;
	}
	if (max < 1 || max > HOP_POOL_MAX_SLOTS) {
		snprintf(err, errlen,
			 "stage %s: maximum workers %d: expected 1 to %d",
			 st->name, max, HOP_POOL_MAX_SLOTS);
		return -ERANGE;
	}
	/* More than it started with: slots are added, down, for the
	 * scaler or the resize below to bring up. */
	int rc = hop_pool_grow(st->pool, max);
	if (rc) {
		snprintf(err, errlen, "stage %s: maximum workers %d: %s",
			 st->name, max, strerror(-rc));
		return rc;
	}
	if (st->scaler_on) {
		int before = st->scaler.target;
		hop_scaler_set_max(&st->scaler, now_ms, max);
		if (st->scaler.target != before)
			hop_pool_resize(st->pool, st->scaler.target);
	} else {
		st->workers = max;
		hop_pool_resize(st->pool, max);
	}
	return 0;
}

void hop_stage_stop(struct hop_stage *st)
{
	hop_pool_destroy(st->pool);
	st->pool = NULL;
}

void hop_stage_free(struct hop_stage *st)
{
	hop_stage_stop(st);
	hop_emit_clear(&st->peek);
	st->peeked = false;
	free(st->peek_id);
	st->peek_id = NULL;
	hop_reducer_free(st->reducer);
	st->reducer = NULL;
	hop_strmap_free(st->keyed);
	st->keyed = NULL;
	hop_keyring_free(st->closed);
	st->closed = NULL;
	hop_gstore_close(st->gstore);
	st->gstore = NULL;
	hop_strmap_free(st->emitting);
	st->emitting = NULL;
	free(st->counted);
	st->counted = NULL;
	free(st->dead_wait); /* its records' strings went with the run */
	st->dead_wait = NULL;
	free(st->tumbler);
	st->tumbler = NULL;
	free(st->holds);
	st->holds = NULL;
	st->nholds = st->holds_cap = 0;
	if (st->scaler_on)
		hop_scaler_free(&st->scaler);
	st->scaler_on = false;
	if (!st->tmpdir[0])
		return;
	DIR *d = opendir(st->tmpdir);
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(d), e->d_name, 0);
	if (d)
		closedir(d);
	rmdir(st->tmpdir);
	st->tmpdir[0] = '\0';
}
