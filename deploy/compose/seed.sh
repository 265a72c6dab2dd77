#!/bin/sh
# seed.sh: the compose file's one-shot seed. Run as root: makes the shared
# folders under /data owned by the hopper user (a bind mount of ./data that
# the engine created belongs to root), then, the first time only, drops
# SEED_COUNT sample videos (6 by default) and SEED_BROKEN files that are
# not videos (none by default: the tagging pipeline dead-letters them) into
# /data/in, each written beside it first and renamed into place so that the
# watching coordinator never sees half a file.
set -eu

# Once: a later `docker compose up` starts this again, and should not add
# the same videos every time (SEED_FORCE=1 adds them all the same).
if [ -e /data/.seeded ] && [ -z "${SEED_FORCE:-}" ]; then
	echo "seed: ./data was seeded before (remove data/.seeded, or set SEED_FORCE=1)"
	exit 0
fi

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
b=0
while [ "$b" -lt "${SEED_BROKEN:-0}" ]; do
	b=$((b + 1))
	name=$(printf 'broken-%s-%03d.mp4' "$stamp" "$b")
	echo "not a video, but named like one" >"/data/.seed/$name"
	chown hopper:hopper "/data/.seed/$name"
	mv "/data/.seed/$name" "/data/in/$name"
done
touch /data/.seeded
echo "seed: $n sample videos and $b broken files in /data/in"
