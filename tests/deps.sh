#!/usr/bin/env bash
# tests/deps.sh [--check] [build|demo|test|bench]: installs what one purpose
# needs and this machine lacks, from Debian's packages.
#
#   build   a C compiler, make, pkg-config and the libraries hopper and
#           hopper-thumbnail link (`make deps`; the default)
#   demo    build, plus ffmpeg and python3 (`make demo`)
#   test    demo, plus cmocka, the tools the tests and `make lint` run, and
#           the toolchains of the example workers (`make test`)
#   bench   build, plus the peers the benchmarks measure against and the
#           Kafka they start (`make bench`)
#
# Each need is checked as the build uses it, a library through pkg-config
# and a program on PATH, so that one installed some other way (a toolchain
# in /usr/local) counts. Nothing missing: does nothing. As root with apt-get
# (Debian, Ubuntu): installs the missing packages. Otherwise, or with
# --check: names what is missing and the Debian packages that provide it,
# and exits 1.
set -euo pipefail

check_only=false
if [ "${1:-}" = "--check" ]; then
	check_only=true
	shift
fi
purpose=${1:-build}

# One need a line: how to check it, and the Debian package that provides
# it ("-" when Debian's is too old, with where to get it instead).
build_needs=(
	"cmd:cc build-essential"
	"cmd:make make"
	"cmd:pkg-config pkg-config"
	"lib:jansson libjansson-dev"
	"lib:libpq libpq-dev"
	"lib:rdkafka librdkafka-dev"
	"lib:libmicrohttpd libmicrohttpd-dev"
	"lib:yaml-0.1 libyaml-dev"
	"lib:libcurl libcurl4-openssl-dev"
	"lib:jemalloc libjemalloc-dev"
	"lib:libavformat libavformat-dev"
	"lib:libavcodec libavcodec-dev"
	"lib:libswscale libswscale-dev"
	"lib:libavutil libavutil-dev"
)
# The demo's corpus draws moving text with DejaVu Sans (without it, that
# clip is left out).
demo_needs=(
	"cmd:ffmpeg ffmpeg"
	"cmd:python3 python3"
	"file:/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf fonts-dejavu-core"
)
# The tests: cmocka for the unit tests; kcat, mawk, jq (the sign-up
# example's shell workers), ffprobe, chromium (headless: the demo's contact
# page; with chromedriver, the console's page) and promtool (Prometheus's
# metrics checker) are run by integration tests;
# `make lint` runs shellcheck, clang-format and git; the example workers in
# Go, Rust, Java and JavaScript are built or run by test_examples; the exec
# source's Redis example runs against redis-server (test_exec_io); Java and
# Maven also start the Kafka the driver tests use. PostgreSQL's server and
# the compose test's podman are installed by their harnesses when missing.
test_needs=(
	"lib:cmocka libcmocka-dev"
	"py:pytest python3-pytest"
	"cmd:ffprobe ffmpeg"
	"cmd:kcat kcat"
	"cmd:mawk mawk"
	"cmd:jq jq"
	"cmd:chromium chromium"
	"cmd:chromedriver chromium-driver"
	"cmd:promtool prometheus"
	"cmd:shellcheck shellcheck"
	"cmd:clang-format clang-format"
	"cmd:git git"
	"cmd:node nodejs"
	"cmd:javac openjdk-17-jdk-headless"
	"cmd:mvn maven"
	"cmd:redis-server redis-server"
	"cmd:go -:Go_1.21_or_newer,_https://go.dev/doc/install"
	"cmd:cargo -:Rust_1.78_or_newer,_https://rustup.rs"
)
# The benchmarks: GNU parallel and kcat are peers measured against; the
# Kafka benchmark starts the tests' Kafka, which needs Java and Maven.
bench_needs=(
	"cmd:python3 python3"
	"cmd:ffmpeg ffmpeg"
	"cmd:parallel parallel"
	"cmd:kcat kcat"
	"cmd:javac openjdk-17-jdk-headless"
	"cmd:mvn maven"
)

case $purpose in
build) needs=("${build_needs[@]}") ;;
demo) needs=("${build_needs[@]}" "${demo_needs[@]}") ;;
test) needs=("${build_needs[@]}" "${demo_needs[@]}" "${test_needs[@]}") ;;
bench) needs=("${build_needs[@]}" "${bench_needs[@]}") ;;
*)
	echo "usage: tests/deps.sh [--check] [build|demo|test|bench]" >&2
	exit 2
	;;
esac

# has CHECK: whether the need CHECK (lib:NAME, cmd:NAME, py:MODULE or
# file:PATH) is met.
has() {
	local name=${1#*:}
	case $1 in
	lib:*) pkg-config --exists "$name" 2>/dev/null ;;
	cmd:*) command -v "$name" >/dev/null 2>&1 ;;
	py:*) python3 -c "import $name" >/dev/null 2>&1 ;;
	file:*) [ -e "$name" ] ;;
	esac
}

# Fills missing (as the build names each need), packages (the Debian
# packages that provide them, each once) and elsewhere (what Debian cannot
# provide, with where to get it).
scan() {
	missing=() packages=() elsewhere=()
	local need check pkg
	for need in "${needs[@]}"; do
		check=${need%% *}
		pkg=${need#* }
		has "$check" && continue
		missing+=("${check#*:}")
		if [ "${pkg%%:*}" = "-" ]; then
			pkg=${pkg#-:}
			elsewhere+=("${check#*:} (${pkg//_/ })")
		elif [[ " ${packages[*]} " != *" $pkg "* ]]; then
			packages+=("$pkg")
		fi
	done
}

scan
if [ "${#missing[@]}" -eq 0 ]; then
	exit 0
fi

echo "deps: $purpose needs ${missing[*]}, which this machine lacks" >&2
if [ "${#elsewhere[@]}" -gt 0 ]; then
	printf 'deps: not from Debian: %s\n' "${elsewhere[@]}" >&2
fi
if [ "${#packages[@]}" -eq 0 ]; then
	exit 1
fi
if $check_only || ! command -v apt-get >/dev/null 2>&1 ||
	[ "$(id -u)" -ne 0 ]; then
	echo "deps: Debian and Ubuntu packages: ${packages[*]}" >&2
	if command -v apt-get >/dev/null 2>&1 && ! $check_only; then
		echo "deps: run as root, or: sudo apt-get install ${packages[*]}" >&2
	elif ! $check_only; then
		echo "deps: no apt-get here: install the equivalents with this" \
			"system's package manager" >&2
	fi
	exit 1
fi
echo "deps: installing ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
scan
if [ "${#missing[@]}" -gt 0 ]; then
	echo "deps: still missing: ${missing[*]}" >&2
	exit 1
fi
