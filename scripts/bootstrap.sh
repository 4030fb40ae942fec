#!/usr/bin/env bash
# Creates .venv and installs the project into it (editable), once; again only when
# pyproject.toml changes. Used by run-quick.sh and run-tests.sh so a fresh clone needs
# nothing typed but those.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "error: roofline-harness needs Python >= 3.10 (set PYTHON=/path/to/python3)" >&2
  exit 2
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
  echo "setting up .venv (first run only; torch is pinned to 2.13.0)..." >&2
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip >&2
  # [fleet]: Ray, for `harness fleet` and its tests on a local 3-node cluster
  .venv/bin/python -m pip install -q -e '.[fleet]' >&2
  rm -f .venv/.installed-*
  touch "$stamp"
fi
