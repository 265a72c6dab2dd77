#!/usr/bin/env bash
# kafka-console-consumer.sh: kafka.tools.ConsoleConsumer, as in the Kafka distribution.
set -euo pipefail
exec "$(dirname "$0")/kafka-run-class.sh" kafka.tools.ConsoleConsumer "$@"
