/* pgdead.c - the postgres source's dead letters (see pgdead.h). */
#include "sources/postgres/pgdead.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/log.h"
#include "sources/postgres/pgqueue.h"

/* The item's id, as a claim makes it. */
#define ITEM_ID "coalesce(\"%s\"::text, id::text)"

int hop_pg_dead_open(struct hop_pg_dead *d, const char *url, const char *table,
		     const char *key_column, const char *payload_column,
		     char *err, size_t errlen)
{
	char safe[512], line[256];
	const char *base = strchr(table, '.') ? strchr(table, '.') + 1 : table;

	*d = (struct hop_pg_dead){.key_column = key_column,
				  .payload_column = payload_column};
	if (!hop_pg_valid_ident(table) || !hop_pg_valid_ident(key_column) ||
	    !hop_pg_valid_ident(payload_column) || strchr(key_column, '.') ||
	    strchr(payload_column, '.') ||
	    hop_pg_quote(d->table, sizeof(d->table), table)) {
		snprintf(err, errlen,
			 "postgres source: a table or column name that is "
			 "not a valid identifier (letters, digits and _)");
		return -EINVAL;
	}
	snprintf(d->channel, sizeof(d->channel), "%s", base);
	d->conn = PQconnectdb(url ? url : "");
	PQsetNoticeProcessor(d->conn, hop_pg_notice, "postgres source");
	if (PQstatus(d->conn) != CONNECTION_OK) {
		snprintf(
		    err, errlen, "postgres source: cannot connect: %s",
		    hop_pg_first_line(hop_pg_redact(url ? url : "",
						    PQerrorMessage(d->conn),
						    safe, sizeof(safe)),
				      line, sizeof(line)));
		PQfinish(d->conn);
		d->conn = NULL;
		return -ECONNREFUSED;
	}
	return 0;
}

/* Runs sql with one text parameter (or none); the result, or NULL with err
 * set. */
static PGresult *run(struct hop_pg_dead *d, const char *sql, const char *p,
		     char *err, size_t errlen)
{
	char line[256];
	PGresult *res =
	    PQexecParams(d->conn, sql, p ? 1 : 0, NULL, &p, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return res;
	const char *m = PQresultErrorMessage(res);
	snprintf(err, errlen, "postgres source: table %s: %s", d->table,
		 hop_pg_first_line(*m ? m : PQerrorMessage(d->conn), line,
				   sizeof(line)));
	PQclear(res);
	return NULL;
}

static const char *field(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

int hop_pg_dead_list(struct hop_pg_dead *d, hop_dead_each_fn each, void *arg,
		     char *err, size_t errlen)
{
	char sql[1024];
	snprintf(sql, sizeof(sql),
		 "SELECT " ITEM_ID ", last_error, attempts,"
		 " to_char(updated_at AT TIME ZONE 'UTC',"
		 " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
		 " to_jsonb(\"%s\")::text, result::text FROM %s"
		 " WHERE state = 'dead' ORDER BY updated_at, id",
		 d->key_column, d->payload_column, d->table);
	PGresult *res = run(d, sql, NULL, err, errlen);
	if (!res)
		return -EIO;
	int rc = 0;
	for (int i = 0; i < PQntuples(res) && !rc; i++) {
		struct hop_dead_letter l = {
		    .id = field(res, i, 0),
		    .item = field(res, i, 0),
		    .error = field(res, i, 1),
		    .attempts = strtoll(PQgetvalue(res, i, 2), NULL, 10),
		    .when = field(res, i, 3),
		    .payload = field(res, i, 4),
		    .record = field(res, i, 5),
		};
		rc = each(arg, &l);
	}
	PQclear(res);
	return rc;
}

/* Runs sql over the dead rows of item id ($1); returns 0, -ENOENT when it
 * touched none, or -EIO. */
static int change(struct hop_pg_dead *d, const char *sql, const char *id,
		  char *err, size_t errlen)
{
	PGresult *res = run(d, sql, id, err, errlen);
	if (!res)
		return -EIO;
	int rc = atoi(PQcmdTuples(res)) > 0 ? 0 : -ENOENT;
	PQclear(res);
	if (rc)
		snprintf(err, errlen, "no dead row %s in %s", id, d->table);
	return rc;
}

int hop_pg_dead_retry(struct hop_pg_dead *d, const char *id, char *err,
		      size_t errlen)
{
	char sql[1024];
	snprintf(sql, sizeof(sql),
		 "UPDATE %s SET state = 'ready', attempts = 0,"
		 " run_at = now(), lease_until = NULL, holder = NULL,"
		 " result = NULL, updated_at = now()"
		 " WHERE state = 'dead' AND " ITEM_ID " = $1",
		 d->table, d->key_column);
	int rc = change(d, sql, id, err, errlen);
	if (rc)
		return rc;
	/* Inserts notify through the table's trigger; this is no insert. */
	PGresult *res =
	    run(d, "SELECT pg_notify($1, '')", d->channel, err, errlen);
	PQclear(res);
	return 0;
}

int hop_pg_dead_discard(struct hop_pg_dead *d, const char *id, char *err,
			size_t errlen)
{
	char sql[1024];
	snprintf(sql, sizeof(sql),
		 "DELETE FROM %s WHERE state = 'dead' AND " ITEM_ID " = $1",
		 d->table, d->key_column);
	return change(d, sql, id, err, errlen);
}

void hop_pg_dead_close(struct hop_pg_dead *d)
{
	PQfinish(d->conn);
	d->conn = NULL;
}
