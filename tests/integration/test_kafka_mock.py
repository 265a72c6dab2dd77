"""Kafka faults through librdkafka's mock cluster, where the real broker
cannot make them on demand: the broker down and back, and requests that
fail. Nothing is lost and the run completes. (The mock cluster keeps only a
few MiB per partition: these runs stay small.)"""
import subprocess
import time
import pytest

from conftest import (BUILD, FAKE, KAFKA_QUICK, assert_clean, clean_env,
                      read_jsonl)

MOCK = BUILD / "tests" / "kafka_mock"


@pytest.fixture
def cluster():
    """A mock cluster with a topic of 2,000 messages over 3 partitions."""
    p = subprocess.Popen([str(MOCK), "items", "3", "2000"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    p.bootstrap = p.stdout.readline().strip()
    assert p.bootstrap, "the mock cluster did not start"

    def say(cmd):
        p.stdin.write(cmd + "\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "ok"
    p.say = say
    yield p
    p.stdin.close()
    p.wait(timeout=20)


def run(cluster, tmp, out, *flags, config=KAFKA_QUICK):
    return subprocess.Popen(
        [str(BUILD / "hopper"), "run", "-s",
         f"kafka://{cluster.bootstrap}/items", "-S", "group=mock",
         "-S", f"config={config}",
         "-o", f"jsonl:{out}", "-j", "2", "--backoff", "0.05", *flags,
         "--", *FAKE],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=clean_env(FAKE_SLEEP="0.002"), cwd=tmp)


def results(out):
    got = [r["result"]["echo"]["n"] for r in read_jsonl(out.read_text())]
    return got


def test_the_broker_goes_down_and_comes_back(cluster, tmp):
    out = tmp / "out.jsonl"
    p = run(cluster, tmp, out)
    end = time.monotonic() + 60
    while not out.exists() or len(out.read_text().splitlines()) < 300:
        assert time.monotonic() < end and p.poll() is None
        time.sleep(0.05)
    cluster.say("down")
    time.sleep(2)
    cluster.say("up")
    _, err = p.communicate(timeout=120)
    assert_clean(err)
    assert p.returncode == 0, err[-3000:]
    # The outage was seen, in hopper's own log lines.
    assert "librdkafka" in err and "Connection refused" in err
    assert "%3|" not in err
    assert set(results(out)) == set(range(2000))


def test_requests_that_fail_are_retried(cluster, tmp):
    out = tmp / "out.jsonl"
    for api in ("fetch", "commit"):
        cluster.say(f"errors {api} 5")
    # librdkafka's debug lines show the failures happened.
    p = run(cluster, tmp, out, "--log-level", "debug",
            config=KAFKA_QUICK + ",debug=fetch,cgrp")
    _, err = p.communicate(timeout=120)
    assert_clean(err)
    assert p.returncode == 0, err[-3000:]
    assert "Fetch backoff" in err and "Not leader for partition" in err
    assert set(results(out)) == set(range(2000))


def test_a_result_too_large_for_the_topic_is_dead_not_held(cluster, tmp):
    """librdkafka refuses a message over message.max.bytes: that item can
    never be written, so it fails (FAIL), and the sink is not taken for
    out: the other results go on."""
    import json
    src = tmp / "in.jsonl"
    src.write_text("".join(json.dumps(p) + "\n" for p in [
        {"n": 1}, {"n": 2, "big": "x" * 20000}, {"n": 3}]))
    p = subprocess.run(
        [str(BUILD / "hopper"), "run", "-s", f"jsonl:{src}",
         "-o", f"kafka://{cluster.bootstrap}/results",
         "-O", "config=message.max.bytes=10000", "--", *FAKE],
        capture_output=True, text=True, env=clean_env(), cwd=tmp,
        timeout=120)
    assert_clean(p.stderr)
    assert p.returncode == 3, p.stderr[-3000:]
    assert "2 done, 1 dead" in p.stderr
    assert "the sink is out" not in p.stderr
    assert "Message size too large" in p.stderr
