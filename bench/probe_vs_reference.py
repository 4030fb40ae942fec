"""The harness's probes against small C references, measured in alternation.

- FMA throughput: kind probe.fma (llvmlite kernel) vs bench/reference/fma.c (intrinsics,
  the probe's accumulator counts, OpenMP), per ISA level and dtype, at 1 and all threads.
  Target: >= 95% of C.
- Working-set sweep: kind probe.sweep (Numba read, write, triad) vs bench/reference/sweep.c
  (intrinsics, 16 zmm or 12 ymm accumulators for the read, OpenMP, the probe's layout and
  byte accounting), at one working-set size per level (L1, L2, L3, DRAM; chosen from
  harness.core.system.cache_sizes), at 1 and 2 threads. Target: >= 90% of C in L1, >= 95%
  in L2, L3 and DRAM.
- Opt-in: the DRAM STREAM triad (probe.stream, numba) vs bench/reference/stream_triad.c
  (--stream), and GEMM (numpy.matmul) as a share of the FMA peak (--gemm).

Each row is measured --repeats times; within a round the probe (a fresh worker, as in a
run) and the C program run back to back, in alternating order, so drift on a shared
machine hits both alike. The ratio is probe median / C median, paired within a round; the
table gives the median of those ratios and their spread (min-max), and the medians over
rounds of the probe's median and best call and of C's median and best repetition.

--avx2-only builds both sides for AVX2 without AVX-512 (sweep only): Numba with
NUMBA_CPU_NAME=haswell and NUMBA_CPU_FEATURES set (set before Numba starts, in every
worker), sweep.c with -march=haswell. --asm prints the innermost loops of the C references
(gcc -S, native and -march=haswell) and of the Numba sweep kernels: vector width, add
chains (accumulators) and vector loads/stores against the stack (spills).

Usage: .venv/bin/python bench/probe_vs_reference.py [--quick] [--repeats N] [--avx2-only]
           [--skip-fma] [--skip-sweep] [--stream] [--gemm] [--asm]
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "bench" / "reference"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(REFERENCE))

from build import compile_c, run_reference  # noqa: E402

from harness.core import isa, system  # noqa: E402
from harness.core.records import Record  # noqa: E402
from harness.core.runner import run_cases  # noqa: E402
from harness.core.store import RunStore  # noqa: E402
from harness.core.suite import parse_suite  # noqa: E402
from harness.core.text import fmt_bytes_binary, format_table  # noqa: E402
from kernels.sweep import SWEEP_CALL_BYTES_PER_THREAD  # noqa: E402  (constants only: no Numba here)

KIB, MIB, GIB = 1024, 1024 ** 2, 1024 ** 3
# Numba for AVX2 without AVX-512: both must be set before Numba starts (NUMBA_CPU_NAME alone
# keeps the host's features). Workers inherit the environment.
HASWELL_FEATURES = ("+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+cx8,+f16c,+fma,+fsgsbase,+fxsr,"
                    "+lzcnt,+mmx,+movbe,+pclmul,+popcnt,+rdrnd,+sahf,+sse,+sse2,+sse3,+sse4.1,"
                    "+sse4.2,+ssse3,+xsave,+xsaveopt,-avx512f")
AVX2_ENV = {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": HASWELL_FEATURES}
SWEEP_TARGET = {"L1": 0.90}  # every other level: 0.95
FMA_TARGET = 0.95
C_LEVELS = ("scalar", "sse", "avx2", "avx512")  # what fma.c is written for


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def omp_env(threads: int) -> dict:
    return {"OMP_NUM_THREADS": str(threads), "OMP_PLACES": "cores", "OMP_PROC_BIND": "close"}


class Harness:
    """Runs one case at a time in a fresh worker, into a throw-away run folder."""

    def __init__(self, root: Path, budget: float):
        self.store = RunStore.create(root, "bench", "probe-vs-reference")
        self.budget = budget

    def record(self, case: dict) -> Record:
        suite = parse_suite({"defaults": {"budget": self.budget, "timeout": 600}, "cases": [case]}, "bench")
        record = run_cases(suite.cases, self.store)[-1]
        if not record.measured:
            raise RuntimeError(f"{case}: {record.status}: {record.error}")
        return record

    def close(self):
        self.store.close()


class Row:
    """One comparison: per round, the probe's median and best and C's median and best."""

    def __init__(self, key: tuple):
        self.key = key
        self.probe_med, self.probe_best, self.c_med, self.c_best, self.ratios = [], [], [], [], []
        self.error = None

    def add(self, probe_med, probe_best, c_med, c_best):
        self.probe_med.append(probe_med)
        self.probe_best.append(probe_best)
        self.c_med.append(c_med)
        self.c_best.append(c_best)
        self.ratios.append(probe_med / c_med)

    def cells(self, target: float) -> list:
        if not self.ratios:
            return ["-"] * 6 + [f">= {target:.0%}", f"error: {self.error}"]
        ratio = median(self.ratios)
        spread = f"{min(self.ratios):.1%}-{max(self.ratios):.1%}" if len(self.ratios) > 1 else "-"
        return [f"{median(self.probe_med):.1f}", f"{median(self.probe_best):.1f}",
                f"{median(self.c_med):.1f}", f"{median(self.c_best):.1f}", f"{ratio:.1%}", spread,
                f">= {target:.0%}", ("yes" if ratio >= target else "NO")
                + (f" ({len(self.ratios)} rounds; then error: {self.error})" if self.error else "")]


def measure_rows(rows: list[Row], repeats: int, probe, reference) -> None:
    """Rounds over the rows; in each, probe then C (C then probe in odd rounds)."""
    for round_ in range(repeats):
        for row in rows:
            if row.error:
                continue
            try:
                if round_ % 2 == 0:
                    p = probe(row.key)
                    c = reference(row.key)
                else:
                    c = reference(row.key)
                    p = probe(row.key)
            except Exception as exc:  # one row failing must not cost the rest
                row.error = str(exc).splitlines()[0][:120]
                continue
            row.add(*p, *c)
        print(f"  round {round_ + 1}/{repeats} done", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- FMA

def bench_fma(args, harness: Harness) -> None:
    binary = compile_c(REFERENCE / "fma.c", extra_flags=["-fopenmp"])
    levels = [level for level in isa.usable_levels() if level in C_LEVELS]
    threads = [1] if args.quick else sorted({1, len(system.available_cpus())})
    rows = [Row((level, dtype, t)) for level in levels for dtype in ("float32", "float64") for t in threads]

    def probe(key):
        level, dtype, t = key
        r = harness.record({"kind": "probe.fma", "params": {"isa": level, "dtype": dtype}, "threads": t})
        return r.cost.flops / r.timing.median / 1e9, r.cost.flops / r.timing.min / 1e9

    def reference(key):
        level, dtype, t = key
        c = run_reference(binary, [level, dtype, args.c_seconds], env=omp_env(t))
        if c.get("check") != "ok":
            raise RuntimeError(f"fma.c check failed: {c}")
        return float(c["median_gflops"]), float(c["gflops"])

    print(f"FMA throughput, GFLOP/s: probe.fma vs fma.c ({args.repeats} rounds)", file=sys.stderr)
    measure_rows(rows, args.repeats, probe, reference)
    print("\nFMA throughput, GFLOP/s (probe: median and best call; C: median and best repetition)")
    print(format_table(["isa", "dtype", "threads", "probe med", "probe best", "C med", "C best",
                        "probe/C (med)", "spread", "target", "met"],
                       [[*row.key, *row.cells(FMA_TARGET)] for row in rows], align_right=set(range(2, 9))))


# ---------------------------------------------------------------- sweep

def sweep_points(threads: int, quick: bool) -> list[tuple[str, int]]:
    """(level, working-set bytes, all threads together) for one thread count: L1 and L2 a
    share of one core's cache per thread, L3 past the threads' L2s and within the L3, DRAM
    4x the last-level cache (STREAM's rule; capped by memory, and at 1 GiB with --quick)."""
    sizes = system.cache_sizes()
    cpus = system.available_cpus()[:threads]
    capacity = system.cache_capacity(cpus)
    l1 = sizes.get("L1", 32 * KIB)
    points = [("L1", min(16 * KIB, l1 // 2) * threads)]
    l2 = sizes.get("L2")
    if l2:
        points.append(("L2", min(l2 // 2, max(4 * l1, 256 * KIB)) * threads))
    l3 = capacity.get("L3")
    if l2 and l3 and l3 >= 4 * l2 * threads:
        points.append(("L3", min(l3 // 2, max(4 * l2 * threads, 8 * MIB))))
    dram = min(4 * system.llc_total_bytes(), system.available_memory() // 8)
    if quick:
        dram = min(dram, GIB)
    points.append(("DRAM", dram // MIB * MIB))
    return points


def bench_sweep(args, harness: Harness) -> None:
    march = "haswell" if args.avx2_only else "native"
    binary = compile_c(REFERENCE / "sweep.c", extra_flags=["-fopenmp"], march=march)
    ncpu = len(system.available_cpus())
    thread_counts = sorted({1, min(2, ncpu)})
    rows = []
    for t in thread_counts:
        for level, size in sweep_points(t, args.quick):
            for op in args.ops:
                if level in args.levels:
                    rows.append(Row((level, op, t, size)))

    info = {}

    def probe(key):
        level, op, t, size = key
        r = harness.record({"kind": "probe.sweep", "params": {"op": op, "kbytes": size / KIB}, "threads": t})
        info["numba_target"] = r.info.get("numba_target")
        return r.cost.bytes / r.timing.median / 1e9, r.cost.bytes / r.timing.min / 1e9

    def reference(key):
        level, op, t, size = key
        c = run_reference(binary, [op, size / KIB, args.c_seconds, SWEEP_CALL_BYTES_PER_THREAD],
                          env=omp_env(t), timeout=600)
        if c.get("check") != "ok":
            raise RuntimeError(f"sweep.c check failed: {c}")
        info["c_vector_bits"] = c.get("vector_bits")
        return float(c["median_gbs"]), float(c["best_gbs"])

    build = "AVX2 only (Numba haswell, gcc -march=haswell)" if args.avx2_only else "native"
    print(f"Sweep, GB/s: probe.sweep vs sweep.c, {build} ({args.repeats} rounds)", file=sys.stderr)
    measure_rows(rows, args.repeats, probe, reference)
    print(f"\nWorking-set sweep, GB/s, {build} (STREAM bytes; probe: median and best call; "
          f"C: median and best call)")
    print(f"Numba target: {info.get('numba_target')}; sweep.c vectors: {info.get('c_vector_bits')} bits; "
          f"caches per core: {', '.join(f'{k} {v // KIB} KiB' for k, v in system.cache_sizes().items())}")
    print(format_table(["level", "op", "threads", "working set", "probe med", "probe best", "C med", "C best",
                        "probe/C (med)", "spread", "target", "met"],
                       [[row.key[0], row.key[1], row.key[2], fmt_bytes_binary(row.key[3]),
                         *row.cells(SWEEP_TARGET.get(row.key[0], 0.95))] for row in rows],
                       align_right=set(range(2, 10))))


# ---------------------------------------------------------------- STREAM triad, GEMM (opt-in)

def bench_stream(args, harness: Harness) -> None:
    binary = compile_c(REFERENCE / "stream_triad.c", extra_flags=["-fopenmp"])
    rows = [Row((t,)) for t in sorted({1, len(system.available_cpus())})]
    sizes = {}

    def probe(key):
        r = harness.record({"kind": "probe.stream", "params": {"impl": "numba", "op": "triad"}, "threads": key[0]})
        sizes[key] = r.info["array_bytes"]
        return r.cost.bytes / r.timing.median / 1e9, r.cost.bytes / r.timing.min / 1e9

    def reference(key):
        c = run_reference(binary, [str(sizes[key] // 8), "20", "1"], env=omp_env(key[0]), timeout=600)
        return float(c["median_gbs"]), float(c["best_gbs"])

    print(f"STREAM triad: probe.stream vs stream_triad.c ({args.repeats} rounds)", file=sys.stderr)
    for round_ in range(args.repeats):  # the probe first each round: it picks the array size
        for row in rows:
            row.add(*probe(row.key), *reference(row.key))
    print("\nSTREAM triad, GB/s (STREAM bytes: 3 x 8 x N per call, no write-allocate)")
    print(format_table(["threads", "array MB", "probe med", "probe best", "C med", "C best", "probe/C (med)",
                        "spread", "target", "met"],
                       [[row.key[0], f"{sizes[row.key] / 1e6:.0f}", *row.cells(0.95)] for row in rows],
                       align_right=set(range(0, 8))))


def bench_gemm(args, harness: Harness) -> None:
    best = "avx512" if "avx512" in isa.usable_levels() else "avx2"
    print("\nGEMM (numpy.matmul) as a share of the measured FMA peak, same dtype and threads")
    for threads in sorted({1, len(system.available_cpus())}):
        for dtype in ("float32", "float64"):
            g = harness.record({"kind": "numpy.matmul", "params": {"n": 2048, "dtype": dtype}, "threads": threads})
            p = harness.record({"kind": "probe.fma", "params": {"isa": best, "dtype": dtype}, "threads": threads})
            gf, pf = g.metrics["flops_per_s"] / 1e9, p.metrics["flops_per_s"] / 1e9
            print(f"  n=2048 {dtype} {threads} thr: {gf:.1f} GFLOP/s = {gf / pf:.1%} of {best} FMA peak {pf:.1f} GFLOP/s")


# ---------------------------------------------------------------- assembly

def innermost_loops(asm: str) -> list[tuple[str, list[str]]]:
    """Blocks of an x86 AT&T listing that end in a jump back to their own label, with no
    label in between: the innermost loops."""
    out, last = [], None
    lines = asm.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(\.?[\w.$]+):", line)
        if m:
            last = (m.group(1), i)
            continue
        m = re.match(r"\s+j\w+\s+(\.?[\w.$]+)\s*$", line)
        if m and last and m.group(1) == last[0]:
            out.append((last[0], [x.strip() for x in lines[last[1] + 1:i + 1]
                                  if x.strip() and not x.strip().startswith(".")]))
    return out


def describe_loop(body: list[str], frame_pointer: bool) -> dict:
    """Vector width, arithmetic, accumulators (registers that are both a source and the
    destination of a vector add or FMA) and vector moves against the stack in one loop."""
    arith = [b for b in body if re.match(r"v(add|fmadd\w*|mul)p[sd]\b", b)]
    stores = [b for b in body if re.match(r"vmovup[sd]\s+%[xyz]mm\d+,\s*-?\d*\(", b)]
    accumulators = set()
    for b in arith:
        regs = re.findall(r"%([xyz]mm\d+)", b)
        if b.startswith("vadd") and "(" in b and len(regs) == 2 and regs[0] == regs[1]:
            accumulators.add(regs[1])
        elif b.startswith("vadd") and "(" not in b and len(regs) == 3 and regs[2] in regs[:2]:
            accumulators.add(regs[2])
        elif b.startswith("vfmadd") and "(" not in b and len(regs) == 3:
            accumulators.add(regs[2])
    stack = r"\(%rsp" + (r"|\(%rbp" if frame_pointer else "")
    spills = [b for b in body if re.search(stack, b) and re.search(r"%[xyz]mm", b)]
    widths = sorted({r[:3] for b in arith + stores for r in re.findall(r"%([xyz]mm)\d+", b)})
    return {"instructions": len(body), "arith": len(arith), "stores": len(stores),
            "accumulators": len(accumulators), "width": "/".join(widths) or "-", "spills": len(spills)}


def summarize_asm(title: str, asm: str, min_ops: int = 4) -> None:
    frame_pointer = bool(re.search(r"movq\s+%rsp,\s*%rbp", asm))
    rows = []
    for label, body in innermost_loops(asm):
        d = describe_loop(body, frame_pointer)
        if d["arith"] + d["stores"] >= min_ops:
            rows.append([label, d["instructions"], d["width"], d["arith"], d["stores"], d["accumulators"], d["spills"]])
    spills = sum(r[-1] for r in rows)
    print(f"\n{title}: {len(rows)} hot loops, vector stack loads/stores in them: {spills or 'none'}")
    if rows:
        print(format_table(["loop", "instr", "width", "add/mul/fma", "stores", "accumulators", "stack refs"],
                           rows, align_right=set(range(1, 7))))


NUMBA_ASM_SCRIPT = r"""
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
import numpy as np
from kernels import stream, sweep
k = sweep.numba_sweep_kernels()
n, out = 4096, Path(sys.argv[2])
a, b, c = (stream.aligned_empty(n, 4096, 64 * i) for i in range(3))
bounds = stream.thread_blocks(n, 1)
k["read"](a, 2, bounds, np.zeros(1))
k["write"](a, 2, bounds, 1.25)
k["triad"](a, b, c, 3.0, 2, bounds)
for op in ("read", "write", "triad"):
    (out / f"{op}.s").write_text("\n".join(k[op].inspect_asm().values()))
print(sweep.numba_target)
"""


def check_asm(args) -> None:
    for source in ("fma.c", "sweep.c"):
        for march in ("native", "haswell"):
            path = compile_c(REFERENCE / source, extra_flags=["-fopenmp"], march=march, assembly=True)
            summarize_asm(f"{source}, gcc -O3 -march={march}", path.read_text())
    for name, env in (("native", {"HARNESS_SWEEP_WIDE_VECTORS": "1"} if "avx512" in isa.usable_levels() else {}),
                      ("AVX2 only", AVX2_ENV)):
        with tempfile.TemporaryDirectory() as tmp:
            full = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")}
            full.update(env, NUMBA_CACHE_DIR=str(Path(tmp) / "cache"), NUMBA_NUM_THREADS="1")
            done = subprocess.run([sys.executable, "-c", NUMBA_ASM_SCRIPT, str(ROOT), tmp], env=full,
                                  capture_output=True, text=True)
            if done.returncode != 0:
                print(f"\nNumba sweep kernels, {name}: failed\n{done.stderr[-2000:]}")
                continue
            for op in ("read", "write", "triad"):
                summarize_asm(f"Numba sweep_{op}, {name} ({done.stdout.strip()})",
                              (Path(tmp) / f"{op}.s").read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="2 rounds, 0.3 s budgets, FMA at 1 thread only, DRAM point at most 1 GiB")
    parser.add_argument("--repeats", type=int, default=None, help="rounds per row (default 3; 2 with --quick)")
    parser.add_argument("--avx2-only", action="store_true",
                        help="sweep only: Numba and gcc build for AVX2 (haswell), no AVX-512")
    parser.add_argument("--skip-fma", action="store_true")
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--stream", action="store_true", help="also the DRAM STREAM triad vs stream_triad.c")
    parser.add_argument("--gemm", action="store_true", help="also GEMM as a share of the FMA peak")
    parser.add_argument("--levels", default="L1,L2,L3,DRAM", help="sweep levels to compare (default: all)")
    parser.add_argument("--ops", default="read,write,triad", help="sweep ops to compare (default: all)")
    parser.add_argument("--asm", action="store_true", help="only print the hot loops of the references and kernels")
    args = parser.parse_args()
    args.repeats = args.repeats or (2 if args.quick else 3)
    args.levels, args.ops = args.levels.split(","), args.ops.split(",")
    args.c_seconds = "0.3" if args.quick else "0.5"
    if args.asm:
        check_asm(args)
        return 0
    if args.avx2_only:
        os.environ.update(AVX2_ENV)  # before any worker starts: they inherit it
        args.skip_fma = True  # probe.fma forces its level itself; nothing to rebuild
        print("--avx2-only: the sweep only (probe.fma forces each level itself)", file=sys.stderr)
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        harness = Harness(Path(tmp), budget=0.3 if args.quick else 0.5)
        try:
            if not args.skip_fma:
                bench_fma(args, harness)
            if not args.skip_sweep:
                bench_sweep(args, harness)
            if args.stream:
                bench_stream(args, harness)
            if args.gemm:
                bench_gemm(args, harness)
        finally:
            harness.close()
    print(f"\n({time.monotonic() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
