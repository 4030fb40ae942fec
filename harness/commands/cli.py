"""The `harness` command line: one parser, a dispatch table of commands, one module each
(harness.commands.<name>); `harness` and `python -m harness` both call main().

Every command module declares HELP (one line for the list), DESCRIPTION (its --help text),
add_arguments(parser) and run(args) -> exit code. Bad input is one line naming the flag,
exit code 2; Ctrl-C exits 130 with every record finished so far kept.
"""
from __future__ import annotations

import argparse
import signal
import sys
import unicodedata

from harness.commands import (calibrate, compare, conv, device, export, fleet, kinds, model, predict, probe, profile,
                               report, run, throttle)
from harness.core.errors import UsageError

# name -> module: the order `harness --help` lists them in.
COMMANDS = {"run": run, "probe": probe, "profile": profile, "conv": conv, "model": model, "throttle": throttle,
            "calibrate": calibrate, "predict": predict, "report": report, "compare": compare, "export": export,
            "device": device, "kinds": kinds, "fleet": fleet}

EPILOG = """\
examples:
  harness device                      what this machine is, and its nominal peaks
  harness probe --quick               measure the ceilings (peak FLOP/s, bandwidth per memory level)
  harness run suites/quick.yaml       time the quick suite; prints where the run is stored
  harness conv --ic 128 --oc 128 --hw 28 -k 3 --pad 1
                                      one convolution: cost, time per backend, roofline
  harness model resnet50 --layers     four size metrics, latency per framework, per-layer roofline
  harness report latest               HTML + Markdown report of the newest run
  harness compare RUN_A RUN_B         matching cases side by side
  harness calibrate                   measure kernels in random networks (5 minutes) for predict
  harness predict resnet50            its latency on this device, predicted without timing it
  harness fleet run suites/quick.yaml --address HEAD:6379
                                      the suite on every machine of a Ray cluster, one at a time per machine

Terms: FLOP/s = floating-point operations per second (a multiply-add counts 2 FLOPs); ISA level = the
widest vector instructions used (scalar, sse = 128-bit, avx2 = 256-bit, avx512 = 512-bit); ceiling = a
measured peak (FLOP/s or bandwidth) that ops are judged against; roofline = min(peak, intensity x
bandwidth), intensity = FLOPs per byte moved; "% of roof" = roofline time / measured time.
Units are decimal SI (1 GB = 1e9 bytes, 1 GFLOP/s = 1e9 FLOP/s); KiB/MiB only where labelled.
"""


class OneLineParser(argparse.ArgumentParser):
    """Bad flags get one line and exit 2, like every other usage error (subcommands inherit it)."""

    def error(self, message):
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="harness", description="Empirical micro-benchmarks for deep-learning inference: how fast this "
        "device really is, why a model runs at the speed it does.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        p = sub.add_parser(name, help=module.HELP, description=module.DESCRIPTION,
                           epilog=getattr(module, "EPILOG", None),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(func=module.run)
    return parser


def one_line(text: str) -> str:
    """The message with control characters and line breaks the user typed (in a key, a
    path) written as escapes, so an error is always one line."""
    return "".join(ch if ch == " " or (ch.isprintable() and unicodedata.category(ch)[0] != "Z") or
                   unicodedata.category(ch) == "Zs" else ch.encode("unicode_escape").decode() for ch in text)


class Terminated(BaseException):
    """SIGTERM, raised where the program is so that the run is marked interrupted."""


def _stop_once(signum, frame):
    # The first Ctrl-C or SIGTERM stops the command; any later one is ignored until the run
    # has recorded how it ended (a second signal in the clean-up would leave it "running").
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt if signum == signal.SIGINT else Terminated


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    before = {s: signal.signal(s, _stop_once) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Terminated) as exc:  # the session has marked the run interrupted
        # Signals stay ignored to the end: a later Ctrl-C must not raise inside the
        # interpreter's exit hooks (torch's and weakref's atexit callbacks) and print a traceback.
        before = {}
        print(f"\n{'interrupted' if isinstance(exc, KeyboardInterrupt) else 'terminated'}: every record "
              "finished so far is kept", file=sys.stderr)
        return 130 if isinstance(exc, KeyboardInterrupt) else 143
    except BrokenPipeError:  # `harness kinds | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
