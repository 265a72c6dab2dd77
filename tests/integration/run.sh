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
# One pytest per suite: each folder has a conftest of its own.
status=0
for suite in tests/integration tests/thumbnail; do
	[ -d "$suite" ] || continue
	echo "== $suite"
	"$py" -m pytest -q -p no:cacheprovider "$suite" "$@" || status=$?
done
exit "$status"
