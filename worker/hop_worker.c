/* hop_worker.c - the stream mode of the worker contract, for C workers.
 *
 * One envelope line in, one answer line out, flushed, in order, until EOF.
 * The answer is built as a jansson object and encoded in full before any of
 * it is written, so that a result that cannot be encoded turns into a clean
 * failure line instead of half a line on stdout. Emit lines go out as the
 * handler makes them, before its answer.
 */
#include "worker/hop_worker.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* hop_worker_drop() was called for the item in hand. One thread writes
 * stdout (see hop_worker.h), so one flag serves. */
static bool drop_item;

/* Writes one answer line and flushes it. Takes ans. Returns 0 or -errno. */
static int send_line(json_t *ans)
{
	char *text = json_dumps(ans, JSON_COMPACT);
	int rc = 0;

	json_decref(ans);
	if (!text)
		return -ENOMEM;
	errno = 0;
	if (fputs(text, stdout) == EOF || fputc('\n', stdout) == EOF ||
	    fflush(stdout) == EOF)
		rc = errno ? -errno : -EIO;
	free(text);
	return rc;
}

/* A JSON string for a message that may not be valid UTF-8 (a file name, a
 * library's error text): bytes outside ASCII become '?' if they must. */
static json_t *message_string(const char *msg)
{
	json_t *s = json_string(msg);
	if (s)
		return s;
	char *copy = strdup(msg);
	if (!copy)
		return NULL;
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	s = json_string(copy);
	free(copy);
	return s;
}

/* Builds the final answer for one item. Takes result and error. */
static json_t *answer(json_t *id, int rc, json_t *result, char *error,
		      bool retry)
{
	json_t *ans = json_pack("{s:O, s:b}", "id", id, "ok", rc == 0);

	/* json_object_set_new() takes its value even when it fails. */
	if (rc == 0 && drop_item) {
		free(error);
		json_decref(result);
		if (json_object_set_new(ans, "drop", json_true()))
			goto out_fail;
		return ans;
	}
	if (rc == 0) {
		free(error);
		if (json_object_set_new(ans, "result",
					result ? result : json_null()))
			goto out_fail;
		return ans;
	}
	json_decref(result);
	json_t *why = message_string(
	    error ? error : "the handler failed and gave no reason");
	free(error);
	if (json_object_set_new(ans, "error", why) ||
	    json_object_set_new(ans, "retry", json_boolean(retry)))
		goto out_fail;
	return ans;

out_fail:
	json_decref(ans);
	return NULL;
}

/* Handles one envelope line (without its newline). Returns 0 or -errno. */
static int handle_line(hop_worker_fn fn, void *arg, const char *line,
		       size_t len, size_t lineno)
{
	json_error_t jerr;
	json_t *env = json_loadb(line, len, JSON_ALLOW_NUL, &jerr);
	json_t *id = json_object_get(env, "id");
	int rc;

	if (!json_is_string(id)) {
		fprintf(stderr,
			"hop_worker: stdin line %zu is not an envelope: %s\n",
			lineno, env ? "no string \"id\"" : jerr.text);
		json_decref(env);
		return -EPROTO;
	}
	json_t *jattempt = json_object_get(env, "attempt");
	int attempt =
	    json_is_integer(jattempt) ? (int)json_integer_value(jattempt) : 1;
	json_t *payload = json_object_get(env, "payload");
	json_t *result = NULL;
	char *error = NULL;
	bool retry = true;

	drop_item = false;
	rc = fn(json_string_value(id), attempt, payload ? payload : json_null(),
		&result, &error, &retry, arg);
	/* answer() takes result and error whatever happens. */
	json_t *ans = answer(id, rc, result, error, retry);
	if (!ans && rc == 0) /* e.g. a result that jansson cannot hold */
		ans = answer(id, -1, NULL, NULL, true);
	rc = ans ? send_line(ans) : -ENOMEM;
	json_decref(env);
	return rc;
}

int hop_worker_run(hop_worker_fn fn, void *arg)
{
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t n;
	int rc = 0;

	while ((n = getline(&line, &cap, stdin)) >= 0) {
		size_t len = (size_t)n;
		lineno++;
		while (len > 0 &&
		       (line[len - 1] == '\n' || line[len - 1] == '\r'))
			len--;
		if (len == 0)
			continue;
		rc = handle_line(fn, arg, line, len, lineno);
		if (rc)
			goto out;
	}
	if (ferror(stdin))
		rc = errno ? -errno : -EIO;
out:
	free(line);
	return rc;
}

int hop_worker_progress(const char *id, double fraction)
{
	if (isnan(fraction) || fraction < 0)
		fraction = 0;
	else if (fraction > 1)
		fraction = 1;
	json_t *line = json_pack("{s:s, s:f}", "id", id, "progress", fraction);
	return line ? send_line(line) : -ENOMEM;
}

int hop_worker_emit(const char *id, json_t *payload, const char *port,
		    const char *key)
{
	json_t *line = json_pack("{s:s, s:O}", "id", id, "emit",
				 payload ? payload : json_null());

	if (!line)
		return -ENOMEM;
	if ((port && json_object_set_new(line, "port", json_string(port))) ||
	    (key && json_object_set_new(line, "key", json_string(key)))) {
		json_decref(line);
		return -EINVAL; /* not UTF-8 */
	}
	return send_line(line);
}

void hop_worker_drop(void)
{
	drop_item = true;
}

int hop_worker_fail(char **error, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(error, fmt, ap) < 0)
		*error = NULL;
	va_end(ap);
	return -1;
}
