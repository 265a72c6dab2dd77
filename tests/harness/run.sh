#!/usr/bin/env bash
# The harnesses' self-tests: a real PostgreSQL and a real Kafka broker,
# started on loopback and stopped again.
set -euo pipefail
cd "$(dirname "$0")/../.."
py=$(python3 -c 'import sys; print(sys.executable)')
exec "$py" -m pytest -q -p no:cacheprovider tests/harness "$@"
