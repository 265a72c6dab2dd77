#!/bin/sh
# seed.sh: the compose file's one-shot seed. Run as root: makes the shared
# folders under /data owned by the hopper user (a bind mount of ./data that
# the engine created belongs to root), then drops SEED_COUNT sample videos
# (6 by default) into /data/in, each written beside it first and renamed
# into place so that the watching coordinator never sees half a file.
set -eu

count=${SEED_COUNT:-6}
samples=/usr/local/share/hopper/samples
mkdir -p /data/in /data/videos /data/out /data/.seed
chown hopper:hopper /data /data/in /data/videos /data/out

n=0
stamp=$(date +%s)
while [ "$n" -lt "$count" ]; do
	for f in "$samples"/*.mp4; do
		[ "$n" -lt "$count" ] || break
		n=$((n + 1))
		name=$(printf 'sample-%s-%03d-%s' "$stamp" "$n" "$(basename "$f")")
		cp "$f" "/data/.seed/$name"
		chown hopper:hopper "/data/.seed/$name"
		mv "/data/.seed/$name" "/data/in/$name"
	done
done
echo "seed: $n sample videos in /data/in"
