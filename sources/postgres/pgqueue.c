/* pgqueue.c - the queue table's schema, and `hopper pg init`. */
#include "sources/postgres/pgqueue.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/log.h"

#define DEFAULT_TABLE "hopper_queue"

static bool ident_part(const char *s, size_t n)
{
	if (n == 0 || n > 63 || isdigit((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return false;
	return true;
}

bool hop_pg_valid_ident(const char *name)
{
	const char *dot = strchr(name, '.');
	if (!dot)
		return ident_part(name, strlen(name));
	return ident_part(name, (size_t)(dot - name)) &&
	       ident_part(dot + 1, strlen(dot + 1));
}

/* Writes name quoted ("schema"."table"), with a suffix on the last part:
 * the index and function names derive from the table's. */
static int quoted(char *buf, size_t n, const char *name, const char *suffix)
{
	const char *dot = strchr(name, '.');
	int k;
	if (dot)
		k = snprintf(buf, n, "\"%.*s\".\"%s%s\"", (int)(dot - name),
			     name, dot + 1, suffix);
	else
		k = snprintf(buf, n, "\"%s%s\"", name, suffix);
	return k < 0 || (size_t)k >= n ? -ENOSPC : 0;
}

int hop_pg_quote(char *buf, size_t n, const char *name)
{
	return quoted(buf, n, name, "");
}

const char *hop_pg_first_line(const char *msg, char *buf, size_t n)
{
	size_t k = msg ? strcspn(msg, "\n") : 0;
	snprintf(buf, n, "%.*s", (int)k, msg ? msg : "");
	return buf;
}

/* Adds to secrets, from index k on (four at most), the spans of ci that
 * hold a password as written: a URL's user info after its colon, and the
 * value of each password= setting. Returns the new count. */
static int raw_passwords(const char *ci, const char *secrets[][2], int k)
{
	const char *p = strstr(ci, "://");
	if (p) {
		p += 3;
		size_t auth = strcspn(p, "@/");
		const char *colon = memchr(p, ':', auth);
		if (p[auth] == '@' && colon && k < 4) {
			secrets[k][0] = colon + 1;
			secrets[k++][1] = p + auth;
		}
	}
	for (p = ci; (p = strstr(p, "password")) && k < 4; p++) {
		const char *v = p + 8 + strspn(p + 8, " \t");
		if (*v++ != '=')
			continue;
		v += strspn(v, " \t");
		bool quoted = *v == '\'';
		v += quoted;
		secrets[k][0] = v;
		secrets[k++][1] = v + strcspn(v, quoted ? "'" : " \t&");
	}
	return k;
}

const char *hop_pg_redact(const char *ci, const char *msg, char *buf, size_t n)
{
	const char *secrets[4][2];
	int k = raw_passwords(ci, secrets, 0);
	PQconninfoOption *opts = PQconninfoParse(ci, NULL);
	for (PQconninfoOption *o = opts; o && o->keyword && k < 4; o++)
		if (!strcmp(o->keyword, "password") && o->val) {
			secrets[k][0] = o->val;
			secrets[k++][1] = o->val + strlen(o->val);
		}
	size_t w = 0;
	while (*msg && w + 4 < n) {
		size_t hit = 0; /* the longest secret that starts here */
		for (int i = 0; i < k; i++) {
			size_t len = (size_t)(secrets[i][1] - secrets[i][0]);
			if (len > hit && !strncmp(msg, secrets[i][0], len))
				hit = len;
		}
		if (!hit) {
			buf[w++] = *msg++;
			continue;
		}
		memcpy(buf + w, "***", 3);
		w += 3;
		msg += hit;
	}
	buf[w] = '\0';
	PQconninfoFree(opts);
	return buf;
}

void hop_pg_notice(void *arg, const char *msg)
{
	char line[256];
	hop_log(HOP_WARN, "%s: %s", (const char *)arg,
		hop_pg_first_line(msg, line, sizeof(line)));
}

int hop_pg_schema_sql(const char *table, char *buf, size_t n)
{
	char t[160], fn[160], idx[80], lidx[80], trig[80], channel[80];
	const char *base = strchr(table, '.') ? strchr(table, '.') + 1 : table;

	if (!hop_pg_valid_ident(table))
		return -EINVAL;
	if (quoted(t, sizeof(t), table, "") ||
	    quoted(fn, sizeof(fn), table, "_notify") ||
	    snprintf(idx, sizeof(idx), "\"%s_ready\"", base) >=
		(int)sizeof(idx) ||
	    snprintf(lidx, sizeof(lidx), "\"%s_leases\"", base) >=
		(int)sizeof(lidx) ||
	    snprintf(trig, sizeof(trig), "\"%s_notify\"", base) >=
		(int)sizeof(trig) ||
	    snprintf(channel, sizeof(channel), "%s", base) >=
		(int)sizeof(channel))
		return -ENOSPC;
	/* The names were checked to be plain identifiers, so quoting them is
	 * enough; the channel is passed as a literal of the same characters. */
	int k = snprintf(
	    buf, n,
	    /* What exists already is no news: IF NOT EXISTS says so in a
	     * NOTICE per column. */
	    "SET client_min_messages = warning;\n"
	    "CREATE TABLE IF NOT EXISTS %s (\n"
	    "  id bigserial PRIMARY KEY,\n"
	    "  key text UNIQUE,\n"
	    "  payload jsonb NOT NULL,\n"
	    "  state text NOT NULL DEFAULT 'ready'\n"
	    "    CHECK (state IN ('ready', 'running', 'done', 'dead')),\n"
	    "  attempts integer NOT NULL DEFAULT 0,\n"
	    "  run_at timestamptz NOT NULL DEFAULT now(),\n"
	    "  lease_until timestamptz,\n"
	    "  holder text,\n"
	    "  last_error text,\n"
	    "  result jsonb,\n"
	    "  created_at timestamptz NOT NULL DEFAULT now(),\n"
	    "  updated_at timestamptz NOT NULL DEFAULT now()\n"
	    ");\n"
	    /* An existing table of the user's gets what it lacks. */
	    "ALTER TABLE %s\n"
	    "  ADD COLUMN IF NOT EXISTS id bigserial,\n"
	    "  ADD COLUMN IF NOT EXISTS key text UNIQUE,\n"
	    "  ADD COLUMN IF NOT EXISTS payload jsonb,\n"
	    "  ADD COLUMN IF NOT EXISTS state text NOT NULL DEFAULT 'ready'\n"
	    "    CHECK (state IN ('ready', 'running', 'done', 'dead')),\n"
	    "  ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 0,\n"
	    "  ADD COLUMN IF NOT EXISTS run_at timestamptz NOT NULL\n"
	    "    DEFAULT now(),\n"
	    "  ADD COLUMN IF NOT EXISTS lease_until timestamptz,\n"
	    "  ADD COLUMN IF NOT EXISTS holder text,\n"
	    "  ADD COLUMN IF NOT EXISTS last_error text,\n"
	    "  ADD COLUMN IF NOT EXISTS result jsonb,\n"
	    "  ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL\n"
	    "    DEFAULT now(),\n"
	    "  ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL\n"
	    "    DEFAULT now();\n"
	    "DO $do$ BEGIN\n"
	    "  IF NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a\n"
	    "      ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]\n"
	    "      WHERE i.indrelid = '%s'::regclass AND i.indisunique\n"
	    "      AND i.indnatts = 1 AND a.attname = 'id') THEN\n"
	    "    CREATE UNIQUE INDEX ON %s (id);\n"
	    "  END IF;\n"
	    "END $do$;\n"
	    "CREATE INDEX IF NOT EXISTS %s ON %s (run_at, id)\n"
	    "  WHERE state = 'ready';\n"
	    "CREATE INDEX IF NOT EXISTS %s ON %s (lease_until)\n"
	    "  WHERE state = 'running';\n"
	    "CREATE OR REPLACE FUNCTION %s() RETURNS trigger\n"
	    "  LANGUAGE plpgsql AS $fn$\n"
	    "BEGIN PERFORM pg_notify('%s', ''); RETURN NULL; END\n"
	    "$fn$;\n"
	    "CREATE OR REPLACE TRIGGER %s AFTER INSERT ON %s\n"
	    "  FOR EACH STATEMENT EXECUTE FUNCTION %s();\n"
	    "RESET client_min_messages;\n",
	    t, t, t, t, idx, t, lidx, t, fn, channel, trig, t, fn);
	return k < 0 || (size_t)k >= n ? -ENOSPC : 0;
}

static void quiet(void *arg, const char *msg)
{
}

static int pg_init(const char *url, const char *table)
{
	char sql[4096];

	if (hop_pg_schema_sql(table, sql, sizeof(sql))) {
		fprintf(stderr,
			"hopper: table name '%s' is not a valid identifier "
			"(letters, digits and _, optionally schema.table)\n",
			table);
		return 2;
	}
	PGconn *conn = PQconnectdb(url);
	/* IF NOT EXISTS says what already exists: not news. */
	PQsetNoticeProcessor(conn, quiet, NULL);
	if (PQstatus(conn) != CONNECTION_OK) {
		char safe[512];
		fprintf(stderr, "hopper: cannot connect to PostgreSQL: %s",
			hop_pg_redact(url, PQerrorMessage(conn), safe,
				      sizeof(safe)));
		PQfinish(conn);
		return 1;
	}
	PGresult *res = PQexec(conn, sql);
	int code = 0;
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		fprintf(stderr, "hopper: creating queue table %s: %s", table,
			PQresultErrorMessage(res));
		code = 1;
	} else {
		printf("queue table %s is ready\n", table);
	}
	PQclear(res);
	PQfinish(conn);
	return code;
}

int hop_pg_command(int argc, char **argv)
{
	const char *table = DEFAULT_TABLE, *url = NULL;

	if (argc < 1 || strcmp(argv[0], "init") != 0)
		goto usage;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--table") == 0 && i + 1 < argc)
			table = argv[++i];
		else if (!url && argv[i][0] != '-')
			url = argv[i];
		else
			goto usage;
	}
	/* No URL: libpq takes PGHOST, PGPORT, PGUSER... from the environment.
	 */
	return pg_init(url ? url : "", table);

usage:
	fprintf(stderr, "usage: hopper pg init [URL] [--table NAME]\n"
			"  creates the queue table (default " DEFAULT_TABLE
			"); the URL is postgres://user:password@host:port/db,\n"
			"  or PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE "
			"when it is left out\n");
	return 2;
}
