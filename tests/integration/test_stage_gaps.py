"""Pipelines of stages, the details a user reads: the attempts a
descendant's record shows, the stage a dead letter names, the drops the
run counts, the words of a timeout, the jsonl sink on a redirected
stdout, when a jsonl dead letter died, and the progress line's stages."""
import json
import re
import subprocess
import zlib

from conftest import (HOPPER, PY, WORKERS, assert_clean, by_id, clean_env,
                      hopper, http_port, read_jsonl, stderr_of, wait_for,
                      write_jsonl)
from test_http import get, metric
from test_stage_ops import samples, of
from test_stages import cmd, dead_letters, run_pipeline


def test_a_descendants_record_shows_the_attempts_that_made_it(tmp):
    # split's outputs on p1 go straight to the sink; those on p0 go to b,
    # which copies each to two sinks: all of them are made by a new item
    # of the tree, none by a worker of its own.
    state = tmp / "state"
    state.mkdir()
    sinks = {"out": {"type": "jsonl", "path": str(tmp / "out.jsonl")},
             "copy": {"type": "jsonl", "path": str(tmp / "copy.jsonl")}}
    stages = {"split": {"command": cmd("split"),
                        "to": {"p0": "b", "p1": "out"}, "attempts": 3},
              "b": {"command": cmd("b"), "to": ["out", "copy"],
                    "attempts": 3}}
    payloads = [{"key": f"u{i}", "do": {"split": "split:4",
                                        "b": "port:x"}} for i in range(3)]
    code, got, err = run_pipeline(tmp, stages, payloads, sinks=sinks,
                                  env={"STAGE_STATE": state})
    assert code == 0, err
    out, copy = by_id(got["out"]), by_id(got["copy"])
    assert sorted(out) == sorted(f"u{i}/{k}" for i in range(3)
                                 for k in range(4))
    assert sorted(copy) == sorted(f"u{i}/{k}" for i in range(3)
                                  for k in (0, 2))
    assert {r["attempts"] for r in out.values()} == {1}, out
    assert {r["attempts"] for r in copy.values()} == {1}, copy


def first_good_attempt(stage, item, crash):
    """The first attempt of item that stage.py, at STAGE_CRASH=crash, does
    not kill in the middle of (as its maybe_crash decides)."""
    attempt = 1
    while zlib.crc32(f"{stage} {item} {attempt}".encode()) % 1000 < \
            crash * 1000:
        attempt += 1
    return attempt


def test_a_descendants_record_counts_the_attempts_of_its_maker(tmp):
    # The splitter is killed half way through some attempts; the outputs
    # of the attempt that succeeds go straight to the sink, and each one's
    # record says which attempt that was.
    keys = [f"u{i}" for i in range(8)]
    want = {k: first_good_attempt("split", k, 0.5) for k in keys}
    assert max(want.values()) > 1 and min(want.values()) == 1  # both kinds
    stages = {"split": {"command": cmd("split"), "attempts": 10,
                        "to": {"p0": "out", "p1": "out"}}}
    payloads = [{"key": k, "do": {"split": "split:2"}} for k in keys]
    code, got, err = run_pipeline(tmp, stages, payloads,
                                  env={"STAGE_CRASH": "split=0.5"})
    assert code == 0, err
    res = by_id(got["out"])
    assert sorted(res) == sorted(f"{k}/{n}" for k in keys for n in (0, 1))
    for rid, r in res.items():
        assert r["attempts"] == want[rid.split("/")[0]], (rid, r)
