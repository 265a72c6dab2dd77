#!/usr/bin/env python3
"""The sign-up flow's first stage (stream mode): checks a new user and hands
on a clean copy of it, or fails it for good.

The payload is a user as the sign-up form sent it:
  {"user": "ada", "name": "Ada Lovelace", "email": "ada@example.org",
   "phone": "+44 20 7946 0001",
   "preferences": {"notifications": true, "channel": "email"}}
The result is the same user, normalised: the email in lower case, the phone
as "+" and its digits, the preferences flattened into "notifications"
(default true) and "channel". A user that can never be signed up (no name,
an email without "@", SMS wanted but no phone, a channel nobody offers) is a
permanent failure: "retry": false, so hopper dead-letters it at once.
"""
import json
import re
import sys

HANDLE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
PHONE = re.compile(r"\+?[0-9 ()-]+")
CHANNELS = ("email", "sms")


class Rejected(ValueError):
    """The user is malformed: no later attempt can mend it."""


def text(user, key):
    value = user.get(key)
    if not isinstance(value, str) or not value.strip():
        raise Rejected(f'no "{key}"')
    return value.strip()


def phone_number(raw):
    digits = re.sub(r"[^0-9]", "", raw)
    if not PHONE.fullmatch(raw) or not 7 <= len(digits) <= 15:
        raise Rejected(f"phone {raw!r} is not a phone number")
    return "+" + digits


def verify(user):
    if not isinstance(user, dict):
        raise Rejected("a user is a JSON object")
    handle = text(user, "user")
    if not HANDLE.fullmatch(handle):
        raise Rejected(f"user name {handle!r} is not 1 to 32 of a-z 0-9 _ . -")
    name, email = text(user, "name"), text(user, "email")
    if not EMAIL.fullmatch(email):
        raise Rejected(f"email {email!r} is not an address")
    prefs = user.get("preferences", {})
    if not isinstance(prefs, dict):
        raise Rejected('"preferences" is not an object')
    notifications = prefs.get("notifications", True)
    if not isinstance(notifications, bool):
        raise Rejected('"notifications" is not true or false')
    channel = prefs.get("channel", "email")
    if channel not in CHANNELS:
        raise Rejected(f"channel {channel!r} is not one of "
                       + ", ".join(CHANNELS))
    clean = {"user": handle, "name": name, "email": email.lower(),
             "notifications": notifications, "channel": channel}
    if user.get("phone") is not None:
        if not isinstance(user["phone"], str):
            raise Rejected('"phone" is not a string')
        clean["phone"] = phone_number(user["phone"])
    if channel == "sms" and "phone" not in clean:
        raise Rejected("wants SMS but gave no phone number")
    return clean


# Bytes, so lines end at \n only; the loop ends at EOF, which means "exit now".
for line in sys.stdin.buffer:
    item = json.loads(line)
    try:
        answer = {"ok": True, "result": verify(item.get("payload"))}
    except Rejected as e:
        print(f"rejected: {e}", file=sys.stderr, flush=True)
        answer = {"ok": False, "error": str(e), "retry": False}
    print(json.dumps({"id": item["id"], **answer}), flush=True)
