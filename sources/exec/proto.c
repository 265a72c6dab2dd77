/* proto.c - reading and writing the exec source and sink lines. */
#include "sources/exec/proto.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coordinator/buf.h"
#include "coordinator/jsonscan.h"

#define MAX_MEMBERS 32

/* Sets why and returns HOP_EXEC_BAD. */
static enum hop_exec_src_kind bad(struct hop_exec_src_line *l, const char *why)
{
	snprintf(l->why, sizeof(l->why), "%s", why);
	l->kind = HOP_EXEC_BAD;
	return HOP_EXEC_BAD;
}

/* Reads a non-negative integer span; false when it is not one. */
static bool span_int(const char *v, size_t n, int64_t *out)
{
	int64_t x = 0;
	if (n == 0 || n > 18)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return false;
		x = x * 10 + (v[i] - '0');
	}
	*out = x;
	return true;
}

/* The id member as text: a plain string as it stands, a string with
 * escapes decoded, an integer as its digits. */
static bool take_id(const struct hop_json_member *f,
		    struct hop_exec_src_line *l)
{
	if (f->vlen > 2 && f->val[0] == '"' &&
	    hop_json_plain_string(f->val, f->vlen)) {
		l->id = f->val + 1;
		l->id_len = f->vlen - 2;
		return true;
	}
	json_t *v = json_loadb(f->val, f->vlen, JSON_DECODE_ANY, NULL);
	bool ok = false;
	if (json_is_string(v) && json_string_length(v) > 0 &&
	    json_string_length(v) < sizeof(l->idbuf) &&
	    strlen(json_string_value(v)) == json_string_length(v)) {
		snprintf(l->idbuf, sizeof(l->idbuf), "%s",
			 json_string_value(v));
		ok = true;
	} else if (json_is_integer(v)) {
		snprintf(l->idbuf, sizeof(l->idbuf), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
		ok = true;
	}
	json_decref(v);
	if (ok) {
		l->id = l->idbuf;
		l->id_len = strlen(l->idbuf);
	}
	return ok;
}

enum hop_exec_src_kind hop_exec_src_read(char *line, size_t len,
					 struct hop_exec_src_line *l)
{
	struct hop_json_member m[MAX_MEMBERS];
	const struct hop_json_member *f;

	memset(l, 0, offsetof(struct hop_exec_src_line, why));
	l->why[0] = '\0';
	int n = hop_json_members(line, len, m, MAX_MEMBERS);
	if (n < 0) {
		json_error_t jerr;
		json_t *v = json_loadb(line, len, JSON_DECODE_ANY, &jerr);
		char why[200];
		if (v)
			snprintf(why, sizeof(why),
				 "not a JSON object (an item is {\"id\": ..., "
				 "\"payload\": ...})");
		else
			snprintf(why, sizeof(why), "not JSON: %s (column %d)",
				 jerr.text, jerr.column);
		json_decref(v);
		return bad(l, why);
	}
	if (n > MAX_MEMBERS)
		n = MAX_MEMBERS;
	if ((f = hop_json_get(m, n, "id"))) {
		if (!take_id(f, l))
			return bad(l,
				   "\"id\" must be a non-empty string (under "
				   "64 bytes when it has escapes) or an "
				   "integer");
		const struct hop_json_member *p = hop_json_get(m, n, "payload");
		l->payload = p ? p->val : "null";
		l->payload_len = p ? p->vlen : 4;
		if ((f = hop_json_get(m, n, "attempts"))) {
			int64_t a;
			if (!span_int(f->val, f->vlen, &a) || a > 1000000)
				return bad(l, "\"attempts\" must be a whole "
					      "number of attempts made before");
			l->attempts = (int)a;
		}
		if (memchr(l->payload, '\r', l->payload_len)) {
			/* A bare CR is JSON white space that a line-based
			 * worker may take for a line end. */
			json_t *v = json_loadb(l->payload, l->payload_len,
					       JSON_DECODE_ANY, NULL);
			l->owned =
			    json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
			json_decref(v);
			if (l->owned) {
				l->payload = l->owned;
				l->payload_len = strlen(l->owned);
			}
		}
		l->kind = HOP_EXEC_ITEM;
		return HOP_EXEC_ITEM;
	}
	if ((f = hop_json_get(m, n, "depth"))) {
		if (!span_int(f->val, f->vlen, &l->depth))
			return bad(l, "\"depth\" must be a whole number");
		l->kind = HOP_EXEC_DEPTH;
		return HOP_EXEC_DEPTH;
	}
	if ((f = hop_json_get(m, n, "hello"))) {
		json_t *h = json_loadb(f->val, f->vlen, 0, NULL);
		if (!json_is_object(h)) {
			json_decref(h);
			return bad(l, "\"hello\" must be an object of what the "
				      "program can take, as {\"ack_lists\": "
				      "true}");
		}
		l->ack_lists = json_is_true(json_object_get(h, "ack_lists"));
		json_decref(h);
		l->kind = HOP_EXEC_HELLO;
		return HOP_EXEC_HELLO;
	}
	if ((f = hop_json_get(m, n, "end"))) {
		if (f->vlen != 4 || memcmp(f->val, "true", 4))
			return bad(l, "\"end\" must be true");
		l->kind = HOP_EXEC_END;
		return HOP_EXEC_END;
	}
	return bad(l, "no \"id\" (an item), \"depth\", \"end\" or "
		      "\"hello\"");
}

static enum hop_exec_sink_kind sink_bad(struct hop_exec_sink_answer *a,
					const char *why)
{
	snprintf(a->why, sizeof(a->why), "%s", why);
	free(a->id);
	free(a->error);
	a->id = a->error = NULL;
	a->kind = HOP_EXEC_SINK_BAD;
	return a->kind;
}

/* A string or integer id as text, malloc'd; NULL when it is neither. */
static char *id_text(json_t *v)
{
	char num[32];
	if (json_is_string(v) && json_string_length(v) > 0)
		return strdup(json_string_value(v));
	if (json_is_integer(v)) {
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
		return strdup(num);
	}
	return NULL;
}

enum hop_exec_sink_kind hop_exec_sink_read(const char *line, size_t len,
					   struct hop_exec_sink_answer *a)
{
	json_error_t jerr;
	json_t *o = json_loadb(line, len, 0, &jerr), *v;

	memset(a, 0, sizeof(*a));
	if (!o) {
		char why[200];
		snprintf(why, sizeof(why), "not a JSON object: %s (column %d)",
			 jerr.text, jerr.column);
		return sink_bad(a, why);
	}
	if ((v = json_object_get(o, "ok"))) {
		if (!(a->id = id_text(v)))
			sink_bad(a, "\"ok\" must be the record's id (a "
				    "non-empty string)");
		else
			a->kind = HOP_EXEC_SINK_OK;
	} else if ((v = json_object_get(o, "fail"))) {
		json_t *r = json_object_get(o, "retry");
		json_t *e = json_object_get(o, "error");
		if (!(a->id = id_text(v))) {
			sink_bad(a, "\"fail\" must be the record's id (a "
				    "non-empty string)");
		} else if (r && !json_is_boolean(r)) {
			sink_bad(a, "\"retry\" must be true or false");
		} else if (e && !json_is_string(e)) {
			sink_bad(a, "\"error\" must be a string");
		} else {
			a->kind = HOP_EXEC_SINK_FAIL;
			a->retry = !r || json_is_true(r);
			a->error = e ? strdup(json_string_value(e)) : NULL;
		}
	} else {
		sink_bad(a, "neither \"ok\" nor \"fail\"");
	}
	json_decref(o);
	return a->kind;
}

void hop_exec_sink_answer_free(struct hop_exec_sink_answer *a)
{
	free(a->id);
	free(a->error);
	a->id = a->error = NULL;
}

int hop_exec_put_credit(struct hop_buf *b, int64_t n)
{
	return hop_buf_append(b, "{\"credit\":", 10) ||
		       hop_buf_append_int(b, n) || hop_buf_append(b, "}\n", 2)
		   ? -ENOMEM
		   : 0;
}

/* {"KEY":"id" */
static int put_head(struct hop_buf *b, const char *key, const char *id)
{
	return hop_buf_append(b, "{\"", 2) ||
		       hop_buf_append(b, key, strlen(key)) ||
		       hop_buf_append(b, "\":", 2) ||
		       hop_buf_append_json_str(b, id)
		   ? -ENOMEM
		   : 0;
}

int hop_exec_put_ack(struct hop_buf *b, const char *id)
{
	return put_head(b, "ack", id) || hop_buf_append(b, "}\n", 2) ? -ENOMEM
								     : 0;
}

/* Whether s needs no escape in a JSON string. */
static bool plain(const char *s, size_t *len)
{
	const unsigned char *p = (const unsigned char *)s;
	for (; *p; p++)
		if (*p < 0x20 || *p == '"' || *p == '\\')
			return false;
	*len = (size_t)(p - (const unsigned char *)s);
	return true;
}

int hop_exec_ack_list_add(struct hop_buf *list, const char *id)
{
	size_t n;

	if (hop_buf_len(list) && hop_buf_append(list, ",", 1))
		return -ENOMEM;
	/* The common id (digits, a key) is copied as it stands: this runs
	 * once per item. */
	if (plain(id, &n)) {
		if (hop_buf_reserve(list, n + 2))
			return -ENOMEM;
		list->data[list->end++] = '"';
		memcpy(list->data + list->end, id, n);
		list->end += n;
		list->data[list->end++] = '"';
		return 0;
	}
	return hop_buf_append_json_str(list, id) ? -ENOMEM : 0;
}

int hop_exec_put_ack_list(struct hop_buf *b, struct hop_buf *list)
{
	if (!hop_buf_len(list))
		return 0;
	int rc = hop_buf_append(b, "{\"ack\":[", 8) ||
		 hop_buf_append(b, hop_buf_head(list), hop_buf_len(list)) ||
		 hop_buf_append(b, "]}\n", 3);
	hop_buf_reset(list);
	return rc ? -ENOMEM : 0;
}

int hop_exec_put_release(struct hop_buf *b, const char *id)
{
	return put_head(b, "release", id) || hop_buf_append(b, "}\n", 2)
		   ? -ENOMEM
		   : 0;
}

/* Now on the wall clock, in Unix milliseconds. */
static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int hop_exec_put_nack(struct hop_buf *b, const char *id, int attempts,
		      int64_t delay_ms, const char *error)
{
	return put_head(b, "nack", id) ||
		       hop_buf_append(b, ",\"retry_at\":", 12) ||
		       hop_buf_append_int(b, wall_ms() + delay_ms) ||
		       hop_buf_append(b, ",\"delay_ms\":", 12) ||
		       hop_buf_append_int(b, delay_ms) ||
		       hop_buf_append(b, ",\"attempts\":", 12) ||
		       hop_buf_append_int(b, attempts) ||
		       hop_buf_append(b, ",\"error\":", 9) ||
		       hop_buf_append_json_str(b, error ? error : "failed") ||
		       hop_buf_append(b, "}\n", 2)
		   ? -ENOMEM
		   : 0;
}

int hop_exec_put_dead(struct hop_buf *b, const char *id, const char *error,
		      const char *record)
{
	return put_head(b, "dead", id) || hop_buf_append(b, ",\"error\":", 9) ||
		       hop_buf_append_json_str(b, error ? error : "failed") ||
		       hop_buf_append(b, ",\"record\":", 10) ||
		       hop_buf_append(b, record, strlen(record)) ||
		       hop_buf_append(b, "}\n", 2)
		   ? -ENOMEM
		   : 0;
}

int hop_exec_put_record(struct hop_buf *b, const char *id, bool ok,
			const char *result, const char *error,
			const char *stage, int attempts)
{
	int rc =
	    hop_buf_append(b, "{\"id\":", 6) || hop_buf_append_json_str(b, id);
	if (ok)
		rc = rc || hop_buf_append(b, ",\"ok\":true,\"result\":", 20) ||
		     hop_buf_append(b, result ? result : "null",
				    result ? strlen(result) : 4);
	else
		rc = rc || hop_buf_append(b, ",\"ok\":false,\"error\":", 20) ||
		     hop_buf_append_json_str(b, error ? error : "failed");
	if (!ok && stage)
		rc = rc || hop_buf_append(b, ",\"stage\":", 9) ||
		     hop_buf_append_json_str(b, stage);
	rc = rc || hop_buf_append(b, ",\"attempts\":", 12) ||
	     hop_buf_append_int(b, attempts) || hop_buf_append(b, "}\n", 2);
	return rc ? -ENOMEM : 0;
}

/* What makes a command line the shell's to read: without any of these it
 * is words separated by blanks, run directly, so that the program is
 * hopper's child and its end is its own (a signal, not the shell's 137). */
#define SHELL_CHARS "|&;<>()$`\\\"'*?[]#~=%{}\n"

static char **split_words(const char *cmd, char *err, size_t errlen)
{
	size_t n = 0, cap = 8;
	char **argv = calloc(cap, sizeof(char *));
	const char *p = cmd;

	while (argv) {
		p += strspn(p, " \t");
		if (!*p)
			return argv;
		size_t len = strcspn(p, " \t");
		if (n + 2 > cap) {
			char **more = realloc(argv, 2 * cap * sizeof(char *));
			if (!more)
				break;
			memset(more + cap, 0, cap * sizeof(char *));
			argv = more;
			cap *= 2;
		}
		if (!(argv[n++] = strndup(p, len)))
			break;
		p += len;
	}
	hop_exec_argv_free(argv);
	snprintf(err, errlen, "out of memory");
	return NULL;
}

char **hop_exec_argv(const char *cmd, char *err, size_t errlen)
{
	char **argv = NULL;
	size_t skip = strspn(cmd, " \t\n");

	if (cmd[skip] == '\0') {
		snprintf(err, errlen, "the command is empty");
		return NULL;
	}
	if (cmd[skip] != '[' && !cmd[strcspn(cmd, SHELL_CHARS)])
		return split_words(cmd, err, errlen);
	if (cmd[skip] != '[') {
		argv = calloc(4, sizeof(char *));
		if (!argv || !(argv[0] = strdup("/bin/sh")) ||
		    !(argv[1] = strdup("-c")) || !(argv[2] = strdup(cmd)))
			goto nomem;
		return argv;
	}
	json_error_t jerr;
	json_t *a = json_loads(cmd, 0, &jerr);
	size_t n = json_is_array(a) ? json_array_size(a) : 0;
	if (n == 0) {
		snprintf(err, errlen,
			 "the command must be a non-empty array of strings "
			 "or a shell command line");
		json_decref(a);
		return NULL;
	}
	if (!(argv = calloc(n + 1, sizeof(char *))))
		goto nomem_json;
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(a, i);
		char num[32];
		if (json_is_integer(e)) {
			snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
				 json_integer_value(e));
			argv[i] = strdup(num);
		} else if (json_is_string(e)) {
			argv[i] = strdup(json_string_value(e));
		} else {
			snprintf(err, errlen,
				 "the command's element %zu is not a string",
				 i);
			json_decref(a);
			hop_exec_argv_free(argv);
			return NULL;
		}
		if (!argv[i])
			goto nomem_json;
	}
	json_decref(a);
	return argv;
nomem_json:
	json_decref(a);
nomem:
	hop_exec_argv_free(argv);
	snprintf(err, errlen, "out of memory");
	return NULL;
}

void hop_exec_argv_free(char **argv)
{
	for (size_t i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}

void hop_exec_short(const char *cmd, char *out, size_t n)
{
	size_t len = strlen(cmd);
	if (len + 1 <= n || n < 8) {
		snprintf(out, n, "%s", cmd);
		return;
	}
	snprintf(out, n, "%.*s...", (int)(n - 4), cmd);
}

void hop_exec_name(char *out, size_t n, const char *kind, char *const *argv,
		   const char *command)
{
	char cmd[100] = "";
	if (command && argv[0] && argv[1] && !strcmp(argv[0], "/bin/sh") &&
	    !strcmp(argv[1], "-c")) {
		hop_exec_short(command, cmd, sizeof(cmd));
	} else {
		size_t used = 0;
		for (int i = 0; argv[i] && used + 1 < sizeof(cmd); i++) {
			const char *a = argv[i];
			if (i == 0 && strrchr(a, '/'))
				a = strrchr(a, '/') + 1;
			int w = snprintf(cmd + used, sizeof(cmd) - used, "%s%s",
					 i ? " " : "", a);
			if (w < 0)
				break;
			used += (size_t)w;
		}
	}
	snprintf(out, n, "%s '%s'", kind, cmd);
}

int hop_exec_check(const char *cmd, const char *who, char *error, size_t errlen)
{
	char err[200];
	char **argv;

	if (!cmd) {
		snprintf(error, errlen, "%s: no command (exec:COMMAND)", who);
		return -EINVAL;
	}
	if (!(argv = hop_exec_argv(cmd, err, sizeof(err)))) {
		snprintf(error, errlen, "%s: %s", who, err);
		return -EINVAL;
	}
	hop_exec_argv_free(argv);
	return 0;
}
