"""The postgres sink against a real PostgreSQL: results into a table of its
own or one the user names, and, with a postgres queue in the same database,
each result committed with its acknowledgement."""
import json
import subprocess
import threading
import time

from conftest import (BUILD, FAKE, ROOT, clean_env, hopper, pg_insert, start,
                      stderr_of, wait_for)


def name_of(request, prefix):
    return prefix + request.node.name.replace("test_", "")[:40]


def rows(pg, sql):
    out = pg.psql(sql)
    return [line.split("|") for line in out.splitlines()] if out else []


def test_results_from_a_file_into_a_new_table(pg, request, tmp):
    table = name_of(request, "r_")
    items = tmp / "items.jsonl"
    items.write_text("".join(json.dumps({"n": i, "s": "é\\\t'\""}) + "\n"
                             for i in range(200)))
    for _ in range(2):  # the second run replaces, never duplicates
        code, out, err = hopper("run", "-s", f"jsonl:{items}", "-o", pg.url,
                                "-O", f"table={table}", "-O", "create=true",
                                "-j", "2", "--", *FAKE)
        assert code == 0, err
        assert out == ""
    assert pg.psql(f"SELECT count(*), count(DISTINCT key) FROM {table}") \
        == "200|200"
    got = json.loads(pg.psql(f"SELECT result FROM {table} WHERE key = "
                             f"(SELECT min(key) FROM {table})"))
    assert got["echo"]["s"] == "é\\\t'\""


def test_a_table_and_columns_of_ones_own(pg, tmp):
    pg.psql("CREATE TABLE thumbs (video text PRIMARY KEY, thumb jsonb "
            "NOT NULL, seen timestamptz DEFAULT now())", url=pg.url)
    items = tmp / "items.jsonl"
    items.write_text("".join(json.dumps({"v": i}) + "\n" for i in range(5)))
    code, _, err = hopper("run", "-s", f"jsonl:{items}", "-o", pg.url,
                          "-O", "table=thumbs", "-O", "key_column=video",
                          "-O", "result_column=thumb", "--", *FAKE)
    assert code == 0, err
    assert rows(pg, "SELECT video, thumb->'echo'->>'v' FROM thumbs "
                    "ORDER BY 1") == [[str(i), str(i - 1)]
                                      for i in range(1, 6)]


def test_clear_errors(pg, tmp):
    items = tmp / "items.jsonl"
    items.write_text('{"n": 1}\n')
    code, _, err = hopper("run", "-s", f"jsonl:{items}", "-o", pg.url,
                          "-O", "result_column=r\"; drop", "--", *FAKE)
    assert code == 1 and "is not a valid column name" in err
    code, _, err = hopper("run", "-s", f"jsonl:{items}", "-o", pg.url,
                          "-O", "table=missing_results", "--", *FAKE)
    assert code == 1
    assert "postgres sink: table missing_results:" in err
    assert "create=true" in err
    bad = pg.url.replace("hopper-secret", "nope")
    code, _, err = hopper("run", "-s", f"jsonl:{items}", "-o", bad,
                          "--", *FAKE)
    assert code == 1 and "postgres sink: cannot connect" in err
    assert "nope" not in err and "hopper-secret" not in err


def test_the_label_hides_the_password(pg, tmp, request):
    items = tmp / "items.jsonl"
    items.write_text('{"n": 1}\n')
    table = name_of(request, "r_")
    code, _, err = hopper("run", "-s", f"jsonl:{items}", "-o", pg.url,
                          "-O", f"table={table}", "-O", "create=true", "--",
                          *FAKE)
    assert code == 0, err
    assert "postgres://" in err and "***" in err
    assert "hopper-secret" not in err


def test_result_and_acknowledgement_are_one_commit(pg, queue, request):
    """With the queue in the same database, at no moment is a row done
    without its result or a result there without its row done."""
    table = name_of(request, "r_")
    n = 3000
    pg_insert(pg, queue, [{"n": i} for i in range(n)])
    samples, stop = [], threading.Event()

    def sample():
        sql = (f"SELECT (SELECT count(*) FROM {queue} WHERE state = 'done'),"
               f" (SELECT count(*) FROM {table})")
        while not stop.is_set():
            try:
                samples.append(tuple(map(int, pg.psql(sql).split("|"))))
            except Exception:  # the table may not exist yet
                time.sleep(0.01)

    hopper("run", "-s", "jsonl:/dev/null", "-o", pg.url, "-O",
           f"table={table}", "-O", "create=true", "--", *FAKE)
    t = threading.Thread(target=sample)
    t.start()
    try:
        code, out, err = hopper("run", "-s", pg.url, "-S", f"table={queue}",
                                "-o", pg.url, "-O", f"table={table}",
                                "-j", "2", "--prefetch", "8", "--", *FAKE)
    finally:
        stop.set()
        t.join()
    assert code == 0, err
    assert pg.psql(f"SELECT count(*) FROM {queue} WHERE state = 'done'") \
        == str(n)
    assert pg.psql(f"SELECT count(*) FROM {table} r JOIN {queue} q "
                   f"ON r.key = q.id::text AND "
                   f"(r.result->'echo'->>'n')::int = (q.payload->>'n')::int"
                   ) == str(n)
    mid = [s for s in samples if 0 < s[0] < n]
    assert len(mid) >= 3, samples  # the sampler saw the run in progress
    assert all(done == written for done, written in samples), \
        [s for s in samples if s[0] != s[1]][:5]


def test_a_result_the_table_refuses_makes_its_row_dead(pg, queue, request):
    table = name_of(request, "r_")
    pg.psql(f"CREATE TABLE {table} (key text PRIMARY KEY, result jsonb "
            "CHECK (result->'echo'->>'n' <> '3'))", url=pg.url)
    pg_insert(pg, queue, [{"n": i} for i in range(6)])
    code, _, err = hopper("run", "-s", pg.url, "-S", f"table={queue}",
                          "-o", pg.url, "-O", f"table={table}", "--", *FAKE)
    assert code == 0, err
    assert "writing its result failed" in err and "check constraint" in err
    assert rows(pg, f"SELECT payload->>'n', state FROM {queue} "
                    "ORDER BY id") == [["0", "done"], ["1", "done"],
                                       ["2", "done"], ["3", "dead"],
                                       ["4", "done"], ["5", "done"]]
    assert "writing the result failed" in pg.psql(
        f"SELECT last_error FROM {queue} WHERE payload->>'n' = '3'")
    assert pg.psql(f"SELECT count(*) FROM {table}") == "5"


def test_a_result_the_table_refuses_is_dead_and_holds_no_one_up(pg, request,
                                                                 tmp):
    """A sink of its own (a jsonl source): the batch the table refuses is
    held and written again a row at a time, which makes the row at fault
    dead (FAIL) and lets the others in: the run neither waits forever nor
    kills good results."""
    table = name_of(request, "r_")
    pg.psql(f"CREATE TABLE {table} (key text PRIMARY KEY, result jsonb "
            "CHECK (result->'echo'->>'n' <> '3'))", url=pg.url)
    items = tmp / "items.jsonl"
    items.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(6)))
    code, _, err = hopper("run", "-s", f"jsonl:{items}", "-o", pg.url,
                          "-O", f"table={table}", "-j", "3", "--", *FAKE,
                          timeout=120)
    assert code == 3, err
    assert "5 done, 1 dead" in err and "check constraint" in err
    assert rows(pg, f"SELECT result->'echo'->>'n' FROM {table} "
                    "ORDER BY 1") == [["0"], ["1"], ["2"], ["4"], ["5"]]


def test_a_row_no_longer_ours_gets_no_result(pg, queue, request, tmp):
    """Our lease ran out and the row was claimed again (here by this same
    coordinator's other worker): the first claim, finishing late, must
    neither mark the row done nor write its result; the second does."""
    table = name_of(request, "r_")
    pg_insert(pg, queue, [{"do": "sleep", "secs": 3}])
    p = start("run", "-s", pg.url, "-S", f"table={queue}", "-S", "poll=0.2",
              "-o", pg.url, "-O", f"table={table}", "-O", "create=true",
              "-j", "2", "--", *FAKE, cwd=tmp)
    try:
        wait_for(lambda: pg.psql(f"SELECT state FROM {queue}") == "running",
                 what="the row claimed")
        # As if the heartbeat had been lost: the lease runs out.
        pg.psql(f"UPDATE {queue} SET lease_until = now()")
        assert p.wait(timeout=30) == 0, stderr_of(p)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert "1 of 1 rows were no longer ours" in stderr_of(p)
    assert pg.psql(f"SELECT state || ' ' || attempts FROM {queue}") == \
        "done 2"
    assert pg.psql(f"SELECT count(*) FROM {table}") == "1"


def test_retain_zero_deletes_finished_rows(pg, queue):
    pg_insert(pg, queue, [{"n": i} for i in range(50)] + [{"do": "perm"}])
    code, _, err = hopper("run", "-s", pg.url, "-S", f"table={queue}",
                          "-S", "retain=0", "-o", "jsonl:/dev/null",
                          "--", *FAKE)
    assert code == 3, err
    # Done rows are gone; the dead one stays, to be looked at.
    assert rows(pg, f"SELECT state FROM {queue}") == [["dead"]]


def test_retain_keeps_done_rows_for_a_while(pg, queue, tmp):
    pg_insert(pg, queue, [{"n": i} for i in range(10)])
    p = start("run", "-s", pg.url, "-S", f"table={queue}", "-S", "retain=1s",
              "-S", "poll=0.2", "-o", "jsonl:/dev/null", "--watch", "--",
              *FAKE, cwd=tmp)
    try:
        wait_for(lambda: pg.psql(f"SELECT count(*) FROM {queue} WHERE "
                                 "state = 'done'") == "10",
                 what="all done")
        wait_for(lambda: pg.psql(f"SELECT count(*) FROM {queue}") == "0",
                 timeout=10, what="done rows deleted after a second")
        p.send_signal(2)
        assert p.wait(timeout=20) == 0, stderr_of(p)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    code, _, err = hopper("run", "-s", pg.url, "-S", f"table={queue}",
                          "-S", "retain=soon", "--", *FAKE)
    assert code == 1 and "retain 'soon' is not a time" in err


def test_the_thumbnail_pipeline_on_a_postgres_queue(pg, tmp):
    """pipelines/pg_thumbnails.json end to end: paths enqueued, thumbnails
    written, one result row per video committed with its row."""
    paths = []
    for i, size in enumerate(["160x120", "120x160"]):
        path = tmp / f"v{i}.mp4"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i",
                        f"testsrc=size={size}:rate=10:duration=1",
                        "-pix_fmt", "yuv420p", str(path)], check=True)
        paths.append(str(path))
    paths.append(str(tmp / "missing.mp4"))
    env = clean_env(DATABASE_URL=pg.url, QUEUE="vq", RESULTS="vthumbs",
                    THUMBNAIL_WORKER=BUILD / "hopper-thumbnail",
                    THUMBS=tmp / "thumbs", WORKERS=2)
    code, out, err = hopper("run", "-f", ROOT / "pipelines/pg_thumbnails.json",
                            "--once", env=env)
    assert code == 0, err  # created both tables, found nothing to do
    code, _, err = hopper("enqueue", pg.url, "--table", "vq",
                          input="".join(json.dumps(p) + "\n" for p in paths))
    assert code == 0, err
    code, out, err = hopper("run", "-f", ROOT / "pipelines/pg_thumbnails.json",
                            "--once", env=env)
    assert code == 3, err  # the missing file is dead
    got = rows(pg, "SELECT t.result->>'width', t.result->>'height' FROM "
                   "vthumbs t JOIN vq v ON t.key = v.id::text "
                   "ORDER BY v.id")
    assert got == [["320", "240"], ["320", "427"]] or \
        got == [["320", "240"], ["320", "426"]], got
    assert len(list((tmp / "thumbs").iterdir())) == 2
    assert rows(pg, "SELECT state FROM vq ORDER BY id") == \
        [["done"], ["done"], ["dead"]]
    assert "missing.mp4" in pg.psql("SELECT last_error FROM vq "
                                    "WHERE state = 'dead'")
