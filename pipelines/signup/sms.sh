#!/bin/sh
# The sign-up flow's SMS stage (exec mode): one process per user who wants
# notifications by text message. The payload, a user as verify.py hands it
# on, is on stdin; the result, on stdout, is the message as JSON:
# {"to", "text"}, the text at most 160 characters. There is no SMS gateway
# here: the pipeline's sink writes the message to a file. jq reads the
# fields and writes the JSON.
set -eu
user=$(cat)
field() {
	printf '%s' "$user" | jq -er --arg k "$1" '.[$k] | strings'
}
if ! name=$(field name) || ! phone=$(field phone); then
	echo "a user needs a \"name\" and a \"phone\" string" >&2
	exit 65 # bad input: no point in retrying
fi
jq -nc --arg to "$phone" \
	--arg text "Hi ${name%% *}, hopper will text your notifications to this number. Reply STOP to end them." \
	'{to: $to, text: $text[:160]}'
