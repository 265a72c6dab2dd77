/* enqueue.c - `hopper enqueue`: JSON lines into a PostgreSQL queue table,
 * fast, with COPY.
 *
 * Each line is one item's payload. Lines are read as the jsonl source reads
 * them (CRLF taken as LF, blank lines skipped, a line over the limit
 * refused without being held whole), checked with the coordinator's
 * scanner, and streamed to the server in chunks as they are read; the whole
 * load is one transaction. A bad line is named by file and line; by default
 * any bad line loads nothing (exit 65), with --skip-bad the good lines go in
 * and the bad ones are reported. With --key FIELD each row's key is that
 * field of its payload, and a row whose key is already queued is skipped,
 * so that loading the same file twice queues each item once.
 */
#include "sources/postgres/enqueue.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/buf.h"
#include "coordinator/jsonscan.h"
#include "coordinator/loop.h"
#include "sources/postgres/pgqueue.h"
#include "coordinator/run.h"

#define MAX_LINE (16u << 20)
#define MAX_REPORTED 20
#define CHUNK (256u << 10)
#define MAX_MEMBERS 64
#define EXIT_DATAERR 65

/* The --key load goes through a temporary table first. Its name is one that
 * hop_pg_valid_ident refuses, so that no queue table can be shadowed by it. */
#define STAGING "pg_temp.\"hopper-load\""

struct load {
	PGconn *conn;
	const char *conninfo; /* for redacting libpq's messages */
	const char *key;      /* --key FIELD, or NULL */
	bool skip_bad;
	struct hop_buf out; /* COPY data not sent yet */
	long good, bad;
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

/* Prints "hopper: what: " and a libpq message, redacted. */
static void pg_error(const struct load *l, const char *what, const char *msg)
{
	char buf[2048];
	fprintf(stderr, "hopper: %s: %s", what,
		hop_pg_redact(l->conninfo, msg, buf, sizeof(buf)));
	if (!*msg || msg[strlen(msg) - 1] != '\n')
		fputc('\n', stderr);
}

/* Appends text to b as one field of COPY's text format, in which a
 * backslash, tab, newline or carriage return must be escaped. */
static void copy_field(struct hop_buf *b, const char *s, size_t n)
{
	while (n) {
		size_t run = 0;
		while (run < n && s[run] != '\\' && s[run] != '\t' &&
		       s[run] != '\n' && s[run] != '\r')
			run++;
		hop_buf_append(b, s, run);
		if (run == n)
			return;
		char esc[2] = {'\\', s[run] == '\\'   ? '\\'
				     : s[run] == '\t' ? 't'
				     : s[run] == '\n' ? 'n'
						      : 'r'};
		hop_buf_append(b, esc, 2);
		s += run + 1;
		n -= run + 1;
	}
}

static unsigned hex4(const char *s)
{
	char h[5] = {s[0], s[1], s[2], s[3], '\0'};
	return (unsigned)strtoul(h, NULL, 16);
}

/* What PostgreSQL's jsonb refuses in a valid JSON text (\u0000, and a
 * surrogate escape that is not half of a pair), written into why; false
 * when there is nothing. In valid JSON every backslash starts an escape
 * inside a string, so no other parsing is needed. */
static bool jsonb_refuses(const char *s, size_t n, char *why, size_t wn)
{
	const char *p = s, *end = s + n;

	while ((p = memchr(p, '\\', (size_t)(end - p)))) {
		if (p[1] != 'u') {
			p += 2;
			continue;
		}
		unsigned cp = hex4(p + 2);
		p += 6;
		bool high = cp >= 0xd800 && cp <= 0xdbff;
		if (high && end - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
		    hex4(p + 2) >= 0xdc00 && hex4(p + 2) <= 0xdfff) {
			p += 6;
			continue;
		}
		if (cp == 0 || high || (cp >= 0xdc00 && cp <= 0xdfff)) {
			snprintf(why, wn,
				 "PostgreSQL's jsonb cannot hold \\u%04x%s", cp,
				 cp ? " (a surrogate escape without its pair)"
				    : "");
			return true;
		}
	}
	return false;
}

/* The --key field of an object's member text as a string, malloc'd: a
 * string's value, or a number as written. NULL when it is neither. */
static char *key_text(const char *val, size_t vlen)
{
	if (val[0] == '-' || (val[0] >= '0' && val[0] <= '9'))
		return strndup(val, vlen);
	if (val[0] != '"')
		return NULL;
	if (hop_json_plain_string(val, vlen))
		return strndup(val + 1, vlen - 2);
	json_t *j = json_loadb(val, vlen, JSON_DECODE_ANY, NULL);
	char *s = json_is_string(j) ? strdup(json_string_value(j)) : NULL;
	json_decref(j);
	return s;
}

/* The --key field of a payload as text, malloc'd; NULL when it has none.
 * When a key appears twice the last one counts, as in jsonb. */
static char *key_of(const char *line, size_t len, const char *field)
{
	struct hop_json_member few[MAX_MEMBERS], *m = few;
	int n = hop_json_members(line, len, m, MAX_MEMBERS);
	size_t flen = strlen(field);
	char *key = NULL;

	if (n > MAX_MEMBERS) {
		/* A wide object: scan it again into an array of its size. */
		m = malloc((size_t)n * sizeof(*m));
		if (!m)
			return NULL;
		hop_json_members(line, len, m, n);
	}
	for (int i = n - 1; i >= 0; i--)
		if (m[i].klen == flen && !memcmp(m[i].key, field, flen)) {
			key = key_text(m[i].val, m[i].vlen);
			break;
		}
	if (m != few)
		free(m);
	return key;
}

/* Sends the COPY data gathered so far once there is a chunk of it, or all
 * of it. */
static int send_out(struct load *l, bool all)
{
	if (hop_buf_len(&l->out) < (all ? 1 : CHUNK))
		return 0;
	if (PQputCopyData(l->conn, hop_buf_head(&l->out),
			  (int)hop_buf_len(&l->out)) != 1) {
		pg_error(l, "sending the items", PQerrorMessage(l->conn));
		return -EIO;
	}
	hop_buf_reset(&l->out);
	return 0;
}

/* Checks one non-blank line and adds it to the COPY data. Returns 0 or
 * -EIO when the data could not be sent. */
static int take_line(struct load *l, const char *name, long lineno,
		     const char *line, size_t len)
{
	char why[128];
	char *key = NULL;

	if (!hop_json_valid(line, len)) {
		/* The slow path, for jansson's words on what is wrong. */
		json_error_t jerr;
		json_t *v = json_loadb(line, len, JSON_DECODE_ANY, &jerr);
		json_decref(v);
		bad_line(l, name, lineno, "not JSON: %s (column %d)",
			 v ? "invalid text" : jerr.text, v ? 0 : jerr.column);
		return 0;
	}
	if (jsonb_refuses(line, len, why, sizeof(why))) {
		bad_line(l, name, lineno, "%s", why);
		return 0;
	}
	if (l->key && !(key = key_of(line, len, l->key))) {
		bad_line(l, name, lineno,
			 "no string or number field \"%s\" for the key",
			 l->key);
		return 0;
	}
	l->good++;
	if (l->bad && !l->skip_bad) {
		/* Nothing will be loaded: only look for more bad lines. */
		free(key);
		return 0;
	}
	if (key) {
		copy_field(&l->out, key, strlen(key));
		hop_buf_append(&l->out, "\t", 1);
		free(key);
	}
	copy_field(&l->out, line, len);
	hop_buf_append(&l->out, "\n", 1);
	return send_out(l, false);
}

/* Reads one input ("-" is stdin) and queues its good lines. Returns 0, or
 * -errno when it could not be read or the data could not be sent. */
static int load_file(struct load *l, const char *path)
{
	bool is_stdin = !strcmp(path, "-");
	const char *name = is_stdin ? "stdin" : path;
	int fd = is_stdin ? 0 : open(path, O_RDONLY | O_CLOEXEC);
	struct hop_lines in;
	long lineno = 0;
	int rc = 0;

	if (fd < 0) {
		rc = -errno;
		fprintf(stderr, "hopper: %s: %s\n", path, strerror(-rc));
		return rc;
	}
	hop_lines_init(&in, MAX_LINE);
	while (!rc) {
		char *line;
		size_t len;
		enum hop_line_status st = hop_lines_next(&in, fd, &line, &len);
		if (st == HOP_LINE_EOF)
			break;
		if (st == HOP_LINE_AGAIN) {
			/* A non-blocking stdin: wait for it. */
			struct pollfd p = {.fd = fd, .events = POLLIN};
			if (poll(&p, 1, -1) >= 0 || errno == EINTR)
				continue;
			st = HOP_LINE_ERROR;
		}
		if (st == HOP_LINE_ERROR) {
			rc = -errno;
			fprintf(stderr, "hopper: %s: %s\n", name,
				strerror(errno));
			break;
		}
		lineno++;
		if (st == HOP_LINE_TOOLONG)
			bad_line(l, name, lineno, "line over the %u-byte limit",
				 MAX_LINE);
		else if (strspn(line, " \t\r") < len)
			rc = take_line(l, name, lineno, line, len);
	}
	hop_lines_free(&in);
	if (!is_stdin)
		close(fd);
	return rc;
}

/* Runs a statement that returns no rows; false, said, on failure. */
static bool exec_ok(const struct load *l, const char *sql, const char *what)
{
	PGresult *res = PQexec(l->conn, sql);
	ExecStatusType st = PQresultStatus(res);
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_COPY_IN;
	if (!ok)
		pg_error(l, what, PQresultErrorMessage(res));
	PQclear(res);
	return ok;
}

/* Checks that the table exists and, for --key, that its key column has a
 * unique index for ON CONFLICT to use. Returns 0 or -1, said. */
static int check_table(const struct load *l, const char *table,
		       const char *quoted)
{
	const char *sql =
	    "SELECT c.oid IS NOT NULL, EXISTS (SELECT 1 FROM pg_index i "
	    "JOIN pg_attribute a ON a.attrelid = i.indrelid "
	    "AND a.attnum = i.indkey[0] WHERE i.indrelid = c.oid "
	    "AND i.indisunique AND i.indnatts = 1 AND i.indpred IS NULL "
	    "AND i.indexprs IS NULL AND a.attname = 'key') "
	    "FROM (SELECT to_regclass($1)::oid AS oid) c";
	PGresult *res =
	    PQexecParams(l->conn, sql, 1, NULL, &quoted, NULL, NULL, 0);
	int rc = -1;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		pg_error(l, "looking for the queue table",
			 PQresultErrorMessage(res));
	else if (strcmp(PQgetvalue(res, 0, 0), "t"))
		fprintf(stderr,
			"hopper: queue table %s does not exist; "
			"`hopper pg init URL --table %s` creates it\n",
			table, table);
	else if (l->key && strcmp(PQgetvalue(res, 0, 1), "t"))
		fprintf(stderr,
			"hopper: --key needs a unique index on %s (key), "
			"which `hopper pg init` creates\n",
			table);
	else
		rc = 0;
	PQclear(res);
	return rc;
}

/* Connects, checks the table and starts the transaction and the COPY.
 * Returns 0 or -1, said. */
static int begin_load(struct load *l, const char *table, const char *quoted)
{
	char sql[256];

	l->conn = PQconnectdb(l->conninfo);
	if (PQstatus(l->conn) != CONNECTION_OK) {
		pg_error(l, "cannot connect to PostgreSQL",
			 PQerrorMessage(l->conn));
		return -1;
	}
	/* JSON is UTF-8, whatever the server's encoding. */
	if (PQsetClientEncoding(l->conn, "UTF8")) {
		pg_error(l, "setting the client encoding to UTF8",
			 PQerrorMessage(l->conn));
		return -1;
	}
	if (check_table(l, table, quoted) ||
	    !exec_ok(l, "BEGIN", "starting the load"))
		return -1;
	if (l->key) {
		/* Staged first: ON CONFLICT belongs to INSERT, not COPY. */
		if (!exec_ok(l,
			     "CREATE TEMP TABLE " STAGING
			     " (key text, payload jsonb) ON COMMIT DROP",
			     "preparing the load"))
			return -1;
		snprintf(sql, sizeof(sql), "COPY %s FROM STDIN", STAGING);
	} else {
		snprintf(sql, sizeof(sql), "COPY %s (payload) FROM STDIN",
			 quoted);
	}
	return exec_ok(l, sql, "starting COPY") ? 0 : -1;
}

/* Ends the COPY and, for --key, moves the rows whose key is new into the
 * queue. Sets *inserted. Returns 0 or -1, said. */
static int end_load(struct load *l, const char *table, const char *quoted,
		    long *inserted)
{
	char sql[320], what[160];
	int rc = 0;

	snprintf(what, sizeof(what), "loading into %s", table);
	if (send_out(l, true) || PQputCopyEnd(l->conn, NULL) != 1)
		return -1;
	PGresult *res = PQgetResult(l->conn);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		pg_error(l, what, PQresultErrorMessage(res));
		rc = -1;
	}
	PQclear(res);
	while ((res = PQgetResult(l->conn)))
		PQclear(res);
	*inserted = l->good;
	if (rc || !l->key)
		return rc;
	/* In input order: ids follow it, and of equal keys the first wins. */
	snprintf(
	    sql, sizeof(sql),
	    "INSERT INTO %s (key, payload) SELECT key, payload FROM " STAGING
	    " ORDER BY ctid ON CONFLICT (key) DO NOTHING",
	    quoted);
	res = PQexec(l->conn, sql);
	if (PQresultStatus(res) == PGRES_COMMAND_OK) {
		*inserted = atol(PQcmdTuples(res));
	} else {
		pg_error(l, what, PQresultErrorMessage(res));
		rc = -1;
	}
	PQclear(res);
	return rc;
}

static void report(const struct load *l, const char *table, long inserted,
		   int64_t t0)
{
	double secs = (double)(hop_now_ms() - t0) / 1000;
	fprintf(stderr, "enqueued %ld items into %s in %.2f s (%.0f items/s)",
		inserted, table, secs,
		secs > 0 ? (double)inserted / secs : (double)inserted);
	if (l->good > inserted)
		fprintf(stderr, "; %ld already queued (same key)",
			l->good - inserted);
	if (l->bad)
		fprintf(stderr, "; %ld bad line%s skipped", l->bad,
			l->bad == 1 ? "" : "s");
	fputc('\n', stderr);
}

static int enqueue(struct load *l, const char *table, char **files, int nfiles)
{
	char quoted[160];
	int64_t t0 = hop_now_ms();
	long inserted = 0;
	int rc = 0, code = HOP_EXIT_FAILURE;

	if (!hop_pg_valid_ident(table)) {
		fprintf(stderr,
			"hopper: table name '%s' is not a valid identifier "
			"(letters, digits and _, optionally schema.table)\n",
			table);
		return HOP_EXIT_USAGE;
	}
	hop_pg_quote(quoted, sizeof(quoted), table);
	if (begin_load(l, table, quoted))
		goto out_finish;
	for (int i = 0; i < (nfiles ? nfiles : 1) && !rc; i++)
		rc = load_file(l, nfiles ? files[i] : "-");
	if (l->bad > MAX_REPORTED)
		fprintf(stderr, "... and %ld more bad lines\n",
			l->bad - MAX_REPORTED);
	if (rc || (l->bad && !l->skip_bad)) {
		PQputCopyEnd(l->conn, "load abandoned");
		PGresult *res;
		while ((res = PQgetResult(l->conn)))
			PQclear(res);
		if (!rc) {
			fprintf(stderr,
				"hopper: %ld bad line%s: nothing enqueued "
				"(--skip-bad loads the good ones)\n",
				l->bad, l->bad == 1 ? "" : "s");
			code = EXIT_DATAERR;
		}
		goto out_finish;
	}
	if (end_load(l, table, quoted, &inserted) ||
	    !exec_ok(l, "COMMIT", "committing the load"))
		goto out_finish;
	report(l, table, inserted, t0);
	code = HOP_EXIT_OK;
out_finish:
	/* Closing the connection rolls back whatever was not committed. */
	hop_buf_free(&l->out);
	PQfinish(l->conn);
	return code;
}

static int usage(FILE *out, int code)
{
	fprintf(out,
		"usage: hopper enqueue [URL] [--table NAME] [--key FIELD] "
		"[--skip-bad] [FILE...]\n"
		"  loads JSON lines (stdin without FILE, or -) into a queue "
		"table (default hopper_queue),\n"
		"  one payload per line, in one transaction; a bad line loads "
		"nothing (exit 65)\n"
		"  unless --skip-bad. --key takes each row's key from a "
		"string or number field of\n"
		"  its payload and skips keys already queued. URL is "
		"postgres://user:password@host/db\n"
		"  or key=value settings; without it, PGHOST, PGUSER, "
		"PGPASSWORD... are used.\n");
	return code;
}

/* Matches "--name VALUE" and "--name=VALUE" at argv[*i]; sets *val, or
 * *val = NULL when the value is missing. */
static bool opt_value(int argc, char **argv, int *i, const char *name,
		      const char **val)
{
	size_t n = strlen(name);
	if (strncmp(argv[*i], name, n))
		return false;
	if (argv[*i][n] == '=')
		*val = argv[*i] + n + 1;
	else if (argv[*i][n] == '\0')
		*val = *i + 1 < argc ? argv[++*i] : NULL;
	else
		return false;
	return true;
}

int hop_enqueue_command(int argc, char **argv)
{
	struct load l = {.conninfo = ""};
	const char *table = "hopper_queue", *url = NULL;
	char **files = calloc((size_t)argc + 1, sizeof(*files));
	int nfiles = 0, code;
	bool opts_done = false;

	if (!files)
		return HOP_EXIT_FAILURE;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *v;
		if (!opts_done && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
			free(files);
			return usage(stdout, HOP_EXIT_OK);
		} else if (!opts_done && !strcmp(a, "--")) {
			opts_done = true;
		} else if (!opts_done &&
			   opt_value(argc, argv, &i, "--table", &v)) {
			if (!(table = v) || !*v)
				goto usage;
		} else if (!opts_done &&
			   opt_value(argc, argv, &i, "--key", &v)) {
			if (!(l.key = v) || !*v)
				goto usage;
		} else if (!opts_done && !strcmp(a, "--skip-bad")) {
			l.skip_bad = true;
		} else if (!opts_done && a[0] == '-' && a[1]) {
			fprintf(stderr, "hopper enqueue: unknown option %s\n",
				a);
			goto usage;
		} else if (!url && !nfiles && !opts_done &&
			   (strstr(a, "://") || strchr(a, '='))) {
			url = a;
		} else if (strstr(a, "://")) {
			/* Not echoed: it may hold a password. */
			fprintf(stderr, "hopper enqueue: the URL comes first, "
					"and only once\n");
			goto usage;
		} else {
			files[nfiles++] = argv[i];
		}
	}
	/* No URL: libpq takes PGHOST, PGPORT, PGUSER... from the environment.
	 */
	l.conninfo = url ? url : "";
	code = enqueue(&l, table, files, nfiles);
	free(files);
	return code;

usage:
	free(files);
	return usage(stderr, HOP_EXIT_USAGE);
}
