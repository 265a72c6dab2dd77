#!/usr/bin/env bash
# make demo: the word-count pipeline over a folder of generated text files,
# the first demo until the thumbnail pipeline. Prints a summary at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

out=demo-out
rm -rf "$out"
mkdir -p "$out/in"
# Sample texts: the licences every Debian machine carries.
n=0
for f in /usr/share/common-licenses/*; do
	[ -f "$f" ] || continue
	cp "$f" "$out/in/$(basename "$f").txt"
	n=$((n + 1))
done

PYTHON=$(python3 -c 'import sys; print(sys.executable)')
export PYTHON IN="$out/in" OUT="$out/results"
status=0
build/hopper run -f pipelines/word_count.json 2> "$out/hopper.log" || status=$?

echo "hopper demo: $n files in $out/in"
grep -E 'finished:' "$out/hopper.log" | sed 's/^.*finished:/  finished:/'
shown=0
for r in "$out"/results/*.json; do
	printf '  %-28s %s\n' "$(basename "$r" .json)" "$(cat "$r")"
	shown=$((shown + 1))
	[ "$shown" -lt 6 ] || { echo "  ..."; break; }
done
for e in "$out"/in/failed/*.error.json; do
	[ -f "$e" ] || continue
	printf '  dead: %s: %s\n' "$(basename "$e" .error.json)" \
		"$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"])' "$e")"
done
echo "results in $out/results, dead letters in $out/in/failed, log in $out/hopper.log"
# 3 means "finished with dead items": expected here, the broken file.
[ "$status" -eq 0 ] || [ "$status" -eq 3 ]
