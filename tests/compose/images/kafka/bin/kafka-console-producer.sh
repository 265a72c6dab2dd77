#!/usr/bin/env bash
# kafka-console-producer.sh: kafka.tools.ConsoleProducer, as in the Kafka distribution.
set -euo pipefail
exec "$(dirname "$0")/kafka-run-class.sh" kafka.tools.ConsoleProducer "$@"
