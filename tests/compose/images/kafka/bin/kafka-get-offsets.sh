#!/usr/bin/env bash
# kafka-get-offsets.sh: org.apache.kafka.tools.GetOffsetShell, as in the Kafka distribution.
set -euo pipefail
exec "$(dirname "$0")/kafka-run-class.sh" org.apache.kafka.tools.GetOffsetShell "$@"
