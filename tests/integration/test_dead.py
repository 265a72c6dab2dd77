"""Dead letters people can act on: hopper dead list, retry and discard for
the folder, PostgreSQL and Kafka sources, and a folder's reports that are
never taken for items."""
import json
import shutil

from conftest import (FAKE, KAFKA_QUICK, PY, WORKERS, hopper, pg_insert,
                      read_jsonl, start, stderr_of, stop, wait_for,
                      write_jsonl)

GATE = [PY, str(WORKERS / "gate.py")]
GOOD = [PY, str(WORKERS / "burn.py")]


def make_folder(inbox, texts):
    inbox.mkdir()
    for name, text in texts.items():
        (inbox / name).write_text(text)


def test_reports_moved_back_into_the_inbox_are_never_items(tmp):
    inbox, out = tmp / "in", tmp / "out.jsonl"
    make_folder(inbox, {"a1.txt": "perm", "a2.txt": "fine"})
    code, _, err = hopper("run", "-s", f"dir:{inbox}", "-o", f"jsonl:{out}",
                          "-j", "1", "--", *GATE)
    assert code == 3, err
    failed = inbox / "failed"
    assert sorted(p.name for p in failed.iterdir()) == [
        "a1.txt", "a1.txt.error.json"]
    # What a person does first: put everything back.
    for p in failed.iterdir():
        shutil.move(str(p), str(inbox / p.name))
    out.unlink()
    code, _, err = hopper("run", "-s", f"dir:{inbox}", "-o", f"jsonl:{out}",
                          "-j", "1", "--", *GOOD)
    assert code == 0, err
    lines = read_jsonl(out.read_text())
    assert [(r["id"], r["ok"]) for r in lines] == [("a1.txt", True)]
    assert "a1.txt.error.json" in err and "skipped" in err, err
    # The report is left where it was put, untouched.
    assert (inbox / "a1.txt.error.json").exists()
    assert not (inbox / "failed" / "a1.txt.error.json.error.json").exists()


def test_a_report_moved_into_a_watched_inbox_is_never_an_item(tmp):
    inbox, out = tmp / "in", tmp / "out.jsonl"
    make_folder(inbox, {"a1.txt": "perm"})
    code, _, err = hopper("run", "-s", f"dir:{inbox}", "-o", "jsonl:-",
                          "--", *GATE)
    assert code == 3, err
    p = start("run", "-s", f"dir:{inbox}", "-o", f"jsonl:{out}", "--watch",
              "-j", "1", "--", *GOOD, cwd=tmp)
    try:
        wait_for(lambda: "running:" in stderr_of(p) or
                 p.poll() is not None, timeout=60, what="the run to start")
        # The report first, so that it is there before its file is done.
        for name in ("a1.txt.error.json", "a1.txt"):
            (inbox / "failed" / name).rename(inbox / name)
        # Its file done: the report, moved in before it, was seen first.
        wait_for(lambda: out.exists() and '"a1.txt"' in out.read_text(),
                 timeout=60, what="the file done")
        wait_for(lambda: "a1.txt.error.json" in stderr_of(p) + out.read_text(),
                 timeout=60, what="the report seen")
    finally:
        stop(p)
    assert p.returncode == 0, stderr_of(p)
    assert [(r["id"], r["ok"]) for r in read_jsonl(out.read_text())] == [
        ("a1.txt", True)]
    assert "skipped" in stderr_of(p)
    assert (inbox / "a1.txt.error.json").exists()


def dead(*args):
    """hopper dead ARGS --json: (exit code, the JSON lines, stderr)."""
    code, out, err = hopper("dead", *args, "--json")
    return code, read_jsonl(out), err


def test_folder_list_retry_discard(tmp):
    inbox, out = tmp / "in", tmp / "out.jsonl"
    make_folder(inbox, {"a1.txt": "perm", "a2.txt": "perm", "a3.txt": "perm",
                        "b1.txt": "fine"})
    src = ["-s", f"dir:{inbox}"]
    code, _, err = hopper("run", *src, "-o", f"jsonl:{out}", "-j", "2",
                          "--", *GATE)
    assert code == 3, err

    code, lines, err = dead("list", *src)
    assert code == 0, err
    failed = inbox / "failed"
    assert {r["id"]: r["error"] for r in lines} == {
        n: f"{failed}/{n}: asked to fail" for n in ("a1.txt", "a2.txt",
                                                    "a3.txt")}
    assert all(r["attempts"] == 1 and r["payload"] == f"{failed}/{r['id']}"
               for r in lines), lines
    # On a terminal or not, the same rows as a table.
    code, table, err = hopper("dead", "list", *src)
    assert code == 0, err
    assert [row.split()[0] for row in table.splitlines()] == [
        "ID", "a1.txt", "a2.txt", "a3.txt"]

    # A dry run changes nothing.
    code, lines, err = dead("retry", "--all", "--dry-run", *src)
    assert code == 0, err
    assert [(r["id"], r["action"]) for r in lines] == [
        ("a1.txt", "retry"), ("a2.txt", "retry"), ("a3.txt", "retry")]
    assert len(list(failed.iterdir())) == 6

    code, lines, err = dead("retry", "a1.txt", *src)
    assert code == 0, err
    assert lines == [{"id": "a1.txt", "action": "retried", "dry_run": False}]
    assert (inbox / "a1.txt").read_text() == "perm"
    code, lines, err = dead("discard", "a2.txt", *src)
    assert code == 0, err
    assert sorted(p.name for p in failed.iterdir()) == [
        "a3.txt", "a3.txt.error.json"]
    code, lines, err = dead("list", *src)
    assert code == 0 and [r["id"] for r in lines] == ["a3.txt"], err

    # What is not there is named, and the rest is still done.
    code, lines, err = dead("discard", "a2.txt", "a3.txt", *src)
    assert code == 1
    assert "a2.txt" in err and [r["id"] for r in lines] == ["a3.txt"]
    assert list(failed.iterdir()) == []

    # The retried file is done again by a good worker, and only it.
    out.unlink()
    code, _, err = hopper("run", *src, "-o", f"jsonl:{out}", "--", *GOOD)
    assert code == 0, err
    assert [(r["id"], r["ok"]) for r in read_jsonl(out.read_text())] == [
        ("a1.txt", True)]
    assert sorted(p.name for p in (inbox / "done").iterdir()) == [
        "a1.txt", "b1.txt"]


def test_a_pipeline_file_names_the_source(tmp):
    inbox, out = tmp / "in", tmp / "out.jsonl"
    make_folder(inbox, {"a1.txt": "perm"})
    pipeline = tmp / "p.json"
    pipeline.write_text(json.dumps({
        "source": {"type": "dir", "path": str(inbox)},
        "sink": f"jsonl:{out}", "command": GATE}))
    code, _, err = hopper("run", "-f", pipeline)
    assert code == 3, err
    code, lines, err = dead("list", "-f", pipeline)
    assert code == 0 and [r["id"] for r in lines] == ["a1.txt"], err
    code, lines, err = dead("retry", "--all", "-f", pipeline)
    assert code == 0 and [r["id"] for r in lines] == ["a1.txt"], err
    assert (inbox / "a1.txt").exists()


def test_retry_and_discard_need_ids_or_all(tmp):
    inbox = tmp / "in"
    make_folder(inbox, {})
    for action in ("retry", "discard"):
        code, _, err = hopper("dead", action, "-s", f"dir:{inbox}")
        assert code == 2 and "--all" in err, err
    code, out, err = hopper("dead", "list", "-s", f"dir:{inbox}", "--json")
    assert code == 0 and out == "", err


def test_postgres_list_retry_discard(pg, queue):
    pg_insert(pg, queue, [{"do": "perm"}, {"do": "perm"}, {"do": "perm"},
                          {"do": "ok"}])
    src = ["-s", pg.url, "-S", f"table={queue}"]
    code, _, err = hopper("run", *src, "-S", "poll=0.2", "--", *FAKE)
    assert code == 3, err

    code, lines, err = dead("list", *src)
    assert code == 0, err
    # Oldest death first: workers in parallel may finish in any order.
    assert sorted((r["id"], r["error"], r["attempts"], r["payload"])
                  for r in lines) == [(i, "bad input", 1, {"do": "perm"})
                                      for i in ("1", "2", "3")]
    assert all(r["record"]["error"] == "bad input" for r in lines)

    code, lines, err = dead("retry", "1", *src)
    assert code == 0 and [r["id"] for r in lines] == ["1"], err
    assert pg.psql(f"SELECT state, attempts, result IS NULL FROM {queue} "
                   "WHERE id = 1") == "ready|0|t"
    code, lines, err = dead("discard", "2", *src)
    assert code == 0 and [r["id"] for r in lines] == ["2"], err
    code, lines, err = dead("list", *src)
    assert code == 0 and [r["id"] for r in lines] == ["3"], err
    code, lines, err = dead("retry", "2", *src)
    assert code == 1 and "'2'" in err and lines == [], err

    # The retried row is done by a good worker, from its first attempt.
    code, out, err = hopper("run", *src, "-S", "poll=0.2", "--", *GOOD)
    assert code == 0, err
    assert [(r["id"], r["ok"], r["attempts"])
            for r in read_jsonl(out)] == [("1", True, 1)]
    assert pg.psql(f"SELECT id, state FROM {queue} ORDER BY id") == \
        "1|done\n3|dead\n4|done"


def test_kafka_list_retry_discard(kafka):
    src = "dead-cmd"
    kafka.create_topic(src, partitions=1)
    kafka.create_topic(f"{src}.dead", partitions=1)
    perm = json.dumps({"do": "perm"})
    kafka.produce(src, [perm, perm, perm, json.dumps({"n": 3})],
                  key=["k0", "k1", "k2", "k3"])
    spec = ["-s", f"kafka://{kafka.bootstrap}/{src}", "-S", "group=g",
            "-S", f"config={KAFKA_QUICK}"]
    # One worker: the messages die, and reach the dead-letter topic, in
    # their order.
    code, _, err = hopper("run", *spec, "-j", "1", "--", *FAKE)
    assert code == 3, err

    code, lines, err = dead("list", *spec)
    assert code == 0, err
    assert [(r["id"], r["item"], r["error"], r["attempts"], r["payload"])
            for r in lines] == [
        (f"{src}.dead/0/{i}", f"{src}/0/{i}", "bad input", 1,
         {"do": "perm"}) for i in range(3)]

    # Retry the first and discard the last: the middle one is left, and
    # what was handled is kept past it in the group's commit.
    code, lines, err = dead("retry", f"{src}.dead/0/0", *spec)
    assert code == 0 and len(lines) == 1, err
    # The retry's producer is not given the consumer's settings.
    assert "CONFWARN" not in err, err
    got = kafka.consume_records(src)
    assert len(got) == 5
    assert (got[4]["key"], got[4]["value"]) == ("k0", perm)
    code, lines, err = dead("discard", f"{src}.dead/0/2", *spec)
    assert code == 0 and len(lines) == 1, err
    code, lines, err = dead("list", *spec)
    assert code == 0 and [r["id"] for r in lines] == [f"{src}.dead/0/1"]
    assert kafka.committed_offsets("g.dead", f"{src}.dead") == {0: 1}

    # Handled once: a second retry publishes nothing.
    code, lines, err = dead("retry", f"{src}.dead/0/0", *spec)
    assert code == 1 and f"{src}.dead/0/0" in err and lines == [], err
    assert kafka.topic_offsets(src) == {0: 5}

    # The republished message is done by a good worker, and only it.
    code, out, err = hopper("run", *spec, "--", *GOOD)
    assert code == 0, err
    assert [(r["id"], r["ok"]) for r in read_jsonl(out)] == [
        (f"{src}/0/4", True)]

    code, lines, err = dead("discard", f"{src}.dead/0/1", *spec)
    assert code == 0, err
    assert kafka.committed_offsets("g.dead", f"{src}.dead") == {0: 3}
    code, lines, err = dead("list", *spec)
    assert code == 0 and lines == [], err


def test_jsonl_dead_file_retry_writes_a_new_input(tmp):
    items, dead_file = tmp / "items.jsonl", tmp / "dead.jsonl"
    write_jsonl(items, [{"key": "a", "do": "perm"}, {"key": "b", "do": "perm"},
                        {"key": "c"}])
    src = ["-s", f"jsonl:{items}", "-S", "id=key", "-S", f"dead={dead_file}"]
    code, _, err = hopper("run", *src, "-j", "1", "--", *FAKE)
    assert code == 3, err
    code, lines, err = dead("list", *src)
    assert code == 0, err
    assert [(r["id"], r["error"]) for r in lines] == [("a", "bad input"),
                                                     ("b", "bad input")]

    # A stream cannot take an item back: its payload goes to a new input.
    code, _, err = hopper("dead", "retry", "a", *src)
    assert code == 1 and "--to" in err, err
    code, out, err = hopper("dead", "retry", "a", "--to", "-", *src)
    assert code == 0 and "retried a" in err, err
    assert read_jsonl(out) == [{"key": "a", "do": "perm"}]
    code, lines, err = dead("discard", "b", *src)
    assert code == 0, err
    assert dead_file.read_text() == ""

    again = tmp / "again.jsonl"
    again.write_text(out)
    code, out, err = hopper("run", "-s", f"jsonl:{again}", "-S", "id=key",
                            "--", *GOOD)
    assert code == 0, err
    assert [(r["id"], r["ok"]) for r in read_jsonl(out)] == [("a", True)]
