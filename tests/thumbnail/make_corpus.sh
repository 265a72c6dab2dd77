#!/usr/bin/env bash
# make_corpus.sh DIR: writes small sample videos, and files that are not
# videos, for the thumbnail worker's tests and for `make demo`.
#
# Every video comes from a synthetic lavfi source, is 2-4 s long and small,
# so the whole corpus takes a few seconds. Encodes run in parallel (two at a
# time is what a small machine gives back). The names say what each file is;
# tests rely on them.
set -euo pipefail

if [ "$#" -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
dir=$1
mkdir -p "$dir"

ff=(ffmpeg -nostdin -hide_banner -loglevel error -y)
src="testsrc2=size=320x240:rate=25"

# The encodes are independent: run them as background jobs and wait for all,
# failing if any failed.
pids=()
run() {
	"${ff[@]}" "$@" &
	pids+=("$!")
}

# H.264 in MP4, keyframe every 25 frames (1 s), no B-frames reordering games.
run -f lavfi -i "$src" -t 3 -c:v libx264 -preset ultrafast -g 25 \
	-pix_fmt yuv420p "$dir/h264.mp4"
# Long GOP: 10 s with one keyframe, B-frames as x264 makes them by default.
run -f lavfi -i "$src" -t 10 -c:v libx264 -preset veryfast -g 250 \
	-pix_fmt yuv420p "$dir/long_gop.mp4"
# VP9 in WebM.
run -f lavfi -i "mandelbrot=size=256x192:rate=25" -t 2 -c:v libvpx-vp9 \
	-deadline realtime -cpu-used 8 -b:v 300k -g 25 "$dir/vp9.webm"
# HEVC in Matroska, 10-bit.
run -f lavfi -i "$src" -t 2 -c:v libx265 -preset ultrafast -pix_fmt yuv420p10le \
	-x265-params log-level=none:keyint=25 "$dir/hevc10.mkv"
# MPEG-4 part 2 in AVI.
run -f lavfi -i "$src" -t 2 -c:v mpeg4 -q:v 4 -g 25 "$dir/mpeg4.avi"
# Non-square pixels: 320x240 stored, 2:1 sample aspect, displayed 640x240.
run -f lavfi -i "$src" -t 2 -vf setsar=2/1 -c:v libx264 -preset ultrafast \
	-g 25 "$dir/sar.mp4"
# An absurd display aspect, 4:711 (a sliver 178 times taller than wide).
run -f lavfi -i "$src" -t 1 -aspect 4:711 -c:v libx264 -preset ultrafast \
	"$dir/sliver.mp4"
# Odd dimensions (VP9 takes them in 4:2:0).
run -f lavfi -i "$src" -t 2 -vf scale=321:241 -c:v libvpx-vp9 \
	-deadline realtime -cpu-used 8 -b:v 300k "$dir/odd.webm"
# Interlaced H.264 (field-coded, top field first).
run -f lavfi -i "testsrc2=size=320x240:rate=50" -t 2 \
	-vf "tinterlace=interleave_top,setfield=tff" -c:v libx264 \
	-preset ultrafast -flags +ildct+ilme -x264-params interlaced=1 \
	"$dir/interlaced.mp4"
# Black for 2 s, then picture: "auto" must not pick the black part.
run -f lavfi -i "color=black:size=320x240:rate=25:duration=2" \
	-f lavfi -i "$src:duration=2" \
	-filter_complex "[0:v][1:v]concat=n=2:v=1[v]" -map "[v]" \
	-c:v libx264 -preset ultrafast -g 12 "$dir/black_start.mp4"
# MPEG-TS (no index: seeking bisects) with B-frames; starts at 1.4 s.
run -f lavfi -i "$src" -t 3 -c:v libx264 -preset veryfast -bf 3 -g 30 \
	"$dir/bframes.ts"
# Variable frame rate: 25 fps for 1 s, then 10 fps.
run -f lavfi -i "$src" -t 3 \
	-vf "setpts='if(lt(N,25),N/25,1+(N-25)/10)/TB'" -fps_mode vfr \
	-c:v libx264 -preset ultrafast -g 10 "$dir/vfr.mkv"
# HDR10: 10-bit BT.2020 with the PQ transfer.
run -f lavfi -i "testsrc2=size=160x120:rate=25" -t 1 -c:v libx265 \
	-preset ultrafast -pix_fmt yuv420p10le -color_primaries bt2020 \
	-color_trc smpte2084 -colorspace bt2020nc -x265-params log-level=none \
	"$dir/hdr10.mkv"
# Nothing but black: "auto" has no good frame and must still answer.
run -f lavfi -i "color=black:size=64x48:rate=25:duration=1" -c:v libx264 \
	-preset ultrafast "$dir/black.mp4"
# One frame, 33 ms: shorter than any number of tiles.
run -f lavfi -i "$src" -frames:v 1 -c:v libx264 -preset ultrafast \
	"$dir/one_frame.mp4"
# Audio only.
run -f lavfi -i "sine=frequency=440:duration=2" -c:a aac "$dir/audio_only.m4a"
# A still image, and the same named as a video.
run -f lavfi -i "$src" -frames:v 1 "$dir/still.png"
run -f lavfi -i "$src" -frames:v 1 "$dir/still.jpg"
# Video packets that are all garbage inside a valid container: every byte
# of every JPEG is changed, so none decodes.
run -f lavfi -i "$src" -t 1 -c:v mjpeg -bsf:v noise=amount=1 \
	"$dir/undecodable.avi"
# The same in Matroska, which cannot go back to byte 0 once it has read.
run -f lavfi -i "$src" -t 1 -c:v mjpeg -bsf:v noise=amount=1 \
	"$dir/undecodable.mkv"

for pid in "${pids[@]}"; do
	wait "$pid"
done

# Files derived from the ones above.
# A portrait phone clip: landscape pixels plus a display rotation of 90
# degrees (FFmpeg 5.1 writes the matrix only when stream copying).
"${ff[@]}" -i "$dir/h264.mp4" -t 2 -c copy -metadata:s:v:0 rotate=90 \
	"$dir/rotated.mp4"
# An MP3 with cover art (an attached picture) and no other video.
"${ff[@]}" -f lavfi -i "sine=frequency=440:duration=2" -i "$dir/still.png" \
	-map 0 -map 1 -c:a libmp3lame -c:v png -disposition:v attached_pic \
	-id3v2_version 3 "$dir/cover.mp3"
: >"$dir/empty.mp4"
printf 'this is a text file, not a video\n' >"$dir/text.mp4"
cp "$dir/still.png" "$dir/png_named.mp4"
# The MP4 keeps its index (moov) at the end: half the file has none.
size=$(stat -c %s "$dir/h264.mp4")
head -c "$((size / 2))" "$dir/h264.mp4" >"$dir/truncated.mp4"
# With the index first (faststart) the start still plays; the end is gone.
"${ff[@]}" -i "$dir/h264.mp4" -c copy -movflags +faststart "$dir/fs.tmp.mp4"
size=$(stat -c %s "$dir/fs.tmp.mp4")
head -c "$((size / 2))" "$dir/fs.tmp.mp4" >"$dir/truncated_faststart.mp4"
rm -f "$dir/fs.tmp.mp4"
# The first 4 KiB overwritten with a fixed pattern: no header left.
cp "$dir/h264.mp4" "$dir/corrupt.mp4"
head -c 4096 /dev/zero | tr '\0' '\132' |
	dd of="$dir/corrupt.mp4" bs=4096 count=1 conv=notrunc status=none
# A damaged index: the MP4's sample-to-chunk table (its index is at the
# end, so the last "stsc" is the atom) zeroed, so no packet can be found.
cp "$dir/h264.mp4" "$dir/damaged_index.mp4"
off=$(grep -boa stsc "$dir/damaged_index.mp4" | tail -1 | cut -d: -f1)
head -c 16 /dev/zero |
	dd of="$dir/damaged_index.mp4" bs=1 seek="$((off + 4))" conv=notrunc \
		status=none
