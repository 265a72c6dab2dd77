#!/usr/bin/env bash
# demo_corpus.sh DIR: writes the clips that `make demo` tags, made from
# FFmpeg's synthetic sources so that they look different from each other
# (fractals, cellular automata, colour bars, gradients, noise, moving text),
# in several codecs and containers, some with a scene change inside, one
# portrait, one with non-square pixels; plus a corrupt and an empty file,
# which the pipeline must dead-letter.
#
# Every clip is 2-4 s at 320x240 or smaller and encoded with the fastest
# presets, two at a time, so the corpus takes a few seconds. The random
# sources have fixed seeds: the same clips on every run.
set -euo pipefail

if [ "$#" -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
dir=$1
mkdir -p "$dir"

ff=(ffmpeg -nostdin -hide_banner -loglevel error -y)
x264=(-c:v libx264 -preset ultrafast -pix_fmt yuv420p -g 25)
vp9=(-c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 400k -g 25)
x265=(-c:v libx265 -preset ultrafast -pix_fmt yuv420p
	-x265-params log-level=none:keyint=25)
mpeg4=(-c:v mpeg4 -q:v 4 -g 25)

# Two encodes at a time: as many as a small machine gives back.
pids=()
run() {
	if [ "${#pids[@]}" -ge 2 ]; then
		wait "${pids[0]}"
		pids=("${pids[@]:1}")
	fi
	"${ff[@]}" "$@" &
	pids+=("$!")
}

# Moving text needs a font; without DejaVu that clip is left out.
font=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf

# A fractal zoom, purple and orange, in H.264/MP4.
run -f lavfi -i "mandelbrot=size=320x240:rate=25" -t 3 "${x264[@]}" \
	"$dir/mandelbrot.mp4"
# Conway's life, green on black, in VP9/WebM.
run -f lavfi -i "life=size=320x240:rate=25:seed=7:mold=10:life_color=#30ff60:death_color=#003010:ratio=0.2" \
	-t 3 "${vp9[@]}" "$dir/life.webm"
# A one-dimensional automaton (rule 110) scrolling, in HEVC/MKV.
run -f lavfi -i "cellauto=size=320x240:rate=25:rule=110:random_fill_ratio=0.5:random_seed=7:scroll=1" \
	-t 2 -vf "format=yuv420p,colorchannelmixer=rr=0.2:gg=0.4:bb=1" \
	"${x265[@]}" "$dir/cellauto.mkv"
# SMPTE HD bars, then a test pattern: a scene change at 1.5 s, in MPEG-4/AVI.
run -f lavfi -i "smptehdbars=size=320x240:rate=25:duration=1.5" \
	-f lavfi -i "testsrc2=size=320x240:rate=25:duration=1.5" \
	-filter_complex "[0:v][1:v]concat=n=2:v=1,format=yuv420p[v]" -map "[v]" \
	"${mpeg4[@]}" "$dir/bars_to_pattern.avi"
# Slow red-blue gradients, in VP9/WebM.
run -f lavfi -i "gradients=size=320x240:rate=25:c0=#e02010:c1=#2030d0:speed=0.05:seed=7" \
	-t 3 "${vp9[@]}" "$dir/gradients.webm"
# Grey static (random luma, no chroma), in H.264/MP4.
run -f lavfi -i "color=gray:size=320x240:rate=25" -t 2 \
	-vf "noise=c0s=100:allf=t+u,format=yuv420p" "${x264[@]}" "$dir/static.mp4"
# A blue sky, a cut to a sunset in orange (geq), a cut to night: three
# scenes in HEVC/MKV.
run -f lavfi -i "color=#3080e0:size=320x240:rate=25:duration=1.2" \
	-f lavfi -i "nullsrc=size=320x240:rate=25:duration=1.2" \
	-f lavfi -i "color=#080818:size=320x240:rate=25:duration=1.2" \
	-filter_complex "[1:v]geq=r='255-Y/2':g='120-Y/3':b='40',format=yuv420p[sun];[0:v]format=yuv420p[sky];[2:v]format=yuv420p[night];[sky][sun][night]concat=n=3:v=1[v]" \
	-map "[v]" "${x265[@]}" "$dir/three_scenes.mkv"
# Portrait: a tall mandelbrot made as 240x320 pixels, in H.264/MP4.
run -f lavfi -i "mandelbrot=size=240x320:rate=25:start_scale=0.5" -t 2 \
	"${x264[@]}" "$dir/portrait.mp4"
# Non-square pixels: 240x240 stored, 16:9 display (sample aspect 16:9),
# test pattern, in MPEG-4/MP4.
run -f lavfi -i "testsrc2=size=240x240:rate=25" -t 2 -vf "setsar=16/9" \
	"${mpeg4[@]}" "$dir/anamorphic.mp4"
if [ -r "$font" ]; then
	# White text crossing a dark green field, in H.264/MKV.
	run -f lavfi -i "color=#104020:size=320x240:rate=25" -t 3 \
		-vf "drawtext=fontfile=$font:text=hopper:fontsize=48:fontcolor=white:x=w-mod(t*160\,w+tw):y=(h-th)/2,format=yuv420p" \
		"${x264[@]}" "$dir/moving_text.mkv"
fi

for pid in "${pids[@]}"; do
	wait "$pid"
done

# A portrait phone clip: landscape pixels turned by a display matrix of 90
# degrees (FFmpeg writes the matrix when it copies the stream).
"${ff[@]}" -i "$dir/bars_to_pattern.avi" -t 2 "${x264[@]}" -f mp4 \
	"$dir/.rot.tmp"
"${ff[@]}" -i "$dir/.rot.tmp" -c copy -metadata:s:v:0 rotate=90 \
	"$dir/rotated_phone.mp4"
rm -f "$dir/.rot.tmp"
# A file whose first 4 KiB are overwritten (no header left) and an empty one.
cp "$dir/mandelbrot.mp4" "$dir/corrupt.mp4"
head -c 4096 /dev/zero | tr '\0' '\132' |
	dd of="$dir/corrupt.mp4" bs=4096 count=1 conv=notrunc status=none
: >"$dir/empty.mp4"
