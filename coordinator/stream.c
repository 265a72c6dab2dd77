/* stream.c - the stream protocol: persistent workers, one JSON line in and
 * one JSON line out per item, in order.
 *
 * Anything a worker writes that breaks the contract (a line that is not
 * JSON, an answer for another item, no "ok") fails the item in hand with an
 * error naming the worker, and the worker is replaced: after such a line
 * nothing it says can be trusted to line up with the items queued behind.
 */
#include "pool_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"

int stream_start(struct worker *w, char *err, size_t errlen)
{
	char index[32];
	snprintf(index, sizeof(index), "HOPPER_WORKER=%d", w->index);
	char *env[] = {index, "HOPPER_PROTOCOL=1", NULL};

	int rc = hop_spawn(w->pool->cfg.argv, env, &w->child, err, errlen);
	if (rc)
		return rc;
	hop_lines_init(&w->out, w->pool->cfg.max_line);
	if (pool_watch_child(w)) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	w->state = W_UP;
	w->started = hop_now_ms();
	hop_log_ev(HOP_DEBUG, w->index, NULL, "worker %d started (pid %d)",
	           w->index, (int)w->child.pid);
	return 0;
}

void stream_send(struct worker *w, struct hop_item *it)
{
	struct hop_buf *b = &w->wbuf;

	hop_buf_append(b, "{\"id\":", 6);
	hop_buf_append_json_str(b, it->id);
	hop_buf_appendf(b, ",\"attempt\":%d,\"payload\":", it->attempt);
	hop_buf_append(b, it->payload, it->payload_len);
	hop_buf_append(b, "}\n", 2);
	if (!w->inflight.head && w->pool->cfg.timeout_ms)
		w->deadline = hop_now_ms() + w->pool->cfg.timeout_ms;
	hop_queue_push(&w->inflight, it);
	pool_want_write(w);
}

/* Fills in the outcome from a final answer. Returns false (with why) when
 * the answer breaks the contract. */
static bool take_answer(struct hop_item *it, json_t *ans, char *why,
                        size_t n)
{
	json_t *ok = json_object_get(ans, "ok");
	if (!json_is_boolean(ok)) {
		snprintf(why, n, "answer has no boolean \"ok\" (nor \"progress\")");
		return false;
	}
	if (json_is_true(ok)) {
		json_t *res = json_object_get(ans, "result");
		it->result = res ? json_dumps(res, JSON_COMPACT | JSON_ENCODE_ANY)
		                 : strdup("null");
		it->ok = it->result != NULL;
		return true;
	}
	json_t *e = json_object_get(ans, "error");
	json_t *retry = json_object_get(ans, "retry");
	if (json_is_string(e))
		hop_item_fail(it, !json_is_false(retry), "%s", json_string_value(e));
	else
		hop_item_fail(it, !json_is_false(retry),
		              "the worker reported a failure and gave no error");
	return true;
}

/* Handles one line from the worker's stdout. */
static void stream_line(struct worker *w, char *line, size_t len)
{
	struct hop_item *it = w->inflight.head;
	json_error_t jerr;
	char why[512];
	int shown = (int)(len > 120 ? 120 : len);

	if (!it) {
		hop_log_ev(HOP_WARN, w->index, NULL,
		           "worker %d wrote to stdout with no item in hand (ignored): "
		           "'%.*s'",
		           w->index, shown, line);
		return;
	}
	json_t *ans = json_loadb(line, len, 0, &jerr);
	if (!ans) {
		pool_kill_worker(w,
		                 "worker %d wrote a line that is not a JSON object "
		                 "('%.*s'): only answer lines may go to stdout",
		                 w->index, shown, line);
		return;
	}
	json_t *id = json_object_get(ans, "id");
	if (!json_is_string(id)) {
		pool_kill_worker(w, "worker %d answered without a string \"id\": '%.*s'",
		                 w->index, shown, line);
	} else if (strcmp(json_string_value(id), it->id) != 0) {
		pool_kill_worker(w,
		                 "worker %d answered for item '%.100s' while handling "
		                 "item '%.100s'",
		                 w->index, json_string_value(id), it->id);
	} else if (json_object_get(ans, "progress") &&
	           !json_object_get(ans, "ok")) {
		if (w->pool->cfg.timeout_ms)
			w->deadline = hop_now_ms() + w->pool->cfg.timeout_ms;
	} else if (!take_answer(it, ans, why, sizeof(why))) {
		pool_kill_worker(w, "worker %d: %s: '%.*s'", w->index, why, shown,
		                 line);
	} else {
		pool_finish(w, it);
	}
	json_decref(ans);
}

void stream_read(struct worker *w)
{
	char *line;
	size_t len;

	while (w->out_open) {
		enum hop_line_status st =
			hop_lines_next(&w->out, w->child.out, &line, &len);
		switch (st) {
		case HOP_LINE_OK:
			if (w->state == W_UP || w->state == W_CLOSING)
				stream_line(w, line, len);
			break;
		case HOP_LINE_AGAIN:
			return;
		case HOP_LINE_TOOLONG:
			pool_kill_worker(w,
			                 "worker %d wrote a line over the %zu-byte limit "
			                 "(--max-line)",
			                 w->index, w->out.max);
			break;
		case HOP_LINE_EOF:
		case HOP_LINE_ERROR:
			hop_loop_unwatch(w->pool->loop, w->child.out);
			w->out_open = false;
			return;
		}
	}
}
