#!/usr/bin/env bash
# The tests: sets up .venv if needed, then runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
exec .venv/bin/python -m pytest -q "$@"
