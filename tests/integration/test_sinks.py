"""The jsonl and dir sinks when things go wrong: torn and partial writes,
ids that look alike, a disk that fills or turns read-only and comes back,
and dead letters that cannot be written."""
import hashlib
import json

from conftest import FAKE, hopper, write_jsonl


def escaped(item_id):
    """The dir sink's name for an id, as the README gives it."""
    raw = item_id.encode()
    out = ""
    for i, b in enumerate(raw):
        c = chr(b)
        if c in "%/" or b < 0x20 or b == 0x7f or b >= 0x80 or (
                i == 0 and c == "."):
            out += "%%%02X" % b
        else:
            out += c
    if len(out) > 200:
        cut = out[:128]
        while "%" in cut[-2:]:  # never half an escape
            cut = cut[:cut.rindex("%")]
        out = cut + "%%" + hashlib.sha256(raw).hexdigest()
    return out


def test_dir_sink_gives_every_id_a_file_of_its_own(tmp):
    long_a = "L" * 300
    long_b = "L" * 299 + "M"
    ids = ["a/b", "a_b", ".hidden", "_hidden", "%2F", long_a, long_b,
           "plain-7.txt"]
    src = write_jsonl(tmp / "in.jsonl", [{"key": i, "n": n}
                                         for n, i in enumerate(ids)])
    out = tmp / "out"
    code, _, err = hopper("run", "-s", f"jsonl:{src}", "-S", "id=key",
                          "-o", f"dir:{out}", "--", *FAKE)
    assert code == 0, err
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == len(ids), files
    for n, i in enumerate(ids):
        path = out / (escaped(i) + ".json")
        assert json.loads(path.read_text())["echo"] == {"key": i, "n": n}
    assert (out / "plain-7.txt.json").exists()  # ordinary ids unchanged
    assert (out / "a%2Fb.json").exists() and (out / "%2Ehidden.json").exists()


def parse_lines(path):
    """Every line of a jsonl sink file, parsed: a fragment fails here."""
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), data[-200:]
    return [json.loads(line) for line in data.decode().splitlines()]


def test_jsonl_sink_cuts_a_torn_tail_before_writing(tmp):
    sink = tmp / "out.jsonl"
    whole = '{"id":"old","ok":true,"result":1,"attempts":1}\n'
    torn = '{"id":"killed","ok":true,"result":{"echo":{"n'
    sink.write_text(whole + torn)
    src = write_jsonl(tmp / "in.jsonl", [{"n": n} for n in range(5)])
    code, _, err = hopper("run", "-s", f"jsonl:{src}", "-o", f"jsonl:{sink}",
                          "--", *FAKE)
    assert code == 0, err
    assert f"jsonl sink: {sink}: cut a torn last line of {len(torn)} byte(s)" \
        in err
    lines = parse_lines(sink)
    assert [r["id"] for r in lines].count("old") == 1
    assert sorted(r["id"] for r in lines if r["id"] != "old") == \
        ["1", "2", "3", "4", "5"]
    assert all(r["ok"] for r in lines)
