#!/usr/bin/env bash
# Installs the Debian packages that building and testing hopper need and a
# fresh machine lacks. Does nothing when all are present; needs root when
# something is missing.
set -euo pipefail

packages=(
	build-essential pkg-config
	libjansson-dev libcmocka-dev libpq-dev librdkafka-dev kcat libmicrohttpd-dev
	libjemalloc-dev
	libavformat-dev libavcodec-dev libswscale-dev libavutil-dev ffmpeg
	parallel shellcheck clang-format prometheus mawk
	chromium
)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if [ "${#missing[@]}" -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing Debian packages: ${missing[*]}" >&2
	echo "deps: run as root, or: sudo apt-get install ${missing[*]}" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
