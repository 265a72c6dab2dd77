/* postgres.c - the postgres sink: results into a table, one row per item,
 * keyed by the item's id.
 *
 * By default the table is hopper_results (key text primary key, result
 * jsonb, timestamps); a pipeline may name its own table and columns. When
 * the key column is unique, a result written twice (a coordinator died
 * after writing but before acknowledging) replaces the first instead of
 * adding a row.
 *
 * When the run's source is a postgres queue in the same database, the sink
 * joins it (sources/postgres/postgres.h): the source's acknowledgement
 * inserts the results in the statement that marks the rows done, so that
 * result and acknowledgement are one commit. The sink's own writes are then
 * nothing.
 *
 * Otherwise the sink keeps a connection of its own on a thread: a flush
 * hands the rows written since the last one to the thread as one INSERT
 * and returns PENDING; the answer comes back through an eventfd. A lost
 * connection is retried with backoff for `patience` seconds before the
 * flush fails (retryably: the coordinator holds the items and tries again).
 * A statement the server refuses for its data (a check constraint, a value
 * the column cannot hold: SQLSTATE classes 22 and 23) fails for good when
 * it held one row; with more rows it is retried, and the coordinator then
 * writes the rows one at a time, which finds the row at fault.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "coordinator/buf.h"
#include "coordinator/item.h"
#include "coordinator/log.h"
#include "coordinator/loop.h"
#include "coordinator/opts.h"
#include "sources/postgres/pgqueue.h"
#include "sinks/sink.h"
#include "sources/postgres/postgres.h"

struct pg_sink {
	/* options */
	char *url;
	char *table;
	char *key_column;
	char *result_column;
	bool create;
	bool join;
	bool queue;
	double patience;

	struct hop_sink *sink;
	bool joined;
	char *insert;	     /* INSERT ... SELECT over d(key, result) */
	char *sql;	     /* the whole statement, for our own connection */
	struct hop_buf rows; /* JSON array being gathered */
	size_t nrows;

	/* the thread's side, under mu */
	pthread_t tid;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct hop_buf *job; /* rows to insert, not taken yet */
	size_t job_rows;
	bool busy; /* the thread is inserting a job */
	bool answered;
	uint64_t skipped; /* rows a queue already had, by the answered job */
	enum hop_sink_status answer;
	char answer_error[400];
	bool stop;
	int efd; /* the thread's answers, to the loop */
	PGconn *conn;
};

static const struct hop_option pg_sink_options[] = {
    {"url", HOP_OPT_STR, NULL, offsetof(struct pg_sink, url),
     "postgres://user:password@host:port/db (or PG* variables)"},
    {"table", HOP_OPT_STR, "hopper_results", offsetof(struct pg_sink, table),
     "the table results go into"},
    {"key_column", HOP_OPT_STR, "key", offsetof(struct pg_sink, key_column),
     "the column that gets the item's id (text)"},
    {"result_column", HOP_OPT_STR, "result",
     offsetof(struct pg_sink, result_column),
     "the column that gets the worker's result (jsonb)"},
    {"create", HOP_OPT_BOOL, "false", offsetof(struct pg_sink, create),
     "create the table when it is missing"},
    {"join", HOP_OPT_BOOL, "true", offsetof(struct pg_sink, join),
     "with a postgres source on the same database, commit each result "
     "with its acknowledgement"},
    {"queue", HOP_OPT_BOOL, "false", offsetof(struct pg_sink, queue),
     "the table is a queue (hopper pg init): each result becomes a ready "
     "row (key, payload), an id already there is left as it is; a stage's "
     "via sets it"},
    {"patience", HOP_OPT_SECONDS, "30", offsetof(struct pg_sink, patience),
     "how long a flush waits for a lost connection before it fails"},
    {NULL},
};

/* ---- the thread ---- */

static void answer(struct pg_sink *c, enum hop_sink_status st, const char *err)
{
	uint64_t one = 1;
	pthread_mutex_lock(&c->mu);
	c->answer = st;
	snprintf(c->answer_error, sizeof(c->answer_error), "%s",
		 err ? err : "");
	c->answered = true;
	c->busy = false;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	if (write(c->efd, &one, sizeof(one)) < 0) {
		/* An eventfd counter does not fill up. */
	}
}

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
	nanosleep(&ts, NULL);
}

/* Inserts one batch; retries a lost connection for `patience` seconds. */
static void insert(struct pg_sink *c, struct hop_buf *rows, size_t nrows)
{
	char line[300], msg[400];
	double waited = 0, wait = 0.2;

	for (;;) {
		const char *p[] = {hop_buf_head(rows)};
		PGresult *res =
		    PQexecParams(c->conn, c->sql, 1, NULL, p, NULL, NULL, 0);
		bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		const char *why = PQresultErrorMessage(res);
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		bool data = state && (strncmp(state, "22", 2) == 0 ||
				      strncmp(state, "23", 2) == 0);
		uint64_t added = ok ? strtoull(PQcmdTuples(res), NULL, 10) : 0;
		hop_pg_first_line(*why ? why : PQerrorMessage(c->conn), line,
				  sizeof(line));
		PQclear(res);
		if (ok) {
			pthread_mutex_lock(&c->mu);
			if (c->queue && nrows > added)
				c->skipped += nrows - added;
			pthread_mutex_unlock(&c->mu);
			answer(c, HOP_SINK_OK, NULL);
			return;
		}
		if (PQstatus(c->conn) == CONNECTION_OK) {
			/* The statement failed: a bad row, a wrong column.
			 * A lone row the data refuses never goes in. */
			snprintf(msg, sizeof(msg), "postgres sink: %s: %s",
				 c->table, line);
			answer(c,
			       data && nrows == 1 ? HOP_SINK_FAIL
						  : HOP_SINK_RETRY,
			       msg);
			return;
		}
		bool stop;
		pthread_mutex_lock(&c->mu);
		stop = c->stop;
		pthread_mutex_unlock(&c->mu);
		if (stop || waited >= c->patience) {
			snprintf(msg, sizeof(msg),
				 "postgres sink: no connection: %s", line);
			answer(c, HOP_SINK_RETRY, msg);
			return;
		}
		hop_log(HOP_WARN,
			"postgres sink: lost the connection (%s); trying again "
			"in %.1f s",
			line, wait);
		sleep_s(wait);
		waited += wait;
		if (wait < 5)
			wait *= 2;
		PQreset(c->conn);
		if (PQstatus(c->conn) == CONNECTION_OK)
			hop_log(HOP_INFO, "postgres sink: connected again");
	}
}

static void *sink_thread(void *arg)
{
	struct pg_sink *c = arg;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (!c->job && !c->stop)
			pthread_cond_wait(&c->cv, &c->mu);
		if (!c->job)
			break;
		struct hop_buf *job = c->job;
		size_t nrows = c->job_rows;
		c->job = NULL;
		c->busy = true;
		pthread_mutex_unlock(&c->mu);
		insert(c, job, nrows);
		hop_buf_free(job);
		free(job);
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* ---- the loop's side ---- */

static void take_answer(struct pg_sink *c)
{
	pthread_mutex_lock(&c->mu);
	bool answered = c->answered;
	enum hop_sink_status st = c->answer;
	c->answered = false;
	c->sink->skipped += c->skipped;
	c->skipped = 0;
	snprintf(c->sink->error, sizeof(c->sink->error), "%s", c->answer_error);
	pthread_mutex_unlock(&c->mu);
	if (answered)
		hop_sink_flushed(c->sink, st);
}

static void on_answer(struct hop_loop *loop, int fd, uint32_t ev, void *arg)
{
	uint64_t v;
	if (read(fd, &v, sizeof(v)) < 0)
		return;
	take_answer(arg);
}

/* Checks the table, creates it if asked, and finds whether the key column
 * is unique (then a result written twice replaces the first). */
static int prepare(struct pg_sink *c, PGconn *conn, bool *unique)
{
	char t[160], k[80], r[80], sql[1024], line[300];
	PGresult *res;

	hop_pg_quote(t, sizeof(t), c->table);
	snprintf(k, sizeof(k), "\"%s\"", c->key_column);
	snprintf(r, sizeof(r), "\"%s\"", c->result_column);
	if (c->create && c->queue) {
		char schema[4096];
		if (hop_pg_schema_sql(c->table, schema, sizeof(schema)) < 0)
			return -ENOSPC;
		res = PQexec(conn, schema);
		bool bad = PQresultStatus(res) != PGRES_COMMAND_OK;
		if (bad)
			snprintf(c->sink->error, sizeof(c->sink->error),
				 "postgres sink: creating the queue %s: %s",
				 c->table,
				 hop_pg_first_line(PQresultErrorMessage(res),
						   line, sizeof(line)));
		PQclear(res);
		if (bad)
			return -EIO;
	} else if (c->create) {
		snprintf(sql, sizeof(sql),
			 "CREATE TABLE IF NOT EXISTS %s (%s text PRIMARY KEY, "
			 "%s jsonb, created_at timestamptz NOT NULL DEFAULT "
			 "now())",
			 t, k, r);
		res = PQexec(conn, sql);
		bool bad = PQresultStatus(res) != PGRES_COMMAND_OK;
		if (bad)
			snprintf(c->sink->error, sizeof(c->sink->error),
				 "postgres sink: creating %s: %s", c->table,
				 hop_pg_first_line(PQresultErrorMessage(res),
						   line, sizeof(line)));
		PQclear(res);
		if (bad)
			return -EIO;
	}
	snprintf(sql, sizeof(sql), "SELECT %s, %s FROM %s LIMIT 0", k, r, t);
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		hop_pg_first_line(PQresultErrorMessage(res), line,
				  sizeof(line));
		bool missing = strstr(line, "does not exist") != NULL;
		snprintf(c->sink->error, sizeof(c->sink->error),
			 "postgres sink: table %s: %s%s", c->table, line,
			 missing && !c->create ? " (create=true makes it)"
					       : "");
		PQclear(res);
		return -ENOENT;
	}
	PQclear(res);
	const char *p[] = {t, c->key_column};
	res = PQexecParams(
	    conn,
	    "SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = "
	    "i.indrelid AND a.attnum = i.indkey[0] WHERE i.indrelid = "
	    "$1::regclass AND i.indisunique AND i.indnatts = 1 AND "
	    "i.indpred IS NULL AND a.attname = $2",
	    2, NULL, p, NULL, NULL, 0);
	*unique = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0;
	PQclear(res);
	return 0;
}

/* The names are spliced into SQL (quoted): each is refused here, by
 * name, before any connection. */
static int pg_sink_check(struct hop_sink *sink, const char **key)
{
	struct pg_sink *c = sink->ctx;
	const char *names[] = {c->table, c->key_column, c->result_column};
	const char *keys[] = {"table", "key_column", "result_column"};

	for (int i = 0; i < 3; i++) {
		if (!hop_pg_valid_ident(names[i]) ||
		    (i > 0 && strchr(names[i], '.'))) {
			snprintf(sink->error, sizeof(sink->error),
				 "postgres sink: '%s' is not a valid %s name "
				 "(letters, digits and _)",
				 names[i], i ? "column" : "table");
			*key = keys[i];
			return -EINVAL;
		}
	}
	return 0;
}

static int pg_sink_open(struct hop_sink *sink)
{
	struct pg_sink *c = sink->ctx;
	char t[160], sql[1024], line[300];
	const char *key;
	bool unique = false;
	int rc;

	c->sink = sink;
	c->efd = -1;
	if ((rc = pg_sink_check(sink, &key)))
		return rc;
	c->conn = PQconnectdb(c->url ? c->url : "");
	PQsetNoticeProcessor(c->conn, hop_pg_notice, "postgres sink");
	if (PQstatus(c->conn) != CONNECTION_OK) {
		char safe[512];
		snprintf(
		    sink->error, sizeof(sink->error),
		    "postgres sink: cannot connect: %s",
		    hop_pg_first_line(hop_pg_redact(c->url ? c->url : "",
						    PQerrorMessage(c->conn),
						    safe, sizeof(safe)),
				      line, sizeof(line)));
		rc = -ECONNREFUSED;
		goto err;
	}
	rc = prepare(c, c->conn, &unique);
	if (rc)
		goto err;
	hop_pg_quote(t, sizeof(t), c->table);
	int n = snprintf(sql, sizeof(sql),
			 "INSERT INTO %s (\"%s\", \"%s\") SELECT DISTINCT ON "
			 "(key) key, result FROM d",
			 t, c->key_column, c->result_column);
	if (unique && c->queue)
		/* A queue's row is work: one written again (the item that
		 * made it was done again) must not be done twice. */
		snprintf(sql + n, sizeof(sql) - (size_t)n,
			 " ON CONFLICT (\"%s\") DO NOTHING", c->key_column);
	else if (unique)
		snprintf(sql + n, sizeof(sql) - (size_t)n,
			 " ON CONFLICT (\"%s\") DO UPDATE SET \"%s\" = "
			 "EXCLUDED.\"%s\"",
			 c->key_column, c->result_column, c->result_column);
	c->insert = strdup(sql);
	if (!c->insert) {
		rc = -ENOMEM;
		goto err;
	}
	if (c->join && sink->source &&
	    hop_pg_source_join(sink->source, c->url, c->insert) == 0) {
		/* The source writes our rows; we need no connection. */
		c->joined = sink->joined = true;
		PQfinish(c->conn);
		c->conn = NULL;
		return 0;
	}
	size_t len = strlen(c->insert) + 128;
	c->sql = malloc(len);
	if (!c->sql) {
		rc = -ENOMEM;
		goto err;
	}
	snprintf(c->sql, len,
		 "WITH d AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS "
		 "x(key text, result jsonb)) %s",
		 c->insert);
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->efd < 0 ||
	    hop_loop_watch(sink->loop, c->efd, EPOLLIN, on_answer, c) ||
	    pthread_create(&c->tid, NULL, sink_thread, c)) {
		snprintf(sink->error, sizeof(sink->error),
			 "postgres sink: cannot start: %s", strerror(errno));
		rc = -EIO;
		goto err;
	}
	c->started = true;
	return 0;

err:
	if (c->efd >= 0) {
		hop_loop_unwatch(sink->loop, c->efd);
		close(c->efd);
		c->efd = -1;
	}
	PQfinish(c->conn);
	c->conn = NULL;
	return rc;
}

static enum hop_sink_status pg_sink_write(struct hop_sink *sink,
					  struct hop_item *it)
{
	struct pg_sink *c = sink->ctx;
	struct hop_buf *b = &c->rows;

	/* Dead items stay in their source's dead-letter place. */
	if (!it->ok || c->joined)
		return HOP_SINK_OK;
	int rc = hop_buf_append(b, c->nrows ? ",{\"key\":" : "[{\"key\":", 8) ||
		 hop_buf_append_json_str(b, it->id) ||
		 hop_buf_append(b, ",\"result\":", 10) ||
		 hop_buf_append(b, it->result ? it->result : "null",
				it->result ? strlen(it->result) : 4) ||
		 hop_buf_append(b, "}", 1);
	if (rc) {
		snprintf(sink->error, sizeof(sink->error),
			 "postgres sink: out of memory");
		return HOP_SINK_RETRY;
	}
	c->nrows++;
	return HOP_SINK_OK;
}

static enum hop_sink_status pg_sink_flush(struct hop_sink *sink)
{
	struct pg_sink *c = sink->ctx;

	if (c->joined || c->nrows == 0)
		return HOP_SINK_OK;
	struct hop_buf *job = malloc(sizeof(*job));
	if (!job || hop_buf_append(&c->rows, "]", 2)) {
		free(job);
		hop_buf_reset(&c->rows);
		c->nrows = 0;
		snprintf(sink->error, sizeof(sink->error),
			 "postgres sink: out of memory");
		return HOP_SINK_RETRY;
	}
	*job = c->rows;
	size_t nrows = c->nrows;
	c->rows = (struct hop_buf){0};
	c->nrows = 0;
	pthread_mutex_lock(&c->mu);
	c->job = job;
	c->job_rows = nrows;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return HOP_SINK_PENDING;
}

static void pg_sink_wait(struct hop_sink *sink)
{
	struct pg_sink *c = sink->ctx;
	if (!c->started)
		return;
	pthread_mutex_lock(&c->mu);
	while (!c->answered && (c->job || c->busy))
		pthread_cond_wait(&c->cv, &c->mu);
	pthread_mutex_unlock(&c->mu);
	take_answer(c);
}

static void pg_sink_close(struct hop_sink *sink)
{
	struct pg_sink *c = sink->ctx;

	if (c->started) {
		pthread_mutex_lock(&c->mu);
		c->stop = true;
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
		pthread_join(c->tid, NULL);
		pthread_mutex_destroy(&c->mu);
		pthread_cond_destroy(&c->cv);
	}
	if (c->efd >= 0) {
		hop_loop_unwatch(sink->loop, c->efd);
		close(c->efd);
	}
	PQfinish(c->conn);
	hop_buf_free(&c->rows);
	free(c->insert);
	free(c->sql);
}

/* The writing end of an edge: rows of the stage's queue table. */
static const char *const pg_sink_edge_fixed[] = {"queue=true", "join=false",
						 "key_column=key",
						 "result_column=payload", NULL};
static const char *const pg_sink_edge_defaults[] = {"table=hopper_to_%s",
						    "create=true", NULL};

const struct hop_sink_ops hop_sink_postgres = {
    .name = "postgres",
    .forms = "postgres://URL",
    .summary = "results into a table (jsonb), committed with their "
	       "acknowledgement when the queue is in the same database",
    .options = pg_sink_options,
    .ctx_size = sizeof(struct pg_sink),
    .open = pg_sink_open,
    .write = pg_sink_write,
    .flush = pg_sink_flush,
    .wait = pg_sink_wait,
    .close = pg_sink_close,
    .edge_fixed = pg_sink_edge_fixed,
    .edge_defaults = pg_sink_edge_defaults,
};
