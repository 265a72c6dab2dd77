"""A pipeline file with stages: how it is read (keys, precedence, named
sources and sinks), the checks of its graph and their messages, and the
graph as hopper graph and hopper validate show it."""
import json
import re

import pytest

from conftest import hopper
from test_pipeline import help_entries

SIGNUP = """{
  "sources": {"signups": {"type": "jsonl", "path": "in.jsonl",
                          "to": "verify"}},
  "sinks": {"out": {"type": "dir", "path": "out"},
            "log": {"type": "jsonl", "path": "log.jsonl"}},
  "workers": 2,
  "timeout": "30s",
  "stages": {
    "verify": {"command": ["python3", "verify.py"],
               "to": ["welcome", "prefs"]},
    "welcome": {"command": "node welcome.js", "mode": "exec", "to": "out"},
    "prefs": {"command": ["sh", "prefs.sh"], "workers": 3,
              "to": {"email": "email", "sms": "sms", "*": "log"},
              "unmapped": "drop"},
    "email": {"command": ["./email"], "shards": 4, "key": "/user",
              "to": "out"},
    "sms": {"command": ["./sms"], "on_dead": "alone", "min_workers": 0,
            "max_workers": 4, "workers": 0, "to": "log"}
  }
}
"""

# The edges of SIGNUP: (from, port, to); a port only on a splitter's.
SIGNUP_EDGES = {
    ("source/signups", None, "stage/verify"),
    ("stage/verify", None, "stage/welcome"),
    ("stage/verify", None, "stage/prefs"),
    ("stage/welcome", None, "sink/out"),
    ("stage/prefs", "email", "stage/email"),
    ("stage/prefs", "sms", "stage/sms"),
    ("stage/prefs", "*", "sink/log"),
    ("stage/email", None, "sink/out"),
    ("stage/sms", None, "sink/log"),
}


def write(tmp, text, name="pipe.json"):
    f = tmp / name
    f.write_text(text)
    return f


def text_edges(out):
    """The edges of hopper graph's text: "source S (...) -> A, B" lines and,
    under "stage S (...)", "  -> A" or "  [PORT] -> A" lines."""
    kinds = {}
    for m in re.finditer(r"^(stage|sink) (\S+) \(", out, re.M):
        kinds[m.group(2)] = m.group(1)
    edges, stage = set(), None
    for line in out.splitlines():
        m = re.match(r"source (\S+) \(.*\) -> (.*)$", line)
        if m:
            for t in m.group(2).split(", "):
                edges.add((f"source/{m.group(1)}", None, f"{kinds[t]}/{t}"))
            continue
        m = re.match(r"stage (\S+) \(", line)
        if m:
            stage = m.group(1)
            continue
        m = re.match(r"  (?:\[(.+)\] )?-> (.*)$", line)
        if m:
            for t in m.group(2).split(", "):
                edges.add((f"stage/{stage}", m.group(1), f"{kinds[t]}/{t}"))
            continue
        assert re.match(r"(sink|stage) \S+ \(", line), line
    return edges


def stage_words(out):
    return dict(re.findall(r"^stage (\S+) \((.*?)\):", out, re.M))


def test_validate_shows_the_graph_after_ok(tmp):
    f = write(tmp, SIGNUP)
    code, out, err = hopper("validate", f)
    assert code == 0, err
    first, *rest = out.splitlines()
    assert first == f"{f}: ok: 5 stages, 1 source, 2 sinks"
    assert text_edges("\n".join(rest)) == SIGNUP_EDGES
    assert "source signups (jsonl:in.jsonl) -> verify" in rest
    assert "sink out (dir:out)" in rest and "sink log (jsonl:log.jsonl)" in rest


def test_graph_shows_modes_workers_and_shards(tmp):
    code, out, err = hopper("graph", write(tmp, SIGNUP))
    assert code == 0, err
    stages = stage_words(out)
    assert stages == {
        "verify": "stream, 2 workers",
        "welcome": "exec, 2 workers",
        "prefs": "stream, 3 workers, unmapped outputs dropped",
        "email": "stream, 2 workers per shard, 4 shards by /user",
        "sms": "stream, 0..4 workers, dead items alone",
    }
    assert "stage welcome (exec, 2 workers): node welcome.js" in out
    assert "stage verify (stream, 2 workers): python3 verify.py" in out


def test_graph_as_dot(tmp):
    code, out, err = hopper("graph", write(tmp, SIGNUP), "--format", "dot")
    assert code == 0, err
    assert out.startswith("digraph pipeline {\n") and out.endswith("}\n")
    edges = set()
    for m in re.finditer(r'^\t"([^"]+)" -> "([^"]+)"(?: \[label="([^"]*)"\])?;$',
                         out, re.M):
        edges.add((m.group(1), m.group(3), m.group(2)))
    assert edges == SIGNUP_EDGES
    nodes = set(re.findall(r'^\t"([^"]+)" \[shape=', out, re.M))
    assert nodes == {"source/signups", "stage/verify", "stage/welcome",
                     "stage/prefs", "stage/email", "stage/sms", "sink/out",
                     "sink/log"}


def test_graph_as_mermaid(tmp):
    code, out, err = hopper("graph", write(tmp, SIGNUP), "--format=mermaid")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "flowchart LR"
    # Nodes by id ("stage2"), their names the first line of the label.
    names = {}
    for line in lines[1:]:
        m = re.match(r'\t(\w+)\W+"([^<"]+)<br/>', line)
        if m:
            names[m.group(1)] = m.group(2)
    kinds = {i: re.match(r"[a-z]+", i).group(0) for i in names}
    edges = set()
    for line in lines[1:]:
        m = re.match(r'\t(\w+) -->(?:\|"([^"]*)"\|)? (\w+)$', line)
        if m:
            a, port, b = m.groups()
            edges.add((f"{kinds[a]}/{names[a]}", port,
                       f"{kinds[b]}/{names[b]}"))
    assert edges == SIGNUP_EDGES


# Reduces with and without windows, and how hopper graph describes each.
WINDOWS = {
    "source": "jsonl:-",
    "sinks": {"out": "jsonl:-"},
    "stages": {
        "split": {"command": ["./split"], "workers": 1,
                  "to": ["counts", "means", "sums", "maxes", "batches"]},
        "counts": {"reduce": {"op": "count", "every": 1000}, "to": "out"},
        "means": {"reduce": {"op": "mean", "field": "/duration",
                             "by": "/codec", "interval": "1m",
                             "grace": "5s", "time": "/ts"}, "to": "out"},
        "sums": {"reduce": {"op": "sum", "field": "/size",
                            "interval": "1500ms", "grace": 0}, "to": "out"},
        "maxes": {"reduce": {"op": "max", "field": "/size"}, "to": "out"},
        "batches": {"command": ["./reducer"],
                    "reduce": {"by": "/k", "batch": 50, "every": 1},
                    "to": "out"},
    },
}
WINDOW_WORDS = {
    "split": "stream, 1 worker",
    "counts": "reduce: count, every 1000 items",
    "means": "reduce: mean of /duration by /codec, windows of 60 s by /ts "
             "with 5 s grace",
    "sums": "reduce: sum of /size, windows of 1.5 s by arrival with no "
            "grace",
    "maxes": "reduce: max of /size",
    "batches": "reduce by a stream worker, batches of 50, by /k, every 1 "
               "item",
}


def test_graph_shows_a_reduce_s_window(tmp):
    f = write(tmp, json.dumps(WINDOWS))
    code, out, err = hopper("graph", f)
    assert code == 0, err
    got = dict(re.findall(r"^stage (\S+) \((.*)\)(?::.*)?$", out, re.M))
    assert got == WINDOW_WORDS
    code, out, err = hopper("graph", f, "--format", "dot")
    assert code == 0, err
    got = dict(re.findall(r'^\t"stage/(\S+)" \[shape=box, '
                          r'label="\1\\n(.*)"\];$', out, re.M))
    assert got == WINDOW_WORDS
    code, out, err = hopper("graph", f, "--format", "mermaid")
    assert code == 0, err
    got = dict(re.findall(r'^\tstage\d+\["(\S+)<br/>(.*)"\]$', out, re.M))
    assert got == WINDOW_WORDS


def test_graph_refuses_an_unknown_format(tmp):
    code, out, err = hopper("graph", write(tmp, SIGNUP), "--format", "svg")
    assert code == 2 and out == ""
    assert err == "hopper: --format svg: not text, dot or mermaid\n"
    code, out, _ = hopper("graph", "--help")
    assert code == 0 and "--format dot" in out


def test_a_one_stage_file_is_one_stage_called_main(tmp):
    f = write(tmp, json.dumps({"source": "jsonl:in.jsonl",
                               "command": ["python3", "w.py"],
                               "workers": 3}))
    code, out, err = hopper("graph", f)
    assert code == 0, err
    assert out == ("source main (jsonl:in.jsonl) -> main\n"
                   "stage main (stream, 3 workers): python3 w.py\n"
                   "  -> main\n"
                   "sink main (jsonl:-)\n")
    # validate keeps its one line for such a file: it says it all.
    code, out, err = hopper("validate", f)
    assert code == 0 and out.count("\n") == 1, out


def test_precedence_default_file_stage_flag(tmp):
    f = write(tmp, json.dumps({
        "sources": {"in": {"type": "jsonl", "path": "in.jsonl",
                           "to": ["a", "c"]}},
        "workers": 2, "mode": "exec",
        "stages": {"a": {"command": ["a"], "to": "b", "workers": 3},
                   "b": {"command": ["b"], "mode": "stream"},
                   "c": {"command": ["c"], "to": "b"}}}))
    code, out, err = hopper("graph", f)
    assert code == 0, err
    # The top of the file over the defaults, a stage's own key over both.
    assert stage_words(out) == {"a": "exec, 3 workers",
                                "b": "stream, 2 workers",
                                "c": "exec, 2 workers"}
    # A flag over everything, in every stage.
    code, out, err = hopper("graph", f, "-j", "5", "--mode=stream")
    assert code == 0, err
    assert stage_words(out) == {"a": "stream, 5 workers",
                                "b": "stream, 5 workers",
                                "c": "stream, 5 workers"}
    # A stage's own pool size and a flag's are in conflict as a file's and
    # a flag's are.
    f.write_text(f.read_text().replace('"workers": 2, ', ""))
    code, out, err = hopper("graph", f, "--max-workers", "4")
    assert code == 2
    text = f.read_text()
    assert err == (f"hopper: {f}{at(text, '3}')}: stage 'a': workers sets a "
                   "fixed pool: use it or min_workers/max_workers "
                   "(--max-workers 4), not both\n"), err


def test_a_stage_file_yaml(tmp):
    f = write(tmp, """\
source: {type: jsonl, path: in.jsonl}   # the one source feeds the first stage
sinks:
  out: jsonl:-
  log: {type: jsonl, path: log.jsonl}
stages:
  split:
    command: [python3, split.py]
    to: {a: alpha, "*": log}
  alpha:
    command: python3 alpha.py
    to: out
""", "pipe.yaml")
    code, out, err = hopper("validate", f)
    assert code == 0, err
    assert text_edges(out.split("\n", 1)[1]) == {
        ("source/main", None, "stage/split"),
        ("stage/split", "a", "stage/alpha"),
        ("stage/split", "*", "sink/log"),
        ("stage/alpha", None, "sink/out")}
    f.write_text(f.read_text().replace("to: out", "to: outt"))
    code, out, err = hopper("validate", f)
    assert code == 2
    assert err == (f"hopper: {f}:11:9: stage 'alpha': 'to': no stage or sink "
                   "is called 'outt'; did you mean 'out'?\n"), err


def at(text, needle):
    """":LINE:COL" of needle's first place in text."""
    before = text[:text.index(needle)]
    return f":{before.count(chr(10)) + 1}:{len(before.rsplit(chr(10), 1)[-1]) + 1}"


# Each check of the graph: the file, what its FILE:LINE:COL points at (the
# key or value at fault, or the stage's name), and the message, which names
# the stage.
GRAPH_ERRORS = [
    ('{"source": "jsonl:in",\n "stages": {\n'
     '  "verify": {"command": ["v"], "to": "welcom"},\n'
     '  "welcome": {"command": ["w"]}}}', '"welcom"',
     "stage 'verify': 'to': no stage or sink is called 'welcom'; "
     "did you mean 'welcome'?"),
    ('{"source": "jsonl:in",\n "stages": {\n'
     '  "a": {"command": ["a"], "to": {"x": ["b", "zzzzz"]}},\n'
     '  "b": {"command": ["b"]}}}', '["b"',
     "stage 'a': 'to': no stage or sink is called 'zzzzz' "
     "(stages: a, b; sinks: main)"),
    ('{"source": "jsonl:in",\n "stages": {\n'
     '  "a": {"command": ["a"], "to": "b"},\n'
     '  "b": {"command": ["b"], "to": "c"},\n'
     '  "c": {"command": ["c"], "to": ["main", "b"]}}}', '"c"},',
     "stage 'b': a cycle (a pipeline is a graph without one): "
     "b -> c -> b"),
    ('{"source": "jsonl:in",\n "stages": {\n'
     '  "a": {"command": ["a"]},\n'
     '  "orphan": {"command": ["b"]}}}', '"orphan"',
     "stage 'orphan': nothing feeds it: no source and no other stage "
     "names it in 'to'"),
    ('{"source": "jsonl:in",\n "sinks": {"out": "jsonl:-", "log": "jsonl:l"},'
     '\n "stages": {\n'
     '  "a": {"command": ["a"]}}}', '"a"',
     "stage 'a': its outputs go nowhere: give it a 'to' (a stage or a "
     "sink; without one, outputs go to the only sink, and there are 2 sinks: "
     "out, log)"),
    ('{"source": "jsonl:in",\n "stages": {\n'
     '  "a": {"command": ["a"], "shards": 4}}}', "4}",
     "stage 'a': 'shards' 4 needs a 'key', a JSON pointer into the "
     "payload (\"/user\") that picks the shard"),
    ('{"source": "jsonl:in",\n "stages": {\n'
     '  "a": {"command": ["a"], "key": "/user"}}}', '"/user"',
     "stage 'a': 'key' /user shards nothing: give 'shards' (2 or "
     "more) too, or remove the key"),
    ('{"source": "jsonl:in", "sinks": {"out": "jsonl:-"},\n "stages": {\n'
     '  "a": {"command": ["a"], "to": "out"},\n'
     '  "out": {"command": ["b"]}}}', '"out": {',
     "stage 'out': 'out' names both a stage and a sink: a name in 'to' "
     "must mean one of them; rename one"),
    ('{"sources": {"one": "jsonl:a",\n   "two": "jsonl:b"},\n "stages": {\n'
     '  "a": {"command": ["a"]}}}', '"one"',
     "source 'one': it feeds nothing: give it a 'to' naming a stage "
     "(only a pipeline's one source feeds the first stage by default)"),
    ('{"source": "jsonl:in",\n "stages": {\n'
     '  "a": {"command": ["a"], "wrokers": 2}}}', '"wrokers"',
     "stage 'a': unknown key 'wrokers'; did you mean 'workers'?"),
    ('{"source": "jsonl:in",\n "stages": {\n'
     '  "a": {"command": ["a"], "grace": 2}}}', '"grace"',
     "stage 'a': 'grace' is an option of the whole run, not of a "
     "stage: put it at the top of the file"),
    ('{"source": "jsonl:in",\n "stages": {\n'
     '  "a": {"command": ["a"], "workers": -1}}}', "-1",
     "stage 'a': option 'workers': -1 is out of range (0..4096)"),
    ('{"source": "jsonl:in",\n "stages": {\n'
     '  "a": {"to": "main"}}}', '"a"',
     "stage 'a' has no 'command' (the worker: [\"PROGRAM\", \"ARG\", "
     "...] or a shell command line)"),
    ('{"source": "jsonl:in", "command": ["w"],\n "stages": {\n'
     '  "a": {"command": ["a"]}}}', '"command"',
     "'command' beside 'stages': a file with stages gives each stage "
     "its own command"),
    ('{"source": "jsonl:in", "command": ["w"],\n "shards": 2}', '"shards"',
     "'shards' is a stage's key: put it in a stage of \"stages\" (hopper "
     "help pipeline)"),
    ('{"source": "jsonl:in", "command": ["w"],\n "to": "main"}', '"to"',
     "'to' is a stage's key: put it in a stage of \"stages\" (hopper help "
     "pipeline)"),
]


@pytest.mark.parametrize("text,needle,why", GRAPH_ERRORS)
def test_graph_errors_name_file_line_column_and_stage(tmp, text, needle,
                                                      why):
    f = write(tmp, text)
    for cmd in ("validate", "graph"):
        code, out, err = hopper(cmd, f)
        assert code == 2 and out == "", (out, err)
        assert err == f"hopper: {f}{at(text, needle)}: {why}\n", err


def test_flags_that_name_one_driver_of_several(tmp):
    f = write(tmp, SIGNUP)
    code, _, err = hopper("validate", f, "-o", "jsonl:-")
    assert code == 2
    assert err == ("hopper: -o: the pipeline file names 2 sinks: change "
                   "them there\n"), err
    # One named source: the flags change it, as they change an unnamed one.
    code, out, err = hopper("graph", f, "-s", "jsonl:other.jsonl")
    assert code == 0, err
    assert "source signups (jsonl:other.jsonl) -> verify\n" in out
    code, _, err = hopper("run", "-f", f, "--", "python3", "w.py")
    assert code == 2
    assert err == (f"hopper: a worker command after --: {f} has stages, and "
                   "each has its own 'command'\n"), err


def test_named_drivers_are_checked_where_they_are(tmp):
    f = write(tmp, '{"source": "jsonl:in",\n "sinks": {"out": "jsonl:-",\n'
                   '  "db": {"type": "dir", "path": "o",\n'
                   '         "ext": "a/b"}},\n "stages": {\n'
                   '  "a": {"command": ["a"], "to": ["out", "db"]}}}')
    code, _, err = hopper("validate", f)
    assert code == 2
    assert err == (f"hopper: {f}:4:17: dir sink: ext 'a/b' must be at most 32 "
                   "bytes with no '/'\n"), err
    f.write_text(f.read_text().replace('"ext"', '"extt"'))
    code, _, err = hopper("validate", f)
    assert code == 2
    assert err.startswith(f"hopper: {f}:4:10: sink 'db' unknown option "
                          "'extt'"), err


def test_help_pipeline_lists_the_stage_keys(tmp):
    code, out, err = hopper("help", "pipeline")
    assert code == 0, err
    stage = help_entries(out.split("\nstage keys (in stages):\n")[1])
    assert set(stage) == {"command", "run", "to", "shards", "key", "queue",
                          "unmapped", "on_dead", "join", "join.on_part_dead",
                          "join.timeout", "join.on_timeout",
                          "join.max_parts", "join.by", "join.count",
                          "join.end", "join.seq", "join.remember",
                          "join.state", "join.state_table", "reduce",
                          "reduce.buckets", "reduce.op", "reduce.field",
                          "reduce.by", "reduce.every", "reduce.interval",
                          "reduce.grace", "reduce.time", "reduce.batch",
                          "reduce.merge", "reduce.state",
                          "reduce.state_table"}, set(stage)
    assert " ".join(stage["run"].split()) == (
        "run options mode, workers, min_workers, max_workers, prefetch, "
        "timeout, attempts, backoff, backoff_max as above, for this stage")
    assert "default: 1000" in stage["queue"]
    assert "text: error, drop; default: error" in stage["unmapped"]
    assert "text: root, alone; default: root" in stage["on_dead"]
    # Every key the help names is one a stage takes.
    keys = {"mode": "exec", "workers": 1, "min_workers": None,
            "max_workers": None, "prefetch": 2, "timeout": "1m",
            "attempts": 2, "backoff": "1s", "backoff_max": "2s",
            "shards": 2, "key": "/k", "queue": 5, "unmapped": "drop",
            "on_dead": "alone"}
    run = " ".join(stage["run"].split())
    named = run.split("run options ")[1].split(" as above")[0]
    assert set(named.split(", ")) | {"shards", "key", "queue", "unmapped",
                                     "on_dead"} == set(keys)
    a = {k: v for k, v in keys.items() if v is not None}
    a.update(command=["a"])
    f = write(tmp, json.dumps({"source": "jsonl:in", "stages": {"a": a}}))
    code, out, err = hopper("graph", f)
    assert code == 0, err
    assert out.splitlines()[1] == ("stage a (exec, 1 worker per shard, 2 "
                                   "shards by /k, unmapped outputs dropped, "
                                   "dead items alone): a")
