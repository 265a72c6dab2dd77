#!/bin/sh
# The sign-up flow's email stage (exec mode): one process per user who
# wants notifications by email. The payload, a user as verify.py hands it
# on, is on stdin; the result, on stdout, is the confirmation email as JSON:
# {"to", "subject", "body"}. There is no mail server here: the pipeline's
# sink writes the message to a file. jq reads the fields and writes the JSON.
set -eu
user=$(cat)
field() {
	printf '%s' "$user" | jq -er --arg k "$1" '.[$k] | strings'
}
if ! name=$(field name) || ! email=$(field email); then
	echo "a user needs a \"name\" and an \"email\" string" >&2
	exit 65 # bad input: no point in retrying
fi
body=$(printf 'Hi %s,\n\nyou will get your notifications at this address.\nTo stop them, turn notifications off in your preferences.\n\nThe hopper team' \
	"${name%% *}")
jq -nc --arg to "$name <$email>" --arg subject "Your notifications" \
	--arg body "$body" '{to: $to, subject: $subject, body: $body}'
