#!/usr/bin/env bash
# lib.sh: what tests/compose/run.sh needs to run compose.yaml here, with
# podman standing in for a Docker engine: the packages, podman's settings,
# the local base image and the stand-ins for the official images, the
# hopper image, a Docker API socket for docker-compose, and a ticker that
# runs the containers' health checks (podman runs them from systemd timers,
# which a machine without systemd lacks). Sourced, not run.
# shellcheck disable=SC2034 # the *_PID variables are run.sh's to use

COMPOSE_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
COMPOSE_ROOT=$(cd "$COMPOSE_HERE/../.." && pwd)
COMPOSE_CACHE=${HOPPER_COMPOSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hopper/compose}
KAFKA_IMAGE_VERSION=3.7.2
BASE_IMAGE=docker.io/library/debian:bookworm-slim
# The hopper image is tagged by the hash of its inputs (compose_hopper_image
# sets it, and compose.yaml reads it): another checkout's run on this
# machine, which builds hopper:latest from its own files, cannot swap it
# under this one.
HOPPER_IMAGE=docker.io/library/hopper:latest

# The image names compose.yaml uses, as Docker's API spells them.
STANDINS=(
	"postgres docker.io/library/postgres:15"
	"prometheus docker.io/prom/prometheus:v2.42.0"
	"kafka docker.io/apache/kafka:$KAFKA_IMAGE_VERSION"
)

log() { printf '%s compose-test: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "FAIL: $*"
	exit 1
}

# Installs podman and the rest from Debian's packages when any is missing.
compose_install_deps() {
	local pkgs=(podman runc debootstrap docker-compose netavark aardvark-dns
		containernetworking-plugins uidmap slirp4netns fuse-overlayfs
		iptables curl maven openjdk-17-jdk-headless)
	local missing=() p
	for p in "${pkgs[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	[ "${#missing[@]}" -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || die "missing Debian packages: ${missing[*]} (run as root)"
	log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null
}

# podman needs runc and no default ulimits here. An existing
# containers.conf that says otherwise is left alone: podman is pointed at
# a file of ours instead (CONTAINERS_CONF).
compose_podman_conf() {
	local conf=/etc/containers/containers.conf
	local ours='[containers]
default_ulimits = []

[engine]
runtime = "runc"

[network]
network_backend = "netavark"'
	if [ ! -e "$conf" ] && [ -w /etc/containers ]; then
		printf '%s\n' "$ours" >"$conf"
		return 0
	fi
	if grep -q '^default_ulimits *= *\[\]' "$conf" 2>/dev/null &&
		grep -q '^runtime *= *"runc"' "$conf" 2>/dev/null; then
		return 0
	fi
	mkdir -p "$COMPOSE_CACHE"
	printf '%s\n' "$ours" >"$COMPOSE_CACHE/containers.conf"
	export CONTAINERS_CONF="$COMPOSE_CACHE/containers.conf"
}

# The base image that the Dockerfiles name, from a debootstrap of Debian
# bookworm (minbase); made once.
compose_base_image() {
	if podman image exists "$BASE_IMAGE"; then
		return 0
	fi
	log "building the base image $BASE_IMAGE with debootstrap (a few minutes, once)"
	local dir="$COMPOSE_CACHE/rootfs.$$"
	rm -rf "$dir"
	mkdir -p "$COMPOSE_CACHE"
	debootstrap --variant=minbase bookworm "$dir" http://deb.debian.org/debian \
		>"$COMPOSE_CACHE/debootstrap.log" 2>&1 ||
		die "debootstrap failed: see $COMPOSE_CACHE/debootstrap.log"
	tar -C "$dir" -c . | podman import - "$BASE_IMAGE" >/dev/null 2>&1 ||
		die "podman import of the base image failed"
	rm -rf "$dir"
}

# A hash of a folder's files (names and contents), for image caching.
compose_hash_dir() {
	(cd "$1" && find . -type f ! -path './libs/*' -print0 | LC_ALL=C sort -z |
		xargs -0 sha256sum) | sha256sum | cut -c1-16
}

# Builds TAG from CONTEXT unless an image of that tag carries the same
# inputs hash (a label). A failed build names its log.
compose_build() {
	local tag=$1 context=$2 hash=$3 have
	have=$(podman image inspect --format '{{index .Labels "hopper.inputs"}}' "$tag" 2>/dev/null || true)
	if [ "$have" = "$hash" ]; then
		log "image $tag is up to date ($hash)"
		return 0
	fi
	log "building $tag ($hash)"
	local logf
	logf="$COMPOSE_CACHE/build-$(echo "$tag" | tr '/:' '__').log"
	podman build --format docker --pull=never --label "hopper.inputs=$hash" -t "$tag" "$context" \
		>"$logf" 2>&1 || die "building $tag failed: see $logf"
}

# Kafka's jars for its stand-in, fetched by Maven once into the cache.
compose_kafka_libs() {
	local libs="$COMPOSE_CACHE/kafka-libs/$KAFKA_IMAGE_VERSION"
	if [ -f "$libs/.complete" ]; then
		printf '%s\n' "$libs"
		return 0
	fi
	log "fetching Kafka $KAFKA_IMAGE_VERSION's jars with Maven"
	rm -rf "$libs.tmp"
	mkdir -p "$libs.tmp"
	cp "$COMPOSE_HERE/images/kafka/pom.xml" "$libs.tmp/pom.xml"
	(cd "$libs.tmp" && mvn -B -q -Dstyle.color=never -f pom.xml -Dkafka.version="$KAFKA_IMAGE_VERSION" \
		dependency:copy-dependencies -DoutputDirectory="$libs.tmp/jars") >"$COMPOSE_CACHE/maven.log" 2>&1 ||
		die "Maven could not fetch Kafka's jars: see $COMPOSE_CACHE/maven.log"
	rm -rf "$libs"
	mv "$libs.tmp/jars" "$libs"
	rm -rf "$libs.tmp"
	touch "$libs/.complete"
	printf '%s\n' "$libs"
}

compose_standin_images() {
	local entry name tag ctx hash base_id
	base_id=$(podman image inspect --format '{{.Id}}' "$BASE_IMAGE")
	for entry in "${STANDINS[@]}"; do
		name=${entry%% *}
		tag=${entry#* }
		ctx="$COMPOSE_HERE/images/$name"
		hash=$( (compose_hash_dir "$ctx"; echo "$base_id") | sha256sum | cut -c1-16)
		if [ "$name" = kafka ]; then
			local libs tmpctx
			libs=$(compose_kafka_libs)
			hash=$( (echo "$hash"; ls "$libs") | sha256sum | cut -c1-16)
			tmpctx="$COMPOSE_CACHE/kafka-context"
			rm -rf "$tmpctx"
			cp -r "$ctx" "$tmpctx"
			rm -rf "$tmpctx/libs"
			cp -r "$libs" "$tmpctx/libs"
			compose_build "$tag" "$tmpctx" "$hash"
			rm -rf "$tmpctx"
		else
			compose_build "$tag" "$ctx" "$hash"
		fi
	done
}

# Copies the project's files (tracked, and new ones not ignored) into DIR.
compose_copy_project() {
	local dest=$1
	mkdir -p "$dest"
	(cd "$COMPOSE_ROOT" && git ls-files -co --exclude-standard -z |
		while IFS= read -r -d '' f; do
			[ -e "$f" ] && printf '%s\0' "$f"
		done | tar --null -T - -cf -) | tar -C "$dest" -xf -
}

# The hopper image, from the project copy in DIR; sets and exports
# HOPPER_IMAGE.
compose_hopper_image() {
	local dir=$1 hash base_id
	base_id=$(podman image inspect --format '{{.Id}}' "$BASE_IMAGE")
	hash=$( (cd "$dir" && find . -type f ! -path './tests/*' ! -path './deploy/kubernetes/*' \
		! -path './bench/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
		echo "$base_id") | sha256sum | cut -c1-16)
	HOPPER_IMAGE=docker.io/library/hopper:ct-$hash
	export HOPPER_IMAGE
	compose_build "$HOPPER_IMAGE" "$dir" "$hash"
}

# A Docker API on a socket of ours, for docker-compose. Sets DOCKER_HOST and
# COMPOSE_SERVICE_PID.
compose_start_service() {
	local sock=$1
	podman system service --time=0 "unix://$sock" >"$COMPOSE_CACHE/service.log" 2>&1 &
	COMPOSE_SERVICE_PID=$!
	export DOCKER_HOST="unix://$sock"
	local _
	for _ in $(seq 1 100); do
		if [ -S "$sock" ] && curl -fsS --unix-socket "$sock" http://d/_ping >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	die "podman system service did not answer on $sock (see $COMPOSE_CACHE/service.log)"
}

# Runs the health checks of a compose project's running containers every
# two seconds, as a Docker engine (or podman with systemd) would. Sets
# COMPOSE_TICKER_PID.
compose_start_health_ticker() {
	local project=$1
	(
		while sleep 2; do
			podman ps --filter "label=com.docker.compose.project=$project" \
				--filter health=starting --filter health=healthy --filter health=unhealthy \
				--format '{{.ID}}' 2>/dev/null | while read -r id; do
				podman healthcheck run "$id" </dev/null >/dev/null 2>&1 || true
			done
		done
	) &
	COMPOSE_TICKER_PID=$!
	disown "$COMPOSE_TICKER_PID"
}
