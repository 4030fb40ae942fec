"""The device profile: every ceiling the probes measured, beside the theoretical peaks.

Written to results/<device-slug>/profile.json (and a copy into the run that produced it)
after any run holding probe records, merged with what an earlier probe run measured:
an entry is replaced only by a new measurement of the same thing (same probe, dtype, ISA
or level, threads). Later runs on the same device find it and place their ops against
these ceilings (`placement.py`); without it they fall back to the theoretical peaks,
labelled as such.

Shape (schema_version 1):
  device       -- slug, CPU model, cores, caches
  theoretical  -- {dtype: {flops_per_s, isa, source, flops_per_s_at_measured_ghz}}
  compute      -- [{dtype, isa, threads, flops_per_s, source, run_id}]   (isa "blas" = GEMM)
  bandwidth    -- [{level, threads, bytes_per_s, source, run_id}]        (L1, L2, L3, DRAM)
  plateaus     -- [{op, threads, level, first_bytes, last_bytes, median_gbs, nominal_bytes}]
  stream       -- [{impl, op, threads, bytes_per_s, bytes_hw_per_s, array_bytes}]
  frequency_ghz, frequency_source
  cuda         -- {"compute": [...], "bandwidth": [...]} when a GPU was probed
  runs         -- run ids that contributed
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

from harness import SCHEMA_VERSION

PROFILE = "profile.json"


def profile_path(results_root: str | Path, device_slug: str) -> Path:
    return Path(results_root) / device_slug / PROFILE


def load_profile(path: str | Path) -> dict | None:
    """The profile at `path`, or None where there is none. A damaged one is moved aside (never
    overwritten: it holds measurements) and said so, and the run goes on without it."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        profile = json.loads(path.read_text())
        if isinstance(profile, dict):
            return profile
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        pass
    aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
    os.replace(path, aside)
    print(f"warning: {path} was not a readable device profile; moved it to {aside}", file=sys.stderr)
    return None


def _ok(records, kind):
    return [r for r in records if r.get("kind") == kind and r.get("status") == "ok"]


def _sweep_entries(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """Plateaus per (op, threads) of the working-set sweep, and the cache-level ceilings
    they give (DRAM is left to STREAM, the standard figure)."""
    from kernels.sweep import detect_plateaus

    curves: dict[tuple, list[dict]] = {}
    for r in _ok(records, "probe.sweep"):
        curves.setdefault((r["params"]["op"], r["threads"]), []).append(r)
    plateaus, ceilings = [], []
    for (op, threads), recs in sorted(curves.items()):
        sizes = [r["params"]["kbytes"] * 1024 for r in recs]
        bws = [r["metrics"]["bytes_per_s"] for r in recs]
        capacity = recs[0]["info"].get("cache_capacity") or {}
        if len(recs) >= 6:
            found = detect_plateaus(sizes, bws, capacity)
        else:  # a few points only (the quick probe): name each by the cache it fits in
            found = []
            for size, bw in sorted(zip(sizes, bws)):
                level = next((lvl for lvl, cap in sorted(capacity.items(), key=lambda kv: kv[1])
                              if size <= cap), "DRAM")
                found.append({"level": level, "first_bytes": size, "last_bytes": size, "points": 1,
                              "median_gbs": bw / 1e9, "nominal_bytes": capacity.get(level)})
        for p in found:
            plateaus.append({"op": op, "threads": threads, **p})
            if p["level"] != "DRAM":
                ceilings.append({"level": p["level"], "threads": threads,
                                 "bytes_per_s": p["median_gbs"] * 1e9,
                                 "source": f"probe.sweep {op} plateau"})
    return plateaus, ceilings


def profile_from_records(records: list[dict], fingerprint: dict, run_id: str) -> dict:
    """The ceilings one run measured (empty sections where it probed nothing)."""
    compute = []
    for r in _ok(records, "probe.fma"):
        compute.append({"dtype": r["params"]["dtype"], "isa": r["info"].get("isa", r["params"]["isa"]),
                        "threads": r["threads"], "flops_per_s": r["metrics"]["flops_per_s"],
                        "source": "probe.fma", "run_id": run_id})
    for r in _ok(records, "probe.bf16_dot"):
        compute.append({"dtype": "bfloat16", "isa": "avx512_bf16", "threads": r["threads"],
                        "flops_per_s": r["metrics"]["flops_per_s"], "source": "probe.bf16_dot",
                        "run_id": run_id})
    for r in _ok(records, "numpy.matmul"):
        compute.append({"dtype": r["params"]["dtype"], "isa": "blas", "threads": r["threads"],
                        "flops_per_s": r["metrics"]["flops_per_s"],
                        "source": f"numpy.matmul n={r['params']['n']}", "run_id": run_id})
    plateaus, bandwidth = _sweep_entries(records)
    for entry in bandwidth:
        entry["run_id"] = run_id
    stream = []
    for r in _ok(records, "probe.stream"):
        median = r["timing"]["median"]
        stream.append({"impl": r["params"]["impl"], "op": r["params"]["op"], "threads": r["threads"],
                       "bytes_per_s": r["metrics"]["bytes_per_s"],
                       "bytes_hw_per_s": r["info"].get("bytes_hw", 0) / median if median else None,
                       "array_bytes": r["info"].get("array_bytes"), "run_id": run_id})
        if r["params"]["op"] == "triad":
            bandwidth.append({"level": "DRAM", "threads": r["threads"],
                              "bytes_per_s": r["metrics"]["bytes_per_s"],
                              "source": f"probe.stream triad ({r['params']['impl']}, STREAM bytes)",
                              "run_id": run_id})
    ghz = [r["metrics"]["ghz"] for r in _ok(records, "probe.frequency")]
    cuda = {"compute": [], "bandwidth": []}
    for kind in ("probe.cuda_fma", "probe.cuda_gemm"):
        for r in _ok(records, kind):
            cuda["compute"].append({"dtype": r["params"]["dtype"], "isa": kind.split("_", 1)[1],
                                    "threads": None, "flops_per_s": r["metrics"]["flops_per_s"],
                                    "source": kind, "run_id": run_id})
    for r in _ok(records, "probe.cuda_copy"):
        cuda["bandwidth"].append({"level": "HBM", "threads": None, "bytes_per_s": r["metrics"]["bytes_per_s"],
                                  "source": f"probe.cuda_copy ({r['params'].get('impl')})", "run_id": run_id})
    return {"compute": compute, "bandwidth": bandwidth, "plateaus": plateaus, "stream": stream,
            "frequency_ghz": statistics.median(ghz) if ghz else None, "cuda": cuda}


def _key(section: str, entry: dict) -> tuple:
    keys = {"compute": ("dtype", "isa", "threads", "source"),
            "bandwidth": ("level", "threads", "source"),
            "plateaus": ("op", "threads", "level"),
            "stream": ("impl", "op", "threads")}[section]
    return tuple(entry.get(k) for k in keys)


def _merge(old: list[dict], new: list[dict], section: str) -> list[dict]:
    merged = {_key(section, e): e for e in old}
    if section == "plateaus" and new:  # a new sweep of an (op, threads) replaces its whole curve
        redone = {(e["op"], e["threads"]) for e in new}
        merged = {k: e for k, e in merged.items() if (e["op"], e["threads"]) not in redone}
    merged.update({_key(section, e): e for e in new})
    return list(merged.values())


def update_profile(path: Path, records: list[dict], fingerprint: dict, run_id: str) -> dict | None:
    """Merges one run's probe results into the profile at `path`; returns it, or None when
    the run measured nothing that belongs in a profile."""
    fresh = profile_from_records(records, fingerprint, run_id)
    measured = any(fresh[s] for s in ("compute", "bandwidth", "plateaus", "stream")) or \
        fresh["frequency_ghz"] or fresh["cuda"]["compute"] or fresh["cuda"]["bandwidth"]
    if not measured:
        return None
    profile = load_profile(path) or {}
    for section in ("compute", "bandwidth", "plateaus", "stream"):
        profile[section] = _merge(profile.get(section, []), fresh[section], section)
    cuda = profile.get("cuda") or {"compute": [], "bandwidth": []}
    for section in ("compute", "bandwidth"):
        cuda[section] = _merge(cuda.get(section, []), fresh["cuda"][section], section)
    profile["cuda"] = cuda
    if fresh["frequency_ghz"]:
        profile["frequency_ghz"] = fresh["frequency_ghz"]
        profile["frequency_source"] = f"probe.frequency (dependent add chain), run {run_id}"
    ghz = profile.get("frequency_ghz")
    theoretical = {}
    for dtype, peak in fingerprint["theoretical_peak"].items():
        theoretical[dtype] = {
            "flops_per_s": peak["flops_per_s"], "isa": peak["isa"],
            "source": (f"{peak['cores']} cores x {peak['ghz']} GHz ({peak['ghz_source']}) x "
                       f"{peak['flops_per_cycle_per_core']:g} FLOP/cycle ({peak['table']})"),
            "flops_per_s_at_measured_ghz": (peak["cores"] * ghz * 1e9 * peak["flops_per_cycle_per_core"]
                                            if ghz else None),
        }
    cpu = fingerprint["cpu"]
    profile["frequency_reported"] = {
        "proc_cpuinfo_mhz": fingerprint.get("frequency_sources", {}).get("proc_cpuinfo_mhz"),
        "cpufreq_sysfs": fingerprint.get("frequency_sources", {}).get("cpufreq_sysfs"),
    }
    profile.update({
        "schema_version": SCHEMA_VERSION,
        "device": {"model": cpu["model"], "uarch": cpu["uarch"], "physical_cores": cpu["physical_cores"],
                   "logical_cpus": cpu["logical_cpus"], "caches": cpu["caches"],
                   "gpus": fingerprint.get("gpus", [])},
        "theoretical": theoretical,
        "runs": sorted(set(profile.get("runs", [])) | {run_id}),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(profile, indent=2))
    os.replace(tmp, path)
    return profile


def format_profile(profile: dict) -> str:
    """The ceilings as a table, theoretical peaks beside the measured compute figures."""
    from harness.cli import format_table

    lines = []
    theo = profile.get("theoretical", {})
    rows = []
    cores = (profile.get("device") or {}).get("physical_cores") or 1

    def share(value, peak, threads):
        # The peak scaled to the cores in use: a 1-thread figure is judged against one core.
        return f"{100 * value / (peak * min(threads, cores) / cores):.0f}%" if peak else "?"

    for e in sorted(profile.get("compute", []), key=lambda e: (e["dtype"], e["isa"], e["threads"])):
        t = theo.get(e["dtype"], {})
        rows.append([e["dtype"], e["isa"], e["threads"], f"{e['flops_per_s'] / 1e9:.1f}",
                     share(e["flops_per_s"], t.get("flops_per_s"), e["threads"]),
                     share(e["flops_per_s"], t.get("flops_per_s_at_measured_ghz"), e["threads"]),
                     e["source"]])
    if rows:
        lines.append("Compute ceilings (GFLOP/s), as a share of the theoretical peak for the cores used,\n"
                     "at the nominal clock and at the clock measured under load")
        lines.append(format_table(["dtype", "isa", "threads", "GFLOP/s", "of peak (nominal)",
                                   "of peak (measured clock)", "source"], rows))
    for dtype, t in theo.items():
        if t.get("flops_per_s"):
            at = t.get("flops_per_s_at_measured_ghz")
            lines.append(f"  theoretical {dtype}: {t['flops_per_s'] / 1e9:.1f} GFLOP/s = {t['source']}"
                         + (f"; at the measured clock {at / 1e9:.1f} GFLOP/s" if at else ""))
    rows = [[e["level"], e["threads"], f"{e['bytes_per_s'] / 1e9:.1f}", e["source"]]
            for e in sorted(profile.get("bandwidth", []), key=lambda e: (e["level"], e["threads"]))]
    if rows:
        lines.append("\nBandwidth ceilings (GB/s = 1e9 B/s)")
        lines.append(format_table(["level", "threads", "GB/s", "source"], rows))
    rows = [[p["level"], p["op"], p["threads"], f"{p['first_bytes'] / 1024:.0f}-{p['last_bytes'] / 1024:.0f}",
             f"{p['median_gbs']:.1f}", f"{p['nominal_bytes'] / 1024:.0f}" if p.get("nominal_bytes") else "-"]
            for p in sorted(profile.get("plateaus", []), key=lambda p: (p["op"], p["threads"], p["first_bytes"]))]
    if rows:
        lines.append("\nWorking-set sweep plateaus, beside the cache the threads hold together (KiB = 1024 B)")
        lines.append(format_table(["level", "op", "threads", "sizes KiB", "GB/s", "cache KiB"], rows))
    if profile.get("frequency_ghz"):
        lines.append(f"\nCore clock under load: {profile['frequency_ghz']:.3f} GHz ({profile.get('frequency_source')})")
        reported = profile.get("frequency_reported") or {}
        if reported.get("proc_cpuinfo_mhz"):
            lines.append(f"  /proc/cpuinfo says {reported['proc_cpuinfo_mhz']:.0f} MHz"
                         + ("" if reported.get("cpufreq_sysfs") else
                            " and there is no cpufreq: in a VM that figure is the timestamp-counter rate, "
                            "not the core clock"))
    return "\n".join(lines)
