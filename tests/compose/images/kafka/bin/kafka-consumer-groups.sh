#!/usr/bin/env bash
# kafka-consumer-groups.sh: kafka.admin.ConsumerGroupCommand, as in the Kafka distribution.
set -euo pipefail
exec "$(dirname "$0")/kafka-run-class.sh" kafka.admin.ConsumerGroupCommand "$@"
