"""`harness kinds`: the case kinds a suite may use, with their parameters."""
from __future__ import annotations

from harness.core import registry

HELP = "list the case kinds a suite may use, with their parameters"
DESCRIPTION = "Every case kind a suite file may name in `kind:`, with each parameter's type, default and meaning."


def add_arguments(parser) -> None:
    parser.add_argument("--grep", metavar="TEXT", help="only kinds whose name or description contains TEXT")


def run(args) -> int:
    for name, kind in sorted(registry.kinds().items()):
        if args.grep and args.grep.lower() not in f"{name} {kind.description}".lower():
            continue
        print(f"{name}: {kind.description}")
        for pname, p in kind.params.items():
            default = "required" if p.required else f"default {p.default!r}"
            choices = f", one of {list(p.choices)}" if p.choices else ""
            print(f"    {pname}: {getattr(p.type, '__name__', p.type)} ({default}{choices}) {p.help}")
    return 0
