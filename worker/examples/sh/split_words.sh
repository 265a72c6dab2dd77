#!/bin/sh
# A hopper worker in POSIX sh, exec mode, that emits: a splitter and a
# filter. The payload bytes are text; each word becomes one output, one line
# of the file named by HOPPER_EMIT:
#   {"emit": {"word": W, "n": I}, "port": "number" or "word", "key": W}
# with I from 0, the port "number" for a word of ASCII digits only, and the
# word as its key. Text with no words leaves the file empty: a drop. A word
# with a control character in it is a permanent failure (exit 65). Words are
# runs of anything but ASCII whitespace, as in every example.
set -eu
# One word a line, with \ and " escaped for JSON, then one emit line each.
tr ' \t\v\f\r' '[\n*]' < "$WORK_ITEM_FILE" |
	sed 's/\\/\\\\/g; s/"/\\"/g' |
	awk '
	$0 == "" { next }
	/[[:cntrl:]]/ { print "a word holds a control character" > "/dev/stderr"; exit 65 }
	{
		port = $0 ~ /^[0-9]+$/ ? "number" : "word"
		printf "{\"emit\": {\"word\": \"%s\", \"n\": %d}, \"port\": \"%s\", \"key\": \"%s\"}\n", $0, n++, port, $0
	}' > "$HOPPER_EMIT"
