#!/usr/bin/env bash
# kafka-run-class.sh CLASS ARGS...: runs a class of Kafka's jars, as the
# distribution's script of the same name does (without its many knobs).
set -euo pipefail
base=/opt/kafka
log4j=${KAFKA_LOG4J_OPTS:--Dlog4j.configuration=file:$base/config/tools-log4j.properties}
# shellcheck disable=SC2086 # the *_OPTS variables are lists of JVM flags
exec java ${KAFKA_HEAP_OPTS:--Xmx256m} ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC} \
	${KAFKA_OPTS:-} $log4j -cp "$base/libs/*" "$@"
