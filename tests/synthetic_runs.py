"""Runs written by hand in the first schema (version 1), as the harness stored them before
typed records: the reports, comparisons and exports of a stored run must read them."""
import json

import numpy as np

PNG = b"\x89PNG\r\n\x1a\n"

FINGERPRINT = {
    "cpu": {"model": "Test CPU 9000", "vendor": "AuthenticAMD", "family": 26, "model_number": 2, "uarch": "zen5",
            "machine": "x86_64", "physical_cores": 2, "logical_cpus": 2, "available_cpus": [0, 1],
            "isa_levels": {"avx2": ["avx2", "fma"], "avx512": ["avx512f"]},
            "usable_levels": ["scalar", "sse", "avx2", "avx512"],
            "caches": [{"level": 1, "type": "Data", "size_bytes": 49152, "shared_cpu_list": "0"},
                       {"level": 3, "type": "Unified", "size_bytes": 33554432, "shared_cpu_list": "0-1"}]},
    "memory": {"total_bytes": 25e9, "available_bytes": 24e9, "cgroup_limit_bytes": None},
    "os": {"system": "Linux", "release": "6.1", "distribution": "Debian 12", "hostname": "vm"},
    "vm": {"hypervisor": True, "note": "the guest may not see the real clock"},
    "versions": {"python": "3.11.7", "numpy": "2.0"},
    "blas": [], "gpus": [],
    "theoretical_peak": {
        "float32": {"isa": "avx512", "flops_per_cycle_per_core": 64.0, "cores": 2, "ghz": 2.6,
                    "ghz_source": "test", "flops_per_s": 332.8e9, "table": "zen5"},
        "float64": {"isa": "avx512", "flops_per_cycle_per_core": 32.0, "cores": 2, "ghz": 2.6,
                    "ghz_source": "test", "flops_per_s": 166.4e9, "table": "zen5"}},
    "machine_state": {"governors": None, "turbo": None, "isolated_cpus": [], "cpus_with_smt_siblings": [],
                      "transparent_hugepages": "madvise", "hypervisor": True,
                      "warnings": ["running under a hypervisor"]},
}

PROFILE = {
    "schema_version": 1,
    "device": {"model": "Test CPU 9000"},
    "theoretical": {"float32": {"flops_per_s": 332.8e9, "isa": "avx512", "source": "2 cores x 2.6 GHz x 64"},
                    "float64": {"flops_per_s": 166.4e9, "isa": "avx512", "source": "2 cores x 2.6 GHz x 32"}},
    "compute": [{"dtype": "float32", "isa": "avx512", "threads": 1, "flops_per_s": 260e9, "source": "probe.fma"},
                {"dtype": "float32", "isa": "avx512", "threads": 2, "flops_per_s": 510e9, "source": "probe.fma"},
                {"dtype": "float64", "isa": "avx512", "threads": 2, "flops_per_s": 255e9, "source": "probe.fma"},
                {"dtype": "float32", "isa": "blas", "threads": 2, "flops_per_s": 240e9, "source": "numpy.matmul"}],
    "bandwidth": [{"level": "L1", "threads": 2, "bytes_per_s": 900e9, "source": "probe.sweep"},
                  {"level": "L2", "threads": 2, "bytes_per_s": 380e9, "source": "probe.sweep"},
                  {"level": "DRAM", "threads": 1, "bytes_per_s": 25e9, "source": "probe.stream"},
                  {"level": "DRAM", "threads": 2, "bytes_per_s": 28e9, "source": "probe.stream"}],
    "frequency_ghz": 4.2,
    "runs": ["test/probe"],
}


def make_record(case_id, kind, params, threads, samples=None, flops=None, nbytes=None, status="ok",
                metrics=None, warnings=(), error=None, roofline=None):
    record = {"schema_version": 1, "run_id": "test/run", "case_id": case_id, "kind": kind, "params": params,
              "threads": threads, "status": status, "warnings": list(warnings)}
    if status != "ok":
        record["error"] = error or "no reason"
        return record
    s = np.asarray(samples, dtype=float)
    median = float(np.median(s))
    record["timing"] = {
        "unit": "s per call", "clock": "perf_counter", "n": int(s.size), "median": median,
        "min": float(s.min()), "max": float(s.max()), "mean": float(s.mean()), "stdev": float(s.std(ddof=1)),
        "cv": float(s.std(ddof=1) / s.mean()), "p10": float(np.quantile(s, 0.1)),
        "p90": float(np.quantile(s, 0.9)), "ci95_low": float(np.quantile(s, 0.4)),
        "ci95_high": float(np.quantile(s, 0.6)), "outliers": [], "number": 10, "warmup_iterations": 50,
        "policy": {"min_samples": 10, "budget_s": 0.5, "min_sample_s": 0.002}, "samples": s.tolist()}
    record["cost"] = {"flops": flops, "bytes": nbytes,
                      "intensity": flops / nbytes if flops and nbytes else None}
    m = dict(metrics or {})
    if flops:
        m["flops_per_s"] = flops / median
    if nbytes:
        m["bytes_per_s"] = nbytes / median
    record["metrics"] = m
    record["faults"] = {"minor_per_call": 0.0, "steal_fraction": 0.001}
    record["conditions"] = {"load_before": {"others_percent": 3.0}, "load_after": {"others_percent": 5.0}}
    if roofline is not None:
        record["roofline"] = roofline
    return record


def samples(median, n=30, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    return (median * (1 + noise * rng.standard_normal(n))).tolist()


def write_run(root, name, records, manifest_extra=None, profile="run"):
    """A run folder at root/<device>/<name>; profile: 'run' (a copy in the run folder),
    'device' (only in the device folder) or None."""
    path = root / "test-cpu-2cpu" / name
    path.mkdir(parents=True)
    manifest = {"schema_version": 1, "run_id": f"test-cpu-2cpu/{name}", "status": "complete",
                "suite": {"name": "synthetic", "description": "hand-written records"},
                "command_line": ["harness", "run", "synthetic.yaml"], "git_revision": "abc123-dirty",
                "started_at": 1.7e9, "finished_at": 1.7e9 + 12, "fingerprint": FINGERPRINT,
                "warnings": ["running under a hypervisor", "no isolated CPUs"], **(manifest_extra or {})}
    (path / "manifest.json").write_text(json.dumps(manifest))
    (path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if profile == "run":
        (path / "profile.json").write_text(json.dumps(PROFILE))
    elif profile == "device":
        (path.parent / "profile.json").write_text(json.dumps(PROFILE))
    return path


def synthetic_records():
    n = 1024
    gemm = dict(flops=2.0 * n**3, nbytes=3.0 * n * n * 4)
    records = [
        make_record("gemm[t=1]", "numpy.matmul", {"n": n, "dtype": "float32"}, 1, samples(17e-3), **gemm,
                    warnings=["noisy: coefficient of variation 12.0%"]),
        make_record("gemm[t=2]", "numpy.matmul", {"n": n, "dtype": "float32"}, 2, samples(9e-3, seed=1), **gemm,
                    roofline={"source": "measured", "dtype": "float32", "level": "DRAM",
                              "peak_flops_per_s": 510e9, "bandwidth_bytes_per_s": 28e9, "intensity": 170.7,
                              "ridge_intensity": 18.2, "bound": "compute", "theoretical_time_s": 4.2e-3,
                              "efficiency": 0.47, "attained_flops_per_s": 238e9, "attained_bytes_per_s": 1.4e9,
                              "datasheet": {"peak_flops_per_s": 332.8e9, "theoretical_time_s": 6.45e-3,
                                            "efficiency": 0.72}}),
        make_record("stream[t=1]", "probe.stream", {"impl": "numba", "op": "triad"}, 1, samples(14e-3, seed=2),
                    flops=2.0 * 2**24, nbytes=3.0 * 2**24 * 8,
                    warnings=["other processes kept the pinned CPUs 50% busy before the case (per CPU: {'0': 50.0})"]),
        make_record("stream[t=2]", "probe.stream", {"impl": "numba", "op": "triad"}, 2, samples(12e-3, seed=3),
                    flops=2.0 * 2**24, nbytes=3.0 * 2**24 * 8,
                    warnings=["other processes kept the pinned CPUs 75% busy before the case (per CPU: {'0': 75.0})"]),
        make_record("conv[ic=64,oc=64,h=56,t=1]", "conv.torch", {"ic": 64, "oc": 64, "h": 56, "kh": 3, "stride": 1,
                                                                 "groups": 1, "dtype": "float32"}, 1,
                    samples(4e-3, seed=4), flops=2 * 64 * 64 * 56 * 56 * 9.0, nbytes=(2 * 64 * 56 * 56 + 64 * 64 * 9) * 4.0),
    ]
    for kb, bw in ((16, 480e9), (256, 190e9), (8192, 110e9)):
        nbytes = kb * 1024 * 100.0
        records.append(make_record(f"sweep[kbytes={kb},t=1]", "probe.sweep", {"op": "read", "kbytes": kb}, 1,
                                   samples(nbytes / bw, seed=kb), flops=nbytes / 8, nbytes=nbytes))
    for isa, mhz in (("none", 4100), ("avx2", 4050), ("avx512", 3900)):
        for cores in (1, 2):
            ghz = (mhz - 80 * (cores - 1)) / 1000
            records.append(make_record(f"throttle-{isa}[t={cores}]", "probe.throttle",
                                       {"isa": isa, "dtype": "float32", "seconds": 0.3}, cores,
                                       samples(0.3, n=5, seed=cores), metrics={"ghz": ghz}))
    records.append(make_record("model[name=resnet50,t=1]", "model.onnxruntime", {"name": "resnet50"}, 1,
                               status="failed", error="RuntimeError: model file missing\nsecond line"))
    records.append(make_record("cuda-fma[t=1]", "probe.cuda_fma", {"dtype": "float32"}, 1,
                               status="skipped", error="no CUDA device"))
    return records


def conv_records():
    """One conv config on both backends at 1 and 2 threads, as `harness conv` stores them."""
    shape = {"n": 1, "ic": 32, "oc": 32, "h": 14, "w": 14, "kh": 3, "kw": 3, "stride": 1, "pad": 1, "dilation": 1,
             "groups": 1, "bias": False}
    flops, nbytes = 3612672.0, 87040.0
    records = []
    for backend, path, base in (("torch", {"conv_backend": "Slow2d"}, 97e-6),
                                ("onnxruntime", {"optimized_graph": ["a:ReorderInput", "b:Conv", "c:ReorderOutput"]},
                                 57e-6)):
        for threads in (1, 2):
            r = make_record(f"conv-32x14[backend={backend},t={threads}]", "conv", {"backend": backend, **shape,
                            "dtype": "float32"}, threads, samples(base / threads ** 0.8, seed=threads),
                            flops=flops, nbytes=nbytes,
                            roofline={"source": "measured", "bound": "compute", "theoretical_time_s": 40e-6 / threads,
                                      "efficiency": 40e-6 / threads / (base / threads ** 0.8), "intensity": 41.5,
                                      "attained_flops_per_s": flops / (base / threads ** 0.8),
                                      "peak_flops_per_s": 9e10 * threads, "bandwidth_bytes_per_s": 2e10 * threads,
                                      "level": "L1", "dtype": "float32"})
            r["info"] = {"conv": shape, "backend": path}
            records.append(r)
    return records


def throttle_records():
    return [r for r in synthetic_records() if r["kind"] == "probe.throttle"]
