#!/usr/bin/env python3
"""A hopper worker in Python that emits: a splitter and a filter, stream mode.

The payload is a string or {"text": "..."}; each word becomes one output,
{"word": W, "n": I} (I from 0), on the port "number" when the word is all
ASCII digits and "word" otherwise, with the word as its key (a sharded stage
after it sees every copy of a word in one shard). Text with no words is
dropped. Anything else is a permanent failure. Words are runs of anything
but ASCII whitespace, as in every example.
"""
import json
import re
import sys

WORD = re.compile(r"[^ \t\n\v\f\r]+")
NUMBER = re.compile(r"[0-9]+")


def say(line):
    print(json.dumps(line), flush=True)


# Bytes, so lines end at \n only; the loop ends at EOF, which means "exit now".
for line in sys.stdin.buffer:
    item = json.loads(line)
    id, payload = item["id"], item.get("payload")
    text = payload.get("text") if isinstance(payload, dict) else payload
    if not isinstance(text, str):
        say({"id": id, "ok": False, "retry": False, "error": "payload must be "
             'a string, or an object with a "text" string'})
        continue
    words = WORD.findall(text)
    # Each output before the answer, in order; they count once it is ok.
    for n, word in enumerate(words):
        say({"id": id, "emit": {"word": word, "n": n},
             "port": "number" if NUMBER.fullmatch(word) else "word",
             "key": word})
    # No words: no output at all.
    say({"id": id, "ok": True, "drop": not words})
