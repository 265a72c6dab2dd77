#!/usr/bin/env bash
# make_samples.sh DIR: a few short sample videos (H.264 in MP4, 2 s, small),
# made once when the image is built; the compose file's seed copies them
# into ./data/in so that the first `docker compose up` has work.
set -euo pipefail

if [ "$#" -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
dir=$1
mkdir -p "$dir"

ff=(ffmpeg -nostdin -hide_banner -loglevel error -y)
sources=(
	"testsrc2=size=320x240:rate=25"
	"mandelbrot=size=320x240:rate=25"
	"smptebars=size=320x240:rate=25"
	"life=size=320x240:rate=25:mold=10:ratio=0.3"
	"cellauto=size=320x240:rate=25:rule=110"
	"rgbtestsrc=size=320x240:rate=25"
)
names=(testsrc mandelbrot bars life cellauto rgb)
for i in "${!sources[@]}"; do
	"${ff[@]}" -f lavfi -i "${sources[$i]}" -t 2 -c:v libx264 \
		-preset ultrafast -g 25 -pix_fmt yuv420p "$dir/${names[$i]}.mp4"
done
ls -l "$dir"
