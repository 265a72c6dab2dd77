"""Workers that fail in ways the contract does not spell out step by step:
a crash with its reason on stderr, a closed stdout, processes left behind
in the worker's group, a worker that cannot start at all, and --halt."""
import re

from conftest import FAKE, by_id, hopper, read_jsonl, write_jsonl


def test_stream_crash_error_carries_the_last_stderr_line(tmp):
    # The first item is answered, so the worker is known to work: the
    # crash is the item's failed attempt.
    src = write_jsonl(tmp / "in.jsonl", [{"n": 0}, {"do": "boom"}])
    dead = tmp / "dead.jsonl"
    code, out, err = hopper("run", "-s", f"jsonl:{src}", "-S",
                            f"dead={dead}", "-j", "1", "--attempts", "1",
                            "--", *FAKE, timeout=60)
    assert code == 3, err
    res = by_id(read_jsonl(out))
    assert res["1"]["ok"] and not res["2"]["ok"]
    want = ("worker 0 exited with status 1 while handling the item: "
            "boom: bad frame")
    assert res["2"]["error"] == want
    letters = read_jsonl(dead.read_text())
    assert len(letters) == 1 and letters[0]["id"] == "2"
    assert letters[0]["error"] == want
