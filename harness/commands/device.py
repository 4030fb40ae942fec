"""`harness device`: what this machine is, and its nominal peaks."""
from __future__ import annotations

import json

from harness.analysis.fingerprint import fingerprint
from harness.presentation.device import format_fingerprint

HELP = "fingerprint this machine: CPU, ISA levels, caches, memory, libraries, nominal peaks"
DESCRIPTION = ("The device fingerprint: CPU model and microarchitecture, instruction-set levels, cores, caches, "
               "memory, OS, VM, libraries and BLAS, GPUs, and the nominal peak FLOP/s per dtype (cores x GHz "
               "from the OS x FLOP/cycle from the microarchitecture table; `harness probe` measures the real "
               "figures).")


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args) -> int:
    fp = fingerprint()
    print(json.dumps(fp, indent=2) if args.json else format_fingerprint(fp))
    return 0
