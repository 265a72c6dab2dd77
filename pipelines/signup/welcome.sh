#!/bin/sh
# The sign-up flow's welcome stage (exec mode): one process per user.
# The payload, a user as verify.py hands it on, is on stdin; the result, on
# stdout, is the welcome email as JSON: {"to", "subject", "body"}. There is
# no mail server here: the pipeline's sink writes the message to a file.
# jq reads the user's fields and writes the JSON, escapes and all.
set -eu
user=$(cat)
field() {
	printf '%s' "$user" | jq -er --arg k "$1" '.[$k] | strings'
}
if ! name=$(field name) || ! email=$(field email); then
	echo "a user needs a \"name\" and an \"email\" string" >&2
	exit 65 # bad input: no point in retrying
fi
body=$(printf 'Dear %s,\n\nWelcome to hopper. Your account is ready:\nsign in with %s.\n\nThe hopper team' \
	"$name" "$email")
jq -nc --arg to "$name <$email>" --arg subject "Welcome, ${name%% *}!" \
	--arg body "$body" '{to: $to, subject: $subject, body: $body}'
