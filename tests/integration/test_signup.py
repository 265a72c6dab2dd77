"""pipelines/signup.json end to end: Burns' new-user sign-up flow in five
stages (verify, then a copier to welcome and prefs; prefs a filter and a
splitter to email or sms), its workers in Python, Node.js and POSIX sh, run
by the real coordinator over the shipped users. Every message file is read,
every dead letter parsed, and every source line counted as acknowledged or
dead-lettered."""
import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from conftest import PY, ROOT, clean_env, hopper, read_jsonl

SIGNUP = ROOT / "pipelines" / "signup.json"
WORKERS = ROOT / "pipelines" / "signup"
USERS = {u["user"]: u for u in read_jsonl(
    (WORKERS / "users.jsonl").read_text())}

# What the shipped users are meant to show, each user once.
EMAILED = {"ada", "margaret", "katherine"}
TEXTED = {"grace", "alan", "dennis"}
DROPPED = {"linus", "ken"}  # notifications off: welcomed, nothing more
WELCOMED = EMAILED | TEXTED | DROPPED
DEAD = {
    "edsger": "email 'edsger.example.org' is not an address",
    "barbara": "wants SMS but gave no phone number",
    "tim": "channel 'pigeon' is not one of email, sms",
    "anon": 'no "name"',
}


def tool(name):
    path = shutil.which(name)
    assert path, f"`{name}` is not on PATH: the sign-up example needs it"
    return path


def signup_env(out, **extra):
    return clean_env(OUT=out, PYTHON=PY, NODE=tool("node"), WORKERS=1,
                     **extra)


def engine_runs_stages():
    """Whether this hopper runs every stage of a file with stages: a chain
    of two exec stages, the second of which answers "b"."""
    with tempfile.TemporaryDirectory() as d:
        f, out = Path(d) / "probe.json", Path(d) / "out.jsonl"
        (Path(d) / "in.jsonl").write_text("1\n")
        f.write_text(json.dumps({
            "source": {"type": "jsonl", "path": f"{d}/in.jsonl"},
            "sink": {"type": "jsonl", "path": str(out)},
            "stages": {"a": {"command": ["cat"], "mode": "exec",
                             "to": "b"},
                       "b": {"command": ["printf", "b"], "mode": "exec"}}}))
        hopper("run", "-f", f, "--no-progress")
        return out.exists() and '"result":"b"' in out.read_text()


needs_stages = pytest.mark.skipif(
    not engine_runs_stages(), reason="this hopper runs one stage only")


def messages(folder):
    """The message files in folder, by the id they are named after."""
    assert folder.is_dir(), f"{folder} was not made"
    out = {}
    for f in sorted(folder.iterdir()):
        assert f.suffix == ".json", f
        out[f.stem] = json.loads(f.read_text())
    return out


def first_name(user):
    return user["name"].split(" ")[0]


def phone(user):
    return "+" + re.sub(r"[^0-9]", "", user["phone"])


@needs_stages
def test_the_signup_flow_writes_every_message_and_dead_letter(tmp):
    out, journal = tmp / "out", tmp / "journal.jsonl"
    assert tool("jq")
    code, _, err = hopper("run", "-f", SIGNUP, "--journal", journal,
                          cwd=ROOT, env=signup_env(out))
    assert code == 3, err  # a finished run with dead items

    welcome = messages(out / "welcome")
    assert set(welcome) == WELCOMED, err
    for id, m in welcome.items():
        u = USERS[id]
        assert m == {
            "to": f"{u['name']} <{u['email'].lower()}>",
            "subject": f"Welcome, {first_name(u)}!",
            "body": f"Dear {u['name']},\n\nWelcome to hopper. Your account "
                    f"is ready:\nsign in with {u['email'].lower()}.\n\n"
                    "The hopper team"}, (id, m)

    email = messages(out / "email")
    assert set(email) == EMAILED, err
    for id, m in email.items():
        u = USERS[id]
        assert m["to"] == f"{u['name']} <{u['email'].lower()}>", (id, m)
        assert m["subject"] == "Your notifications", (id, m)
        assert m["body"].startswith(f"Hi {first_name(u)},\n\n"), (id, m)

    sms = messages(out / "sms")
    assert set(sms) == TEXTED, err
    for id, m in sms.items():
        u = USERS[id]
        assert m["to"] == phone(USERS[id]), (id, m)
        assert m["text"].startswith(f"Hi {first_name(u)}, "), (id, m)
        assert len(m["text"]) <= 160, (id, m)

    # The filter: welcomed, then neither emailed nor texted.
    assert WELCOMED - EMAILED - TEXTED == DROPPED

    dead = read_jsonl((out / "dead.jsonl").read_text())
    assert sorted(d["id"] for d in dead) == sorted(DEAD), dead
    for d in dead:
        assert DEAD[d["id"]] in d["error"], d
        assert d["attempts"] == 1, d  # a permanent failure: no retries
        assert d["payload"] == USERS[d["id"]], d  # the line as it came
        assert d.get("stage", "verify") == "verify", d

    # Every source line is acknowledged (its whole tree written or dropped)
    # or dead-lettered, once: the journal records each root as it is.
    lines = read_jsonl(journal.read_text())
    assert lines[0].get("journal") == 1, lines[0]
    outcome = {}
    for line in lines[1:]:
        assert line["id"] not in outcome, f"{line['id']} finished twice"
        outcome[line["id"]] = line["outcome"]
    assert len(USERS) == 12
    assert outcome == {**{id: "done" for id in WELCOMED},
                       **{id: "dead" for id in DEAD}}, outcome
    assert len(outcome) == len(USERS)


@pytest.mark.parametrize("argv,mode", [
    ([PY, WORKERS / "verify.py"], "stream"),
    (["node", WORKERS / "prefs.js"], "stream"),
    (["sh", WORKERS / "welcome.sh"], "exec"),
    (["sh", WORKERS / "email.sh"], "exec"),
    (["sh", WORKERS / "sms.sh"], "exec"),
], ids=["verify", "prefs", "welcome", "email", "sms"])
def test_each_signup_worker_keeps_the_contract(argv, mode):
    tool("jq")
    argv = [tool(argv[0]) if argv[0] == "node" else argv[0], *argv[1:]]
    code, out, err = hopper("check-worker", "--mode", mode, "--", *argv)
    assert code == 0, out + err
    assert out.strip().endswith("the worker keeps the contract"), out
