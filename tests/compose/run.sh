#!/usr/bin/env bash
# tests/compose/run.sh: compose.yaml end to end, with podman standing in for
# a Docker engine and local stand-ins for the official images (see lib.sh).
#
#   1. `up`: the seed's videos become thumbnails in ./data/out and rows in
#      Postgres; Prometheus has both coordinators up.
#   2. `up --scale thumbnails=3`: the topic's partitions are assigned over
#      three coordinators and each consumes part of a second batch.
#   3. Past one machine: three coordinator containers (three addresses) on
#      one Kafka group, then three on one Postgres queue; one of each is
#      killed mid-run; every item is counted in the results, none dead.
#   4. `down -v` leaves no container, network or volume.
# Before all that, deploy/kubernetes/ is checked (test_kubernetes.py).
#
# Runs as root (installs what is missing). Bounded by COMPOSE_TEST_TIMEOUT
# seconds (1800); everything it started is stopped on any exit.
# KEEP=1 leaves the temporary project folder for a look.
set -euo pipefail

# shellcheck source=/dev/null # lib.sh, beside this file
source "$(dirname "$0")/lib.sh"

limit=${COMPOSE_TEST_TIMEOUT:-1800}
project=hct$$
work=$(mktemp -d /tmp/hopper-compose.XXXXXX)
proj="$work/project"
sock="$work/podman.sock"
COMPOSE_SERVICE_PID=
COMPOSE_TICKER_PID=
watchdog=
mh_containers=()
started=$SECONDS

compose() { docker-compose --no-ansi -p "$project" -f "$proj/compose.yaml" "$@"; }

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +e # clean up everything, whatever fails
	if [ "$rc" -ne 0 ] && [ -n "$COMPOSE_SERVICE_PID" ]; then
		log "logs of the failed run (last lines of each container):"
		podman ps -a --filter "label=com.docker.compose.project=$project" --format '{{.Names}}' 2>/dev/null |
			while read -r c; do
				echo "---- $c" >&2
				podman logs --tail 15 "$c" 2>&1 | sed 's/^/    /' >&2 || true
			done
		# The coordinators started past compose, more of each.
		for c in "${mh_containers[@]}"; do
			echo "---- $c" >&2
			podman logs --tail 40 "$c" 2>&1 | sed 's/^/    /' >&2 || true
		done
	fi
	for c in "${mh_containers[@]}"; do podman rm -f -t 2 "$c" >/dev/null 2>&1 || true; done
	if [ -n "$COMPOSE_SERVICE_PID" ] && [ -f "$proj/compose.yaml" ]; then
		(cd "$proj" && compose down -v --remove-orphans -t 10) >/dev/null 2>&1 || true
	fi
	# Whatever compose could not remove.
	podman ps -aq --filter "label=com.docker.compose.project=$project" 2>/dev/null |
		xargs -r podman rm -f >/dev/null 2>&1 || true
	podman network rm -f "${project}_default" >/dev/null 2>&1 || true
	podman volume ls -q 2>/dev/null | grep "^${project}_" | xargs -r podman volume rm -f >/dev/null 2>&1 || true
	# conmon keeps the monitor of an exec session (podman exec, health
	# checks) alive for minutes after it ends; those of this project's
	# containers go now.
	pgrep -f "conmon .* -n ${project}[_-]" | xargs -r kill 2>/dev/null
	local pid
	# The watchdog and the ticker first, then the sleep each may be in (a
	# watchdog whose sleep ended first would carry on and signal us).
	local kids
	for pid in "$watchdog" "$COMPOSE_TICKER_PID"; do
		[ -n "$pid" ] || continue
		kids=$(pgrep -P "$pid" || true)
		kill "$pid" 2>/dev/null
		# shellcheck disable=SC2086 # a list of pids
		[ -z "$kids" ] || kill $kids 2>/dev/null
	done
	[ -n "$COMPOSE_SERVICE_PID" ] && kill "$COMPOSE_SERVICE_PID" 2>/dev/null
	wait 2>/dev/null || true
	if [ "${KEEP:-}" = 1 ]; then
		log "kept $work"
	else
		rm -rf "$work"
	fi
	if [ "$rc" -eq 0 ]; then
		log "passed in $((SECONDS - started)) s"
	else
		log "failed after $((SECONDS - started)) s"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 1' INT TERM

# wait_for SECS WHAT CMD...: runs CMD every second until it succeeds; fails
# naming WHAT after SECS.
wait_for() {
	local secs=$1 what=$2 t0=$SECONDS
	shift 2
	until "$@" >/dev/null 2>&1; do
		if [ $((SECONDS - t0)) -ge "$secs" ]; then
			die "$what: not after ${secs} s"
		fi
		sleep 1
	done
	log "$what ($((SECONDS - t0)) s)"
}

container_of() {
	podman ps --filter "label=com.docker.compose.project=$project" \
		--filter "label=com.docker.compose.service=$1" --format '{{.Names}}' | head -n 1
}
sql() { podman exec "$(container_of postgres)" psql -U hopper -d hopper -Atc "$1"; }
kafka_exec() { podman exec -i "$(container_of kafka)" "$@"; }
thumbs_count() { find "$proj/data/out" -name '*.jpg' 2>/dev/null | wc -l; }
rows_at_least() { [ "$(sql "SELECT count(*) FROM $1")" -ge "$2" ]; }
thumbs_at_least() { [ "$(thumbs_count)" -ge "$1" ]; }

# Prints "partition current-offset host" for each partition of the group.
group_offsets() {
	kafka_exec kafka-consumer-groups.sh --bootstrap-server localhost:9092 \
		--describe --group "$1" 2>/dev/null |
		awk -v t="$2" '$2 == t && $3 ~ /^[0-9]+$/ { print $3, $4, $8 }'
}

# Prometheus's active targets of JOB that are up, counted.
targets_up() {
	podman exec "$(container_of prometheus)" \
		wget -qO- 'http://127.0.0.1:9090/api/v1/targets?state=active' |
		python3 -c '
import json, sys
job, want = sys.argv[1], int(sys.argv[2])
ts = [t for t in json.load(sys.stdin)["data"]["activeTargets"] if t["labels"]["job"] == job]
up = [t for t in ts if t["health"] == "up"]
print(job, "targets:", [(t["labels"]["instance"], t["health"], t.get("lastError")) for t in ts], file=sys.stderr)
sys.exit(0 if len(up) >= want and len(up) == len(ts) else 1)' "$1" "$2"
}

( sleep "$limit"; log "time limit of $limit s reached"; kill -TERM $$ ) 2>/dev/null &
watchdog=$!
disown "$watchdog"

# ---- 0. the Kubernetes manifests, checked offline (seconds) -------------------
py=${PYTHON:-python3}
if ! "$py" -c 'import kubernetes_validate, yaml, pytest' 2>/dev/null; then
	log "installing kubernetes-validate (Kubernetes' OpenAPI schemas, offline) with pip"
	"$py" -m pip install -q kubernetes-validate pyyaml pytest >&2 || die "pip could not install kubernetes-validate"
fi
"$py" -m pytest -q -p no:cacheprovider "$COMPOSE_HERE/test_kubernetes.py" >&2 ||
	die "deploy/kubernetes: the manifests do not check"

# ---- set up ------------------------------------------------------------------
compose_install_deps
compose_podman_conf
mkdir -p "$COMPOSE_CACHE"
compose_base_image
compose_standin_images
compose_copy_project "$proj"
compose_hopper_image "$proj"
compose_start_service "$sock"
compose_start_health_ticker "$project"
log "images ready after $((SECONDS - started)) s"
cd "$proj"

# ---- 1. docker compose up ------------------------------------------------------
log "up (project $project)"
compose up -d >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; die "compose up failed"; }
seeded=6
wait_for 240 "$seeded thumbnails in ./data/out" thumbs_at_least "$seeded"
wait_for 60 "$seeded rows in Postgres's thumbnails table" rows_at_least thumbnails "$seeded"
sql "SELECT key, result::text FROM thumbnails ORDER BY key LIMIT 2" | sed 's/^/  /' >&2
wait_for 90 "Prometheus: ingest up" targets_up ingest 1
wait_for 90 "Prometheus: thumbnails up" targets_up thumbnails 1
healthy() { [ "$(podman inspect -f '{{.State.Health.Status}}' "$(container_of "$1")")" = healthy ]; }
wait_for 60 "ingest healthy (the image's HEALTHCHECK on /healthz)" healthy ingest
wait_for 60 "thumbnails healthy" healthy thumbnails

# ---- 2. --scale thumbnails=3 --------------------------------------------------------
log "up --scale thumbnails=3"
compose up -d --no-recreate --scale thumbnails=3 >>"$work/up.log" 2>&1 ||
	{ cat "$work/up.log" >&2; die "compose up --scale failed"; }
three_members() { [ "$(group_offsets thumbnails videos | awk '$3 != "-" {print $3}' | sort -u | wc -l)" -eq 3 ]; }
wait_for 120 "the group thumbnails has its partitions on three hosts" three_members
group_offsets thumbnails videos | sort -n >"$work/before"
batch=30
compose run --rm -e SEED_COUNT="$batch" -e SEED_FORCE=1 seed >>"$work/up.log" 2>&1 || die "a second seed failed"
total=$((seeded + batch))
wait_for 300 "$total thumbnails in ./data/out" thumbs_at_least "$total"
wait_for 60 "$total rows in Postgres" rows_at_least thumbnails "$total"
[ "$(thumbs_count)" -eq "$total" ] || die "$(thumbs_count) thumbnails, expected $total (seeded again?)"
wait_for 60 "the group's offsets past every message" \
	sh -c "[ \"\$(docker-compose --no-ansi -p $project -f compose.yaml exec -T kafka \
		kafka-consumer-groups.sh --bootstrap-server localhost:9092 --describe --group thumbnails 2>/dev/null |
		awk '\$2 == \"videos\" {s += \$6} END {print s + 0}')\" = 0 ]"
group_offsets thumbnails videos | sort -n >"$work/after"
log "partitions of videos (partition, offset before, offset after, host):"
join "$work/before" "$work/after" | awk '{print "  ", $1, $2, $4, $5}' >&2
per_host=$(join "$work/before" "$work/after" | awk '{n[$5] += $4 - $2} END {for (h in n) print h, n[h]}')
printf '%s\n' "$per_host" | sed 's/^/  consumed by /' >&2
[ "$(printf '%s\n' "$per_host" | awk '$2 > 0' | wc -l)" -eq 3 ] ||
	die "the second batch was not consumed by three coordinators"
wait_for 90 "Prometheus: three thumbnails targets up" targets_up thumbnails 3

# ---- 3. past one machine -----------------------------------------------------------
net="${project}_default"
db=postgres://hopper:hopper@postgres:5432/hopper
n_items=300
worker=(-v "$COMPOSE_HERE/host_worker.py:/opt/host_worker.py:ro" -e WORK_DELAY=0.2)

# start_coordinators NAME ARGS...: three containers of the hopper image
# running `hopper run ARGS... -- python3 host_worker.py`.
start_coordinators() {
	local name=$1 i
	shift
	for i in 1 2 3; do
		mh_containers+=("$project-$name-$i")
		podman run -d --no-healthcheck --name "$project-$name-$i" --hostname "$name-$i" --network "$net" \
			"${worker[@]}" "$HOPPER_IMAGE" run "$@" -j 2 --watch -- \
			python3 /opt/host_worker.py >/dev/null
	done
	for i in 1 2 3; do
		log "  $project-$name-$i at $(podman inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$project-$name-$i")"
	done
}

# kill_midway NAME TABLE: SIGKILL the first container once a quarter of
# the items have results, and make sure it had not finished by then.
kill_midway() {
	wait_for 120 "a quarter of the items done ($2)" rows_at_least "$2" $((n_items / 4))
	podman kill "$project-$1-1" >/dev/null
	local done_then
	done_then=$(sql "SELECT count(*) FROM $2")
	log "killed $project-$1-1 with $done_then of $n_items done"
	[ "$done_then" -lt "$n_items" ] || die "the run was over before the kill"
}

# stop_survivors NAME: SIGTERM drains and exits 0.
stop_survivors() {
	local i rc
	for i in 2 3; do
		podman stop -t 40 "$project-$1-$i" >/dev/null
		rc=$(podman inspect -f '{{.State.ExitCode}}' "$project-$1-$i")
		[ "$rc" = 0 ] || die "$project-$1-$i exited $rc on SIGTERM"
	done
}

per_host_report() {
	sql "SELECT result->>'host', count(*) FROM $1 GROUP BY 1 ORDER BY 1" | sed 's/^/  /' >&2
	[ "$(sql "SELECT count(DISTINCT result->>'host') FROM $1")" -eq 3 ] ||
		die "$1: the work did not split over three coordinators"
}

log "three coordinators on one Kafka group"
sql "CREATE TABLE mh_kafka (key text PRIMARY KEY, result jsonb, created_at timestamptz DEFAULT now())" >/dev/null
kafka_exec kafka-topics.sh --bootstrap-server localhost:9092 --create --topic work \
	--partitions 6 --replication-factor 1 >/dev/null
kafka_exec kafka-topics.sh --bootstrap-server localhost:9092 --create --topic work.dead \
	--partitions 1 --replication-factor 1 >/dev/null
seq 1 "$n_items" | awk '{printf "item-%04d:{\"n\": %d}\n", $1, $1}' |
	kafka_exec kafka-console-producer.sh --bootstrap-server localhost:9092 --topic work \
		--property parse.key=true --property key.separator=: >/dev/null
start_coordinators kafka -s kafka://kafka:9092/work -S group=multi -S id=key \
	-S config=session.timeout.ms=6000,heartbeat.interval.ms=1000 \
	-o "$db" -O table=mh_kafka
kill_midway kafka mh_kafka
wait_for 180 "all $n_items Kafka items in the results" rows_at_least mh_kafka "$n_items"
[ "$(sql "SELECT count(*) FROM mh_kafka")" -eq "$n_items" ] || die "mh_kafka: unexpected keys"
dead=$( (kafka_exec kafka-get-offsets.sh --bootstrap-server localhost:9092 --topic work.dead 2>/dev/null || true) |
	awk -F: '{s += $3} END {print s + 0}')
log "Kafka: $n_items of $n_items results, $dead dead letters"
[ "$dead" -eq 0 ] || die "dead letters on work.dead"
per_host_report mh_kafka
stop_survivors kafka

log "three coordinators on one Postgres queue"
podman run --rm --no-healthcheck --network "$net" "$HOPPER_IMAGE" pg init "$db" --table mh_queue >/dev/null
sql "CREATE TABLE mh_pg (key text PRIMARY KEY, result jsonb, created_at timestamptz DEFAULT now())" >/dev/null
seq 1 "$n_items" | awk '{printf "{\"n\": %d}\n", $1}' |
	podman run --rm -i --no-healthcheck --network "$net" "$HOPPER_IMAGE" enqueue "$db" --table mh_queue - >&2
start_coordinators pg -s "$db" -S table=mh_queue -S lease=6 -S batch=4 \
	-o "$db" -O table=mh_pg
kill_midway pg mh_pg
pg_all_done() { [ "$(sql "SELECT count(*) FROM mh_queue WHERE state = 'done'")" -eq "$n_items" ]; }
wait_for 180 "all $n_items queue rows done" pg_all_done
results=$(sql "SELECT count(*) FROM mh_pg")
dead=$(sql "SELECT count(*) FROM mh_queue WHERE state = 'dead'")
log "Postgres: $results of $n_items results, $dead dead"
if [ "$results" -ne "$n_items" ] || [ "$dead" -ne 0 ]; then
	die "Postgres queue: items lost or dead"
fi
per_host_report mh_pg
stop_survivors pg
for c in "${mh_containers[@]}"; do podman rm -f "$c" >/dev/null; done
mh_containers=()

# ---- 4. stop (SIGTERM drains, exit 0), down -v ------------------------------------
compose stop -t 40 ingest thumbnails >>"$work/up.log" 2>&1 || die "compose stop failed"
stopped=0
for svc in ingest thumbnails; do
	for c in $(podman ps -a --filter "label=com.docker.compose.project=$project" \
		--filter "label=com.docker.compose.service=$svc" --format '{{.Names}}'); do
		rc=$(podman inspect -f '{{.State.ExitCode}}' "$c")
		[ "$rc" = 0 ] || die "$c exited $rc on SIGTERM"
		stopped=$((stopped + 1))
	done
done
[ "$stopped" -eq 4 ] || die "expected 4 coordinators to stop, found $stopped"
log "the $stopped coordinators stopped on SIGTERM with exit status 0"
log "down -v"
compose down -v -t 30 >>"$work/up.log" 2>&1 || die "compose down failed"
left=$(podman ps -aq --filter "label=com.docker.compose.project=$project" | wc -l)
[ "$left" -eq 0 ] || die "down left $left containers"
if podman network ls --format '{{.Name}}' | grep -qx "${project}_default"; then
	die "down left the network ${project}_default"
fi
if podman volume ls --format '{{.Name}}' | grep -q "^${project}_"; then
	die "down left volumes: $(podman volume ls --format '{{.Name}}' | grep "^${project}_" | tr '\n' ' ')"
fi
log "down left no container, network or volume"
