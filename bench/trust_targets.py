"""Benchmarks of the ceilings and "% of roof" (issue: ceilings a user can trust).

1. Three `harness probe --quick` runs back to back into a fresh results folder, with a CPU
   hog (a busy loop pinned to the last CPU) during the second: the ceilings in force after
   the third within 3% of those after the first, at 1 and all threads, and the second run's
   measurements flagged (suspect) where the hog reached them.
2. The quick suite twice in a row (into the same results folder, so the second run uses the
   first's profile and its own probes): each op's "% of roof" within 5% between the runs.

Usage: .venv/bin/python bench/trust_targets.py [--results /tmp/trust] [--skip-probes] [--skip-quick]
Takes about 5 minutes. Prints tables and the figures to quote.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.analysis import fingerprint as fpmod  # noqa: E402
from harness.analysis.profile import load_profile, profile_path  # noqa: E402
from harness.core import system  # noqa: E402
from harness.core.records import final  # noqa: E402
from harness.core.store import find_runs, load_records  # noqa: E402
from harness.core.text import format_table  # noqa: E402


def harness(*args) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=ROOT, capture_output=True,
                         text=True)
    if out.returncode != 0:  # 1: a failed case (the run stands) or a crash; either way, show why
        print(f"harness {' '.join(map(str, args))}: exit {out.returncode}\n{out.stderr[-3000:]}", file=sys.stderr)
    if out.returncode not in (0, 1):
        raise RuntimeError(f"harness {' '.join(map(str, args))}: exit {out.returncode}")
    return out


def hog(cpu: int, stop) -> None:
    os.sched_setaffinity(0, {cpu})
    x = 0
    while not stop.is_set():
        x += 1


def in_force(results: Path) -> dict:
    fp = fpmod.fingerprint(with_gpu=False)
    profile = load_profile(profile_path(results, fpmod.device_slug(fp)))
    return {(c.kind, c.name, c.dtype, c.threads): c.value for c in profile.in_force()
            if c.kind in ("compute", "bandwidth")}


def probes(results: Path) -> int:
    shutil.rmtree(results, ignore_errors=True)
    cpus = system.available_cpus()
    forces = []
    for i in range(3):
        stop = multiprocessing.Event()
        hogger = multiprocessing.Process(target=hog, args=(cpus[-1], stop)) if i == 1 else None
        if hogger:
            hogger.start()
            time.sleep(0.5)
        t0 = time.time()
        harness("probe", "--quick", "--results", results, "--no-progress")
        if hogger:
            stop.set()
            hogger.join()
        forces.append(in_force(results))
        print(f"probe {i + 1}{' (CPU hog on CPU %d)' % cpus[-1] if hogger else ''}: {time.time() - t0:.0f} s",
              file=sys.stderr)
    runs = find_runs(results)
    fp = fpmod.fingerprint(with_gpu=False)
    profile = load_profile(profile_path(results, fpmod.device_slug(fp)))
    second = f"{runs[1].parent.name}/{runs[1].name}"
    flagged = [m for m in profile.measurements if m.run_id == second and not m.healthy]
    rows, worst = [], 0.0
    for key in sorted(forces[0], key=str):
        first, third = forces[0][key], forces[2].get(key)
        change = third / first - 1 if third else None
        worst = max(worst, abs(change)) if change is not None else worst
        hogged = forces[1].get(key)
        rows.append([f"{key[0]} {key[2] or ''} {key[1]}".replace("  ", " "), key[3], f"{first / 1e9:.4g}",
                     f"{hogged / 1e9:.4g}" if hogged else "-", f"{third / 1e9:.4g}" if third else "-",
                     f"{100 * change:+.2f}%" if change is not None else "-"])
    print("\nCeilings in force (GFLOP/s or GB/s) after each of three quick probes; the 2nd ran beside a CPU hog")
    print(format_table(["ceiling", "threads", "after 1st", "after 2nd", "after 3rd", "3rd vs 1st"], rows,
                       align_right={1, 2, 3, 4, 5}))
    print(f"\nlargest change 3rd vs 1st: {100 * worst:.2f}% (target <= 3%)")
    print(f"measurements of the 2nd (hogged) run flagged suspect: {len(flagged)}")
    for m in flagged:
        print(f"  {m.label()}: {'; '.join(m.health)[:160]}")
    return 0


def roof_shares(run: Path) -> dict:
    """{case: (% of roof, the roof's time for the op (s), median (s), CV)} of a run's placed records."""
    return {r.case_id: (r.roofline.efficiency, r.roofline.theoretical_time_s, r.timing.median, r.timing.cv)
            for r in final(load_records(run))
            if r.roofline is not None and r.roofline.efficiency is not None and r.timing is not None}


def quick_twice(results: Path) -> int:
    shutil.rmtree(results, ignore_errors=True)
    for _ in range(2):
        harness("run", "suites/quick.yaml", "--results", results, "--no-progress")
    a, b = (roof_shares(run) for run in find_runs(results)[-2:])
    rows, worst, worst_roof = [], 0.0, 0.0
    for case in a:
        if case in b:
            change = b[case][0] / a[case][0] - 1
            roof_change = b[case][1] / a[case][1] - 1
            worst, worst_roof = max(worst, abs(change)), max(worst_roof, abs(roof_change))
            rows.append([case, f"{100 * a[case][0]:.1f}%", f"{100 * b[case][0]:.1f}%", f"{100 * change:+.1f}%",
                         f"{100 * roof_change:+.1f}%", f"{100 * (b[case][2] / a[case][2] - 1):+.1f}%",
                         f"{100 * a[case][3]:.0f}% / {100 * b[case][3]:.0f}%"])
    # % of roof = roof time / median: its change is the roof's change over the median's.
    print("\n% of roof per op, the quick suite twice in a row (roof = the op's time at the roof it was placed "
          "against)")
    print(format_table(["case", "1st run", "2nd run", "change", "roof change", "median change", "CV 1st / 2nd"],
                       rows, align_right={1, 2, 3, 4, 5, 6}))
    print(f"\nlargest change of an op's % of roof: {100 * worst:.1f}% (target <= 5%); "
          f"of its roof: {100 * worst_roof:.1f}%")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="/tmp/trust-bench")
    parser.add_argument("--skip-probes", action="store_true")
    parser.add_argument("--skip-quick", action="store_true")
    args = parser.parse_args()
    if not args.skip_probes:
        probes(Path(args.results) / "probes")
    if not args.skip_quick:
        quick_twice(Path(args.results) / "quick")
    return 0


if __name__ == "__main__":
    sys.exit(main())
