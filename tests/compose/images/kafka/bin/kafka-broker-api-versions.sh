#!/usr/bin/env bash
# kafka-broker-api-versions.sh: kafka.admin.BrokerApiVersionsCommand, as in the Kafka distribution.
set -euo pipefail
exec "$(dirname "$0")/kafka-run-class.sh" kafka.admin.BrokerApiVersionsCommand "$@"
