"""pipelines/signup.json end to end: Burns' new-user sign-up flow in five
stages (verify, then a copier to welcome and prefs; prefs a filter and a
splitter to email or sms), its workers in Python, Node.js and POSIX sh, run
by the real coordinator over the shipped users. Every message file is read,
every dead letter parsed, and every source line counted as acknowledged or
dead-lettered."""
import json
import re
import shutil

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


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """One run of the flow as shipped, with a journal: (the output folder,
    the journal's lines, the run's stderr)."""
    tool("jq")
    tmp = tmp_path_factory.mktemp("signup")
    out, journal = tmp / "signup-out", tmp / "journal.jsonl"
    code, _, err = hopper("run", "-f", SIGNUP, "--journal", journal,
                          cwd=ROOT, env=signup_env(out))
    assert code == 3, err  # a finished run with dead items
    assert "finished: 8 done, 4 dead, 0 retried" in err, err
    return out, read_jsonl(journal.read_text()), err


def test_every_verified_user_is_welcomed(flow):
    out, _, err = flow
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


def test_prefs_splits_by_channel_and_drops_those_opted_out(flow):
    out, _, err = flow
    email = messages(out / "email")
    assert set(email) == EMAILED, err
    for id, m in email.items():
        u = USERS[id]
        assert u["preferences"] == {"notifications": True,
                                    "channel": "email"}, u
        assert m["to"] == f"{u['name']} <{u['email'].lower()}>", (id, m)
        assert m["subject"] == "Your notifications", (id, m)
        assert m["body"].startswith(f"Hi {first_name(u)},\n\n"), (id, m)

    sms = messages(out / "sms")
    assert set(sms) == TEXTED, err
    for id, m in sms.items():
        u = USERS[id]
        assert u["preferences"] == {"notifications": True,
                                    "channel": "sms"}, u
        assert m == {"to": phone(u),
                     "text": f"Hi {first_name(u)}, hopper will text your "
                             "notifications to this number. Reply STOP to "
                             "end them."}, (id, m)
        assert len(m["text"]) <= 160, (id, m)

    # The filter: welcomed, then neither emailed nor texted.
    for id in DROPPED:
        assert USERS[id]["preferences"]["notifications"] is False
    assert WELCOMED - set(email) - set(sms) == DROPPED


def test_malformed_users_are_dead_in_verify(flow):
    out, _, err = flow
    dead = read_jsonl((out / "dead.jsonl").read_text())
    assert sorted(d["id"] for d in dead) == sorted(DEAD), dead
    for d in dead:
        assert DEAD[d["id"]] in d["error"], d
        assert d["attempts"] == 1, d  # a permanent failure: no retries
        assert d["payload"] == USERS[d["id"]], d  # the line as it came
        assert f"item={d['id']} stage verify: dead after 1 attempt: " \
               f"{DEAD[d['id']]}" in err, err
    # Nothing of theirs went on past verify.
    written = {f.stem for f in out.glob("*/*.json")}
    assert not written & set(DEAD), written


def test_every_line_is_acknowledged_or_dead_once(flow):
    """A line is acknowledged (and journalled done) only once its whole
    tree is written or dropped; the journal records each root once."""
    _, journal, _ = flow
    assert journal[0].get("journal") == 1, journal[0]
    outcome = {}
    for line in journal[1:]:
        assert line["id"] not in outcome, f"{line['id']} finished twice"
        outcome[line["id"]] = line["outcome"]
    assert len(outcome) == len(USERS) == 12
    assert outcome == {**{id: "done" for id in WELCOMED},
                       **{id: "dead" for id in DEAD}}, outcome


def test_the_readme_shows_what_the_flow_writes(flow):
    out, _, _ = flow
    text = (ROOT / "README.md").read_text()
    section = text.split("### Example: a sign-up flow in stages", 1)[1]
    block = section.split("```console\n", 1)[1].split("```", 1)[0]
    lines = block.splitlines()
    listed = {m[1]: m[2].split() for m in
              (re.match(r"signup-out/(\w+): (.*)$", line) for line in lines)
              if m}
    assert listed == {d.name: sorted(f.name for f in d.iterdir())
                      for d in out.iterdir() if d.is_dir()}, listed
    shown = [(m[1], lines[i + 1]) for i, line in enumerate(lines)
             if (m := re.match(r"\$ cat signup-out/(\S+)$", line))]
    assert len(shown) == 3, block
    for path, want in shown:
        assert (out / path).read_text() == want + "\n", path
    for id, error in DEAD.items():
        assert re.search(rf"^{id} +1 .* {re.escape(error)}$", block,
                         re.M), (id, block)


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
