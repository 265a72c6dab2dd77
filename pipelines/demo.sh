#!/usr/bin/env bash
# make demo: Burns' tagging pipeline, for videos. Generates a varied corpus
# with FFmpeg's synthetic sources (and two broken files), runs
# pipelines/tagging.json over it (split each video into frames, tag each
# frame, join a video's frames into its result, reduce the batch), prints a
# summary and writes demo-out/index.html, the page to look at.
set -euo pipefail
cd "$(dirname "$0")/.."

# HOPPER, HOPPER_BUILD and DEMO_OUT let the tests run it on another build
# and folder.
out=${DEMO_OUT:-demo-out}
hopper=${HOPPER:-build/hopper}
build=${HOPPER_BUILD:-build}
export THUMBNAIL_WORKER=$build/hopper-thumbnail TAG_WORKER=$build/hopper-tag
rm -rf "$out"
# The reduces write their counts as JSON lines into batch/.
mkdir -p "$out/batch"
echo "generating sample videos..."
bash pipelines/demo_corpus.sh "$out/videos"

py=$(python3 -c 'import sys; print(sys.executable)')
export PYTHON=$py VIDEOS=$out/videos OUT=$out
status=0
"$hopper" run -f pipelines/tagging.json 2>"$out/hopper.log" || status=$?

n=$(find "$out/videos" -maxdepth 2 -type f ! -name '*.error.json' | wc -l)
echo "hopper demo: $n files in $out/videos"
sed -n 's/^.*finished:/  finished:/p' "$out/hopper.log"
for e in "$out"/videos/failed/*.error.json; do
	[ -f "$e" ] || continue
	printf '  dead: %s\n' "$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"])' "$e")"
done
"$py" pipelines/contact_page.py "$out"
echo "open $out/index.html to see them; the log is $out/hopper.log"
# 3 means "finished with dead items": the broken files are dead by design.
[ "$status" -eq 0 ] || [ "$status" -eq 3 ]
