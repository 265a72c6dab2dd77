"""Dead letters people can act on: hopper dead list, retry and discard for
the folder, PostgreSQL and Kafka sources, and a folder's reports that are
never taken for items."""
import json
import shutil

from conftest import PY, WORKERS, hopper, read_jsonl

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
