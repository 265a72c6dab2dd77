"""hopper pg init against a real PostgreSQL started by tests/harness."""
import json

from conftest import hopper


def test_init_creates_the_queue_and_is_idempotent(pg):
    for _ in range(2):
        code, out, err = hopper("pg", "init", pg.url, "--table", "jobs")
        assert code == 0, err
        assert out.strip() == "queue table jobs is ready"
    cols = pg.psql("SELECT string_agg(column_name, ',' ORDER BY "
                   "ordinal_position) FROM information_schema.columns "
                   "WHERE table_name = 'jobs'")
    assert cols == ("id,key,payload,state,attempts,run_at,lease_until,holder,"
                    "last_error,result,created_at,updated_at")
    idx = pg.psql("SELECT indexdef FROM pg_indexes WHERE indexname = "
                  "'jobs_ready'")
    assert "(run_at, id) WHERE (state = 'ready'::text)" in idx
    idx = pg.psql("SELECT indexdef FROM pg_indexes WHERE indexname = "
                  "'jobs_leases'")
    assert "(lease_until) WHERE (state = 'running'::text)" in idx
    # The insert trigger notifies the table's channel.
    out = pg.psql("LISTEN jobs; INSERT INTO jobs (payload) VALUES "
                  "('{\"n\": 1}'); SELECT state, attempts FROM jobs;")
    assert out.splitlines() == [
        out.splitlines()[0], "ready|0"]
    assert out.startswith('Asynchronous notification "jobs" received')


def test_schema_qualified_table_and_environment_settings(pg):
    pg.psql("CREATE SCHEMA work AUTHORIZATION hopper")
    from conftest import clean_env
    env = clean_env(PGHOST="127.0.0.1", PGPORT=pg.port, PGUSER="hopper",
                    PGPASSWORD="hopper-secret", PGDATABASE="hopper")
    code, out, err = hopper("pg", "init", "--table", "work.videos", env=env)
    assert code == 0, err
    assert pg.psql("SELECT count(*) FROM work.videos") == "0"


def test_hostile_names_and_bad_connections_are_clear_errors(pg):
    for name in ('jobs"; DROP TABLE jobs; --', "1jobs", "a.b.c", "x" * 64, ""):
        code, out, err = hopper("pg", "init", pg.url, "--table", name)
        assert code == 2, (name, err)
        assert "is not a valid identifier" in err
    bad = pg.url.replace("hopper-secret", "wrong-password")
    code, out, err = hopper("pg", "init", bad)
    assert code == 1 and "password authentication failed" in err
    assert "wrong-password" not in err and "hopper-secret" not in err
    code, out, err = hopper("pg", "init", "postgres://hopper@127.0.0.1:1/x")
    assert code == 1 and "cannot connect to PostgreSQL" in err
    assert json.dumps(out) == '""'


def test_an_existing_table_becomes_a_queue(pg, tmp):
    """A table of one's own, with its payload in a column of its own: pg
    init adds what a queue needs, and the source reads the named columns."""
    from conftest import FAKE, by_id, read_jsonl
    pg.psql("CREATE TABLE videos (path text NOT NULL, name text); "
            "INSERT INTO videos VALUES ('/v/a.mp4', 'a'), ('/v/b.mp4', 'b')",
            url=pg.url)
    code, out, err = hopper("pg", "init", pg.url, "--table", "videos")
    assert code == 0, err
    assert pg.psql("SELECT string_agg(id || ':' || state || ':' || attempts,"
                   " ',' ORDER BY id) FROM videos") == "1:ready:0,2:ready:0"
    assert "UNIQUE" in pg.psql("SELECT indexdef FROM pg_indexes WHERE "
                               "tablename = 'videos' AND indexdef LIKE "
                               "'%(id)'")
    code, out, err = hopper("run", "-s", pg.url, "-S", "table=videos",
                            "-S", "payload_column=path",
                            "-S", "key_column=name", "--", *FAKE)
    assert code == 0, err
    res = by_id(read_jsonl(out))
    assert {k: r["result"]["echo"] for k, r in res.items()} == \
        {"a": "/v/a.mp4", "b": "/v/b.mp4"}
    assert pg.psql("SELECT string_agg(state, ',') FROM videos") == \
        "done,done"
    code, _, err = hopper("run", "-s", pg.url, "-S", "table=videos",
                          "-S", "payload_column=nope", "--", *FAKE)
    assert code == 1 and 'column "nope" does not exist' in err
    code, _, err = hopper("run", "-s", pg.url, "-S", "table=videos",
                          "-S", "key_column=a;b", "--", *FAKE)
    assert code == 1 and "'a;b' is not a valid identifier" in err
