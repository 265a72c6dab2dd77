#!/usr/bin/env bash
# make demo: sample videos in, thumbnails and a contact page out.
# Generates a small corpus with FFmpeg's synthetic sources (and two broken
# files), runs pipelines/thumbnails.json over it, prints a summary and writes
# demo-out/index.html, the page to look at.
set -euo pipefail
cd "$(dirname "$0")/.."

# HOPPER, HOPPER_BUILD and DEMO_OUT let the tests run it on another build
# and folder.
out=${DEMO_OUT:-demo-out}
hopper=${HOPPER:-build/hopper}
export THUMBNAIL_WORKER=${HOPPER_BUILD:-build}/hopper-thumbnail
rm -rf "$out"
mkdir -p "$out/videos"
echo "generating sample videos..."
bash tests/thumbnail/make_corpus.sh "$out/corpus" >/dev/null
# H.264/MP4, VP9/WebM, 10-bit HEVC/MKV, MPEG-4/AVI, a rotated portrait clip,
# non-square pixels, interlaced, odd sizes, one that opens on black, and a
# corrupt and an empty file, whose dead letters belong on the page too.
for f in h264.mp4 vp9.webm hevc10.mkv mpeg4.avi rotated.mp4 sar.mp4 \
	interlaced.mp4 odd.webm black_start.mp4 corrupt.mp4 empty.mp4; do
	cp "$out/corpus/$f" "$out/videos/"
done

py=$(python3 -c 'import sys; print(sys.executable)')
export VIDEOS="$out/videos" RESULTS="$out/results" THUMBS="$out/thumbs"
status=0
"$hopper" run -f pipelines/thumbnails.json 2> "$out/hopper.log" || status=$?

n=$(find "$out/videos" -maxdepth 2 -type f ! -name '*.error.json' | wc -l)
echo "hopper demo: $n files in $out/videos"
sed -n 's/^.*finished:/  finished:/p' "$out/hopper.log"
for e in "$out"/videos/failed/*.error.json; do
	[ -f "$e" ] || continue
	printf '  dead: %s\n' "$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"])' "$e")"
done
"$py" pipelines/contact_page.py "$out/results" "$out/videos/failed" \
	"$out/index.html"
echo "open $out/index.html to see them; the log is $out/hopper.log"
# 3 means "finished with dead items": the broken files are dead by design.
[ "$status" -eq 0 ] || [ "$status" -eq 3 ]
