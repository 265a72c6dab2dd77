"""Durable edges between stages: a stage's "via" (a Kafka topic or a
PostgreSQL queue table) carries what the stages before it send, the whole
file runs in one coordinator through it, and --stage runs one side of it in
coordinators of its own, on a real broker and a real server. Nothing is
lost when a downstream coordinator is killed: every item is counted."""
import json
import os
import signal

import pytest

from conftest import (KAFKA_QUICK, PY, WORKERS, by_id, clean_env, hopper,
                      http_port, read_jsonl, start, stderr_of, stop, wait_for,
                      write_jsonl)
from test_http import get, metric

STAGE = [PY, str(WORKERS / "stage.py")]


def pipeline(tmp, via, n, sink=None, extra_b=None):
    """A file of two stages, a then b, with b's input on the edge via; its
    source is n jsonl items keyed k0..k(n-1)."""
    src = write_jsonl(tmp / "in.jsonl", [{"key": f"k{i}"} for i in range(n)])
    sink = sink or {"type": "jsonl", "path": str(tmp / "out.jsonl")}
    doc = {"sources": {"in": {"type": "jsonl", "path": str(src), "id": "key",
                              "dead": str(tmp / "dead.jsonl")}},
           "sinks": {"out": sink},
           "backoff": "10ms", "workers": 2,
           "stages": {"a": {"command": STAGE + ["a"], "to": "b"},
                      "b": {"command": STAGE + ["b"], "via": via,
                            **(extra_b or {})}}}
    f = tmp / "p.json"
    f.write_text(json.dumps(doc, indent=1))
    return f


def kafka_via(kafka, topic, partitions=2):
    return {"type": "kafka", "url": f"kafka://{kafka.bootstrap}/{topic}",
            "partitions": partitions, "source": {"config": KAFKA_QUICK}}


def results(path):
    return by_id(read_jsonl(path.read_text())) if path.exists() else {}


def dir_ids(folder):
    return {p.stem for p in folder.glob("*.json")} if folder.exists() \
        else set()


def test_a_kafka_edge_carries_a_whole_file_in_one_coordinator(tmp, kafka):
    n = 120
    f = pipeline(tmp, kafka_via(kafka, "edge-one"), n)
    code, _, err = hopper("run", "-f", f, timeout=180)
    assert code == 0, err
    res = results(tmp / "out.jsonl")
    assert sorted(res) == sorted(f"k{i}" for i in range(n))
    for r in res.values():
        assert r["ok"] and r["result"]["trail"] == ["a", "b"], r
    # The edge is a real topic: a's outputs are its messages, keyed by id,
    # and b's group committed past every one of them.
    keys = {json.loads(v)["key"] for v in kafka.consume("edge-one")}
    assert keys == set(res)
    ends = kafka.topic_offsets("edge-one")
    assert sum(ends.values()) == n
    assert kafka.committed_offsets("hopper.b", "edge-one") == ends


def murmur2(data):
    """Kafka's Java clients' murmur2 of bytes, as an unsigned 32-bit int."""
    m, h, n = 0x5bd1e995, 0x9747b28c ^ len(data), len(data) // 4 * 4
    for i in range(0, n, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xffffffff
        k ^= k >> 24
        k = (k * m) & 0xffffffff
        h = ((h * m) & 0xffffffff) ^ k
    tail = data[n:]
    if tail:
        for j in reversed(range(len(tail))):
            h ^= tail[j] << (8 * j)
        h = (h * m) & 0xffffffff
    h ^= h >> 13
    h = (h * m) & 0xffffffff
    return h ^ (h >> 15)


def test_murmur2_of_the_test_is_the_java_clients():
    signed = {b"21": -973932308, b"foobar": -790332482, b"abc": 479470107,
              b"a-little-bit-long-string": -985981536}
    for key, want in signed.items():
        assert murmur2(key) == want & 0xffffffff


def test_a_sharders_key_picks_the_partition_across_a_kafka_edge(tmp, kafka):
    """Into a sharder, the edge places each message by the sharder's key,
    hashed as Java clients hash keys: one user, one partition, one
    coordinator. The message's key stays the item's id."""
    n, parts = 60, 4
    f = pipeline(tmp, kafka_via(kafka, "edge-keys", partitions=parts), 0,
                 extra_b={"shards": 2, "key": "/user"})
    write_jsonl(tmp / "in.jsonl", [{"key": f"k{i}", "user": f"u{i % 7}"}
                                   for i in range(n)])
    code, _, err = hopper("run", "-f", f, timeout=180)
    assert code == 0, err
    assert len(results(tmp / "out.jsonl")) == n
    recs = kafka.consume_records("edge-keys")
    assert len(recs) == n
    seen = {}
    for r in recs:
        user = json.loads(r["value"])["user"]
        assert r["partition"] == (murmur2(user.encode()) & 0x7fffffff) \
            % parts, r
        assert r["key"] == json.loads(r["value"])["key"]
        seen.setdefault(user, set()).add(r["partition"])
    assert all(len(p) == 1 for p in seen.values())
    assert len({p for ps in seen.values() for p in ps}) > 1


def test_graph_shows_the_edge_as_a_sink_and_a_source(tmp, kafka):
    f = pipeline(tmp, kafka_via(kafka, "edge-graph"), 1)
    code, out, err = hopper("graph", f)
    assert code == 0, err
    assert "-> b.via" in out
    assert "source b.via (kafka://" in out and "-> b" in out
    code, out, err = hopper("validate", f)
    assert code == 0, err


def test_stages_run_apart_share_the_edge_and_a_killed_one_loses_nothing(
        tmp, kafka):
    """Two coordinators of b share the topic's partitions; one is killed
    mid-run and another takes its place; a runs on its own and ends when
    its items are on the edge. Every item reaches the sink."""
    n = 200
    out = tmp / "out"
    f = pipeline(tmp, kafka_via(kafka, "edge-apart", partitions=4), n,
                 sink={"type": "dir", "path": str(out)})
    env = clean_env(STAGE_SLEEP="b=0.01")
    b1 = start("run", "-f", f, "--stage", "b", "--watch", env=env, cwd=tmp)
    b2 = start("run", "-f", f, "--stage", "b", "--watch", env=env, cwd=tmp)
    b3 = None
    try:
        code, _, err = hopper("run", "-f", f, "--stage", "a", timeout=180)
        assert code == 0, err
        # a wrote every item to the edge.
        assert sum(kafka.topic_offsets("edge-apart").values()) == n
        wait_for(lambda: len(dir_ids(out)) >= n // 4, timeout=120,
                 what="b to be under way")
        b1.send_signal(signal.SIGKILL)
        b1.wait()
        b3 = start("run", "-f", f, "--stage", "b", "--watch", env=env,
                   cwd=tmp)
        wait_for(lambda: dir_ids(out) == {f"k{i}" for i in range(n)},
                 timeout=180, what="every item in the sink")
        for p in (b2, b3):
            assert p.poll() is None, stderr_of(p)
    finally:
        stop(b1, b2, b3)
    for p in (b2, b3):
        assert "error" not in stderr_of(p).lower(), stderr_of(p)
    for p in out.glob("*.json"):
        assert json.loads(p.read_text())["trail"] == ["a", "b"]


def test_a_postgres_edge_in_one_coordinator_and_apart(tmp, pg):
    n = 100
    via = {"type": "postgres", "url": pg.url, "table": "edge_pg"}
    f = pipeline(tmp, via, n)
    code, _, err = hopper("run", "-f", f, timeout=180)
    assert code == 0, err
    res = results(tmp / "out.jsonl")
    assert sorted(res) == sorted(f"k{i}" for i in range(n))
    rows = pg.psql("SELECT state, count(*) FROM edge_pg GROUP BY state")
    assert rows == f"done|{n}", rows
    # Run a again: its outputs are rows the queue has (by id), so the edge
    # takes none twice and b has nothing new to do.
    (tmp / "out.jsonl").unlink()
    code, _, err = hopper("run", "-f", f, "--stage", "a", timeout=180)
    assert code == 0, err
    assert pg.psql("SELECT count(*) FROM edge_pg").strip() == str(n)
    code, _, err = hopper("run", "-f", f, "--stage", "b", timeout=180)
    assert code == 0, err
    assert results(tmp / "out.jsonl") == {}


def logged(path):
    """The ids a stage.py log names."""
    return [line.split()[1] for line in path.read_text().splitlines()] \
        if path.exists() else []


def test_postgres_edge_shared_by_two_coordinators(tmp, pg):
    """A slow coordinator of b holds a few rows; a second one, started
    once the first is at work, takes the rest: each row is done by one of
    them only (SKIP LOCKED), and all are done."""
    n = 150
    out = tmp / "out"
    via = {"type": "postgres", "url": pg.url, "table": "edge_pg2",
           "poll": "100ms", "batch": 2}
    f = pipeline(tmp, via, n, sink={"type": "dir", "path": str(out)})
    code, _, err = hopper("run", "-f", f, "--stage", "a", timeout=180)
    assert code == 0, err
    assert pg.psql("SELECT count(*) FROM edge_pg2 WHERE state = 'ready'"
                   ) == str(n)
    log1, log2 = tmp / "b1.log", tmp / "b2.log"
    b1 = start("run", "-f", f, "--stage", "b", "--watch", cwd=tmp,
               env=clean_env(STAGE_SLEEP="b=0.5", STAGE_LOG=log1))
    b2 = None
    try:
        wait_for(lambda: logged(log1), what="the first b at work")
        b2 = start("run", "-f", f, "--stage", "b", "--watch", cwd=tmp,
                   env=clean_env(STAGE_LOG=log2))
        wait_for(lambda: dir_ids(out) == {f"k{i}" for i in range(n)},
                 timeout=180, what="every item in the sink")
        wait_for(lambda: pg.psql(
            "SELECT count(*) FROM edge_pg2 WHERE state = 'done'") == str(n),
            timeout=60, what="every row done")
    finally:
        stop(b1, b2)
    one, two = logged(log1), logged(log2)
    assert one and two
    assert not set(one) & set(two)
    assert sorted(one + two) == sorted(f"k{i}" for i in range(n))


@pytest.mark.parametrize("via,words", [
    ("dir:somewhere", "via: a dir cannot carry an edge between stages"),
    ({"type": "kafka", "url": "kafka://127.0.0.1:9/t", "id": "offset"},
     "via: 'id' is the edge's own"),
    ({"type": "kafka", "url": "kafka://127.0.0.1:9/t", "colour": 1},
     "via: unknown key 'colour'"),
    ({"type": "kafka", "url": "kafka://127.0.0.1:9/t",
      "source": {"payload": "string"}},
     "via: source: 'payload' is the edge's own"),
    ({"type": "kafka", "url": "kafka://127.0.0.1:9/t",
      "sink": {"group": "g"}}, "via: sink: unknown option 'group'"),
    ({"type": "postgres", "table": "bad name;"},
     "table name 'bad name;' is not a valid identifier"),
])
def test_a_bad_via_is_named(tmp, via, words):
    f = pipeline(tmp, via, 1)
    code, _, err = hopper("validate", f)
    assert code != 0, err
    assert words in err, err
    assert "p.json:" in err and "stage 'b'" in err, err


def test_stage_selection_errors_name_the_edge_in_memory(tmp):
    f = pipeline(tmp, "kafka://127.0.0.1:9/t", 1)
    code, _, err = hopper("validate", f, "--stage", "bb")
    assert code != 0 and "no stage 'bb'; did you mean 'b'?" in err, err
    doc = json.loads(f.read_text())
    del doc["stages"]["b"]["via"]
    f.write_text(json.dumps(doc))
    code, _, err = hopper("validate", f, "--stage", "b")
    assert code != 0, err
    assert "stage 'a' sends its items to stage 'b' in memory" in err, err
    assert "give stage 'b' a \"via\"" in err, err


def test_a_join_by_parent_or_by_emitted_key_refuses_a_via(tmp):
    f = pipeline(tmp, "kafka://127.0.0.1:9/t", 1, extra_b={"join": {}})
    code, _, err = hopper("validate", f)
    assert code != 0, err
    assert "a join by parent gathers the parts of one item inside one " \
        "coordinator" in err, err
    f = pipeline(tmp, "kafka://127.0.0.1:9/t", 1,
                 extra_b={"join": {"by": "key", "count": "/n"}})
    code, _, err = hopper("validate", f)
    assert code != 0, err
    assert "join by a JSON pointer into the payload" in err, err


def test_hopper_stage_in_the_environment_selects(tmp, pg):
    via = {"type": "postgres", "url": pg.url, "table": "edge_env"}
    f = pipeline(tmp, via, 10)
    code, _, err = hopper("run", "-f", f, env=clean_env(HOPPER_STAGE="a"))
    assert code == 0, err
    assert not (tmp / "out.jsonl").exists()
    assert pg.psql("SELECT count(*) FROM edge_env").strip() == "10"
    assert os.path.exists(tmp / "in.jsonl")


def test_an_item_dying_after_the_edge_is_dead_lettered_there(tmp, pg):
    """b's item that dies is the edge's: its dead letter is a dead row of
    the edge's table, listed by hopper dead with --stage b, and the
    upstream item was acknowledged when it was written to the edge."""
    via = {"type": "postgres", "url": pg.url, "table": "edge_dead"}
    f = pipeline(tmp, via, 0)
    write_jsonl(tmp / "in.jsonl", [{"key": "k0"},
                                   {"key": "k1", "do": {"b": "perm"}}])
    code, _, err = hopper("run", "-f", f)
    assert code == 3, err
    res = results(tmp / "out.jsonl")
    assert res["k0"]["ok"] and not res["k1"]["ok"], res
    assert res["k1"]["error"] == "b refuses k1", res
    assert pg.psql("SELECT key, state FROM edge_dead ORDER BY key") \
        == "k0|done\nk1|dead"
    assert not (tmp / "dead.jsonl").exists() or \
        (tmp / "dead.jsonl").read_text() == ""
    code, out, err = hopper("dead", "list", "-f", f, "--stage", "b")
    assert code == 0, err
    assert "k1" in out and "b refuses k1" in out and "k0" not in out, out


def join_file(tmp, kafka, topic, out_sink, rows):
    """tag, then a join by /video behind a Kafka edge."""
    write_jsonl(tmp / "in.jsonl", rows)
    doc = {"sources": {"in": {"type": "jsonl", "path": str(tmp / "in.jsonl"),
                              "id": "key", "dead": str(tmp / "dead.jsonl")}},
           "sinks": {"out": out_sink}, "backoff": "10ms", "workers": 2,
           "stages": {"tag": {"command": STAGE + ["tag"], "to": "j"},
                      "j": {"join": {"by": "/video", "count": "/total"},
                            "via": kafka_via(kafka, topic, partitions=4),
                            "to": "out"}}}
    f = tmp / "p.json"
    f.write_text(json.dumps(doc))
    return f


def frame_rows(videos, n):
    return [{"key": f"v{v}-f{i}", "video": f"v{v}", "total": n}
            for i in range(n) for v in range(videos)]


def test_a_join_by_key_gathers_its_parts_across_a_kafka_edge(tmp, kafka):
    videos, n, parts = 12, 3, 4
    f = join_file(tmp, kafka, "edge-join", {"type": "jsonl",
                                           "path": str(tmp / "out.jsonl")},
                  frame_rows(videos, n))
    code, _, err = hopper("run", "-f", f, timeout=180)
    assert code == 0, err
    res = results(tmp / "out.jsonl")
    assert sorted(res) == sorted(f"v{v}" for v in range(videos))
    for key, r in res.items():
        assert sorted(p["key"] for p in r["result"]["parts"]) == \
            [f"{key}-f{i}" for i in range(n)]
    # The join's key placed the parts: one video, one partition.
    where = {}
    for r in kafka.consume_records("edge-join"):
        video = json.loads(r["value"])["video"]
        where.setdefault(video, set()).add(r["partition"])
        assert r["partition"] == \
            (murmur2(video.encode()) & 0x7fffffff) % parts
    assert all(len(p) == 1 for p in where.values())


def test_a_join_coordinator_killed_with_groups_half_gathered(tmp, kafka):
    """The join's parts wait on the edge, unacknowledged, while their group
    is open: a join coordinator killed with groups half gathered loses
    none, and the next one gathers them whole."""
    videos, n = 20, 3
    out = tmp / "out"
    f = join_file(tmp, kafka, "edge-join-kill", {"type": "dir",
                                                 "path": str(out)},
                  frame_rows(videos, n))
    # The third frame of each video waits until the first join is gone.
    j1 = start("run", "-f", f, "--stage", "j", "--watch", "--listen",
               "127.0.0.1:0", cwd=tmp)
    j2 = None
    try:
        head = tmp / "head.jsonl"
        rows = frame_rows(videos, n)
        write_jsonl(head, [r for r in rows if not r["key"].endswith("-f2")])
        doc = json.loads(f.read_text())
        doc["sources"]["in"]["path"] = str(head)
        (tmp / "head.json").write_text(json.dumps(doc))
        code, _, err = hopper("run", "-f", tmp / "head.json", "--stage",
                              "tag", timeout=180)
        assert code == 0, err
        port = http_port(j1)
        wait_for(lambda: metric(get(port, "/metrics")[2],
                                "hopper_stage_join_groups", stage="j")
                 == videos, timeout=120, what="every group half gathered")
        assert dir_ids(out) == set()
        j1.send_signal(signal.SIGKILL)
        j1.wait()
        tail = tmp / "tail.jsonl"
        write_jsonl(tail, [r for r in rows if r["key"].endswith("-f2")])
        doc["sources"]["in"]["path"] = str(tail)
        (tmp / "tail.json").write_text(json.dumps(doc))
        code, _, err = hopper("run", "-f", tmp / "tail.json", "--stage",
                              "tag", timeout=180)
        assert code == 0, err
        j2 = start("run", "-f", f, "--stage", "j", "--watch", cwd=tmp)
        wait_for(lambda: dir_ids(out) == {f"v{v}" for v in range(videos)},
                 timeout=180, what="every group joined")
    finally:
        stop(j1, j2)
    for p in out.glob("*.json"):
        joined = json.loads(p.read_text())
        assert sorted(x["key"] for x in joined["parts"]) == \
            [f"{p.stem}-f{i}" for i in range(n)]


def test_exactly_once_from_a_kafka_edge_to_a_topic(tmp, kafka):
    """b reads its edge with exactly_once and writes to a topic: its
    outputs and the edge's offsets commit together, so a b coordinator
    killed again and again leaves each item's output on the topic once
    for a read_committed reader."""
    from test_kafka_eos import read
    n = 300
    kafka.create_topic("edge-eos-out", partitions=2)
    via = kafka_via(kafka, "edge-eos", partitions=2)
    via["source"]["exactly_once"] = True
    via["source"]["batch"] = 20
    f = pipeline(tmp, via, n, sink={
        "type": "kafka", "url": f"kafka://{kafka.bootstrap}/edge-eos-out"})
    code, _, err = hopper("run", "-f", f, "--stage", "a", timeout=180)
    assert code == 0, err
    env = clean_env(STAGE_SLEEP="b=0.05")
    b = None
    try:
        for kills in range(3):
            b = start("run", "-f", f, "--stage", "b", "--watch", env=env,
                      cwd=tmp)
            want = (kills + 1) * n // 4
            wait_for(lambda: len(read(kafka, "edge-eos-out")) >= want,
                     timeout=120, what=f"{want} outputs committed")
            b.send_signal(signal.SIGKILL)
            b.wait()
        b = start("run", "-f", f, "--stage", "b", "--watch", env=env,
                  cwd=tmp)
        wait_for(lambda: len(read(kafka, "edge-eos-out")) >= n,
                 timeout=180, what="every output committed")
    finally:
        stop(b)
    keys = [k for _, k, _ in read(kafka, "edge-eos-out")]
    assert sorted(keys) == sorted(f"k{i}" for i in range(n)), \
        [k for k, c in __import__("collections").Counter(keys).items()
         if c > 1][:10]


def test_exactly_once_refuses_a_join_it_would_wait_for(tmp):
    """A transaction's batch ends when its items are finished; a join holds
    its parts until the rest of the group comes, in a later batch."""
    via = {"type": "kafka", "url": "kafka://127.0.0.1:9/t",
           "source": {"exactly_once": True}}
    f = pipeline(tmp, via, 1, extra_b={"join": {"by": "/v", "count": "/n"}})
    code, _, err = hopper("validate", f)
    assert code != 0, err
    assert "source 'b.via': exactly_once commits a batch once all its " \
        "items are finished, and stage 'b' (a join)" in err, err
    # A run without the join (its other stage) is not refused.
    code, _, err = hopper("validate", f, "--stage", "a")
    assert code == 0, err
