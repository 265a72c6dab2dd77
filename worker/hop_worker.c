/* hop_worker.c - the stream mode of the worker contract, for C workers.
 *
 * One envelope line in, one answer line out, flushed, in order, until EOF
 * (with hop_worker_batch_answers(), flushed once no whole envelope is left
 * in what was read, before the next read).
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
#include <unistd.h>

/* hop_worker_drop() was called for the item in hand. One thread writes
 * stdout (see hop_worker.h), so one flag serves. */
static bool drop_item;

/* hop_worker_batch_answers() asked for answers to wait for the end of what
 * was read. */
static bool batch_answers;

/* What was read from stdin and not handled yet: bytes [start, end). */
static struct {
	char *data;
	size_t start, end, cap;
} in;

/* Writes one line, and flushes stdout unless hold. Takes ans. Returns 0 or
 * -errno. */
static int put_line(json_t *ans, bool hold)
{
	char *text = json_dumps(ans, JSON_COMPACT);
	int rc = 0;

	json_decref(ans);
	if (!text)
		return -ENOMEM;
	errno = 0;
	if (fputs(text, stdout) == EOF || fputc('\n', stdout) == EOF ||
	    (!hold && fflush(stdout) == EOF))
		rc = errno ? -errno : -EIO;
	free(text);
	return rc;
}

/* Writes one line and flushes it (and any answers held before it). */
static int send_line(json_t *ans)
{
	return put_line(ans, false);
}

/* Whether a whole line waits in what was read. */
static bool line_waiting(void)
{
	return in.end > in.start &&
	       memchr(in.data + in.start, '\n', in.end - in.start);
}

/* The next line of stdin, its newline cut, in *line (valid until the next
 * call), its length in *len. Returns 1 for a line, 0 at EOF, or -errno.
 * Lines may be of any length; a last line without a newline counts. */
static int next_line(char **line, size_t *len)
{
	size_t scanned = 0;

	for (;;) {
		size_t left = in.end - in.start - scanned;
		/* (no buffer at all before the first read) */
		char *nl =
		    left ? memchr(in.data + in.start + scanned, '\n', left)
			 : NULL;
		if (nl) {
			*line = in.data + in.start;
			*len = (size_t)(nl - *line);
			in.start += *len + 1;
			return 1;
		}
		scanned = in.end - in.start;
		if (in.start > 0) { /* slide what is left to the front */
			memmove(in.data, in.data + in.start, scanned);
			in.end = scanned;
			in.start = 0;
		}
		if (in.cap - in.end < 4096) {
			size_t cap = in.cap ? in.cap * 2 : 65536;
			char *p = realloc(in.data, cap);
			if (!p)
				return -ENOMEM;
			in.data = p;
			in.cap = cap;
		}
		ssize_t n =
		    read(STDIN_FILENO, in.data + in.end, in.cap - in.end);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			if (in.end == in.start)
				return 0;
			*line = in.data + in.start; /* no newline at the end */
			*len = in.end - in.start;
			in.start = in.end;
			return 1;
		}
		in.end += (size_t)n;
	}
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
	/* Held only while another envelope is at hand: never while the
	 * worker waits for input. */
	rc = ans ? put_line(ans, batch_answers && line_waiting()) : -ENOMEM;
	json_decref(env);
	return rc;
}

int hop_worker_run(hop_worker_fn fn, void *arg)
{
	char *line = NULL;
	size_t len = 0, lineno = 0;
	int rc;

	/* stdin is read here directly (a line at a time from a buffer of our
	 * own), so that what is still to be handled can be told. */
	while ((rc = next_line(&line, &len)) > 0) {
		lineno++;
		while (len > 0 &&
		       (line[len - 1] == '\n' || line[len - 1] == '\r'))
			len--;
		if (len == 0)
			continue;
		rc = handle_line(fn, arg, line, len, lineno);
		if (rc)
			break;
	}
	if (fflush(stdout) == EOF && rc == 0)
		rc = errno ? -errno : -EIO;
	free(in.data);
	in.data = NULL;
	in.start = in.end = in.cap = 0;
	return rc;
}

void hop_worker_batch_answers(bool on)
{
	batch_answers = on;
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
