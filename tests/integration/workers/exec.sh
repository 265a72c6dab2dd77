#!/bin/sh
# An exec-mode worker for the tests: the payload text says what to do.
payload=$(cat)
# From the dir source the payload is a path: act on what the file says.
[ -f "$payload" ] && payload=$(cat "$payload")
case "$payload" in
retry-once)
	[ "$HOPPER_ATTEMPT" = 1 ] && { echo "try again" >&2; exit 75; }
	echo '{"ok": "second time"}' ;;
perm) echo "cannot use this" >&2; exit 65 ;;
crash) exit 9 ;;
text) echo "plain words" ;;
env)
	same=no
	[ "$(cat "$WORK_ITEM_FILE")" = "$payload" ] && same=yes
	printf '{"id": "%s", "attempt": %s, "file_matches": "%s"}\n' \
		"$HOPPER_ITEM_ID" "$HOPPER_ATTEMPT" "$same" ;;
sleep) sleep 30 ;;
*) printf '{"words": %s}\n' "$(printf '%s' "$payload" | wc -w)" ;;
esac
