#!/usr/bin/env bash
# tests/compose/run.sh: compose.yaml end to end, with podman standing in for
# a Docker engine and local stand-ins for the official images (see lib.sh).
#
#   1. `up`: the tagging pipeline in three services (ingest, tag, batch;
#      pipelines/tagging_staged.json): the seed's videos become results in
#      ./data/out/results, its broken file a dead letter on
#      tagging.frames.dead, and the reduces count them; Prometheus has every
#      stage up.
#   2. `up --scale ingest=2 --scale tag=3 --scale batch=2`: the tag stage's
#      partitions are assigned over three coordinators; a second batch is
#      seeded and one container of each stage is killed mid-run (podman
#      kill); every video ends with its result or as a dead letter, each
#      counted by name, and every group's offsets reach the end.
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
results_count() { find "$proj/data/out/results" -name '*.json' 2>/dev/null | wc -l; }
results_at_least() { [ "$(results_count)" -ge "$1" ]; }
# The distinct keys (video names) on a dead-letter topic, one a line.
dead_keys() {
	kafka_exec kafka-console-consumer.sh --bootstrap-server localhost:9092 --topic "$1" \
		--from-beginning --timeout-ms 8000 --property print.key=true --property print.value=false \
		2>/dev/null | grep -v '^Processed a total' | sort -u
}
dead_at_least() { [ "$(dead_keys tagging.frames.dead | wc -l)" -ge "$1" ]; }
# The sum of every window's count in one of the batch's files (NAME.jsonl),
# over every batch container.
reduce_total() {
	cat "$proj"/data/out/batch/*/"$1.jsonl" 2>/dev/null |
		python3 -c 'import json, sys; print(sum(json.loads(l)["result"]["count"] for l in sys.stdin if l.strip()))'
}
reduce_at_least() { [ "$(reduce_total "$1")" -ge "$2" ]; }
# The lag of a group over all of a topic's partitions (0 once it committed
# past every message).
group_lag() {
	kafka_exec kafka-consumer-groups.sh --bootstrap-server localhost:9092 \
		--describe --group "$1" 2>/dev/null |
		awk -v t="$2" '$2 == t && $3 ~ /^[0-9]+$/ {s += ($4 == "-" ? $5 : $6); n++} END {print (n ? s : -1)}'
}
no_lag() { [ "$(group_lag "$1" "$2")" = 0 ]; }
REDUCES=(frame_colours colours codecs sizes durations mean_duration)

log "up (project $project)"
compose up -d >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; die "compose up failed"; }
seeded=6
broken=1
wait_for 300 "$seeded results in ./data/out/results" results_at_least "$seeded"
wait_for 90 "$broken dead letter on tagging.frames.dead" dead_at_least "$broken"
python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print("  a result:", r["name"], r["codec"], r["display"], r["colour"], r["tags"])' \
	"$(find "$proj/data/out/results" -name '*.json' | head -n 1)" >&2 || die "a result without its fields"
# Each video counted once by each reduce of its result (a window or more later).
wait_for 90 "the batch counted $seeded videos by codec" reduce_at_least codecs "$seeded"
wait_for 60 "the batch counted $seeded videos by duration" reduce_at_least duration_mean "$seeded"
for svc in ingest tag batch; do
	wait_for 90 "Prometheus: $svc up" targets_up "$svc" 1
done
healthy() { [ "$(podman inspect -f '{{.State.Health.Status}}' "$(container_of "$1")")" = healthy ]; }
for svc in ingest tag batch; do
	wait_for 60 "$svc healthy (the image's HEALTHCHECK on /healthz)" healthy "$svc"
done

# ---- 2. scaled, a second batch, one container of each stage killed -----------------
log "up --scale ingest=2 --scale tag=3 --scale batch=2"
compose up -d --no-recreate --scale ingest=2 --scale tag=3 --scale batch=2 >>"$work/up.log" 2>&1 ||
	{ cat "$work/up.log" >&2; die "compose up --scale failed"; }
three_members() { [ "$(group_offsets hopper.frames tagging.frames | awk '$3 != "-" {print $3}' | sort -u | wc -l)" -eq 3 ]; }
wait_for 120 "the group hopper.frames has its partitions on three hosts" three_members
for svc in ingest batch; do
	wait_for 90 "Prometheus: two $svc targets up" targets_up "$svc" 2
done
wait_for 90 "Prometheus: three tag targets up" targets_up tag 3

containers_of() {
	podman ps -a --filter "label=com.docker.compose.project=$project" \
		--filter "label=com.docker.compose.service=$1" --format '{{.Names}}' | sort
}
killed=()
# kill_one SERVICE: SIGKILL one of its containers (podman does not restart
# a killed one: the others carry on without it).
kill_one() {
	local c
	c=$(containers_of "$1" | head -n 1)
	podman kill "$c" >/dev/null || die "podman kill $c failed"
	killed+=("$c")
	log "killed $c with $(results_count) results in"
}

batch=30
batch_broken=3
total=$((seeded + batch))
dead_total=$((broken + batch_broken))
compose run --rm -e SEED_COUNT="$batch" -e SEED_BROKEN="$batch_broken" -e SEED_FORCE=1 seed \
	>>"$work/up.log" 2>&1 || die "a second seed failed"
# The ingest containers claim the new files at once: one of them dies with
# whatever it holds, which goes back to ./data/in for the other.
kill_one ingest
wait_for 300 "a quarter of the second batch in the results" results_at_least $((seeded + batch / 4))
kill_one tag
kill_one batch
[ "$(results_count)" -lt "$total" ] || die "the second batch was over before the kills"
wait_for 420 "$total results in ./data/out/results" results_at_least "$total"
wait_for 90 "$dead_total dead letters on tagging.frames.dead" dead_at_least "$dead_total"

# Every video that came in is a result or a dead letter, by name, and no
# name is both.
find "$proj/data/videos" -maxdepth 1 -type f ! -name '.*' -printf '%f\n' | sort >"$work/videos"
find "$proj/data/out/results" -name '*.json' -printf '%f\n' | sed 's/\.json$//' | sort >"$work/results"
dead_keys tagging.frames.dead >"$work/dead"
n_videos=$(wc -l <"$work/videos")
n_results=$(wc -l <"$work/results")
n_dead=$(wc -l <"$work/dead")
log "videos in: $n_videos; results: $n_results; dead letters: $n_dead"
[ "$n_videos" -eq $((total + dead_total)) ] || die "$n_videos videos in ./data/videos, expected $((total + dead_total))"
[ "$n_results" -eq "$total" ] || die "$n_results results, expected $total"
[ "$n_dead" -eq "$dead_total" ] || die "$n_dead dead letters, expected $dead_total"
sort -m "$work/results" "$work/dead" | uniq -d | grep -q . && die "a video both done and dead: $(sort -m "$work/results" "$work/dead" | uniq -d | head -n 3)"
sort -m "$work/results" "$work/dead" | cmp -s - "$work/videos" ||
	die "results and dead letters do not name the videos: $(sort -m "$work/results" "$work/dead" | comm -3 - "$work/videos" | head -n 5)"
if grep -qv '^broken-' "$work/dead"; then
	die "dead letters that are not the broken files: $(grep -v '^broken-' "$work/dead" | head -n 3)"
fi
# The ingest stage let go of every file (done, none failed or held).
left=$(find "$proj/data/in" -type f ! -name .lock | head -n 5)
[ -z "$left" ] || die "files left in ./data/in: $left"

# Nothing held: every group committed past its topic's end, the reduces'
# once their windows' results were written.
wait_for 120 "hopper.frames committed past every message" no_lag hopper.frames tagging.frames
for r in "${REDUCES[@]}"; do
	wait_for 120 "hopper.$r committed past every message" no_lag "hopper.$r" "tagging.$r"
done
# Each reduce counted every video (a container killed after writing a
# window but before committing makes a later window count some again).
for r in codecs sizes durations duration_mean colours; do
	n=$(reduce_total "$r")
	log "  $r: $n videos counted (of $total)"
	[ "$n" -ge "$total" ] || die "$r counted $n videos, fewer than $total"
done
log "  frame_colours: $(reduce_total frame_colours) frames counted"

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
compose stop -t 40 ingest tag batch >>"$work/up.log" 2>&1 || die "compose stop failed"
stopped=0
for svc in ingest tag batch; do
	for c in $(containers_of "$svc"); do
		case " ${killed[*]} " in *" $c "*) continue ;; esac
		rc=$(podman inspect -f '{{.State.ExitCode}}' "$c")
		[ "$rc" = 0 ] || die "$c exited $rc on SIGTERM"
		stopped=$((stopped + 1))
	done
done
[ "$stopped" -eq 4 ] || die "expected 4 coordinators to stop, found $stopped"
log "the $stopped coordinators left stopped on SIGTERM with exit status 0"
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
