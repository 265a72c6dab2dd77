/* postgres.c - the postgres source: a queue table that many coordinators
 * share (see sources/postgres/pgqueue.h for the schema).
 *
 * Rows are claimed a batch at a time with FOR UPDATE SKIP LOCKED, each given
 * a lease in this coordinator's name; a row whose lease ran out (its holder
 * died) is claimed again by anyone. While items are in flight their leases
 * are extended every third of the lease. Ack marks a row done, nack puts it
 * back as ready at its retry time with the error, dead marks it dead with
 * the dead-letter record in its result column (the item counts as dead only
 * once the server confirmed it), release hands it back without counting the
 * attempt. A LISTEN on the table's channel wakes an idle
 * coordinator as soon as rows are inserted; polling stays as the fallback.
 *
 * All database work runs on one thread of this driver with a connection of
 * its own, so the event loop never waits on the network. The loop talks to
 * it through a request queue and hears back through an eventfd. A lost
 * connection is retried with backoff; requests wait for it. A claim that
 * committed while its answer was lost leaves rows in this run's name that
 * it never saw: once connected again, they go back to the queue with the
 * attempt uncounted, as no worker had them. Rows leased by a coordinator
 * that died come back when their lease ends.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "coordinator/buf.h"
#include "coordinator/log.h"
#include "coordinator/loop.h"
#include "coordinator/opts.h"
#include "sources/postgres/enqueue.h"
#include "sources/postgres/pgqueue.h"
#include "sources/postgres/pgdead.h"
#include "sources/postgres/postgres.h"
#include "sources/source.h"

/* The updates come first: a batch runs each kind as one statement. */
enum req_type { R_ACK, R_NACK, R_DEAD, R_RELEASE, R_CLAIM };

/* What a claimed item carries: its row, and which claim of it this is (the
 * attempts count the claim set), so that an update from an earlier claim of
 * a row that has been claimed again since changes nothing. */
struct claim {
	int64_t id;
	int attempts;
};

struct req {
	struct req *next;
	enum req_type type;
	int64_t id;
	int attempts; /* the claim's: no update touches a later claim */
	int n;	      /* R_CLAIM: rows wanted; answer: ready rows not due */
	double delay; /* R_NACK: seconds until due */
	char *text;   /* R_NACK, R_DEAD: the error */
	char *record; /* R_DEAD: the dead letter */
	char *result; /* R_ACK with a joined sink: the item's result */
	char *item;   /* R_DEAD: the item's id, to report it by */
	bool dead;    /* R_DEAD answer: the server has the row dead */
	struct hop_queue items; /* R_CLAIM answer */
	uint64_t nacks;		/* R_CLAIM: nacks sent before it */
	char *error;		/* answer: why it failed */
};

struct pg_src {
	/* options */
	char *url;
	char *table;
	int64_t batch;
	double lease;
	double poll;
	bool create;
	bool notify;
	char *payload_column;
	char *key_column;
	char *retain_opt;
	double retain; /* seconds, or -1: keep done rows */
	char *insert;  /* a joined sink's INSERT over the done rows d */
	struct hop_pg_dead dead; /* hopper dead's connection */

	/* loop side */
	struct hop_source *src;
	int efd;
	struct hop_queue ready; /* claimed, not fetched yet */
	size_t ahead;		/* how many to keep claimed in ready */
	bool claiming;
	bool empty;   /* the last claim found nothing due */
	bool drained; /* ... and nothing waiting for its retry time */
	uint64_t nacks_sent;
	pthread_t tid;
	bool started;

	/* shared, under mu */
	pthread_mutex_t mu;
	struct req *todo, *todo_tail;
	struct req *done;
	bool wake; /* a notification or poll tick came */
	bool stop;
	int wfd; /* eventfd that wakes the thread */
	_Atomic int64_t depth;
	_Atomic bool offline; /* the connection is lost, being retried */

	/* thread side */
	PGconn *conn;
	unsigned prepared; /* statements prepared in this session, by slot */
	char holder[128];
	char *qt;      /* the quoted table name */
	int64_t *held; /* ids in flight, for lease extension */
	size_t nheld, capheld;
	double next_poll; /* when to look for due rows again */
	bool last_try; /* stopping: a reconnect was tried for the last time */
};

static const struct hop_option pg_options[] = {
    {"url", HOP_OPT_STR, NULL, offsetof(struct pg_src, url),
     "postgres://user:password@host:port/db (or PG* variables)"},
    {"table", HOP_OPT_STR, "hopper_queue", offsetof(struct pg_src, table),
     "the queue table (hopper pg init makes one)"},
    {"batch", HOP_OPT_INT, "64", offsetof(struct pg_src, batch),
     "rows claimed at a time, at most", .min = "1"},
    {"lease", HOP_OPT_SECONDS, "300", offsetof(struct pg_src, lease),
     "how long a claimed row stays ours without a heartbeat", .min = "1"},
    {"poll", HOP_OPT_SECONDS, "2", offsetof(struct pg_src, poll),
     "look for due rows this often when no notification came", .min = "1ms"},
    {"create", HOP_OPT_BOOL, "false", offsetof(struct pg_src, create),
     "create the queue table when it is missing"},
    {"notify", HOP_OPT_BOOL, "true", offsetof(struct pg_src, notify),
     "LISTEN for inserts instead of waiting for the next poll"},
    {"payload_column", HOP_OPT_STR, "payload",
     offsetof(struct pg_src, payload_column),
     "the column whose value is the payload (any type; as JSON)"},
    {"key_column", HOP_OPT_STR, "key", offsetof(struct pg_src, key_column),
     "the column that names an item (its id when NULL)"},
    {"retain", HOP_OPT_STR, "forever", offsetof(struct pg_src, retain_opt),
     "how long done rows stay (0 deletes them at once)"},
    {NULL},
};

/* ---- the database thread ---- */

static void free_req(struct req *r)
{
	struct hop_item *it;
	while ((it = hop_queue_pop(&r->items))) {
		free(it->src_data);
		hop_item_free(it);
	}
	free(r->text);
	free(r->record);
	free(r->result);
	free(r->item);
	free(r->error);
	free(r);
}

static void post(struct pg_src *c, struct req *r)
{
	uint64_t one = 1;
	pthread_mutex_lock(&c->mu);
	r->next = c->done;
	c->done = r;
	pthread_mutex_unlock(&c->mu);
	if (write(c->efd, &one, sizeof(one)) < 0) {
		/* An eventfd counter does not fill up at this rate. */
	}
}

static void hold(struct pg_src *c, int64_t id)
{
	if (c->nheld == c->capheld) {
		size_t n = c->capheld ? c->capheld * 2 : 64;
		int64_t *p = realloc(c->held, n * sizeof(*p));
		if (!p)
			return;
		c->held = p;
		c->capheld = n;
	}
	c->held[c->nheld++] = id;
}

static void unhold(struct pg_src *c, int64_t id)
{
	for (size_t i = 0; i < c->nheld; i++) {
		if (c->held[i] == id) {
			c->held[i] = c->held[--c->nheld];
			return;
		}
	}
}

/* The ids of the rows in flight, as a bigint[] literal, in b. */
static void held_array(struct pg_src *c, struct hop_buf *b)
{
	hop_buf_append(b, "{", 1);
	for (size_t i = 0; i < c->nheld; i++) {
		if (i)
			hop_buf_append(b, ",", 1);
		hop_buf_append_int(b, c->held[i]);
	}
	hop_buf_append(b, "}", 2);
}

static double now_s(void)
{
	return (double)hop_now_ms() / 1000;
}

/* Why a statement failed: its result's message, or the connection's when
 * the connection went (the result then says nothing). */
static const char *error_of(struct pg_src *c, const PGresult *res)
{
	const char *m = res ? PQresultErrorMessage(res) : "";
	return *m ? m : PQerrorMessage(c->conn);
}

/* Passes a statement's good result on; otherwise sets *err to why it
 * failed, frees the result and returns NULL. */
static PGresult *checked(struct pg_src *c, PGresult *res, char **err)
{
	ExecStatusType st = PQresultStatus(res);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return res;
	free(*err);
	*err = strdup(error_of(c, res));
	PQclear(res);
	return NULL;
}

/* Runs one statement with text parameters. Returns the result, or NULL
 * with *err set when it failed (the connection may be gone). */
static PGresult *run(struct pg_src *c, const char *sql, int n,
		     const char *const *params, char **err)
{
	return checked(
	    c, PQexecParams(c->conn, sql, n, NULL, params, NULL, NULL, 0), err);
}

/* Like run, for the statements that run over and over: each is prepared
 * once per session (slot names it), which saves planning it every time. */
static PGresult *run_prepared(struct pg_src *c, int slot, const char *sql,
			      int n, const char *const *params, char **err)
{
	char name[16];
	snprintf(name, sizeof(name), "hopper_%d", slot);
	if (!(c->prepared & (1u << slot))) {
		PGresult *res = PQprepare(c->conn, name, sql, n, NULL);
		bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		if (!ok) {
			free(*err);
			*err = strdup(error_of(c, res));
		}
		PQclear(res);
		if (!ok)
			return NULL;
		c->prepared |= 1u << slot;
	}
	int64_t t0 = hop_now_ms();
	PGresult *res = PQexecPrepared(c->conn, name, n, params, NULL, NULL, 0);
	hop_log(HOP_DEBUG, "postgres source: %.24s...: %s rows in %lld ms", sql,
		PQcmdTuples(res), (long long)(hop_now_ms() - t0));
	return checked(c, res, err);
}

static int do_claim(struct pg_src *c, struct req *r)
{
	char sql[1024], n[32], lease[32];
	snprintf(
	    sql, sizeof(sql),
	    /* Due rows and rows whose holder's lease ran out, each from
	     * its own partial index, so that neither scan wades through
	     * the rows in flight. */
	    "WITH r AS (SELECT id FROM %s"
	    " WHERE state = 'ready' AND run_at <= now()"
	    " ORDER BY run_at, id LIMIT $1 FOR UPDATE SKIP LOCKED),"
	    " e AS (SELECT id FROM %s"
	    " WHERE state = 'running' AND lease_until < now()"
	    " ORDER BY lease_until LIMIT $1 FOR UPDATE SKIP LOCKED),"
	    " c AS (SELECT id FROM e UNION ALL SELECT id FROM r LIMIT $1)"
	    " UPDATE %s q SET state = 'running', attempts = q.attempts + 1,"
	    " lease_until = now() + make_interval(secs => $2), holder = $3,"
	    " updated_at = now() FROM c WHERE q.id = c.id"
	    " RETURNING q.id, coalesce(q.\"%s\"::text, q.id::text),"
	    " to_jsonb(q.\"%s\")::text, q.attempts",
	    c->qt, c->qt, c->qt, c->key_column, c->payload_column);
	snprintf(n, sizeof(n), "%d", r->n);
	snprintf(lease, sizeof(lease), "%.3f", c->lease);
	const char *p[] = {n, lease, c->holder};
	PGresult *res = run_prepared(c, R_CLAIM, sql, 3, p, &r->error);
	if (!res)
		return -EIO;
	if (PQntuples(res) == 0) {
		/* Nothing due: say how much waits (rows not due yet, and rows
		 * others hold, which come back if their holder dies), and
		 * look again when the first of it could be claimed. */
		PQclear(res);
		snprintf(sql, sizeof(sql),
			 "SELECT count(*), coalesce(extract(epoch FROM"
			 " min(CASE WHEN state = 'ready' THEN run_at"
			 " ELSE lease_until END) - now()), 0) FROM %s"
			 " WHERE state = 'ready' OR (state = 'running'"
			 " AND NOT (holder IS NOT DISTINCT FROM $1"
			 " AND id = ANY($2::bigint[])))",
			 c->qt);
		/* Only the rows we know we hold are ours to finish: a row in
		 * our name we never heard of (its claim's answer was lost
		 * with the connection) is waited for like anyone's. */
		struct hop_buf ids = {0};
		held_array(c, &ids);
		const char *h[] = {c->holder, hop_buf_head(&ids)};
		res = run(c, sql, 2, h, &r->error);
		hop_buf_free(&ids);
		if (!res)
			return -EIO;
		r->n = atoi(PQgetvalue(res, 0, 0));
		double due = now_s() + atof(PQgetvalue(res, 0, 1));
		if (r->n && due < c->next_poll)
			c->next_poll = due;
		PQclear(res);
		return 0;
	}
	r->n = 0;
	for (int i = 0; i < PQntuples(res); i++) {
		struct claim *id = malloc(sizeof(*id));
		struct hop_item *it =
		    hop_item_new(strdup(PQgetvalue(res, i, 1)),
				 strdup(PQgetvalue(res, i, 2)),
				 (size_t)PQgetlength(res, i, 2));
		if (!id || !it) {
			free(id);
			hop_item_free(it);
			continue;
		}
		id->id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		id->attempts = atoi(PQgetvalue(res, i, 3));
		it->src_data = id;
		/* The claim counted this attempt; the pool counts it again. */
		it->attempt = id->attempts - 1;
		hop_queue_push(&r->items, it);
		hold(c, id->id);
	}
	PQclear(res);
	return 0;
}

/* Updates of one kind are applied together: their rows go in as one JSON
 * array ($1) and touch only rows this coordinator still holds ($2), so an
 * update for a row whose lease ran out (and that someone else, or a later
 * claim of ours, may hold now) changes nothing. */
static const char *const row_type[] = {
    [R_ACK] = "id bigint, attempts int, result jsonb",
    [R_NACK] = "id bigint, attempts int, delay float8, error text",
    [R_DEAD] = "id bigint, attempts int, error text, record jsonb",
    [R_RELEASE] = "id bigint, attempts int",
};

static const char *const row_set[] = {
    [R_ACK] = "state = 'done'",
    [R_NACK] = "state = 'ready', run_at = now() + make_interval(secs => "
	       "u.delay), last_error = u.error",
    [R_DEAD] = "state = 'dead', last_error = u.error, result = u.record",
    [R_RELEASE] = "state = 'ready', attempts = greatest(q.attempts - 1, 0)",
};

/* The statement for one kind. An ack deletes the row instead when done
 * rows are not kept, and with a joined sink it feeds the sink's INSERT with
 * the rows it finished: result and acknowledgement are one commit. A dead
 * update answers with the rows that are dead by its claim: those it
 * changed, and those an earlier try changed whose answer was lost with the
 * connection (its snapshot sees them dead already). */
static void update_sql(const struct pg_src *c, enum req_type t,
		       struct hop_buf *sql)
{
	static const char mine[] =
	    "q.id = u.id AND q.attempts = u.attempts AND q.holder = $2 AND "
	    "q.state = 'running'";
	bool joined = t == R_ACK && c->insert;

	if (joined || t == R_DEAD)
		hop_buf_appendf(sql, "WITH d AS (");
	if (t == R_ACK && c->retain == 0)
		hop_buf_appendf(sql,
				"DELETE FROM %s q USING jsonb_to_recordset("
				"$1::jsonb) AS u(%s) WHERE %s",
				c->qt, row_type[t], mine);
	else
		hop_buf_appendf(
		    sql,
		    "UPDATE %s q SET %s, lease_until = NULL, holder = NULL, "
		    "updated_at = now() FROM jsonb_to_recordset($1::jsonb) "
		    "AS u(%s) WHERE %s",
		    c->qt, row_set[t], row_type[t], mine);
	if (joined) {
		hop_buf_appendf(sql,
				" RETURNING q.id, coalesce(q.\"%s\"::text, "
				"q.id::text) AS key, u.result) ",
				c->key_column);
		hop_buf_append(sql, c->insert, strlen(c->insert));
	}
	if (t == R_DEAD)
		hop_buf_appendf(sql,
				" RETURNING q.id) SELECT id FROM d UNION ALL "
				"SELECT q.id FROM %s q, jsonb_to_recordset("
				"$1::jsonb) AS u(%s) WHERE q.id = u.id AND "
				"q.attempts = u.attempts AND q.state = 'dead'",
				c->qt, row_type[t]);
	hop_buf_append(sql, "", 1);
}

static void append_row(struct hop_buf *b, const struct req *r)
{
	hop_buf_appendf(b, "{\"id\":%lld,\"attempts\":%d", (long long)r->id,
			r->attempts);
	switch (r->type) {
	case R_ACK:
		hop_buf_append(b, ",\"result\":", 10);
		if (r->result)
			hop_buf_append(b, r->result, strlen(r->result));
		else
			hop_buf_append(b, "null", 4);
		break;
	case R_NACK:
		hop_buf_appendf(b, ",\"delay\":%.3f,\"error\":", r->delay);
		hop_buf_append_json_str(b, r->text ? r->text : "");
		break;
	case R_DEAD:
		hop_buf_append(b, ",\"error\":", 9);
		hop_buf_append_json_str(b, r->text ? r->text : "");
		hop_buf_append(b, ",\"record\":", 10);
		if (r->record)
			hop_buf_append(b, r->record, strlen(r->record));
		else
			hop_buf_append(b, "null", 4);
		break;
	default:
		break;
	}
	hop_buf_append(b, "}", 1);
}

static int by_id(const void *a, const void *b)
{
	const struct req *x = *(struct req *const *)a;
	const struct req *y = *(struct req *const *)b;
	return (x->id > y->id) - (x->id < y->id);
}

/* Marks the dead updates rs[0..n) whose rows res names as dead. */
static void mark_dead(struct req **rs, size_t n, const PGresult *res)
{
	qsort(rs, n, sizeof(*rs), by_id);
	for (int i = 0; i < PQntuples(res); i++) {
		struct req key = {.id =
				      strtoll(PQgetvalue(res, i, 0), NULL, 10)};
		struct req *k = &key;
		struct req **r = bsearch(&k, rs, n, sizeof(*rs), by_id);
		if (r)
			(*r)->dead = true;
	}
}

/* Runs the updates rs[0..n) of kind t as one statement. Returns how many
 * rows it touched (for dead updates, how many rows are dead, each marked),
 * or -EIO with *err set. */
static long apply(struct pg_src *c, enum req_type t, struct req **rs, size_t n,
		  char **err)
{
	struct hop_buf sql = {0}, rows = {0};

	update_sql(c, t, &sql);
	hop_buf_append(&rows, "[", 1);
	for (size_t i = 0; i < n; i++) {
		if (i)
			hop_buf_append(&rows, ",", 1);
		append_row(&rows, rs[i]);
	}
	hop_buf_append(&rows, "]", 2);
	const char *p[] = {hop_buf_head(&rows), c->holder};
	PGresult *res = run_prepared(c, t, hop_buf_head(&sql), 2, p, err);
	long touched = res ? atol(PQcmdTuples(res)) : -EIO;
	if (res && t == R_DEAD)
		mark_dead(rs, n, res);
	PQclear(res);
	hop_buf_free(&sql);
	hop_buf_free(&rows);
	return touched;
}

/* One row whose update failed on its own: a result the sink's table would
 * not take (say, a string jsonb refuses) makes the row dead with the
 * reason, so that it never comes back to block the queue. */
static void apply_one_failed(struct pg_src *c, struct req *r, const char *err)
{
	char line[256], *err2 = NULL;
	hop_pg_first_line(err, line, sizeof(line));
	if (r->type != R_ACK || !c->insert) {
		hop_log(HOP_ERROR, "postgres source: row %lld: %s",
			(long long)r->id, line);
		return;
	}
	hop_log(HOP_ERROR,
		"postgres source: row %lld is dead: writing its "
		"result failed: %s",
		(long long)r->id, line);
	struct req dead = {
	    .type = R_DEAD, .id = r->id, .attempts = r->attempts};
	struct hop_buf rec = {0};
	hop_buf_append(&rec, "{\"error\":", 9);
	char msg[300];
	snprintf(msg, sizeof(msg), "writing the result failed: %s", line);
	hop_buf_append_json_str(&rec, msg);
	hop_buf_append(&rec, "}", 2);
	dead.text = msg;
	dead.record = hop_buf_head(&rec);
	struct req *one = &dead;
	if (apply(c, R_DEAD, &one, 1, &err2) < 0)
		hop_log(HOP_ERROR, "postgres source: row %lld: %s",
			(long long)r->id,
			hop_pg_first_line(err2, line, sizeof(line)));
	free(err2);
	hop_buf_free(&rec);
}

/* Reconnects after a lost connection, waiting longer each time. */
static void reconnect(struct pg_src *c);

/* Applies every update in list, a statement per kind, and frees them,
 * except the dead updates: those go back to the loop with their answer
 * (dead, or why not), as a dead item counts only once its row is. */
static void do_updates(struct pg_src *c, struct req *list)
{
	struct req **rs = NULL;
	size_t n = 0, cap = 0;
	char line[256];

	for (enum req_type t = R_ACK; t < R_CLAIM; t++) {
		n = 0;
		for (struct req *r = list; r; r = r->next) {
			if (r->type != t)
				continue;
			if (n == cap) {
				size_t k = cap ? cap * 2 : 64;
				struct req **p = realloc(rs, k * sizeof(*p));
				if (!p)
					break;
				rs = p;
				cap = k;
			}
			rs[n++] = r;
		}
		while (n) {
			char *err = NULL;
			long touched = apply(c, t, rs, n, &err);
			if (touched >= 0 && (size_t)touched < n && t == R_ACK)
				hop_log(
				    HOP_WARN,
				    "postgres source: %zu of %zu rows were "
				    "no longer ours when acknowledged (their "
				    "lease ran out)",
				    n - (size_t)touched, n);
			if (touched < 0 && PQstatus(c->conn) != CONNECTION_OK) {
				hop_log(
				    HOP_WARN,
				    "postgres source: lost the connection: %s",
				    hop_pg_first_line(err, line, sizeof(line)));
				free(err);
				reconnect(c);
				if (PQstatus(c->conn) == CONNECTION_OK)
					continue;
				/* Stopping without a connection: the leases
				 * bring these rows back. */
				break;
			}
			if (touched < 0) {
				/* Find the row that spoilt the statement. */
				for (size_t i = 0; i < n; i++) {
					char *e1 = NULL;
					if (apply(c, t, &rs[i], 1, &e1) >= 0)
						continue;
					if (t == R_DEAD) { /* its answer */
						rs[i]->error = e1;
						continue;
					}
					apply_one_failed(c, rs[i], e1);
					free(e1);
				}
			}
			free(err);
			break;
		}
	}
	free(rs);
	bool offline = PQstatus(c->conn) != CONNECTION_OK;
	while (list) {
		struct req *r = list;
		list = r->next;
		unhold(c, r->id);
		if (r->type != R_DEAD) {
			free_req(r);
			continue;
		}
		if (!r->dead && !r->error)
			r->error = strdup(
			    offline ? "no connection to the server when the "
				      "run ended"
				    : "the row is no longer ours: its lease "
				      "ran out");
		post(c, r);
	}
}

/* Extends the leases of every row in flight. */
static void heartbeat(struct pg_src *c)
{
	struct hop_buf ids = {0};
	char lease[32], *err = NULL, line[256];

	if (!c->nheld)
		return;
	held_array(c, &ids);
	snprintf(lease, sizeof(lease), "%.3f", c->lease);
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "UPDATE %s SET lease_until = now() + make_interval(secs => $2)"
		 " WHERE id = ANY($1::bigint[]) AND holder = $3",
		 c->qt);
	const char *p[] = {ids.data, lease, c->holder};
	PGresult *res = run(c, sql, 3, p, &err);
	if (!res && PQstatus(c->conn) != CONNECTION_OK) {
		/* Busy workers send no acks: the heartbeat is what notices a
		 * lost connection, and it must not let the leases lapse. */
		hop_log(HOP_WARN, "postgres source: lost the connection: %s",
			hop_pg_first_line(err, line, sizeof(line)));
		reconnect(c);
		if (PQstatus(c->conn) == CONNECTION_OK)
			res = run(c, sql, 3, p, &err);
	}
	if (!res)
		hop_log(HOP_WARN, "postgres source: extending leases: %s",
			hop_pg_first_line(err, line, sizeof(line)));
	PQclear(res);
	free(err);
	hop_buf_free(&ids);
}

static void refresh_depth(struct pg_src *c)
{
	char sql[256], *err = NULL;
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM %s WHERE state = 'ready' AND"
		 " run_at <= now()",
		 c->qt);
	PGresult *res = run(c, sql, 0, NULL, &err);
	if (res)
		atomic_store(&c->depth,
			     strtoll(PQgetvalue(res, 0, 0), NULL, 10));
	PQclear(res);
	free(err);
}

/* Deletes done rows older than the retention. */
static void purge(struct pg_src *c)
{
	char sql[256], secs[32], *err = NULL, line[256];
	snprintf(sql, sizeof(sql),
		 "DELETE FROM %s WHERE state = 'done' AND updated_at < now() - "
		 "make_interval(secs => $1)",
		 c->qt);
	snprintf(secs, sizeof(secs), "%.3f", c->retain);
	const char *p[] = {secs};
	PGresult *res = run(c, sql, 1, p, &err);
	if (!res)
		hop_log(HOP_WARN, "postgres source: deleting done rows: %s",
			hop_pg_first_line(err, line, sizeof(line)));
	PQclear(res);
	free(err);
}

static int db_listen(struct pg_src *c)
{
	char sql[160], *err = NULL;
	const char *base =
	    strchr(c->table, '.') ? strchr(c->table, '.') + 1 : c->table;
	if (!c->notify)
		return 0;
	snprintf(sql, sizeof(sql), "LISTEN \"%s\"", base);
	PGresult *res = run(c, sql, 0, NULL, &err);
	PQclear(res);
	free(err);
	return res ? 0 : -EIO;
}

/* Hands back the rows in this run's name that it does not know it holds:
 * a claim's, committed as the connection went, its answer lost. No worker
 * had them, so their attempt does not count. A claim still running on the
 * server (the old connection's backend has not noticed it is gone) keeps
 * its rows locked and is skipped; its rows come back with their lease. */
static void release_unknown(struct pg_src *c)
{
	struct hop_buf ids = {0};
	char sql[512], *err = NULL, line[256];

	held_array(c, &ids);
	snprintf(sql, sizeof(sql),
		 "WITH o AS (SELECT id FROM %s WHERE state = 'running' AND"
		 " holder = $1 AND NOT id = ANY($2::bigint[])"
		 " FOR UPDATE SKIP LOCKED)"
		 " UPDATE %s q SET state = 'ready',"
		 " attempts = greatest(q.attempts - 1, 0), lease_until = NULL,"
		 " holder = NULL, updated_at = now() FROM o WHERE q.id = o.id",
		 c->qt, c->qt);
	const char *p[] = {c->holder, hop_buf_head(&ids)};
	PGresult *res = run(c, sql, 2, p, &err);
	if (!res)
		hop_log(HOP_WARN,
			"postgres source: handing back the rows of a claim "
			"whose answer was lost: %s; they come back when their "
			"lease ends",
			hop_pg_first_line(err, line, sizeof(line)));
	else if (atoi(PQcmdTuples(res)) > 0)
		hop_log(HOP_INFO,
			"postgres source: %s rows claimed as the connection "
			"went, their answer lost, are back in the queue",
			PQcmdTuples(res));
	PQclear(res);
	free(err);
	hop_buf_free(&ids);
}

static void reconnect(struct pg_src *c)
{
	double wait = 0.2;
	atomic_store(&c->offline, true);
	/* Stopping, the last updates get one more try (the server may be
	 * back), then the leases bring their rows back. */
	while (!c->last_try) {
		c->last_try = c->stop;
		PQreset(c->conn);
		c->prepared = 0; /* a new session */
		if (PQstatus(c->conn) == CONNECTION_OK && db_listen(c) == 0) {
			hop_log(HOP_INFO, "postgres source: connected again");
			atomic_store(&c->offline, false);
			release_unknown(c);
			return;
		}
		if (c->last_try)
			break;
		char line[256];
		hop_log(HOP_WARN,
			"postgres source: no connection (%s); trying "
			"again in %.1f s",
			hop_pg_first_line(PQerrorMessage(c->conn), line,
					  sizeof(line)),
			wait);
		struct timespec ts = {(time_t)wait,
				      (long)((wait - (time_t)wait) * 1e9)};
		nanosleep(&ts, NULL);
		if (wait < 5)
			wait *= 2;
	}
}

/* Takes the notifications libpq holds, after reading what the socket has
 * when consume is set; true when there was any. */
static bool take_notifies(struct pg_src *c, bool consume)
{
	bool any = false;
	PGnotify *nf;

	if (consume)
		PQconsumeInput(c->conn);
	while ((nf = PQnotifies(c->conn))) {
		any = true;
		PQfreemem(nf);
	}
	return any;
}

static void *db_thread(void *arg)
{
	struct pg_src *c = arg;
	double next_beat = now_s() + c->lease / 3;
	double next_purge = now_s();

	c->next_poll = now_s();
	for (;;) {
		pthread_mutex_lock(&c->mu);
		struct req *batch = c->todo;
		c->todo = c->todo_tail = NULL;
		bool stop = c->stop;
		pthread_mutex_unlock(&c->mu);

		/* Updates first (a nack may make a row due for the claim),
		 * then the claims, in order. */
		struct req *updates = NULL, *claims = NULL, **ct = &claims;
		while (batch) {
			struct req *r = batch;
			batch = r->next;
			if (r->type == R_CLAIM) {
				r->next = NULL;
				*ct = r;
				ct = &r->next;
			} else {
				r->next = updates;
				updates = r;
			}
		}
		do_updates(c, updates);
		while (claims) {
			struct req *r = claims;
			if (do_claim(c, r) &&
			    PQstatus(c->conn) != CONNECTION_OK) {
				char line[256];
				hop_log(HOP_WARN,
					"postgres source: lost the connection: "
					"%s",
					hop_pg_first_line(r->error, line,
							  sizeof(line)));
				reconnect(c);
				if (PQstatus(c->conn) == CONNECTION_OK) {
					free(r->error);
					r->error = NULL;
					continue;
				}
			}
			claims = r->next;
			post(c, r);
		}
		if (stop)
			break;
		double now = now_s();
		if (now >= next_beat) {
			heartbeat(c);
			next_beat = now + c->lease / 3;
		}
		bool tick = false, notified = false;
		if (c->retain > 0 && now >= next_purge) {
			purge(c);
			next_purge = now + (c->retain < 60 ? c->retain : 60);
		}
		if (now >= c->next_poll) {
			refresh_depth(c);
			c->next_poll = now + c->poll;
			tick = true;
		}
		/* A notification that came in while a query ran was read
		 * with its answer: the socket will not say so again. */
		notified = take_notifies(c, false);
		struct pollfd p[2] = {{c->wfd, POLLIN, 0},
				      {PQsocket(c->conn), POLLIN, 0}};
		double until =
		    c->next_poll < next_beat ? c->next_poll : next_beat;
		int ms = (int)((until - now_s()) * 1000) + 1;
		if (!tick && !notified && poll(p, 2, ms < 0 ? 0 : ms) > 0) {
			uint64_t v;
			if (p[0].revents && read(c->wfd, &v, sizeof(v)) < 0) {
				/* EAGAIN: someone else drained it. */
			}
			if (p[1].revents)
				notified = take_notifies(c, true);
		}
		if (tick || notified) {
			pthread_mutex_lock(&c->mu);
			c->wake = true;
			pthread_mutex_unlock(&c->mu);
			/* Logged once the wake is set: the loop's next claim
			 * comes after this line. */
			hop_log(HOP_DEBUG, "postgres source: %s",
				notified ? "woken by a notification"
					 : "polling");
			uint64_t one = 1;
			if (write(c->efd, &one, sizeof(one)) < 0) {
				/* See post(). */
			}
		}
	}
	return NULL;
}

/* ---- the loop side ---- */

static void enqueue(struct pg_src *c, struct req *r)
{
	uint64_t one = 1;
	pthread_mutex_lock(&c->mu);
	if (c->todo_tail)
		c->todo_tail->next = r;
	else
		c->todo = r;
	c->todo_tail = r;
	pthread_mutex_unlock(&c->mu);
	if (write(c->wfd, &one, sizeof(one)) < 0) {
		/* See post(). */
	}
}

/* Reports a dead update's answer: the item is dead once its row is; if
 * not, it stays the row's holder's, and the row comes back when its lease
 * ends. */
static void report_dead(struct hop_source *src, struct req *r)
{
	struct pg_src *c = src->ctx;
	char line[256];

	if (!r->dead)
		snprintf(src->error, sizeof(src->error),
			 "postgres source: %s: row %lld: the dead letter was "
			 "not written (%s): the row is not dead, and is done "
			 "again once its lease ends",
			 c->table, (long long)r->id,
			 hop_pg_first_line(r->error ? r->error : "", line,
					   sizeof(line)));
	hop_source_dead_done(src, r->item ? r->item : "?", r->dead);
}

static void on_thread(struct hop_loop *loop, int fd, uint32_t ev, void *arg)
{
	struct hop_source *src = arg;
	struct pg_src *c = src->ctx;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0)
		return;
	pthread_mutex_lock(&c->mu);
	struct req *list = c->done;
	c->done = NULL;
	bool wake = c->wake, found_nothing = false;
	c->wake = false;
	pthread_mutex_unlock(&c->mu);
	while (list) {
		struct req *r = list;
		list = r->next;
		char line[256];
		if (r->type == R_DEAD) {
			report_dead(src, r);
			free_req(r);
			continue;
		}
		if (r->error)
			hop_log(
			    HOP_ERROR, "postgres source: %s: %s", c->table,
			    hop_pg_first_line(r->error, line, sizeof(line)));
		if (r->type == R_CLAIM) {
			c->claiming = false;
			c->empty = r->items.len == 0 && !r->error;
			found_nothing = c->empty;
			/* A nack sent after this claim is not in its count. */
			c->drained =
			    c->empty && r->n == 0 && r->nacks == c->nacks_sent;
			struct hop_item *it;
			while ((it = hop_queue_pop(&r->items)))
				hop_queue_push(&c->ready, it);
		}
		free_req(r);
	}
	/* After the claims: a claim that found nothing may have been sent
	 * before the rows that woke us were there, so the wake wins. */
	if (wake) {
		c->empty = false;
		c->drained = false;
	} else if (found_nothing && c->empty && !c->claiming) {
		hop_log(HOP_DEBUG, "postgres source: idle until a notification "
				   "or the next poll");
	}
	hop_source_wake(src);
}

/* The names are spliced into SQL (quoted) and retain into intervals: each
 * is refused here, by name, before any connection. */
static int pg_check(struct hop_source *src, const char **key)
{
	struct pg_src *c = src->ctx;

	if (!hop_pg_valid_ident(c->table)) {
		snprintf(src->error, sizeof(src->error),
			 "postgres source: table name '%s' is not a valid "
			 "identifier (letters, digits and _)",
			 c->table);
		*key = "table";
		return -EINVAL;
	}
	const char *cols[] = {c->payload_column, c->key_column};
	const char *keys[] = {"payload_column", "key_column"};
	for (int i = 0; i < 2; i++) {
		if (!hop_pg_valid_ident(cols[i]) || strchr(cols[i], '.')) {
			snprintf(src->error, sizeof(src->error),
				 "postgres source: column name '%s' is not a "
				 "valid identifier (letters, digits and _)",
				 cols[i]);
			*key = keys[i];
			return -EINVAL;
		}
	}
	if (strcmp(c->retain_opt, "forever") == 0) {
		c->retain = -1;
	} else if (hop_parse_seconds(c->retain_opt, &c->retain)) {
		snprintf(src->error, sizeof(src->error),
			 "postgres source: retain '%s' is not a time (like 7s, "
			 "30m, 48h) or forever",
			 c->retain_opt);
		*key = "retain";
		return -EINVAL;
	}
	return 0;
}

static int pg_open(struct hop_source *src)
{
	struct pg_src *c = src->ctx;
	char sql[4096], host[256] = "", line[256];
	const char *key;
	int rc;

	c->src = src;
	c->efd = c->wfd = -1;
	if ((rc = pg_check(src, &key)))
		return rc;
	size_t qlen = strlen(c->table) + 8;
	c->qt = malloc(qlen);
	if (!c->qt)
		return -ENOMEM;
	hop_pg_quote(c->qt, qlen, c->table);
	c->conn = PQconnectdb(c->url ? c->url : "");
	PQsetNoticeProcessor(c->conn, hop_pg_notice, "postgres source");
	if (PQstatus(c->conn) != CONNECTION_OK) {
		char safe[512];
		snprintf(
		    src->error, sizeof(src->error),
		    "postgres source: cannot connect: %s",
		    hop_pg_first_line(hop_pg_redact(c->url ? c->url : "",
						    PQerrorMessage(c->conn),
						    safe, sizeof(safe)),
				      line, sizeof(line)));
		rc = -ECONNREFUSED;
		goto err;
	}
	if (c->create && hop_pg_schema_sql(c->table, sql, sizeof(sql)) == 0) {
		PGresult *res = PQexec(c->conn, sql);
		int bad = PQresultStatus(res) != PGRES_COMMAND_OK;
		if (bad)
			snprintf(src->error, sizeof(src->error),
				 "postgres source: creating %s: %s", c->table,
				 hop_pg_first_line(PQresultErrorMessage(res),
						   line, sizeof(line)));
		PQclear(res);
		if (bad) {
			rc = -EIO;
			goto err;
		}
	}
	char *err = NULL;
	/* The queue's own columns and the ones named: all there? */
	snprintf(sql, sizeof(sql),
		 "SELECT id, state, attempts, run_at, lease_until, holder, "
		 "\"%s\", \"%s\" FROM %s LIMIT 0",
		 c->payload_column, c->key_column, c->qt);
	PGresult *res = run(c, sql, 0, NULL, &err);
	PQclear(res);
	if (!res) {
		snprintf(src->error, sizeof(src->error),
			 "postgres source: table %s: %s", c->table,
			 hop_pg_first_line(err, line, sizeof(line)));
		free(err);
		rc = -ENOENT;
		goto err;
	}
	if (db_listen(c)) {
		snprintf(src->error, sizeof(src->error),
			 "postgres source: LISTEN failed");
		rc = -EIO;
		goto err;
	}
	/* host:pid:nonce, the nonce so that a later run with the same pid
	 * (a restarted container's) is not taken for this one. */
	gethostname(host, sizeof(host) - 1);
	uint32_t nonce = 0;
	if (getrandom(&nonce, sizeof(nonce), 0) != sizeof(nonce))
		nonce = (uint32_t)hop_now_ms();
	snprintf(c->holder, sizeof(c->holder), "%.100s:%d:%08x", host,
		 (int)getpid(), nonce);
	pthread_mutex_init(&c->mu, NULL);
	c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c->wfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->efd < 0 || c->wfd < 0 ||
	    hop_loop_watch(src->loop, c->efd, EPOLLIN, on_thread, src) ||
	    pthread_create(&c->tid, NULL, db_thread, c)) {
		snprintf(src->error, sizeof(src->error),
			 "postgres source: cannot start: %s", strerror(errno));
		rc = -EIO;
		goto err;
	}
	c->started = true;
	return 0;

err:
	/* A failed open leaves nothing behind: close is not called. */
	if (c->efd >= 0) {
		hop_loop_unwatch(src->loop, c->efd);
		close(c->efd);
	}
	if (c->wfd >= 0)
		close(c->wfd);
	c->efd = c->wfd = -1;
	PQfinish(c->conn);
	c->conn = NULL;
	free(c->qt);
	c->qt = NULL;
	return rc;
}

static int pg_fetch(struct hop_source *src, struct hop_queue *out, size_t max)
{
	struct pg_src *c = src->ctx;
	struct hop_item *it;

	/* Claim ahead: keep up to `ahead` rows claimed in memory, as many as
	 * the pool takes at once (and at most a batch), so that the workers
	 * never wait for a claim's round trip. Claiming again only when half
	 * are gone keeps claims large. */
	if (max > c->ahead)
		c->ahead = max < (size_t)c->batch ? max : (size_t)c->batch;
	while (max > 0 && (it = hop_queue_pop(&c->ready))) {
		hop_queue_push(out, it);
		max--;
	}
	if (!c->claiming && !c->empty && c->ready.len <= c->ahead / 2 &&
	    (max > 0 || c->ready.len < c->ahead)) {
		struct req *r = calloc(1, sizeof(*r));
		if (!r)
			return -ENOMEM;
		r->type = R_CLAIM;
		r->n = (int)(c->ahead - c->ready.len + max);
		if (r->n > c->batch)
			r->n = (int)c->batch;
		r->nacks = c->nacks_sent;
		c->claiming = true;
		enqueue(c, r);
	}
	return 0;
}

/* Queues an update of the item's row and lets go of the item. */
static int update(struct hop_source *src, struct hop_item *it,
		  enum req_type type, double delay, const char *record)
{
	struct pg_src *c = src->ctx;
	struct req *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->type = type;
	const struct claim *claim = it->src_data;
	r->id = claim->id;
	r->attempts = claim->attempts;
	r->delay = delay;
	r->text = it->error ? strdup(it->error) : NULL;
	r->record = record ? strdup(record) : NULL;
	if (type == R_DEAD && !(r->item = strdup(it->id))) {
		free_req(r);
		return -ENOMEM;
	}
	if (type == R_ACK && c->insert) {
		/* The joined sink's write happens here: take the result. */
		r->result = it->result;
		it->result = NULL;
	}
	free(it->src_data);
	it->src_data = NULL;
	enqueue(c, r);
	return 0;
}

static int pg_ack(struct hop_source *src, struct hop_item *it)
{
	return update(src, it, R_ACK, 0, NULL);
}

static int pg_nack(struct hop_source *src, struct hop_item *it,
		   int64_t delay_ms)
{
	struct pg_src *c = src->ctx;
	c->drained = false; /* it will be due again */
	c->nacks_sent++;
	return update(src, it, R_NACK, (double)delay_ms / 1000, NULL);
}

/* Dead once the server says the row is: the answer comes through
 * report_dead. */
static int pg_dead(struct hop_source *src, struct hop_item *it,
		   const char *record)
{
	int rc = update(src, it, R_DEAD, 0, record);
	if (rc)
		snprintf(src->error, sizeof(src->error),
			 "postgres source: %s: %s: the dead letter was not "
			 "written: %s",
			 ((struct pg_src *)src->ctx)->table, it->id,
			 strerror(-rc));
	return rc ? rc : HOP_SOURCE_PENDING;
}

static int pg_release(struct hop_source *src, struct hop_item *it)
{
	return update(src, it, R_RELEASE, 0, NULL);
}

static bool pg_exhausted(struct hop_source *src)
{
	struct pg_src *c = src->ctx;
	return !src->watch && c->drained && !c->claiming && !c->ready.head;
}

static int64_t pg_depth(struct hop_source *src)
{
	struct pg_src *c = src->ctx;
	return atomic_load(&c->depth) + (int64_t)c->ready.len;
}

static bool pg_ready(struct hop_source *src, char *why, size_t n)
{
	struct pg_src *c = src->ctx;
	if (!atomic_load(&c->offline))
		return true;
	snprintf(why, n,
		 "postgres source: no connection to the server, "
		 "reconnecting");
	return false;
}

static void pg_close(struct hop_source *src)
{
	struct pg_src *c = src->ctx;
	struct hop_item *it;

	/* Claimed but never fetched: back to the queue, unattempted. */
	while ((it = hop_queue_pop(&c->ready))) {
		pg_release(src, it);
		hop_item_free(it);
	}
	if (c->started) {
		pthread_mutex_lock(&c->mu);
		c->stop = true;
		pthread_mutex_unlock(&c->mu);
		uint64_t one = 1;
		if (write(c->wfd, &one, sizeof(one)) < 0) {
			/* See post(). */
		}
		pthread_join(c->tid, NULL);
		pthread_mutex_destroy(&c->mu);
		/* Every pending update ran before the thread stopped: the
		 * dead ones are reported here, dead or not. */
		while (c->done) {
			struct req *r = c->done;
			c->done = r->next;
			if (r->type == R_DEAD)
				report_dead(src, r);
			free_req(r);
		}
	}
	if (c->efd >= 0) {
		hop_loop_unwatch(src->loop, c->efd);
		close(c->efd);
	}
	if (c->wfd >= 0)
		close(c->wfd);
	PQfinish(c->conn);
	free(c->qt);
	free(c->held);
	free(c->insert);
}

/* ---- dead letters, for hopper dead (pgdead.h) ---- */

static int pg_dead_open(struct hop_source *src)
{
	struct pg_src *c = src->ctx;
	return hop_pg_dead_open(&c->dead, c->url, c->table, c->key_column,
				c->payload_column, src->error,
				sizeof(src->error));
}

static int pg_dead_list(struct hop_source *src, hop_dead_each_fn each,
			void *arg)
{
	struct pg_src *c = src->ctx;
	return hop_pg_dead_list(&c->dead, each, arg, src->error,
				sizeof(src->error));
}

static int pg_dead_retry(struct hop_source *src, const char *id, FILE *out)
{
	struct pg_src *c = src->ctx;
	return hop_pg_dead_retry(&c->dead, id, src->error, sizeof(src->error));
}

static int pg_dead_discard(struct hop_source *src, const char *id)
{
	struct pg_src *c = src->ctx;
	return hop_pg_dead_discard(&c->dead, id, src->error,
				   sizeof(src->error));
}

static void pg_dead_close(struct hop_source *src)
{
	struct pg_src *c = src->ctx;
	hop_pg_dead_close(&c->dead);
}

const struct hop_source_ops hop_src_postgres;

int hop_pg_source_join(struct hop_source *src, const char *url,
		       const char *insert)
{
	if (src->ops != &hop_src_postgres)
		return -EINVAL;
	struct pg_src *c = src->ctx;
	if (strcmp(c->url ? c->url : "", url ? url : ""))
		return -EINVAL;
	char *dup = strdup(insert);
	if (!dup)
		return -ENOMEM;
	free(c->insert);
	c->insert = dup;
	return 0;
}

/* A queue table is made and filled outside a run too. */
static const struct hop_command pg_commands[] = {
    {"pg", "init [URL] [--table NAME]", hop_pg_command},
    {"enqueue", "[URL] [--table NAME] [--key FIELD] [--skip-bad] [FILE...]",
     hop_enqueue_command},
    {0},
};

/* An edge's rows: the key is the item's id, the payload its payload. */
static const char *const pg_edge_fixed[] = {"key_column=key",
					    "payload_column=payload", NULL};
static const char *const pg_edge_defaults[] = {"table=hopper_to_%s",
					       "create=true", NULL};

const struct hop_source_ops hop_src_postgres = {
    .name = "postgres",
    .forms = "postgres://URL",
    .summary = "rows of a queue table, claimed with leases; many "
	       "coordinators can share one",
    .options = pg_options,
    .ctx_size = sizeof(struct pg_src),
    .check = pg_check,
    .open = pg_open,
    .fetch = pg_fetch,
    .ack = pg_ack,
    .dead = pg_dead,
    .dead_place = "rows in state dead; retry makes them ready, due now, "
		  "with their attempts at 0; discard deletes them",
    .dead_open = pg_dead_open,
    .dead_list = pg_dead_list,
    .dead_retry = pg_dead_retry,
    .dead_discard = pg_dead_discard,
    .dead_close = pg_dead_close,
    .dead_live = true,
    .commands = pg_commands,
    .release = pg_release,
    .nack = pg_nack,
    .depth = pg_depth,
    .ready = pg_ready,
    .exhausted = pg_exhausted,
    .close = pg_close,
    .edge_fixed = pg_edge_fixed,
    .edge_defaults = pg_edge_defaults,
};
