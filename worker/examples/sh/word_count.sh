#!/bin/sh
# A hopper worker in POSIX sh, exec mode: one process per item.
#
# The payload arrives on stdin (a JSON string as its raw text, anything else
# as compact JSON; the same bytes are in the file $WORK_ITEM_FILE), and
# $HOPPER_ITEM_ID and $HOPPER_ATTEMPT name the item. Whatever goes to stdout
# is the result, here {"words": N}. Exit 0 is success, 65 a permanent failure
# (here: an empty payload), 75 asks for a retry.
#
# Words are runs of anything but ASCII whitespace, as in every example: each
# whitespace byte becomes a newline, and awk counts the lines left non-empty.
set -eu

tr ' \t\v\f\r' '[\n*]' | awk '
	NF { words++ }
	END {
		if (NR == 0) {
			print "empty payload: nothing to count" > "/dev/stderr"
			exit 65
		}
		printf "{\"words\": %d}\n", words
	}'
