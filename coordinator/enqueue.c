/* enqueue.c - `hopper enqueue`: JSON lines into a PostgreSQL queue table,
 * fast, with COPY.
 *
 * Each line is one item's payload. Lines are checked with the scanner the
 * coordinator uses and streamed to the server as they are read; the whole
 * load is one transaction. A bad line is named by file and line; by default
 * any bad line loads nothing (exit 65), with --skip-bad the good lines go in
 * and the bad ones are reported. With --key FIELD each row's key is that
 * field of its payload, and a row whose key is already queued is skipped,
 * so that loading the same file twice queues each item once.
 */
#include "enqueue.h"

#include <errno.h>
#include <stdarg.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "jsonscan.h"
#include "log.h"
#include "loop.h"
#include "pgqueue.h"

#define MAX_LINE (16u << 20)
#define MAX_REPORTED 20
#define CHUNK (256u << 10)

struct load {
	PGconn *conn;
	const char *key;
	struct hop_buf out; /* COPY data not sent yet */
	long lines, good, bad;
};

static void bad_line(struct load *l, const char *name, long lineno,
		     const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void bad_line(struct load *l, const char *name, long lineno,
		     const char *fmt, ...)
{
	va_list ap;
	if (++l->bad > MAX_REPORTED)
		return;
	fprintf(stderr, "%s:%ld: ", name, lineno);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Appends text as one field of COPY's text format. */
static void copy_field(struct hop_buf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *esc = NULL;
		switch (s[i]) {
		case '\\':
			esc = "\\\\";
			break;
		case '\t':
			esc = "\\t";
			break;
		case '\n':
			esc = "\\n";
			break;
		case '\r':
			esc = "\\r";
			break;
		}
		if (esc)
			hop_buf_append(b, esc, 2);
		else
			hop_buf_append(b, s + i, 1);
	}
}

/* The --key field of a payload as text, malloc'd; NULL when it has none. */
static char *key_of(const char *line, size_t len, const char *field)
{
	struct hop_json_member m[64];
	int n = hop_json_members(line, len, m, 64);
	const struct hop_json_member *v =
	    n > 0 ? hop_json_get(m, n < 64 ? n : 64, field) : NULL;
	if (!v)
		return NULL;
	if (v->val[0] == '"' && hop_json_plain_string(v->val, v->vlen))
		return strndup(v->val + 1, v->vlen - 2);
	if (v->val[0] == '"' || v->val[0] == '-' ||
	    (v->val[0] >= '0' && v->val[0] <= '9')) {
		json_t *j = json_loadb(v->val, v->vlen, JSON_DECODE_ANY, NULL);
		char *s = NULL;
		if (json_is_string(j))
			s = strdup(json_string_value(j));
		else if (json_is_integer(j) &&
			 asprintf(&s, "%lld",
				  (long long)json_integer_value(j)) < 0)
			s = NULL;
		json_decref(j);
		return s;
	}
	return NULL;
}

static int send_out(struct load *l, bool all)
{
	if (hop_buf_len(&l->out) < (all ? 1 : CHUNK))
		return 0;
	if (PQputCopyData(l->conn, hop_buf_head(&l->out),
			  (int)hop_buf_len(&l->out)) != 1)
		return -EIO;
	hop_buf_reset(&l->out);
	return 0;
}

/* Reads one input and queues its good lines. */
static int load_file(struct load *l, const char *path)
{
	const char *name = strcmp(path, "-") ? path : "stdin";
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	long lineno = 0;
	int rc = 0;

	if (!f) {
		fprintf(stderr, "hopper: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		size_t len = (size_t)n;
		lineno++;
		l->lines++;
		if (len && line[len - 1] == '\n')
			len--;
		if (strspn(line, " \t\r") == len)
			continue; /* blank */
		if (len > MAX_LINE) {
			bad_line(l, name, lineno, "line over the %u-byte limit",
				 MAX_LINE);
			continue;
		}
		if (!hop_json_valid(line, len)) {
			json_error_t jerr;
			json_t *v =
			    json_loadb(line, len, JSON_DECODE_ANY, &jerr);
			json_decref(v);
			bad_line(l, name, lineno, "not JSON: %s (column %d)",
				 v ? "invalid text" : jerr.text,
				 v ? 0 : jerr.column);
			continue;
		}
		if (l->key) {
			char *key = key_of(line, len, l->key);
			if (!key) {
				bad_line(l, name, lineno,
					 "no string or integer '%s' field for "
					 "the key",
					 l->key);
				continue;
			}
			copy_field(&l->out, key, strlen(key));
			hop_buf_append(&l->out, "\t", 1);
			free(key);
		}
		copy_field(&l->out, line, len);
		hop_buf_append(&l->out, "\n", 1);
		l->good++;
		if (send_out(l, false)) {
			rc = -EIO;
			break;
		}
	}
	if (ferror(f)) {
		fprintf(stderr, "hopper: %s: %s\n", name, strerror(errno));
		rc = -EIO;
	}
	free(line);
	if (f != stdin)
		fclose(f);
	return rc;
}

static bool exec_ok(PGconn *conn, const char *sql, const char *what)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ||
		  st == PGRES_COPY_IN;
	if (!ok)
		fprintf(stderr, "hopper: %s: %s", what,
			PQresultErrorMessage(res));
	PQclear(res);
	return ok;
}

static int enqueue(const char *url, const char *table, const char *key,
		   bool skip_bad, char **files, int nfiles)
{
	char t[160], sql[512];
	struct load l = {.key = key};
	int code = 1;

	if (!hop_pg_valid_ident(table)) {
		fprintf(stderr,
			"hopper: table name '%s' is not a valid identifier "
			"(letters, digits and _, optionally schema.table)\n",
			table);
		return 2;
	}
	hop_pg_quote(t, sizeof(t), table);
	int64_t t0 = hop_now_ms();
	l.conn = PQconnectdb(url);
	if (PQstatus(l.conn) != CONNECTION_OK) {
		/* libpq's message names host and port, never the password. */
		fprintf(stderr, "hopper: cannot connect to PostgreSQL: %s",
			PQerrorMessage(l.conn));
		goto out;
	}
	snprintf(sql, sizeof(sql), "SELECT 1 FROM %s LIMIT 0", t);
	PGresult *res = PQexec(l.conn, sql);
	bool found = PQresultStatus(res) == PGRES_TUPLES_OK;
	PQclear(res);
	if (!found) {
		fprintf(stderr,
			"hopper: queue table %s does not exist (or is not "
			"readable); hopper pg init makes one\n",
			table);
		goto out;
	}
	if (!exec_ok(l.conn, "BEGIN", "starting the load"))
		goto out;
	if (key) {
		if (!exec_ok(l.conn,
			     "CREATE TEMP TABLE hopper_load (key text, "
			     "payload jsonb) ON COMMIT DROP",
			     "preparing the load") ||
		    !exec_ok(l.conn, "COPY hopper_load FROM STDIN",
			     "starting COPY"))
			goto out;
	} else {
		snprintf(sql, sizeof(sql), "COPY %s (payload) FROM STDIN", t);
		if (!exec_ok(l.conn, sql, "starting COPY"))
			goto out;
	}
	int rc = 0;
	for (int i = 0; i < (nfiles ? nfiles : 1) && !rc; i++)
		rc = load_file(&l, nfiles ? files[i] : "-");
	if (l.bad > MAX_REPORTED)
		fprintf(stderr, "... and %ld more bad lines\n",
			l.bad - MAX_REPORTED);
	bool abandon = rc || (l.bad && !skip_bad);
	if (!abandon && send_out(&l, true))
		abandon = true;
	PQputCopyEnd(l.conn, abandon ? "load abandoned" : NULL);
	res = PQgetResult(l.conn);
	if (!abandon && PQresultStatus(res) != PGRES_COMMAND_OK) {
		fprintf(stderr, "hopper: loading into %s: %s", table,
			PQresultErrorMessage(res));
		abandon = true;
	}
	PQclear(res);
	while ((res = PQgetResult(l.conn)))
		PQclear(res);
	long inserted = l.good;
	if (!abandon && key) {
		snprintf(sql, sizeof(sql),
			 "INSERT INTO %s (key, payload) SELECT key, payload "
			 "FROM hopper_load ON CONFLICT (key) DO NOTHING",
			 t);
		res = PQexec(l.conn, sql);
		if (PQresultStatus(res) == PGRES_COMMAND_OK) {
			inserted = atol(PQcmdTuples(res));
		} else {
			fprintf(stderr, "hopper: loading into %s: %s", table,
				PQresultErrorMessage(res));
			abandon = true;
		}
		PQclear(res);
	}
	if (abandon) {
		exec_ok(l.conn, "ROLLBACK", "abandoning the load");
		if (l.bad && !skip_bad && !rc) {
			fprintf(stderr,
				"hopper: %ld bad line%s: nothing enqueued "
				"(--skip-bad loads the good ones)\n",
				l.bad, l.bad == 1 ? "" : "s");
			code = 65;
		}
		goto out;
	}
	if (!exec_ok(l.conn, "COMMIT", "committing the load"))
		goto out;
	double secs = (double)(hop_now_ms() - t0) / 1000;
	fprintf(stderr, "enqueued %ld items into %s in %.2f s (%.0f items/s)",
		inserted, table, secs, secs > 0 ? (double)inserted / secs : 0);
	if (l.good > inserted)
		fprintf(stderr, "; %ld already queued (same key)",
			l.good - inserted);
	if (l.bad)
		fprintf(stderr, "; %ld bad line%s skipped", l.bad,
			l.bad == 1 ? "" : "s");
	fputc('\n', stderr);
	code = 0;
out:
	hop_buf_free(&l.out);
	PQfinish(l.conn);
	return code;
}

int hop_enqueue_command(int argc, char **argv)
{
	const char *table = "hopper_queue", *url = NULL, *key = NULL;
	bool skip_bad = false;
	char **files = calloc((size_t)argc + 1, sizeof(*files));
	int nfiles = 0;

	if (!files)
		return 1;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--table") == 0 && i + 1 < argc)
			table = argv[++i];
		else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
			key = argv[++i];
		else if (strcmp(argv[i], "--skip-bad") == 0)
			skip_bad = true;
		else if (!url && nfiles == 0 && strstr(argv[i], "://"))
			url = argv[i];
		else if (argv[i][0] != '-' || strcmp(argv[i], "-") == 0)
			files[nfiles++] = argv[i];
		else
			goto usage;
	}
	int code = enqueue(url ? url : "", table, key, skip_bad, files, nfiles);
	free(files);
	return code;

usage:
	free(files);
	fprintf(stderr,
		"usage: hopper enqueue [URL] [--table NAME] [--key FIELD] "
		"[--skip-bad] [FILE...]\n"
		"  loads JSON lines (stdin without FILE) into a queue table, "
		"one payload per line;\n"
		"  --key takes each row's key from a field of its payload and "
		"skips keys already queued\n");
	return 2;
}
