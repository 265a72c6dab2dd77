/*
 * hop_thumb_main.c - hopper-thumbnail, a stream-mode worker (see
 * worker/PROTOCOL.md): one envelope per stdin line, one answer per stdout
 * line, flushed; progress lines between thumbnails; exit 0 at EOF. Nothing
 * but answers goes to stdout, FFmpeg's own logging included.
 */
#include "worker/thumbnail/hop_thumb.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Prints one answer line and flushes it. A worker whose stdout is gone has
 * no one to answer to: it exits.
 */
static void emit(json_t *answer)
{
	char *line = json_dumps(answer, JSON_COMPACT | JSON_REAL_PRECISION(10));

	if (!line) {
		fprintf(stderr, "hopper-thumbnail: cannot serialize answer\n");
		return;
	}
	if (puts(line) == EOF || fflush(stdout) == EOF) {
		fprintf(stderr, "hopper-thumbnail: stdout: %s\n",
			strerror(errno));
		exit(1);
	}
	free(line);
}

static void answer_error(json_t *id, const char *msg, bool retry)
{
	json_t *a = json_pack("{s:O,s:b,s:s,s:b}", "id", id, "ok", 0, "error",
			      msg, "retry", retry);

	if (!a) /* msg was not valid UTF-8: say so rather than nothing */
		a = json_pack("{s:O,s:b,s:s,s:b}", "id", id, "ok", 0, "error",
			      "error message not valid UTF-8", "retry", retry);
	if (a)
		emit(a);
	json_decref(a);
}

struct progress_ctx {
	json_t *id;
};

static void on_progress(void *opaque, double done)
{
	struct progress_ctx *p = opaque;
	json_t *a = json_pack("{s:O,s:f}", "id", p->id, "progress", done);

	if (a)
		emit(a);
	json_decref(a);
}

/*
 * Finds "id": "..." in a line that is not JSON, so that even a broken
 * envelope gets an answer. Returns a new JSON string or NULL.
 */
static json_t *scan_id(const char *line)
{
	const char *p = strstr(line, "\"id\"");
	const char *end;

	if (!p)
		return NULL;
	p += 4;
	p += strspn(p, " \t");
	if (*p++ != ':')
		return NULL;
	p += strspn(p, " \t");
	if (*p++ != '"')
		return NULL;
	for (end = p; *end && *end != '"'; end++)
		if (*end == '\\')
			return NULL;
	if (*end != '"')
		return NULL;
	return json_stringn(p, (size_t)(end - p));
}

/* Runs the job of one parsed envelope and answers it. */
static void handle_item(json_t *id, json_t *payload,
			const struct hop_thumb_opts *defaults)
{
	struct hop_thumb_opts o;
	struct hop_thumb_err e = {.retry = false};
	struct progress_ctx pc = {.id = id};
	const char *path = NULL, *name = NULL;
	json_t *result = NULL;

	if (hop_thumb_opts_copy(&o, defaults) < 0) {
		answer_error(id, "out of memory", true);
		return;
	}
	if (json_is_string(payload))
		path = json_string_value(payload);
	else if (json_is_object(payload) &&
		 json_is_string(json_object_get(payload, "path")))
		path = json_string_value(json_object_get(payload, "path"));
	if (!path || !*path) {
		answer_error(id,
			     "payload: expected a path or an object with "
			     "a \"path\" string",
			     false);
		goto out;
	}
	if (json_is_object(payload))
		name = json_string_value(json_object_get(payload, "name"));
	if (json_is_object(payload) &&
	    hop_thumb_opts_apply_json(&o, payload, &e) < 0) {
		struct hop_thumb_err full;

		hop_thumb_err_set(&full, "%s: %s", path, e.msg);
		answer_error(id, full.msg, e.retry);
		goto out;
	}
	if (hop_thumb_job_run(&o, path, name, on_progress, &pc, &result, &e) <
	    0) {
		answer_error(id, e.msg, e.retry);
	} else {
		json_t *a = json_pack("{s:O,s:b,s:o}", "id", id, "ok", 1,
				      "result", result);

		if (a)
			emit(a);
		else
			answer_error(id, "cannot build the result", true);
		json_decref(a);
	}
out:
	hop_thumb_opts_free(&o);
}

static void handle_line(const char *line, size_t len,
			const struct hop_thumb_opts *defaults)
{
	json_error_t jerr;
	json_t *env = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *id = NULL;

	if (!env || !json_is_object(env)) {
		id = scan_id(line);
		if (id)
			answer_error(
			    id, "malformed envelope: not a JSON object", false);
		else
			fprintf(stderr,
				"hopper-thumbnail: ignored a line that "
				"is not a JSON envelope: %s\n",
				env ? "not an object" : jerr.text);
		json_decref(id);
		json_decref(env);
		return;
	}
	id = json_object_get(env, "id");
	if (!json_is_string(id) && !json_is_integer(id)) {
		fprintf(stderr, "hopper-thumbnail: ignored an envelope "
				"without an id\n");
	} else if (!json_object_get(env, "payload")) {
		answer_error(id, "malformed envelope: no payload", false);
	} else {
		handle_item(id, json_object_get(env, "payload"), defaults);
	}
	json_decref(env);
}

int main(int argc, char **argv)
{
	struct hop_thumb_opts defaults;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int ret;

	/* FFmpeg logs to stderr; keep it quiet unless --verbose. */
	av_log_set_level(AV_LOG_QUIET);
	/* A closed stdout must be an error from write, not a signal. */
	signal(SIGPIPE, SIG_IGN);

	hop_thumb_opts_init(&defaults);
	ret = hop_thumb_opts_parse_argv(&defaults, argc, argv);
	if (ret != 0) {
		hop_thumb_opts_free(&defaults);
		return ret > 0 ? 0 : 2;
	}
	if (!hop_thumb_format_available(defaults.format))
		fprintf(stderr,
			"hopper-thumbnail: warning: no encoder for %s "
			"in this FFmpeg\n",
			hop_thumb_format_ext(defaults.format));

	while ((n = getline(&line, &cap, stdin)) > 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0)
			continue;
		handle_line(line, (size_t)n, &defaults);
	}
	free(line);
	hop_thumb_opts_free(&defaults);
	return 0;
}
