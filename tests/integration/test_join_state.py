"""Join by key with "state": the groups live in PostgreSQL. Each part's
source item is acknowledged once the part is stored, so that a group left
open holds no source back; groups outlive the run and complete in a later
one; a group a coordinator was handing on when it died is taken over and
written under the same id; a group past its timeout goes on partial or is
marked dead in the table; and one killed run loses nothing."""
import json
import signal
import subprocess
import time

from conftest import (by_id, clean_env, hopper, pg_insert, read_jsonl,
                      start, stderr_of, stop, wait_for, write_jsonl)
from test_join_key import frames
from test_stages import cmd


def pipeline_file(tmp, pg, rows, name, join=None, table="jt", extra=None,
                  source=None):
    """A file of a tag stage and a join by /video of /total parts kept in
    table, over rows in jsonl (or source); returns it and its output."""
    src = write_jsonl(tmp / f"{name}.in.jsonl", rows)
    out = tmp / f"{name}.out.jsonl"
    doc = {"sources": {"in": source or {
               "type": "jsonl", "path": str(src), "id": "key",
               "dead": str(tmp / f"{name}.dead.jsonl")}},
           "sinks": {"out": {"type": "jsonl", "path": str(out)}},
           "stages": {"tag": {"command": cmd("tag"), "to": "j"},
                      "j": {"join": {"by": "/video", "count": "/total",
                                     "state": pg.url, "state_table": table,
                                     **(join or {})},
                            "to": "out"}},
           "backoff": "10ms", "workers": 2, **(extra or {})}
    f = tmp / f"{name}.json"
    f.write_text(json.dumps(doc, indent=1))
    return f, out


def pipeline(tmp, pg, rows, name, join=None, table="jt", extra=None):
    """Runs pipeline_file; returns (code, output lines, stderr)."""
    f, out = pipeline_file(tmp, pg, rows, name, join, table, extra)
    code, _, err = hopper("run", "-f", f, env=clean_env())
    return code, read_jsonl(out.read_text()) if out.exists() else [], err


def groups(pg, table):
    """{key: state} of table's groups."""
    rows = pg.psql(f"SELECT key, state FROM {table}_groups ORDER BY key")
    return dict(line.split("|") for line in rows.splitlines() if line)


def parts_of(result):
    return sorted(p["part"] for p in result["parts"])


def test_groups_wait_in_the_table_for_a_later_run(tmp, pg):
    rows = frames(4, 4)
    later = [r for r in rows if r["key"] in ("v1-f3", "v2-f0", "v2-f2")]
    first = [r for r in rows if r not in later]
    code, out, err = pipeline(tmp, pg, first, "one", table="jt_wait")
    assert code == 0, err
    assert sorted(by_id(out)) == ["v0", "v3"]
    # Every source item is acknowledged, those of the open groups too.
    assert "finished: 13 done, 0 dead" in err, err
    assert "stage j: 2 group(s) stay open in jt_wait for a later run " \
        "(the oldest: v" in err, err
    assert groups(pg, "jt_wait") == {"v0": "done", "v1": "open",
                                     "v2": "open", "v3": "done"}

    # The missing parts, and a part of a group written already.
    again = later + [r for r in rows if r["key"] == "v0-f1"]
    code, out, err = pipeline(tmp, pg, again, "two", table="jt_wait")
    assert code == 0, err
    res = by_id(out)
    assert sorted(res) == ["v1", "v2"]
    assert parts_of(res["v1"]["result"]) == [0, 1, 2, 3]
    assert parts_of(res["v2"]["result"]) == [0, 1, 2, 3]
    assert all(p["trail"] == ["tag"] for p in res["v2"]["result"]["parts"])
    assert "a part of group v0 came after the group was over: dropped" \
        in err, err
    assert "finished: 4 done, 0 dead" in err, err
    assert set(groups(pg, "jt_wait").values()) == {"done"}
    # A written group's parts are gone from the table.
    assert pg.psql("SELECT count(*) FROM jt_wait") == "0"


def seed(pg, table, key, state, owner, parts, opened="now()"):
    """A group of table as another coordinator left it."""
    pg.psql(f"""
        CREATE TABLE IF NOT EXISTS {table} (key text NOT NULL, id text
          NOT NULL, seq bigint NOT NULL DEFAULT -1, payload bytea, stage
          text, error text, added timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (key, id));
        CREATE TABLE IF NOT EXISTS {table}_groups (key text PRIMARY KEY,
          expected bigint, state text NOT NULL DEFAULT 'open', owner bigint,
          error text, opened timestamptz NOT NULL DEFAULT now(),
          closed timestamptz);
        INSERT INTO {table}_groups (key, expected, state, owner, opened)
          VALUES ('{key}', 2, '{state}', {owner}, {opened});""", url=pg.url)
    for i, p in enumerate(parts):
        body = json.dumps({"video": key, "part": p, "total": 2})
        pg.psql(f"INSERT INTO {table} (key, id, payload) VALUES "
                f"('{key}', '{key}-f{i}', convert_to('{body}', 'UTF8'))",
                url=pg.url)


def test_groups_a_gone_coordinator_was_writing_are_taken_over(tmp, pg):
    t = "jt_take"
    seed(pg, t, "gone", "emitting", 4242, [0, 1])
    seed(pg, t, "byhand", "emitting", "NULL", [0, 1])
    seed(pg, t, "alive", "emitting", 777, [0, 1])
    # A coordinator that is alive holds its number's lock: its group stays
    # its own.
    holder = subprocess.Popen(
        [pg.bindir + "/psql", "-X", "-q", "-d", pg.url, "-c",
         "SELECT pg_advisory_lock(777), pg_sleep(120)"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: pg.psql(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
            "AND objid = 777 AND granted") == "1", what="the lock")
        code, out, err = pipeline(tmp, pg, frames(1, 2), "take", table=t)
    finally:
        holder.kill()
        holder.wait()
    assert code == 0, err
    res = by_id(out)
    assert sorted(res) == ["byhand", "gone", "v0"], err
    assert parts_of(res["gone"]["result"]) == [0, 1]
    assert res["gone"]["id"] == "gone"
    assert groups(pg, t) == {"alive": "emitting", "byhand": "done",
                             "gone": "done", "v0": "done"}


def test_an_overdue_group_goes_on_partial_or_is_marked_dead(tmp, pg):
    old = "now() - interval '1 hour'"
    seed(pg, "jt_part", "late", "open", "NULL", [0], opened=old)
    code, out, err = pipeline(tmp, pg, frames(1, 2), "partial",
                              join={"timeout": 60, "on_timeout": "partial"},
                              table="jt_part")
    assert code == 0, err
    res = by_id(out)
    assert sorted(res) == ["late", "v0"]
    assert res["late"]["result"]["missing"] is True
    assert parts_of(res["late"]["result"]) == [0]
    assert "group late is not complete after 60.0 s" in err

    seed(pg, "jt_fail", "late", "open", "NULL", [0], opened=old)
    code, out, err = pipeline(tmp, pg, frames(1, 2), "fail",
                              join={"timeout": 60}, table="jt_fail")
    assert code == 3, err
    assert sorted(by_id(out)) == ["v0"]
    assert "stage j: join timed out after 60.0 s: group late had 1 of 2 " \
        "part(s): the group stays in jt_fail, marked dead" in err, err
    assert groups(pg, "jt_fail")["late"] == "dead"
    assert pg.psql("SELECT error FROM jt_fail_groups WHERE key = 'late'") \
        .startswith("stage j: join timed out")
    # Its parts stay, to be looked at or handed on again.
    assert pg.psql("SELECT count(*) FROM jt_fail WHERE key = 'late'") == "1"


def test_a_dead_part_fails_its_group_in_the_table(tmp, pg):
    rows = frames(2, 3, do={"tag": "perm_part:1"})
    for r in rows:
        if r["video"] != "v0":
            r["do"] = {}
    code, out, err = pipeline(tmp, pg, rows, "deadpart", table="jt_dead")
    assert code == 3, err
    assert sorted(r["id"] for r in out if r["ok"]) == ["v1"]
    assert groups(pg, "jt_dead") == {"v0": "dead", "v1": "done"}
    error = pg.psql("SELECT error FROM jt_dead_groups WHERE key = 'v0'")
    assert "join j, key v0: 1 part(s) died" in error
    assert "v0-f1 (stage tag): tag refuses v0-f1" in error
    # The part that died is dead-lettered; the others were stored.
    dead = read_jsonl((tmp / "deadpart.dead.jsonl").read_text())
    assert [d["id"] for d in dead] == ["v0-f1"]


def test_a_part_that_dies_while_the_database_is_away_still_counts(tmp, pg):
    """Two parts of each group are stored; the server stops; then the third
    part dies in the stage before the join. Its record waits for the
    server like a part, and once it is back, the group fails in the table
    with that part's error. Nothing is left open."""
    from test_pg_faults import take_down, wait_exit
    rows = frames(2, 3, do={"tag": "perm_part:1"})
    f, out = pipeline_file(tmp, pg, rows, "gate", table="jt_gate")
    gate = tmp / "gate"
    p = start("run", "-f", f, cwd=tmp, env=clean_env(STAGE_GATE=gate))
    try:
        wait_for(lambda: pg.psql("SELECT count(*) FROM jt_gate",
                                 check=False) == "4", what="parts stored")
        take_down(pg, "stop")
        gate.touch()
        wait_for(lambda: "what stage j would keep there waits for it" in
                 stderr_of(p), what="a dead part waiting for the store")
        assert p.poll() is None, stderr_of(p)[-3000:]
        pg.start()
        code = wait_exit(p, time.monotonic() + 60, "the run")
    finally:
        stop(p)
    err = stderr_of(p)
    assert code == 3, err[-3000:]
    assert "stage j: its state store answers again" in err, err[-3000:]
    assert "stay open" not in err, err[-3000:]
    assert groups(pg, "jt_gate") == {"v0": "dead", "v1": "dead"}
    for v in ("v0", "v1"):
        error = pg.psql(f"SELECT error FROM jt_gate_groups WHERE key = "
                        f"'{v}'")
        assert f"{v}-f1 (stage tag): tag refuses {v}-f1" in error, error
    dead = read_jsonl((tmp / "gate.dead.jsonl").read_text())
    assert sorted(d["id"] for d in dead) == ["v0-f1", "v1-f1"]
    # No group was written.
    assert [r["id"] for r in read_jsonl(out.read_text()) if r["ok"]] == []


def test_a_killed_run_loses_no_group_and_writes_none_twice(tmp, pg):
    """A run is killed with groups half gathered; a second run over the
    same input, with the journal, finishes them. Every group is written
    with all its parts; only a group that was being written at the kill
    may be written again, under the same id."""
    rows = frames(12, 4, seed=3)
    # One part per group is slow, so that the kill finds groups open.
    for r in rows:
        if r["part"] == 3:
            r["do"] = {"tag": "sleep_part:3:0.5"}
    f, out = pipeline_file(tmp, pg, rows, "kill", table="jt_kill")
    journal = tmp / "kill.journal"
    p = start("run", "-f", f, "--journal", journal, cwd=tmp)
    try:
        wait_for(lambda: out.exists() and len(out.read_text().splitlines())
                 >= 2, what="two groups written")
        p.send_signal(signal.SIGKILL)
        p.wait()
    finally:
        stop(p)
    first = read_jsonl(out.read_text())
    assert len(first) < 12, "the run ended before the kill"
    # The groups being written at the kill: the only ones that may be
    # written again.
    emitting = set(pg.psql("SELECT key FROM jt_kill_groups WHERE state = "
                           "'emitting'").split())
    code, _, err = hopper("run", "-f", f, "--journal", journal,
                          env=clean_env())
    assert code == 0, err
    lines = read_jsonl(out.read_text())
    res = {r["id"]: r for r in lines}  # a copy or two may be there
    assert sorted(res) == sorted(f"v{v}" for v in range(12))
    for key, r in res.items():
        assert parts_of(r["result"]) == [0, 1, 2, 3], key
    assert set(groups(pg, "jt_kill").values()) == {"done"}
    twice = {k for k in res if sum(r["id"] == k for r in lines) > 1}
    assert twice <= emitting, (twice, emitting)
    assert len(lines) - len(res) == len(twice)


def logged(path):
    """The ids a stage.py log names."""
    return [line.split()[1] for line in path.read_text().splitlines()] \
        if path.exists() else []


def test_coordinators_share_the_groups_and_one_dies(tmp, pg, queue):
    """Two coordinators read one queue (SKIP LOCKED) and keep one join's
    groups in one table. The first, slow, is killed with parts of groups
    stored; the second finishes every group: no group lost, and only one
    the first was writing at the kill is written again."""
    pg_insert(pg, queue, frames(8, 4, seed=5))
    rows = pg.psql(f"SELECT id, payload->>'video' FROM {queue}")
    video_of = dict(line.split("|") for line in rows.splitlines())

    source = {"type": "postgres", "url": pg.url, "table": queue,
              "poll": "100ms", "batch": 1, "lease": "2s"}

    def file_of(name):
        return pipeline_file(tmp, pg, [], name, table="jt_share",
                             extra={"workers": 1, "prefetch": 1},
                             source=source)[0]

    def written():
        return [r for n in ("c1", "c2") if (tmp / f"{n}.out.jsonl").exists()
                for r in read_jsonl((tmp / f"{n}.out.jsonl").read_text())]

    log1, log2 = tmp / "c1.log", tmp / "c2.log"
    c1 = start("run", "-f", file_of("c1"), "--watch", cwd=tmp,
               env=clean_env(STAGE_SLEEP="tag=0.3", STAGE_LOG=log1))
    c2 = None
    try:
        wait_for(lambda: len(logged(log1)) >= 3, what="the first at work")
        c2 = start("run", "-f", file_of("c2"), "--watch", cwd=tmp,
                   env=clean_env(STAGE_LOG=log2))
        wait_for(lambda: logged(log2), what="the second at work")
        c1.send_signal(signal.SIGKILL)
        c1.wait()
        wait_for(lambda: len({r["id"] for r in written()}) == 8,
                 timeout=120,
                 what="every group written")
        wait_for(lambda: set(groups(pg, "jt_share").values()) == {"done"},
                 what="every group done in the table")
        wait_for(lambda: pg.psql(
            f"SELECT count(*) FROM {queue} WHERE state = 'done'") == "32",
            what="every row done")
    finally:
        stop(c1, c2)
    lines = written()
    res = {r["id"]: r for r in lines}  # a copy or two may be there
    for key, r in res.items():
        assert parts_of(r["result"]) == [0, 1, 2, 3], key
    # Groups were shared: one has parts tagged by each coordinator.
    one = {video_of[i] for i in logged(log1)}
    two = {video_of[i] for i in logged(log2)}
    assert one & two
    first = {r["id"] for r in read_jsonl((tmp / "c1.out.jsonl").read_text())} \
        if (tmp / "c1.out.jsonl").exists() else set()
    twice = {k for k in res if sum(r["id"] == k for r in lines) > 1}
    assert twice <= first, (twice, first)
    assert len(twice) <= 1


def test_validate_names_a_bad_state(tmp):
    cases = [
        ({"by": "/video", "count": "/total", "state": "mysql://db/x"},
         "stage 'j': join: 'state' is where groups are kept: a PostgreSQL "
         "URL (postgres://...), not 'mysql://db/x'"),
        ({"by": "/video", "count": "/total", "state": "postgres://db/x",
          "state_table": "bad name;"},
         "join: 'state_table' 'bad name;' is not a valid name"),
        ({"state": "postgres://db/x"},
         "join: 'state' is for a join by key: give 'by' too"),
        ({"by": "/video", "count": "/total", "state_table": "t"},
         "join: 'state_table' goes with 'state'"),
    ]
    for join, words in cases:
        doc = {"source": "jsonl:in.jsonl",
               "sinks": {"out": {"type": "jsonl", "path": "o.jsonl"}},
               "stages": {"tag": {"command": cmd("tag"), "to": "j"},
                          "j": {"join": join, "to": "out"}}}
        f = tmp / "v.json"
        f.write_text(json.dumps(doc))
        code, _, err = hopper("validate", "-f", f)
        assert code == 2 and words in err, (join, err)
        assert f"{f}:1:" in err, err


def test_the_database_goes_away_under_a_join(tmp, pg, queue):
    """The server holding both the queue and the groups crashes mid-run
    and comes back: parts that could not be stored meanwhile wait for it,
    and every group is written whole, every row done."""
    from test_pg_faults import take_down, wait_exit
    pg_insert(pg, queue, frames(10, 4, seed=9))
    source = {"type": "postgres", "url": pg.url, "table": queue,
              "poll": "100ms", "lease": "60s"}
    f, _ = pipeline_file(tmp, pg, [], "db", table="jt_db", source=source)
    p = start("run", "-f", f, cwd=tmp,
              env=clean_env(STAGE_SLEEP="tag=0.1"))
    try:
        wait_for(lambda: pg.psql("SELECT count(*) FROM jt_db_groups",
                                 check=False) not in ("", "0"),
                 what="parts stored")
        take_down(pg, "crash")
        # Down until the run has seen it: a part found the store gone.
        wait_for(lambda: "what stage j would keep there waits for it" in
                 stderr_of(p), what="a part waiting for the store")
        pg.start()
        code = wait_exit(p, time.monotonic() + 120, "the run")
    finally:
        stop(p)
    err = stderr_of(p)
    assert code == 0, err[-3000:]
    assert "stage j: its state store answers again" in err, err[-3000:]
    lines = read_jsonl((tmp / "db.out.jsonl").read_text())
    res = {r["id"]: r for r in lines}
    assert sorted(res) == sorted(f"v{v}" for v in range(10)), err[-3000:]
    for key, r in res.items():
        assert parts_of(r["result"]) == [0, 1, 2, 3], key
    assert pg.psql(f"SELECT state, count(*) FROM {queue} GROUP BY 1") == \
        "done|40"
    assert set(groups(pg, "jt_db").values()) == {"done"}
