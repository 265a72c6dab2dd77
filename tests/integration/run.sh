#!/usr/bin/env bash
# Runs the integration, fault and worker tests against one build.
# HOPPER (the coordinator binary) and HOPPER_BUILD (its build folder) come
# from the Makefile.
set -euo pipefail
cd "$(dirname "$0")/../.."

# The interpreter's real path: a version-manager shim on PATH costs ~300 ms
# a start, which matters when tests start many workers.
py=$(python3 -c 'import sys; print(sys.executable)')
if ! "$py" -c 'import pytest' 2>/dev/null; then
	"$py" -m pip install -q pytest
fi
export HOPPER HOPPER_BUILD
export HOPPER_PYTHON="$py"
suites=(tests/integration)
[ -d tests/thumbnail ] && suites+=(tests/thumbnail)
exec "$py" -m pytest -q -p no:cacheprovider "${suites[@]}" "$@"
