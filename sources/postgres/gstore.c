/* gstore.c - a join by key's groups and a reduce's accumulators in
 * PostgreSQL (coordinator/gstore.h).
 *
 * TABLE holds the parts (key, id, number, payload or error) and
 * TABLE_groups one row per group: its size once a part said it, its state
 * (open, emitting, done, dead), the coordinator that hands it on, and when
 * it opened and closed. Adding a part locks its group's row first (an
 * upsert), so that parts of one group added by two coordinators at once
 * are counted one after the other and only one of them sees the group
 * complete. Each coordinator holds a session advisory lock on its own
 * random number for as long as it is connected: a group whose owner's
 * lock is free was left by a coordinator that is gone.
 */
#include "coordinator/gstore.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "sources/postgres/pgqueue.h"

struct hop_gstore {
	PGconn *conn;
	char *url;
	char *table;	  /* as given, for messages */
	const char *kind; /* "join" or "reduce" */
	/* Quoted: a join's parts or a reduce's accumulators (TABLE), its
	 * groups or windows (TABLE_groups, TABLE_windows), a reduce's counted
	 * ids (TABLE_seen). */
	char parts[140];
	char groups[140];
	char seen[140];
	char add[140];	/* a join's function that stores a part */
	char owner[24]; /* this coordinator's number, in text */
	char stage[64];
};

/* Whether table, and the names made from it, are names hopper takes. */
static bool valid_table(const char *table)
{
	char name[80];

	snprintf(name, sizeof(name), "%s_windows", table);
	return hop_pg_valid_ident(table) && hop_pg_valid_ident(name);
}

int hop_gstore_check(const char *url, const char *table, char *msg, size_t n)
{
	if (strncmp(url, "postgres://", 11) &&
	    strncmp(url, "postgresql://", 13)) {
		snprintf(msg, n,
			 "'state' is where groups are kept: a PostgreSQL URL "
			 "(postgres://...), not '%s'",
			 url);
		return -EINVAL;
	}
	if (table && !valid_table(table)) {
		snprintf(msg, n,
			 "'state_table' '%s' is not a valid name (letters, "
			 "digits and _, at most 55 bytes, after a schema and "
			 "a dot if any)",
			 table);
		return -EINVAL;
	}
	return 0;
}

const char *hop_gstore_table(const struct hop_gstore *s)
{
	return s->table;
}

/* Writes "join STAGE, state TABLE: what: the server's first line" (or
 * "reduce ...") to msg. */
static void fail(struct hop_gstore *s, const char *what, char *msg, size_t n)
{
	char line[300], safe[512];

	snprintf(
	    msg, n, "%s %s, state %s: %s: %s", s->kind, s->stage, s->table,
	    what,
	    hop_pg_first_line(hop_pg_redact(s->url, PQerrorMessage(s->conn),
					    safe, sizeof(safe)),
			      line, sizeof(line)));
}

/* Runs sql with params, of lens and formats when given (NULL: text),
 * asking for binary results when binary; NULL (msg set, and the
 * transaction rolled back) when it failed. */
static PGresult *qb(struct hop_gstore *s, const char *sql, int np,
		    const char *const *params, const int *lens,
		    const int *formats, int binary, const char *what, char *msg,
		    size_t n)
{
	PGresult *res =
	    PQexecParams(s->conn, sql, np, NULL, params, lens, formats, binary);
	ExecStatusType st = PQresultStatus(res);

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return res;
	fail(s, what, msg, n);
	PQclear(res);
	if (PQtransactionStatus(s->conn) == PQTRANS_INERROR)
		PQclear(PQexec(s->conn, "ROLLBACK"));
	return NULL;
}

static PGresult *q(struct hop_gstore *s, const char *sql, int np,
		   const char *const *params, const char *what, char *msg,
		   size_t n)
{
	return qb(s, sql, np, params, NULL, NULL, 0, what, msg, n);
}

/* Runs sql that answers nothing the caller needs. Returns 0 or -EIO. */
static int run_sql(struct hop_gstore *s, const char *sql, int np,
		   const char *const *params, const char *what, char *msg,
		   size_t n)
{
	PGresult *res = q(s, sql, np, params, what, msg, n);

	if (!res)
		return -EIO;
	PQclear(res);
	return 0;
}

/* A connection that broke (the server restarted) is made again once. */
static int connected(struct hop_gstore *s, char *msg, size_t n)
{
	const char *p[1] = {s->owner};

	if (PQstatus(s->conn) == CONNECTION_OK)
		return 0;
	PQreset(s->conn);
	if (PQstatus(s->conn) != CONNECTION_OK) {
		fail(s, "cannot connect", msg, n);
		return -EIO;
	}
	return run_sql(s, "SELECT pg_advisory_lock($1::bigint)", 1, p,
		       "cannot take its owner lock", msg, n);
}

/* Quotes table with suffix into buf (n bytes): the suffix on the name,
 * not the schema. Returns 0, or -1 when the name is not one hopper takes. */
static int name_of(char *buf, size_t n, const char *table, const char *suffix)
{
	char name[100];
	const char *dot = strrchr(table, '.');

	snprintf(name, sizeof(name), "%s%s", suffix[0] == '!' ? "" : table,
		 suffix[0] == '!' ? suffix + 1 : suffix);
	if (suffix[0] == '!') /* an index: named in the table's schema */
		snprintf(name, sizeof(name), "%s%s", dot ? dot + 1 : table,
			 suffix + 1);
	return hop_pg_valid_ident(name) && !hop_pg_quote(buf, n, name) ? 0 : -1;
}

int hop_gstore_open(const char *url, const char *table, const char *stage,
		    bool reduce, struct hop_gstore **out, char *msg, size_t n)
{
	struct hop_gstore *s = calloc(1, sizeof(*s));
	char sql[3000], index[140];
	uint64_t r = 0;
	int rc = -EIO;

	*out = NULL;
	if (!s || !(s->url = strdup(url)) || !(s->table = strdup(table))) {
		snprintf(msg, n, "stage %s: out of memory", stage);
		rc = -ENOMEM;
		goto err;
	}
	s->kind = reduce ? "reduce" : "join";
	snprintf(s->stage, sizeof(s->stage), "%s", stage);
	if (!valid_table(table) ||
	    name_of(s->parts, sizeof(s->parts), table, "") ||
	    name_of(s->groups, sizeof(s->groups), table,
		    reduce ? "_windows" : "_groups") ||
	    name_of(s->seen, sizeof(s->seen), table, "_seen") ||
	    name_of(s->add, sizeof(s->add), table, "_add") ||
	    name_of(index, sizeof(index), table, "!_open")) {
		snprintf(msg, n,
			 "%s %s: state table '%s' is not a valid name "
			 "(letters, digits and _, at most 55 bytes)",
			 s->kind, stage, table);
		rc = -EINVAL;
		goto err;
	}
	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r ^= (uint64_t)(uintptr_t)s;
	snprintf(s->owner, sizeof(s->owner), "%" PRId64,
		 (int64_t)(r & INT64_MAX));
	s->conn = PQconnectdb(url);
	PQsetNoticeProcessor(s->conn, hop_pg_notice, "state");
	if (PQstatus(s->conn) != CONNECTION_OK) {
		fail(s, "cannot connect", msg, n);
		goto err;
	}
	/* Two coordinators making the tables at once would collide in the
	 * catalog: one at a time. */
	if (reduce)
		snprintf(sql, sizeof(sql),
			 "BEGIN; SET LOCAL client_min_messages = warning;"
			 "SELECT pg_advisory_xact_lock(7206071);"
			 "CREATE TABLE IF NOT EXISTS %s (win bigint NOT NULL, "
			 "key text NOT NULL, result text NOT NULL, PRIMARY KEY "
			 "(win, key));"
			 "CREATE TABLE IF NOT EXISTS %s (win bigint PRIMARY "
			 "KEY, state text NOT NULL DEFAULT 'open', owner "
			 "bigint, error text, closes timestamptz, closed "
			 "timestamptz);"
			 "CREATE TABLE IF NOT EXISTS %s (win bigint NOT NULL, "
			 "id text NOT NULL, PRIMARY KEY (win, id));"
			 "COMMIT;",
			 s->parts, s->groups, s->seen);
	else
		snprintf(sql, sizeof(sql),
			 "BEGIN; SET LOCAL client_min_messages = warning;"
			 "SELECT pg_advisory_xact_lock(7206071);"
			 "CREATE TABLE IF NOT EXISTS %s (key text NOT NULL, id "
			 "text NOT NULL, seq bigint NOT NULL DEFAULT -1, "
			 "payload bytea, stage text, error text, added "
			 "timestamptz NOT NULL DEFAULT now(), PRIMARY KEY "
			 "(key, id));"
			 "CREATE TABLE IF NOT EXISTS %s (key text PRIMARY KEY, "
			 "expected bigint, state text NOT NULL DEFAULT 'open', "
			 "owner bigint, error text, opened timestamptz NOT "
			 "NULL DEFAULT now(), closed timestamptz);"
			 "CREATE INDEX IF NOT EXISTS %s ON %s (state, opened);"
			 /* Stores a part: locks its group's row (an upsert),
			  * so that parts stored at once by several
			  * coordinators are counted one after the other;
			  * 3: late (the group was handed on), 2: a copy,
			  * 1: complete and now owner's to hand on, 0: wait. */
			 "CREATE OR REPLACE FUNCTION %s(k text[], i text[], sq "
			 "bigint[], ex bigint[], pl bytea[], stg text[], err "
			 "text[], own bigint) RETURNS SETOF int LANGUAGE "
			 "plpgsql AS $f$ "
			 "DECLARE v int[] := array_fill(0, "
			 "ARRAY[cardinality(k)]); o bigint; st text; want "
			 "bigint; got bigint; added int; "
			 "BEGIN "
			 /* In key order, so that two batches lock their
			  * groups in one order and never deadlock. */
			 "FOR o IN SELECT u.n FROM unnest(k) WITH ORDINALITY "
			 "AS u(key, n) ORDER BY u.key, u.n LOOP "
			 "INSERT INTO %s AS g (key, expected) VALUES (k[o], "
			 "NULLIF(ex[o], -1)) ON CONFLICT (key) DO UPDATE SET "
			 "expected = COALESCE(g.expected, EXCLUDED.expected) "
			 "RETURNING g.state, g.expected INTO st, want; "
			 "IF st <> 'open' THEN v[o] := 3; CONTINUE; END IF; "
			 "INSERT INTO %s (key, id, seq, payload, stage, error) "
			 "VALUES (k[o], i[o], sq[o], pl[o], stg[o], err[o]) ON "
			 "CONFLICT DO NOTHING; "
			 "GET DIAGNOSTICS added = ROW_COUNT; "
			 "v[o] := CASE WHEN added = 0 THEN 2 ELSE 0 END; "
			 "IF want IS NOT NULL THEN "
			 "SELECT count(*) INTO got FROM %s WHERE key = k[o]; "
			 "IF got >= want THEN "
			 "UPDATE %s SET state = 'emitting', owner = own WHERE "
			 "key = k[o]; v[o] := 1; END IF; END IF; "
			 "END LOOP; "
			 "RETURN QUERY SELECT unnest(v); "
			 "END $f$;"
			 "COMMIT;",
			 s->parts, s->groups, index, s->groups, s->add,
			 s->groups, s->parts, s->parts, s->groups);
	PGresult *res = PQexec(s->conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		fail(s, "cannot make its tables", msg, n);
		PQclear(res);
		goto err;
	}
	PQclear(res);
	const char *p[1] = {s->owner};
	if (run_sql(s, "SELECT pg_advisory_lock($1::bigint)", 1, p,
		    "cannot take its owner lock", msg, n))
		goto err;
	*out = s;
	return 0;
err:
	hop_gstore_close(s);
	return rc;
}

/* Appends text to f as an element of an array literal: quoted, or NULL. */
static void array_item(FILE *f, const char *text)
{
	if (!text) {
		fputs("NULL", f);
		return;
	}
	fputc('"', f);
	for (const char *c = text; *c; c++) {
		if (*c == '"' || *c == '\\')
			fputc('\\', f);
		fputc(*c, f);
	}
	fputc('"', f);
}

/* Appends n bytes at b to f as an element of a bytea array literal:
 * "\\x" and their hex. */
static void bytea_of(FILE *f, const char *b, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	fputs("\"\\\\x", f);
	for (size_t i = 0; i < n; i++) {
		fputc(hex[(unsigned char)b[i] >> 4], f);
		fputc(hex[(unsigned char)b[i] & 15], f);
	}
	fputc('"', f);
}

/* The parts' columns as array literals, in cols[0..7) (to free): keys,
 * ids, numbers, sizes, payloads, stages, errors. Returns 0 or -ENOMEM. */
static int part_arrays(const struct hop_gstore_part *p, size_t np, char **cols)
{
	size_t len[7];
	FILE *f[7];
	int rc = 0;

	for (int c = 0; c < 7; c++) {
		cols[c] = NULL;
		if (!(f[c] = open_memstream(&cols[c], &len[c])))
			rc = -ENOMEM;
	}
	for (size_t i = 0; !rc && i < np; i++) {
		const char *texts[5] = {p[i].key, p[i].id, NULL, p[i].stage,
					p[i].error};
		for (int c = 0; c < 7; c++)
			fputc(i ? ',' : '{', f[c]);
		array_item(f[0], texts[0]);
		array_item(f[1], texts[1]);
		fprintf(f[2], "%" PRId64, p[i].seq);
		fprintf(f[3], "%" PRId64, p[i].expected);
		if (p[i].payload)
			bytea_of(f[4], p[i].payload, p[i].len);
		else
			fputs("NULL", f[4]);
		array_item(f[5], texts[3]);
		array_item(f[6], texts[4]);
	}
	for (int c = 0; c < 7; c++) {
		if (!f[c])
			continue;
		fputs(np ? "}" : "{}", f[c]);
		if (fclose(f[c]))
			rc = -ENOMEM;
	}
	if (rc)
		for (int c = 0; c < 7; c++) {
			free(cols[c]);
			cols[c] = NULL;
		}
	return rc;
}

int hop_gstore_add(struct hop_gstore *s, const struct hop_gstore_part *p,
		   size_t np, int *verdicts, char *msg, size_t n)
{
	char sql[300], *cols[7];
	PGresult *res;

	if (connected(s, msg, n))
		return -EIO;
	if (part_arrays(p, np, cols)) {
		snprintf(msg, n, "%s %s: out of memory", s->kind, s->stage);
		return -EIO;
	}
	/* One call of the tables' function (hop_gstore_open): one round trip
	 * and one transaction for the batch. */
	snprintf(sql, sizeof(sql),
		 "SELECT %s($1::text[], $2::text[], $3::bigint[], "
		 "$4::bigint[], $5::bytea[], $6::text[], $7::text[], "
		 "$8::bigint)",
		 s->add);
	const char *pp[8] = {cols[0], cols[1], cols[2], cols[3],
			     cols[4], cols[5], cols[6], s->owner};
	res = q(s, sql, 8, pp, "cannot store the parts", msg, n);
	for (int c = 0; c < 7; c++)
		free(cols[c]);
	if (!res)
		return -EIO;
	if ((size_t)PQntuples(res) != np) {
		snprintf(msg, n, "%s %s, state %s: %d verdicts for %zu parts",
			 s->kind, s->stage, s->table, PQntuples(res), np);
		PQclear(res);
		return -EIO;
	}
	for (size_t i = 0; i < np; i++)
		verdicts[i] = atoi(PQgetvalue(res, (int)i, 0));
	PQclear(res);
	return 0;
}

int hop_gstore_load(struct hop_gstore *s, struct hop_group *g, char *msg,
		    size_t n)
{
	char sql[300];
	const char *p[1] = {g->key};
	PGresult *res;
	int rc = 0;

	if (connected(s, msg, n))
		return -EIO;
	snprintf(sql, sizeof(sql), "SELECT expected FROM %s WHERE key = $1",
		 s->groups);
	if (!(res = q(s, sql, 1, p, "cannot read the group", msg, n)))
		return -EIO;
	g->expected = PQntuples(res) && !PQgetisnull(res, 0, 0)
			  ? strtoll(PQgetvalue(res, 0, 0), NULL, 10)
			  : -1;
	PQclear(res);
	snprintf(sql, sizeof(sql),
		 "SELECT id, seq::text, payload, stage, error FROM %s WHERE "
		 "key = $1",
		 s->parts);
	/* Binary results: the payload's bytes as they are; the text
	 * columns come as their bytes too, with a NUL after each. */
	if (!(res = qb(s, sql, 1, p, NULL, NULL, 1, "cannot read the parts",
		       msg, n)))
		return -EIO;
	for (int i = 0; i < PQntuples(res) && !rc; i++) {
		const char *id = PQgetvalue(res, i, 0);
		if (!PQgetisnull(res, i, 4)) {
			hop_group_error(g, id, PQgetvalue(res, i, 3),
					PQgetvalue(res, i, 4));
			g->ndead++;
			continue;
		}
		size_t len = (size_t)PQgetlength(res, i, 2);
		char *pid = strdup(id);
		char *body = malloc(len + 1);
		if (body) {
			memcpy(body, PQgetvalue(res, i, 2), len);
			body[len] = '\0';
		}
		struct hop_item *it =
		    pid && body ? hop_item_new(pid, body, len) : NULL;
		if (!pid || !body) {
			free(pid);
			free(body);
		}
		rc = it ? hop_group_add_seq(
			      g, it, strtoll(PQgetvalue(res, i, 1), NULL, 10))
			: -ENOMEM;
		if (rc) {
			hop_item_free(it);
			rc = rc < 0 ? rc : 0;
		}
	}
	PQclear(res);
	if (rc)
		snprintf(msg, n, "join %s: out of memory reading group %s",
			 s->stage, g->key);
	return rc;
}

int hop_gstore_finish(struct hop_gstore *s, const char *key, const char *error,
		      char *msg, size_t n)
{
	char sql[600];

	if (connected(s, msg, n))
		return -EIO;
	if (error) {
		const char *p[2] = {key, error};
		snprintf(sql, sizeof(sql),
			 "UPDATE %s SET state = 'dead', error = $2, closed = "
			 "now() WHERE key = $1",
			 s->groups);
		return run_sql(s, sql, 2, p, "cannot mark the group dead", msg,
			       n);
	}
	const char *p[1] = {key};
	snprintf(sql, sizeof(sql),
		 "WITH d AS (DELETE FROM %s WHERE key = $1) UPDATE %s SET "
		 "state = 'done', owner = NULL, closed = now() WHERE key = $1",
		 s->parts, s->groups);
	return run_sql(s, sql, 1, p, "cannot close the group", msg, n);
}

/* Calls each for every key in res's first column; returns how many. */
static int each_key(PGresult *res, void (*each)(const char *, void *),
		    void *arg)
{
	int k = PQntuples(res);
	for (int i = 0; i < k; i++)
		each(PQgetvalue(res, i, 0), arg);
	PQclear(res);
	return k;
}

int hop_gstore_claim(struct hop_gstore *s, double timeout,
		     void (*each)(const char *key, void *arg), void *arg,
		     char *msg, size_t n)
{
	bool reduce = s->kind[0] == 'r';
	const char *col = reduce ? "win" : "key";
	char sql[600], secs[32];
	PGresult *res, *owners;
	int got = 0;

	if (connected(s, msg, n))
		return -EIO;
	const char *me[1] = {s->owner};
	/* Its own (the caller skips those it is writing) and those with no
	 * owner (one put back by hand). */
	snprintf(sql, sizeof(sql),
		 "UPDATE %s SET owner = $1::bigint WHERE state = 'emitting' "
		 "AND (owner IS NULL OR owner = $1::bigint) RETURNING %s",
		 s->groups, col);
	if (!(res = q(s, sql, 1, me, "cannot read its groups", msg, n)))
		return -EIO;
	got += each_key(res, each, arg);
	snprintf(sql, sizeof(sql),
		 "SELECT DISTINCT owner FROM %s WHERE state = 'emitting' AND "
		 "owner <> $1::bigint",
		 s->groups);
	if (!(owners = q(s, sql, 1, me, "cannot read the owners", msg, n)))
		return -EIO;
	for (int i = 0; i < PQntuples(owners); i++) {
		const char *o[2] = {PQgetvalue(owners, i, 0), s->owner};
		/* Its lock free: its coordinator is gone. */
		if (!(res = q(s, "SELECT pg_try_advisory_lock($1::bigint)", 1,
			      o, "cannot test an owner", msg, n)))
			goto err;
		bool gone = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		PQclear(res);
		if (!gone)
			continue;
		if (run_sql(s, "SELECT pg_advisory_unlock($1::bigint)", 1, o,
			    "cannot free an owner", msg, n))
			goto err;
		snprintf(sql, sizeof(sql),
			 "UPDATE %s SET owner = $2::bigint WHERE state = "
			 "'emitting' AND owner = $1::bigint RETURNING %s",
			 s->groups, col);
		if (!(res = q(s, sql, 2, o, "cannot take groups over", msg, n)))
			goto err;
		got += each_key(res, each, arg);
	}
	PQclear(owners);
	if (timeout <= 0)
		return got;
	/* Overdue: a group open longer than timeout, a window past the
	 * time it closes. */
	snprintf(secs, sizeof(secs), "%.3f", timeout);
	const char *tp[2] = {s->owner, secs};
	snprintf(sql, sizeof(sql),
		 "UPDATE %s SET state = 'emitting', owner = $1::bigint WHERE "
		 "%s IN (SELECT %s FROM %s WHERE state = 'open' AND %s FOR "
		 "UPDATE SKIP LOCKED) RETURNING %s",
		 s->groups, col, col, s->groups,
		 reduce ? "closes < now() AND $2::float8 > 0"
			: "opened < now() - make_interval(secs => $2::float8)",
		 col);
	if (!(res = q(s, sql, 2, tp, "cannot take overdue groups", msg, n)))
		return -EIO;
	return got + each_key(res, each, arg);
err:
	PQclear(owners);
	return -EIO;
}

/* Appends texts[0..n) to f as a PostgreSQL array literal of text. */
static void array_of(FILE *f, const char *const *texts, size_t n)
{
	fputc('{', f);
	for (size_t i = 0; i < n; i++) {
		if (i)
			fputc(',', f);
		array_item(f, texts[i]);
	}
	fputc('}', f);
}

/* texts as an array literal, to free; NULL when memory ran out. */
static char *array_text(const char *const *texts, size_t n)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	array_of(f, texts, n);
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* Marks which of ids are in res's first column (each once), in fresh. */
static int fresh_of(PGresult *res, const char *const *ids, size_t nids,
		    bool *fresh)
{
	struct hop_strmap *m = hop_strmap_new();
	int rc = m ? 0 : -ENOMEM;

	for (int i = 0; !rc && i < PQntuples(res); i++)
		rc = hop_strmap_put(m, PQgetvalue(res, i, 0), m);
	for (size_t i = 0; !rc && i < nids; i++)
		fresh[i] = hop_strmap_del(m, ids[i]) != NULL;
	hop_strmap_free(m);
	return rc;
}

/* Folds the stored results of rd's keys in window win into rd, then
 * writes rd's results back. Returns 0 or -EIO (msg). */
static int merge_window(struct hop_gstore *s, const char *win,
			struct hop_reducer *rd, char *msg, size_t n)
{
	size_t k = hop_reducer_keys(rd);
	char **ids = calloc(k + 1, sizeof(*ids));
	char **jsons = calloc(k + 1, sizeof(*jsons));
	char *keys = NULL, *results = NULL, sql[400];
	PGresult *res = NULL;
	int rc = -EIO;

	snprintf(msg, n, "%s %s: out of memory", s->kind, s->stage);
	for (size_t i = 0; ids && jsons && i < k; i++)
		if (hop_reducer_result(rd, i, &ids[i], &jsons[i]))
			goto out;
	if (!ids || !jsons || !(keys = array_text((const char *const *)ids, k)))
		goto out;
	snprintf(sql, sizeof(sql),
		 "SELECT result FROM %s WHERE win = $1::bigint AND key = "
		 "ANY($2::text[])",
		 s->parts);
	const char *sp[2] = {win, keys};
	if (!(res = q(s, sql, 2, sp, "cannot read the accumulators", msg, n)))
		goto out;
	if (PQntuples(res)) {
		for (int i = 0; i < PQntuples(res); i++)
			if (hop_reducer_merge(rd, PQgetvalue(res, i, 0))) {
				snprintf(msg, n,
					 "%s %s, state %s: a stored "
					 "accumulator of window %s is not "
					 "this reduce's: %.80s",
					 s->kind, s->stage, s->table, win,
					 PQgetvalue(res, i, 0));
				goto out;
			}
		/* The keys' results again, merged. */
		for (size_t i = 0; i < k; i++) {
			free(ids[i]);
			free(jsons[i]);
			ids[i] = jsons[i] = NULL;
			if (hop_reducer_result(rd, i, &ids[i], &jsons[i]))
				goto out;
		}
	}
	if (!(results = array_text((const char *const *)jsons, k)))
		goto out;
	snprintf(sql, sizeof(sql),
		 "INSERT INTO %s (win, key, result) SELECT $1::bigint, "
		 "unnest($2::text[]), unnest($3::text[]) ON CONFLICT (win, "
		 "key) DO UPDATE SET result = EXCLUDED.result",
		 s->parts);
	const char *up[3] = {win, keys, results};
	rc = run_sql(s, sql, 3, up, "cannot write the accumulators", msg, n);
out:
	PQclear(res);
	for (size_t i = 0; ids && jsons && i < k; i++) {
		free(ids[i]);
		free(jsons[i]);
	}
	free(ids);
	free(jsons);
	free(keys);
	free(results);
	return rc ? -EIO : 0;
}

int hop_gstore_count(struct hop_gstore *s, int64_t win, double closes,
		     const char *const *ids, size_t nids,
		     struct hop_reducer **rd,
		     int (*refold)(void *arg, const bool *fresh,
				   struct hop_reducer **rd),
		     void *arg, char *msg, size_t n)
{
	char sql[400], w[24], c[40], *list = NULL;
	PGresult *res = NULL;
	bool *fresh = NULL;
	int rc = -EIO;

	if (connected(s, msg, n))
		return -EIO;
	snprintf(w, sizeof(w), "%" PRId64, win);
	snprintf(c, sizeof(c), "%.3f", closes);
	if (run_sql(s, "BEGIN", 0, NULL, "cannot begin", msg, n))
		return -EIO;
	/* The window's row first: it locks the window for this
	 * transaction, against its being handed on meanwhile. */
	snprintf(sql, sizeof(sql),
		 "INSERT INTO %s AS x (win, closes) VALUES ($1::bigint, "
		 "CASE WHEN $2::float8 < 0 THEN NULL ELSE "
		 "to_timestamp($2::float8) END) ON CONFLICT (win) DO UPDATE "
		 "SET closes = x.closes RETURNING state",
		 s->groups);
	const char *wp[2] = {w, c};
	if (!(res = q(s, sql, 2, wp, "cannot open the window", msg, n)))
		goto out;
	if (strcmp(PQgetvalue(res, 0, 0), "open")) {
		rc = HOP_GSTORE_LATE;
		goto out;
	}
	PQclear(res);
	snprintf(msg, n, "%s %s: out of memory", s->kind, s->stage);
	if (!(list = array_text(ids, nids)) ||
	    !(fresh = calloc(nids + 1, sizeof(*fresh))))
		goto out;
	/* The ids counted already (a source item that came again after a
	 * crash) count no more. */
	snprintf(sql, sizeof(sql),
		 "INSERT INTO %s (win, id) SELECT $1::bigint, "
		 "unnest($2::text[]) ON CONFLICT DO NOTHING RETURNING id",
		 s->seen);
	const char *ip[2] = {w, list};
	if (!(res = q(s, sql, 2, ip, "cannot record the items", msg, n)))
		goto out;
	if ((size_t)PQntuples(res) < nids &&
	    (fresh_of(res, ids, nids, fresh) || refold(arg, fresh, rd))) {
		snprintf(msg, n, "%s %s: out of memory", s->kind, s->stage);
		goto out;
	}
	if (merge_window(s, w, *rd, msg, n))
		goto out;
	rc = run_sql(s, "COMMIT", 0, NULL, "cannot commit", msg, n)
		 ? -EIO
		 : (int)((size_t)PQntuples(res) < nids ? HOP_GSTORE_COPY
						       : HOP_GSTORE_WAIT);
out:
	PQclear(res);
	free(list);
	free(fresh);
	if (rc < 0 || rc == HOP_GSTORE_LATE)
		if (PQtransactionStatus(s->conn) != PQTRANS_IDLE)
			PQclear(PQexec(s->conn, "ROLLBACK"));
	return rc;
}

int hop_gstore_claim_window(struct hop_gstore *s, int64_t win, char *msg,
			    size_t n)
{
	char sql[300], w[24];
	const char *p[2] = {w, s->owner};
	PGresult *res;

	if (connected(s, msg, n))
		return -EIO;
	snprintf(w, sizeof(w), "%" PRId64, win);
	snprintf(sql, sizeof(sql),
		 "UPDATE %s SET state = 'emitting', owner = $2::bigint WHERE "
		 "win = $1::bigint AND state = 'open' RETURNING win",
		 s->groups);
	if (!(res = q(s, sql, 2, p, "cannot claim the window", msg, n)))
		return -EIO;
	int got = PQntuples(res) > 0;
	PQclear(res);
	return got;
}

int hop_gstore_load_window(struct hop_gstore *s, int64_t win,
			   struct hop_reducer *rd, char *msg, size_t n)
{
	char sql[300], w[24];
	const char *p[1] = {w};
	PGresult *res;
	int rc = 0;

	if (connected(s, msg, n))
		return -EIO;
	snprintf(w, sizeof(w), "%" PRId64, win);
	snprintf(sql, sizeof(sql),
		 "SELECT result FROM %s WHERE win = $1::bigint ORDER BY key",
		 s->parts);
	if (!(res = q(s, sql, 1, p, "cannot read the window", msg, n)))
		return -EIO;
	for (int i = 0; i < PQntuples(res) && !rc; i++)
		if ((rc = hop_reducer_merge(rd, PQgetvalue(res, i, 0))))
			snprintf(msg, n,
				 "%s %s, state %s: a stored accumulator of "
				 "window %s is not this reduce's: %.80s",
				 s->kind, s->stage, s->table, w,
				 PQgetvalue(res, i, 0));
	PQclear(res);
	return rc ? -EIO : 0;
}

int hop_gstore_finish_window(struct hop_gstore *s, int64_t win, bool keep,
			     const char *error, char *msg, size_t n)
{
	char sql[700], w[24];

	if (connected(s, msg, n))
		return -EIO;
	snprintf(w, sizeof(w), "%" PRId64, win);
	if (error) {
		const char *p[2] = {w, error};
		snprintf(sql, sizeof(sql),
			 "UPDATE %s SET state = 'dead', error = $2, closed = "
			 "now() WHERE win = $1::bigint",
			 s->groups);
		return run_sql(s, sql, 2, p, "cannot mark the window dead", msg,
			       n);
	}
	const char *p[1] = {w};
	/* A time window's row stays, done, so that what comes for it later
	 * is late; the one window of a run goes, for the next run's. */
	snprintf(sql, sizeof(sql),
		 "WITH a AS (DELETE FROM %s WHERE win = $1::bigint), b AS "
		 "(DELETE FROM %s WHERE win = $1::bigint) %s %s %s win = "
		 "$1::bigint",
		 s->parts, s->seen, keep ? "UPDATE" : "DELETE FROM", s->groups,
		 keep ? "SET state = 'done', owner = NULL, closed = now() WHERE"
		      : "WHERE");
	return run_sql(s, sql, 1, p, "cannot close the window", msg, n);
}

int64_t hop_gstore_open_groups(struct hop_gstore *s, char **keys, size_t max,
			       size_t *nkeys, char *msg, size_t n)
{
	char sql[300], lim[24];
	const char *p[1] = {lim};
	PGresult *res;
	int64_t count;

	*nkeys = 0;
	if (connected(s, msg, n))
		return -EIO;
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM %s WHERE state = 'open'", s->groups);
	if (!(res = q(s, sql, 0, NULL, "cannot count open groups", msg, n)))
		return -EIO;
	count = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	snprintf(lim, sizeof(lim), "%zu", max);
	snprintf(sql, sizeof(sql),
		 "SELECT key FROM %s WHERE state = 'open' ORDER BY opened, "
		 "key LIMIT $1::bigint",
		 s->groups);
	if (!(res = q(s, sql, 1, p, "cannot read open groups", msg, n)))
		return -EIO;
	for (int i = 0; i < PQntuples(res) && *nkeys < max; i++)
		if ((keys[*nkeys] = strdup(PQgetvalue(res, i, 0))))
			(*nkeys)++;
	PQclear(res);
	return count;
}

int hop_gstore_prune(struct hop_gstore *s, int64_t keep, char *msg, size_t n)
{
	char sql[600], k[24];
	const char *p[1] = {k};

	if (connected(s, msg, n))
		return -EIO;
	snprintf(k, sizeof(k), "%" PRId64, keep);
	snprintf(sql, sizeof(sql),
		 "DELETE FROM %s WHERE state = 'done' AND closed < (SELECT "
		 "closed FROM %s WHERE state = 'done' ORDER BY closed DESC "
		 "OFFSET $1::bigint LIMIT 1)",
		 s->groups, s->groups);
	return run_sql(s, sql, 1, p, "cannot forget old groups", msg, n);
}

void hop_gstore_close(struct hop_gstore *s)
{
	if (!s)
		return;
	PQfinish(s->conn);
	free(s->url);
	free(s->table);
	free(s);
}
