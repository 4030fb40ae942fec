"""The harness's probes against small C references, measured in the same run.

- FMA throughput: kind probe.fma (llvmlite kernel) vs bench/reference/fma.c (intrinsics,
  -O3 -march=native, OpenMP), per ISA level, dtype and thread count. Target: >= 95%.
- STREAM triad: kind probe.stream (numba, parallel) vs bench/reference/stream_triad.c
  (OpenMP, static schedule, parallel first touch), at 1 and all threads. Target: >= 95%.
- GEMM (numpy.matmul, OpenBLAS) as a share of the measured FMA peak.

The C programs report their fastest repetition (best-of, STREAM's rule) and, for the
triad, the median; the harness reports its median and min per call. Ratios are given
both ways: best vs best and median vs median where the C side has one. Runs alternate
harness and C within each row, so drift on a shared machine hits both alike.

Usage: .venv/bin/python bench/probe_vs_reference.py [--rounds 2] [--skip-triad] [--skip-fma]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "reference"))

from build import compile_c, run_reference  # noqa: E402

from harness.core.conditions import available_cpus  # noqa: E402
from harness.core.runner import run_cases  # noqa: E402
from harness.core.store import RunStore  # noqa: E402
from harness.core.suite import parse_suite  # noqa: E402
from harness.analysis.fingerprint import _cpu_flags_levels  # noqa: E402


def harness_record(case: dict, root: Path) -> dict:
    suite = parse_suite({"defaults": {"budget": 1.0, "timeout": 300}, "cases": [case]}, "bench")
    store = RunStore.create(root, "bench", "probe-vs-reference")
    try:
        record = run_cases(suite.cases, store)[0]
    finally:
        store.close()
    if record["status"] != "ok":
        raise RuntimeError(f"{case}: {record['status']}: {record.get('error')}")
    return record


def omp_env(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_PLACES": "cores", "OMP_PROC_BIND": "close"}


def bench_fma(rounds: int, tmp: Path) -> None:
    binary = compile_c(ROOT / "bench" / "reference" / "fma.c", extra_flags=["-fopenmp"])
    levels = [lvl for lvl in ("scalar", "sse", "avx2", "avx512") if lvl in _cpu_flags_levels()]
    nthreads = sorted({1, len(available_cpus())})
    print("FMA throughput, GFLOP/s (harness: median and best per call; C: best repetition)")
    print(f"{'isa':8} {'dtype':8} {'thr':>3} {'harness med':>12} {'harness best':>12} {'C best':>9} "
          f"{'med/C':>7} {'best/C':>7}")
    for level in levels:
        for dtype in ("float32", "float64"):
            for threads in nthreads:
                h_med, h_best, c_best = [], [], []
                for _ in range(rounds):
                    r = harness_record({"kind": "probe.fma", "params": {"isa": level, "dtype": dtype},
                                        "threads": threads}, tmp)
                    flops = r["cost"]["flops"]
                    h_med.append(flops / r["timing"]["median"] / 1e9)
                    h_best.append(flops / r["timing"]["min"] / 1e9)
                    c = run_reference(binary, [level, dtype, "0.5"], env=omp_env(threads))
                    if c.get("check") != "ok":
                        raise RuntimeError(f"fma.c check failed: {c}")
                    c_best.append(float(c["gflops"]))
                hm, hb, cb = max(h_med), max(h_best), max(c_best)
                print(f"{level:8} {dtype:8} {threads:>3} {hm:12.1f} {hb:12.1f} {cb:9.1f} "
                      f"{hm / cb:7.3f} {hb / cb:7.3f}")


def bench_triad(rounds: int, tmp: Path) -> None:
    binary = compile_c(ROOT / "bench" / "reference" / "stream_triad.c", extra_flags=["-fopenmp"])
    nthreads = sorted({1, len(available_cpus())})
    print("\nSTREAM triad, GB/s (STREAM bytes: 3 x 8 x N per call, no write-allocate)")
    print(f"{'thr':>3} {'array MB':>9} {'harness med':>12} {'harness best':>12} {'C med':>8} {'C best':>8} "
          f"{'med/C med':>10} {'best/C best':>11}")
    for threads in nthreads:
        h_med, h_best, c_med, c_best = [], [], [], []
        array_bytes = None
        for _ in range(rounds):
            r = harness_record({"kind": "probe.stream", "params": {"impl": "numba", "op": "triad"},
                                "threads": threads}, tmp)
            b = r["cost"]["bytes"]
            array_bytes = r["info"]["array_bytes"]
            h_med.append(b / r["timing"]["median"] / 1e9)
            h_best.append(b / r["timing"]["min"] / 1e9)
            c = run_reference(binary, [str(array_bytes // 8), "20", "1"], env=omp_env(threads))
            c_med.append(float(c["median_gbs"]))
            c_best.append(float(c["best_gbs"]))
        # Medians of the rounds: bandwidth on a shared host drifts minute to minute.
        med = lambda xs: sorted(xs)[len(xs) // 2]
        hm, hb, cm, cb = med(h_med), med(h_best), med(c_med), med(c_best)
        print(f"{threads:>3} {array_bytes / 1e6:9.0f} {hm:12.1f} {hb:12.1f} {cm:8.1f} {cb:8.1f} "
              f"{hm / cm:10.3f} {hb / cb:11.3f}")
        print("    rounds: harness med " + ", ".join(f"{x:.1f}" for x in h_med)
              + "; C med " + ", ".join(f"{x:.1f}" for x in c_med))


def bench_gemm(tmp: Path) -> None:
    print("\nGEMM (numpy.matmul, OpenBLAS) as a share of the measured FMA peak, same dtype and threads")
    for threads in sorted({1, len(available_cpus())}):
        for dtype in ("float32", "float64"):
            g = harness_record({"kind": "numpy.matmul", "params": {"n": 2048, "dtype": dtype},
                                "threads": threads}, tmp)
            best = "avx512" if "avx512" in _cpu_flags_levels() else "avx2"
            p = harness_record({"kind": "probe.fma", "params": {"isa": best, "dtype": dtype},
                                "threads": threads}, tmp)
            gf = g["metrics"]["flops_per_s"] / 1e9
            pf = p["metrics"]["flops_per_s"] / 1e9
            print(f"  n=2048 {dtype} {threads} thr: {gf:.1f} GFLOP/s = {100 * gf / pf:.1f}% of "
                  f"{best} FMA peak {pf:.1f} GFLOP/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-fma", action="store_true")
    parser.add_argument("--skip-triad", action="store_true")
    parser.add_argument("--skip-gemm", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        if not args.skip_fma:
            bench_fma(args.rounds, tmp)
        if not args.skip_triad:
            bench_triad(args.rounds, tmp)
        if not args.skip_gemm:
            bench_gemm(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
