#!/usr/bin/env bash
# The main job: sets up .venv if needed, runs the quick suite on this device, stores the
# run under results/ and prints where it is. Extra arguments go to `harness run`.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
exec .venv/bin/harness run suites/quick.yaml "$@"
