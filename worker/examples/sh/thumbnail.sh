#!/bin/sh
# An exec-mode thumbnail worker: one `ffmpeg` process per video.
# The payload is the video's path (on stdin; or $1, as xargs passes it).
# THUMB_OUT (thumbs), THUMB_WIDTH (320), THUMB_POS (seconds, 0) and
# THUMB_SEEK (accurate or keyframe) set the rest.
set -eu
in=${1:-$(cat)}
out=${THUMB_OUT:-thumbs}
name=$(basename "$in")
mkdir -p "$out"
set -- -ss "${THUMB_POS:-0}" -i "$in"
[ "${THUMB_SEEK:-accurate}" = keyframe ] && set -- -noaccurate_seek "$@"
if ! ffmpeg -nostdin -loglevel error "$@" -frames:v 1 \
	-vf "scale=${THUMB_WIDTH:-320}:-2" -y "$out/${name%.*}.jpg"; then
	echo "$in: ffmpeg could not make a thumbnail" >&2
	exit 65 # bad input: no point in retrying
fi
printf '{"file": "%s/%s.jpg"}\n' "$out" "${name%.*}"
