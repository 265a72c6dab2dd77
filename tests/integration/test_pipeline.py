"""Pipeline files: ${VAR} expansion, flags over the file, hopper validate,
and errors that name the file, line, column and key."""
import json
import re
import subprocess

import pytest

from conftest import (BUILD, FAKE, HOPPER, PY, ROOT, clean_env, hopper,
                      read_jsonl, write_jsonl)


def pipeline(tmp, text):
    f = tmp / "pipe.json"
    f.write_text(text)
    return f


def good_pipeline(tmp):
    cmd = json.dumps(FAKE)
    return pipeline(tmp, f"""{{
  "description": "echo items",
  "source": "jsonl:${{IN}}",
  "sink": {{"type": "jsonl", "path": "${{OUT:-{tmp}/default.jsonl}}"}},
  "command": {cmd},
  "workers": "${{W:-2}}",
  "timeout": 30
}}
""")


def test_env_expansion_and_defaults(tmp):
    src = write_jsonl(tmp / "in.jsonl", [{"n": i} for i in range(4)])
    f = good_pipeline(tmp)
    code, out, err = hopper("run", "-f", f, env=clean_env(IN=src))
    assert code == 0, err
    assert len(read_jsonl((tmp / "default.jsonl").read_text())) == 4
    assert "2 stream worker(s)" in err


def test_flags_override_the_file(tmp):
    src = write_jsonl(tmp / "in.jsonl", [{"n": 1}])
    f = good_pipeline(tmp)
    code, out, err = hopper("run", "-f", f, "-o", "jsonl:-", "-j", "1",
                            env=clean_env(IN=src, W=5))
    assert code == 0, err
    assert len(read_jsonl(out)) == 1
    assert "1 stream worker(s)" in err
    assert not (tmp / "default.jsonl").exists()


def test_validate(tmp):
    f = good_pipeline(tmp)
    code, out, err = hopper("validate", f, env=clean_env(IN="x.jsonl"))
    assert code == 0, err
    assert out.startswith(f"{f}: ok: jsonl:x.jsonl -> jsonl:{tmp}/default.jsonl, "
                          "2 stream worker(s)")


def validate_error(tmp, text, env=None):
    f = pipeline(tmp, text)
    code, out, err = hopper("validate", f, env=env)
    assert code == 2, (out, err)
    return err.strip().removeprefix(f"hopper: {f}")


def test_unknown_key_names_line_column_and_key(tmp):
    err = validate_error(tmp, '{\n  "source": "jsonl:-",\n  "command": ["w"],\n'
                              '  "wrokers": 2\n}\n')
    assert err.startswith(":4:3: unknown key 'wrokers'"), err


def test_wrong_type(tmp):
    err = validate_error(tmp, '{"source": "jsonl:-", "command": ["w"],\n'
                              ' "workers": "many"}')
    assert err == ":2:13: option 'workers': 'many' is not an integer", err
    err = validate_error(tmp, '{"source": "jsonl:-", "command": ["w"],\n'
                              ' "watch": 3}')
    assert err == ":2:11: option 'watch' must be true or false", err


def test_invalid_json(tmp):
    err = validate_error(tmp, '{"source": "jsonl:-",\n  "command": [w]\n}')
    assert err.startswith(":2:15: invalid JSON"), err


def test_unknown_driver_option(tmp):
    err = validate_error(tmp, '{"command": ["w"],\n "source": {"type": "dir",'
                              ' "path": ".",\n   "globb": "*"}}')
    assert err == ":3:4: source unknown option 'globb'; did you mean 'glob'?", \
        err
    err = validate_error(tmp, '{"command": ["w"],\n "source": {"type": "dir",'
                              ' "path": ".",\n   "colour": "*"}}')
    assert err.startswith(":3:4: source unknown option 'colour' (known: path, "
                          "glob,"), err


def test_unset_variable(tmp):
    err = validate_error(tmp, '{"source": "jsonl:${NOPE_NOT_SET}",\n'
                              ' "command": ["w"]}',
                         env=clean_env())
    assert err == (":1:12: 'source': environment variable NOPE_NOT_SET is not "
                   "set (use ${NOPE_NOT_SET:-default} for a default)"), err


# Values each option refuses, with the message's tail: the same check for a
# pipeline file's key and for the flag.
REFUSED = [
    ("workers", -3, "-3 is out of range (0..4096)"),
    ("min_workers", -1, "-1 is out of range (0..4096)"),
    ("max_workers", -2, "-2 is out of range (1..4096)"),
    ("attempts", 0, "0 is out of range (1..1000000)"),
    ("prefetch", 0, "0 is out of range (1..65536)"),
    ("mode", "strem", "'strem' is not one of stream, exec"),
    ("utilization", 101, "101 is out of range (1..100)"),
    ("max_line", "1", "1 is out of range (1K..1G)"),
    ("timeout", "1e300", "1e300 is out of range (0..8760h)"),
    ("log_level", "loud", "'loud' is not one of debug, info, warn, error"),
]


@pytest.mark.parametrize("key,value,why", REFUSED, ids=[r[0] for r in REFUSED])
def test_a_value_out_of_range_names_file_line_column(tmp, key, value, why):
    # The value stands on line 4; its column is after '  "key": '.
    text = ('{\n  "source": "jsonl:-",\n  "command": ["w"],\n'
            f'  "{key}": {json.dumps(value)}\n}}\n')
    col = len(f'  "{key}": ') + 1
    err = validate_error(tmp, text)
    assert err == f":4:{col}: option '{key}': {why}", err
    code, _, err = hopper("run", "-f", tmp / "pipe.json")
    assert code == 2 and f":4:{col}: option '{key}': {why}" in err, err


@pytest.mark.parametrize("key,value,why", REFUSED, ids=[r[0] for r in REFUSED])
def test_a_flag_out_of_range_names_the_flag(tmp, key, value, why):
    flag = "--" + key.replace("_", "-")
    code, out, err = hopper("run", "-s", f"jsonl:{tmp}/none.jsonl", flag,
                            str(value), "--", PY, "-c", "pass")
    assert code == 2, (out, err)
    assert err == f"hopper: {flag} {value}: option '{key}': {why}\n", err
    code, out, err = hopper("run", "-s", f"jsonl:{tmp}/none.jsonl",
                            f"{flag}={value}", "--", PY, "-c", "pass")
    assert code == 2, (out, err)
    assert err == f"hopper: {flag}={value}: option '{key}': {why}\n", err


def test_short_flags_are_checked_too(tmp):
    code, _, err = hopper("run", "-s", "jsonl:-", "-j", "-3", "--", PY)
    assert code == 2
    assert err == ("hopper: -j -3: option 'workers': -3 is out of range "
                   "(0..4096)\n"), err
    code, _, err = hopper("run", "-s", "jsonl:-", "-m", "strem", "--", PY)
    assert code == 2
    assert "-m strem: option 'mode': 'strem' is not one of" in err, err


def test_options_in_conflict_name_both_places(tmp):
    err = validate_error(tmp, '{"source": "jsonl:-", "command": ["w"],\n'
                              ' "min_workers": 5,\n "max_workers": 2}')
    assert err == (":2:17: min_workers 5 is above max_workers 2 "
                   f"({tmp}/pipe.json:3:17)"), err
    err = validate_error(tmp, '{"source": "jsonl:-", "command": ["w"],\n'
                              ' "workers": 2, "max_workers": 2}')
    assert err.startswith(":2:13: workers sets a fixed pool"), err
    # What the file set is named by its place, what a flag set by the flag.
    f = tmp / "pipe.json"
    code, _, err = hopper("validate", f, "--max-workers", "1")
    assert code == 2
    assert err.startswith(f"hopper: {f}:2:13: workers sets a fixed pool"), err
    code, _, err = hopper("validate", f, "-j", "0", "--min-workers", "3",
                          "--max-workers", "1")
    assert code == 2
    assert err == ("hopper: --min-workers 3: min_workers 3 is above "
                   "max_workers 1 (--max-workers 1)\n"), err


def test_driver_options_are_checked_the_same_way(tmp):
    # Checked where they are set, so validate refuses them without a server.
    err = validate_error(tmp, '{"command": ["w"],\n "source": {"type": '
                              '"postgres", "url": "postgres://h/db",\n'
                              '   "batch": 0}}')
    assert err == (":3:13: source option 'batch': 0 is out of range "
                   "(at least 1)"), err
    code, _, err = hopper("run", "-s", "kafka://127.0.0.1:1/t", "-S",
                          "max_inflight=0", "--", PY)
    assert code == 2
    assert err == ("hopper: --source-opt max_inflight=0: option "
                   "'max_inflight': 0 is out of range (at least 1)\n"), err



def test_validate_runs_the_drivers_checks(tmp):
    """What a driver's open would refuse about its options alone, validate
    refuses too, naming the value's place and the driver, with no server."""
    err = validate_error(tmp, '{"command": ["w"],\n "source": {"type": '
                              '"postgres", "url": "postgres://h/db",\n'
                              '   "table": "bad name;", "retain": "bogus"}}')
    assert err == (":3:13: postgres source: table name 'bad name;' is not a "
                   "valid identifier (letters, digits and _)"), err
    err = validate_error(tmp, '{"command": ["w"],\n "source": {"type": '
                              '"postgres", "url": "postgres://h/db",\n'
                              '   "retain": "bogus"}}')
    assert err == (":3:14: postgres source: retain 'bogus' is not a time "
                   "(like 7s, 30m, 48h) or forever"), err
    err = validate_error(tmp, '{"command": ["w"],\n "source": '
                              '"kafka://127.0.0.1:1/t",\n "sink": {"type": '
                              '"kafka", "url": "kafka://127.0.0.1:1/out",\n'
                              '  "key": "both"}}')
    assert err == (":4:10: kafka sink: key 'both': expected auto, id or "
                   "none"), err
    err = validate_error(tmp, '{"command": ["w"],\n "source": "dir:in",\n'
                              ' "sink": {"type": "dir", "path": "out",\n'
                              '  "ext": "a/b"}}')
    assert err == (":4:10: dir sink: ext 'a/b' must be at most 32 bytes "
                   "with no '/'"), err
    # A flag is blamed by name; a run fails at open as before.
    code, _, err = hopper("validate", pipeline(tmp, '{"command": ["w"], '
                                                    '"source": "dir:in"}'),
                          "-S", "payload=both")
    assert code == 2
    assert err.endswith(": -S payload=both: dir source: payload 'both': "
                        "expected path or object\n"), err

def help_entries(text):
    """The entries of a help listing by their first word (a flag's long
    name), each with its continuation lines (indented 20 or more) joined."""
    entries, key = {}, None
    for ln in text.splitlines():
        if ln.startswith(" " * 20) and key:
            entries[key] += " " + ln.strip()
        elif ln.startswith("  ") and ln.strip():
            words = ln.split()
            key = words[1] if words[0].endswith(",") else words[0]
            entries[key] = ln.strip()
        else:
            key = None
    return entries


def test_run_help_names_every_registered_driver():
    """--source and --sink list the drivers as the registries hold them."""
    _, out, _ = hopper("run", "--help")
    entries = help_entries(out)
    for topic, flag in (("sources", "--source"), ("sinks", "--sink")):
        _, listing, _ = hopper("help", topic)
        names = [ln.split(":")[0] for ln in listing.splitlines()
                 if ln and not ln.startswith((" ", "On the"))]
        folders = [d for d in (ROOT / topic).iterdir()
                   if d.is_dir() and d.name != "examples"]
        assert len(names) == len(folders), listing
        for name in names:
            assert name in entries[flag], (name, entries[flag])


def test_the_bounds_are_in_the_help():
    code, out, _ = hopper("run", "--help")
    assert code == 0
    opts = out.split("options:\n")[1].split("\n\n")[0]
    lines = help_entries(opts)
    assert lines["--workers"].endswith("(default: one per CPU; 0..4096)"), \
        lines["--workers"]
    assert lines["--prefetch"].endswith("(default: 1; 1..65536)")
    assert lines["--max-workers"].endswith("1..4096)")
    # Defaults in words, never a bare number a person must decode.
    assert lines["--timeout"].endswith("(default: 5 min; 0..8760h)")
    assert lines["--max-line"].endswith("(default: 16 MiB; 1K..1G)")
    assert lines["--watch"].endswith("(default: off)")
    assert "[" not in opts
    # Aligned: every meaning, and every line it wraps to, starts in column
    # 30, and no line is wider than 79.
    for ln in opts.splitlines():
        if (ln.lstrip().startswith("--") and len(ln) > 28
                and "  " not in ln.strip()):
            continue  # too long for its column: its meaning is below
        assert len(ln) <= 79 and ln[28] == " " and ln[29] != " ", ln
        assert ln[:28].strip() == "" or ln[:28].startswith("  "), ln


def test_help_pipeline_lists_every_key_from_the_same_table():
    code, out, err = hopper("help", "pipeline")
    assert code == 0, err
    assert "usage:" not in out  # not the general help
    top = out.split("keys:")[1].split("\nstage keys")[0]
    keys = {k: " ".join(v.split()) for k, v in help_entries(top).items()}
    code, run_help, _ = hopper("run", "--help")
    flags = {k: " ".join(v.split()) for k, v in help_entries(
        run_help.split("options:\n")[1].split("\n\n")[0]).items()}
    run_keys = {f[2:].replace("-", "_") for f in flags
                if f not in ("--pipeline", "--once", "--no-progress",
                             "--source-opt", "--sink-opt")}
    assert run_keys | {"command", "description", "x-...", "stages",
                       "sources", "sinks"} == set(keys), \
        set(keys) ^ run_keys
    assert keys["workers"].startswith(
        "workers integer, 0..4096; default: one per CPU a fixed number")
    assert keys["timeout"].startswith("timeout seconds, 0..8760h; "
                                      "default: 5 min per-item deadline")
    assert keys["mode"].startswith("mode text: stream, exec; default: stream")
    assert keys["trace"].startswith("trace text; default: none")
    assert "hopper help sources" in keys["source"]
    # The meaning is the flag's own, word for word.
    for k in run_keys - {"source", "sink"}:
        flag = flags["--" + k.replace("_", "-")]
        said = re.sub(r"^(-\w, )?--\S+( [A-Z]+)? ", "", flag)
        assert said.split(" (default")[0] in keys[k], (k, flag, keys[k])


def test_usage_errors_exit_2():
    code, _, err = hopper("run", "--workerz", "3", "--", PY)
    assert code == 2 and "unknown flag '--workerz'" in err
    code, _, err = hopper("run", "-s", "kafkaa:x", "--", PY)
    assert code == 2 and "unknown source 'kafkaa'" in err
    code, _, err = hopper("run", "-s", "jsonl:-")
    assert code == 2 and "no worker command" in err


def test_help_shows_an_example():
    code, out, _ = hopper("run", "--help")
    assert code == 0 and "examples:" in out and "--prefetch N" in out
    code, out, _ = hopper("help", "sources")
    assert "dir: files in a folder" in out and "glob=TEXT" in out


def test_the_shipped_word_count_pipeline(tmp):
    from conftest import ROOT
    inbox = tmp / "in"
    inbox.mkdir()
    (inbox / "a.txt").write_text("one two three\nfour")
    (inbox / "b.txt").write_text("")
    (inbox / "c.dat").write_text("not matched")
    env = clean_env(IN=inbox, OUT=tmp / "res", PYTHON=PY, WORKERS=1)
    code, out, err = hopper("validate", ROOT / "pipelines/word_count.json",
                            env=env, cwd=ROOT)
    assert code == 0, err
    code, out, err = hopper("run", "-f", ROOT / "pipelines/word_count.json",
                            env=env, cwd=ROOT)
    assert code == 0, err
    assert json.loads((tmp / "res" / "a.txt.json").read_text()) == {"words": 4}
    assert json.loads((tmp / "res" / "b.txt.json").read_text()) == {"words": 0}
    assert (inbox / "c.dat").exists()


def test_keys_spelled_as_flags_or_with_underscores(tmp):
    # "backoff-max" as the flag is spelled, "max_line" with an underscore,
    # and a driver option with a dash: the same options either way.
    inbox = tmp / "in"
    inbox.mkdir()
    for n in range(3):
        (inbox / f"{n}.txt").write_text("x")
    f = pipeline(tmp, json.dumps({
        "source": {"type": "dir", "path": str(inbox), "keep-done": False},
        "command": FAKE, "backoff-max": "2s", "max_line": "64K",
        "kill-timeout": 1, "log-level": "warn"}))
    code, out, err = hopper("run", "-f", f, "-o", "jsonl:-", "-j", "1")
    assert code == 0, err
    assert sorted(r["id"] for r in read_jsonl(out)) == ["0.txt", "1.txt",
                                                        "2.txt"]
    assert not list((inbox / "done").glob("*"))  # keep-done false held
    assert "running:" not in err  # log-level warn held
    # A bad value under either spelling is named where it stands.
    err = validate_error(tmp, '{"source": "jsonl:-", "command": ["w"],\n'
                              ' "backoff-max": "soon"}')
    assert err == (":2:17: option 'backoff_max': 'soon' is not a number of "
                   "seconds (like 0.5, 30s or 5m)"), err
    # Both spellings of one key in one file: refused, naming both.
    err = validate_error(tmp, '{"source": "jsonl:-", "command": ["w"],\n'
                              ' "backoff_max": 1,\n "backoff-max": 2}')
    assert err == (":2:2: 'backoff_max' and 'backoff-max' are the same key: "
                   "keep one"), err


def test_driver_options_take_both_spellings_on_the_command_line(tmp):
    for opt in ("keep-done=false", "keep_done=false"):
        inbox = tmp / opt[:9]
        inbox.mkdir()
        (inbox / "a.txt").write_text("x")
        code, out, err = hopper("run", "-s", f"dir:{inbox}", "-S", opt,
                                "--", *FAKE)
        assert code == 0, err
        assert [r["id"] for r in read_jsonl(out)] == ["a.txt"]
        assert not (inbox / "done" / "a.txt").exists()


# What a person typed, and what hopper should suggest: a command, a flag, a
# pipeline key, a source or sink, a driver option.
DID_YOU_MEAN = [
    (["runn"], "unknown command 'runn'; did you mean 'hopper run'?"),
    (["validte", "p.json"],
     "unknown command 'validte'; did you mean 'hopper validate'?"),
    (["help", "sorces"], "no help on 'sorces'; did you mean 'hopper help "
     "sources'?"),
    (["run", "--wokers", "3", "--", "w"],
     "unknown flag '--wokers'; did you mean '--workers'?"),
    (["run", "--backof-max=3", "--", "w"],
     "unknown flag '--backof-max=3'; did you mean '--backoff-max'?"),
    (["run", "-s", "my/small.jsonl", "--", "w"],
     "--source my/small.jsonl: unknown source 'my/small.jsonl'; did you mean "
     "'jsonl:my/small.jsonl'?"),
    (["run", "-s", "{tmp}", "--", "w"],
     "--source {tmp}: unknown source '{tmp}'; did you mean 'dir:{tmp}'?"),
    (["run", "-s", "jsonl:-", "-o", "-", "--", "w"],
     "--sink -: unknown sink '-'; did you mean 'jsonl:-'?"),
    (["run", "-s", "kafak://h:9092/t", "--", "w"],
     "--source kafak://h:9092/t: unknown source 'kafak'; did you mean "
     "'kafka'?"),
    (["run", "-s", "jsonl:-", "-S", "idd=x", "--", "w"],
     "--source-opt idd=x: unknown option 'idd'; did you mean 'id'?"),
    (["run", "-s", "dir:.", "-S", "keep-don=x", "--", "w"],
     "--source-opt keep-don=x: unknown option 'keep-don'; did you mean "
     "'keep-done'?"),
]


@pytest.mark.parametrize("args,why", DID_YOU_MEAN,
                         ids=[" ".join(a[:3]) for a, _ in DID_YOU_MEAN])
def test_did_you_mean(tmp, args, why):
    code, out, err = hopper(*[a.replace("{tmp}", str(tmp)) for a in args])
    assert code == 2, (out, err)
    assert err == f"hopper: {why.replace('{tmp}', str(tmp))}\n", err


def test_did_you_mean_in_a_pipeline_file(tmp):
    err = validate_error(tmp, '{"source": "jsonl:-", "command": ["w"],\n'
                              ' "wrokers": 2}')
    assert err == ":2:2: unknown key 'wrokers'; did you mean 'workers'?", err
    err = validate_error(tmp, '{"source": "jsonl:-", "command": ["w"],\n'
                              ' "backof-max": 2}')
    assert err == (":2:2: unknown key 'backof-max'; did you mean "
                   "'backoff-max'?"), err
    err = validate_error(tmp, '{"sorce": "jsonl:-", "command": ["w"]}')
    assert err == ":1:2: unknown key 'sorce'; did you mean 'source'?", err
    # Nothing near: the list of what there is, rather than a wild guess.
    err = validate_error(tmp, '{"source": "jsonl:-", "command": ["w"],\n'
                              ' "colour": 2}')
    assert err.startswith(":2:2: unknown key 'colour' (known: source,"), err
    code, _, err = hopper("run", "--zzzzz", "--", "w")
    assert err == "hopper: unknown flag '--zzzzz' (see hopper run --help)\n"


# The README's examples, run as written. A console block is run when it
# shows a pipeline file or the first jsonl example and every command in it
# can run here (no server, no --watch, no worker of the reader's own).
RUNNABLE = ("build/hopper ", "printf ", "mkdir ", "cat ")
FOREIGN = ("://", "--watch", "./my-worker", "my_worker", "docker", "...")


def readme_examples():
    """(commands, outputs) per console block of the README: each command
    (a continued line joined) with the lines it prints."""
    text = (ROOT / "README.md").read_text()
    blocks = []
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        cmds = []
        for line in block.splitlines():
            if line.startswith("$ "):
                cmds.append([line[2:], []])
            elif cmds and cmds[-1][0].endswith("\\"):
                cmds[-1][0] = cmds[-1][0][:-1] + line.strip()
            elif cmds:
                cmds[-1][1].append(line)
        blocks.append(cmds)
    return blocks


def checkout(tmp):
    """A folder laid out as the checkout, with the build under test as
    build/: where the README's commands run."""
    for name in ("worker", "pipelines", "tests"):
        (tmp / name).symlink_to(ROOT / name)
    (tmp / "build").mkdir()
    (tmp / "build" / "hopper").symlink_to(HOPPER)
    (tmp / "build" / "hopper-thumbnail").symlink_to(
        BUILD / "hopper-thumbnail")
    return tmp


def test_the_readme_examples_run_as_written(tmp):
    shown = [cmds for cmds in readme_examples()
             if any("pipelines/" in c or "items.jsonl" in c for c, _ in cmds)
             and all(c.startswith(RUNNABLE) and
                     not any(f in c for f in FOREIGN) for c, _ in cmds)]
    names = " ".join(c for cmds in shown for c, _ in cmds)
    assert "pipelines/word_count.json" in names and "items.jsonl" in names
    cwd = checkout(tmp)
    for cmds in shown:
        for cmd, want in cmds:
            p = subprocess.run(["bash", "-c", cmd], cwd=cwd, text=True,
                               capture_output=True, timeout=120,
                               env=clean_env())
            # 3: finished with dead items, when the example shows one.
            dead = any('"ok":false' in w for w in want)
            assert p.returncode == (3 if dead else 0), (cmd, p.stderr)
            # Workers answer in any order: the lines, not their order.
            assert sorted(p.stdout.splitlines()) == sorted(want), \
                (cmd, p.stdout, p.stderr)


def drivers(kind):
    """The drivers `hopper help sources|sinks` lists, by name."""
    code, out, err = hopper("help", kind)
    assert code == 0, err
    return re.findall(r"^(\w+): ", out, re.M)


def test_the_readme_names_every_source_and_sink():
    text = (ROOT / "README.md").read_text()
    layout = text.split("## Layout", 1)[1].split("```")[1]
    for kind, flag in (("sources", "--source"), ("sinks", "--sink")):
        names = drivers(kind)
        folders = sorted(d.name for d in (ROOT / kind).iterdir()
                         if d.is_dir() and d.name != "examples")
        assert sorted(names) == folders, (kind, names, folders)
        row = re.search(rf"^\| `-\w, {flag} SPEC` \|(.*)$", text, re.M)
        line = re.search(rf"^{kind}/ .*(?:\n {{15}}.*)*", layout, re.M)
        for name in names:
            assert f"`{name}:" in row.group(1), (flag, name)
            assert re.search(rf"\b{name}\b", line.group(0)), (kind, name)


def test_the_readme_layout_lists_every_folder():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, text=True,
                           capture_output=True)
    if files.returncode != 0:
        pytest.skip("not a git checkout")
    folders = {f.split("/")[0] for f in files.stdout.splitlines() if "/" in f}
    text = (ROOT / "README.md").read_text()
    layout = text.split("## Layout", 1)[1].split("```")[1]
    listed = set(re.findall(r"^(\S+?)/ ", layout, re.M))
    assert folders <= listed, folders - listed


def md_anchors(path):
    """The anchors GitHub makes of a Markdown file's headings."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.*)$", text, re.M)}


@pytest.mark.parametrize("doc", ["README.md", "docs/performance.md"])
def test_the_readme_links_and_paths_lead_somewhere(doc):
    path = ROOT / doc
    text = path.read_text()
    for link in re.findall(r"\]\(([^)\s]+)\)", text):
        if link.startswith("http"):
            continue
        name, _, anchor = link.partition("#")
        target = (path.parent / name).resolve() if name else path
        assert target.exists(), (doc, link)
        if anchor:
            assert anchor in md_anchors(target), (doc, link)
    # The programs a command runs from build/ are where make puts them
    # (a folder, such as build/san/, is another build's).
    for prog, folder in set(re.findall(r"\bbuild/([\w.-]+(?:/[\w.-]+)*)(/?)",
                                       text)):
        assert folder or (BUILD / prog).exists(), (doc, "build/" + prog)


def tiny_video(path):
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=size=160x120:rate=10:duration=1", "-pix_fmt",
                    "yuv420p", str(path)], check=True, timeout=120)
    return path


def readme_pipelines():
    return sorted(set(re.findall(r"pipelines/(\w+\.(?:json|yaml))",
                                 (ROOT / "README.md").read_text())))


@pytest.mark.parametrize("name", readme_pipelines())
def test_each_pipeline_the_readme_shows_validates_as_shipped(name):
    code, out, err = hopper("validate", f"pipelines/{name}", cwd=ROOT,
                            env=clean_env())
    assert code == 0, err
    assert out.startswith(f"pipelines/{name}: ok: ")


def test_the_thumbnail_pipeline_runs(tmp):
    videos = tmp / "videos"
    videos.mkdir()
    tiny_video(videos / "clip.mp4")
    env = clean_env(VIDEOS=videos, RESULTS=tmp / "results",
                    THUMBS=tmp / "thumbs", WORKERS=1,
                    THUMBNAIL_WORKER=BUILD / "hopper-thumbnail")
    code, _, err = hopper("run", "-f", "pipelines/thumbnails.json", cwd=ROOT,
                          env=env)
    assert code == 0, err
    res = json.loads((tmp / "results" / "clip.mp4.json").read_text())
    assert res["width"] == 320 and len(list((tmp / "thumbs").iterdir())) == 1


def test_the_kafka_pipelines_run_end_to_end(tmp, kafka, pg):
    """ingest.json publishes a folder's videos on a topic, and
    kafka_thumbnails.json makes their thumbnails into a PostgreSQL table:
    the two pipelines of compose.yaml, each run to the end with --once."""
    kafka.create_topic("videos", partitions=1)
    kafka.create_topic("videos.dead", partitions=1)  # as compose.yaml does
    inbox, shared = tmp / "in", tmp / "videos"
    inbox.mkdir()
    tiny_video(inbox / "a.mp4")
    tiny_video(inbox / "b.mp4")
    env = clean_env(IN=inbox, VIDEOS=shared, KAFKA=kafka.bootstrap,
                    TOPIC="videos", PYTHON=PY, DATABASE_URL=pg.url,
                    RESULTS="readme_thumbs", THUMBS=tmp / "thumbs",
                    GROUP="readme", WORKERS=1,
                    THUMBNAIL_WORKER=BUILD / "hopper-thumbnail")
    code, _, err = hopper("run", "-f", "pipelines/ingest.json", "--once",
                          cwd=ROOT, env=env)
    assert code == 0, err
    events = [json.loads(v) for v in kafka.consume("videos")]
    assert sorted(e["name"] for e in events) == ["a.mp4", "b.mp4"]
    code, _, err = hopper("run", "-f", "pipelines/kafka_thumbnails.json",
                          "--once", cwd=ROOT, env=env)
    assert code == 0, err
    rows = pg.psql("SELECT key FROM readme_thumbs ORDER BY key")
    assert "a.mp4" in rows and "b.mp4" in rows, rows
    assert len(list((tmp / "thumbs").iterdir())) == 2


def test_the_postgres_pipeline_runs(tmp, pg):
    video = tiny_video(tmp / "v.mp4")
    env = clean_env(DATABASE_URL=pg.url, QUEUE="readme_q",
                    RESULTS="readme_pg_thumbs", THUMBS=tmp / "thumbs",
                    WORKERS=1, THUMBNAIL_WORKER=BUILD / "hopper-thumbnail")
    code, _, err = hopper("run", "-f", "pipelines/pg_thumbnails.json",
                          "--once", cwd=ROOT, env=env)
    assert code == 0, err  # made both tables; nothing to do yet
    code, _, err = hopper("enqueue", pg.url, "--table", "readme_q",
                          input=json.dumps(str(video)) + "\n")
    assert code == 0, err
    code, _, err = hopper("run", "-f", "pipelines/pg_thumbnails.json",
                          "--once", cwd=ROOT, env=env)
    assert code == 0, err
    assert "done" in pg.psql("SELECT state FROM readme_q")
    assert len(list((tmp / "thumbs").iterdir())) == 1


# YAML pipeline files: the same keys, comments, errors at file:line:column.
def yaml_error(tmp, text, name="pipe.yaml"):
    f = tmp / name
    f.write_text(text)
    code, out, err = hopper("validate", f)
    assert code == 2, (out, err)
    return err.strip().removeprefix(f"hopper: {f}")


def test_a_yaml_pipeline_runs(tmp):
    src = write_jsonl(tmp / "in.jsonl", [{"n": i} for i in range(3)])
    f = tmp / "pipe.yaml"
    f.write_text(f"""# A comment, as ConfigMaps have them.
description: echo items   # and at the end of a line
source:
  type: jsonl
  path: ${{IN}}
sink: jsonl:{tmp}/out.jsonl
command:
  - {PY}
  - {FAKE[1]}
workers: ${{W:-1}}
timeout: 30s
backoff-max: 2s
watch: no
x-defaults: &d {{attempts: 2}}
""")
    code, out, err = hopper("validate", f, env=clean_env(IN=src))
    assert code == 0, err
    assert out == f"{f}: ok: jsonl:{src} -> jsonl:{tmp}/out.jsonl, 1 " \
                  f"stream worker(s): {PY}\n"
    code, out, err = hopper("run", "-f", f, env=clean_env(IN=src))
    assert code == 0, err
    got = read_jsonl((tmp / "out.jsonl").read_text())
    assert sorted(r["result"]["echo"]["n"] for r in got) == [0, 1, 2]


def test_the_shipped_yaml_pipeline_runs(tmp):
    inbox = tmp / "in"
    inbox.mkdir()
    (inbox / "a.txt").write_text("one two three")
    env = clean_env(IN=inbox, OUT=tmp / "res", PYTHON=PY, WORKERS=1)
    code, out, err = hopper("run", "-f", "pipelines/word_count.yaml",
                            env=env, cwd=ROOT)
    assert code == 0, err
    assert json.loads((tmp / "res" / "a.txt.json").read_text()) == \
        {"words": 3}


YAML_ERRORS = [
    # What the file says, and the error after its name.
    ("source: jsonl:-\ncommand: [w]\nwrokers: 2\n",
     ":3:1: unknown key 'wrokers'; did you mean 'workers'?"),
    ("source: jsonl:-\ncommand: [w]\nworkers: -3\n",
     ":3:10: option 'workers': -3 is out of range (0..4096)"),
    ("source: jsonl:-\ncommand: [w]\nmode: strem\n",
     ":3:7: option 'mode': 'strem' is not one of stream, exec"),
    ("source:\n  type: dir\n  path: x\n  globb: '*'\ncommand: [w]\n",
     ":4:3: source unknown option 'globb'; did you mean 'glob'?"),
    ("source:\n  type: postgres\n  url: postgres://h/db\n  batch: 0\n"
     "command: [w]\n",
     ":4:10: source option 'batch': 0 is out of range (at least 1)"),
    ("source: jsonl:-\ncommand: [w\nworkers: 2\n",
     ":3:8: invalid YAML: did not find expected ',' or ']' while parsing a "
     "flow sequence"),
    ("source: jsonl:-\ncommand: [w]\nworkers: 2\nworkers: 3\n",
     ":4:1: 'workers' is given twice"),
    ("source: jsonl:-\ncommand: [w]\n---\nworkers: 3\n",
     ":3:1: a pipeline file holds one document"),
    ("source:\n  type: dir\n  path: x\n  glob: *.txt\ncommand: [w]\n",
     ":4:10: invalid YAML: did not find expected alphabetic or numeric "
     "character while scanning an alias (quote a value that starts with *)"),
    ("source:\n  type: dir\n  path: x\n  glob: *txt\ncommand: [w]\n",
     ":4:9: no anchor named 'txt' (a value that starts with * is an alias "
     "unless quoted: \"*txt\")"),
    ("- a\n- b\n", ": a pipeline file is a YAML mapping of keys"),
    ("", ":1:1: the file is empty"),
    ("source: jsonl:-\ncommand: [w]\nmin_workers: 5\nmax_workers: 2\n",
     ":3:14: min_workers 5 is above max_workers 2 ({f}:4:14)"),
]


@pytest.mark.parametrize("text,why", YAML_ERRORS,
                         ids=[str(i) for i in range(len(YAML_ERRORS))])
def test_yaml_errors_name_file_line_column(tmp, text, why):
    err = yaml_error(tmp, text)
    assert err == why.replace("{f}", str(tmp / "pipe.yaml")), err


def test_yml_is_yaml_too_and_json_stays_json(tmp):
    assert yaml_error(tmp, "source: jsonl:-\ncommand: [w]\nwrokers: 2\n",
                      name="p.yml").startswith(":3:1: unknown key 'wrokers'")
    # A .json file is never read as YAML, whatever it holds.
    f = tmp / "p.json"
    f.write_text("source: jsonl:-\ncommand: [w]\n")
    code, _, err = hopper("validate", f)
    assert code == 2 and f"{f}:1:6: invalid JSON" in err, err
