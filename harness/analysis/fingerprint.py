"""The device fingerprint: what the machine is, and its nominal peak FLOP/s.

Nominal peak = physical cores x GHz as the OS reports it x FLOPs/cycle/core at the best ISA
level: the datasheet arithmetic, never a measurement (in a VM the OS's GHz is often the
timestamp-counter rate, not the core clock; the source of the GHz is stated). The
FLOPs/cycle come from the table below (FMA pipes x lanes x 2), written out per
microarchitecture because vector width alone misleads: Zen 4 and Zen 5 mobile parts
run a 512-bit FMA as two 256-bit halves, so AVX-512 there peaks no higher than AVX2.
Every peak says where its GHz came from; the probes measure the real figures.

threadpoolctl and torch are imported inside functions (deferred on purpose: the fingerprint must not
start CUDA or thread pools a worker sizes later).
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import re

import numpy  # loaded so that threadpoolctl sees its BLAS (blas_info)

from harness.core import conditions, isa, system
from harness.core.store import slug

# FMA pipes and the widest datapath per microarchitecture: FLOPs/cycle/core for fp32 at
# a vector width w bits = pipes x min(w, datapath)/32 x 2. fp64 is half of fp32.
# Sources: vendors' optimisation manuals; Agner Fog's microarchitecture tables.
UARCH_FMA = {
    # name: (FMA pipes, datapath bits, widest ISA level)
    "zen1": (2, 128, "avx2"),          # 256-bit ops split in two
    "zen2": (2, 256, "avx2"),
    "zen3": (2, 256, "avx2"),
    "zen4": (2, 256, "avx512"),        # 512-bit FMA runs as two 256-bit halves
    "zen5": (2, 512, "avx512"),        # server/desktop parts: full 512-bit datapath
    "skylake-client": (2, 256, "avx2"),
    "skylake-server": (2, 512, "avx512"),   # Skylake-SP, Cascade Lake (10980XE), Cooper Lake
    "icelake-client": (1, 512, "avx512"),   # one 512-bit FMA (ports 0+1 fused)
    "icelake-server": (2, 512, "avx512"),
    "sapphire-rapids": (2, 512, "avx512"),
    "haswell": (2, 256, "avx2"),
    "neoverse-n1": (2, 128, "neon"),
    "neoverse-v1": (2, 256, "sve"),
    "apple-m1": (4, 128, "neon"),
}
DTYPE_LANE_BITS = {"float64": 64, "float32": 32, "float16": 16, "bfloat16": 16}


def flops_per_cycle(uarch: str, level: str, dtype: str = "float32") -> float:
    """FLOPs per cycle per core: FMA pipes x lanes x 2 (a multiply-add is 2 FLOPs).

    fp16/bf16 are counted at the fp32 rate: on these CPUs they convert to fp32 for the FMA
    (AVX512-FP16 and AMX change that; the AMX tile rate is not modelled here).
    """
    pipes, datapath, _ = UARCH_FMA.get(uarch, (2, isa.vector_bits(level), level))
    lane_bits = max(DTYPE_LANE_BITS.get(dtype, 32), 32)
    width = 32 if level == "scalar" else min(isa.vector_bits(level), datapath)
    if level == "scalar":
        return pipes * 2.0
    return pipes * (width / lane_bits) * 2.0


def detect_uarch(vendor: str, family: int | None, model: int | None, flags: set[str]) -> str | None:
    """Microarchitecture from CPUID family/model; None when unknown (the table falls back
    to 2 FMA pipes at the widest vector width, labelled 'assumed')."""
    if family is None:
        return None
    if "AMD" in vendor:
        if family == 0x17:
            return "zen2" if (model or 0) >= 0x30 else "zen1"
        if family == 0x19:
            return "zen4" if "avx512f" in flags else "zen3"
        if family == 0x1A:
            return "zen5"
    if "Intel" in vendor and family == 6:
        server = {0x55: "skylake-server", 0x6A: "icelake-server", 0x6C: "icelake-server",
                  0x8F: "sapphire-rapids", 0xCF: "sapphire-rapids"}
        client = {0x7D: "icelake-client", 0x7E: "icelake-client", 0x8C: "icelake-client",
                  0x8D: "icelake-client", 0x4E: "skylake-client", 0x5E: "skylake-client",
                  0x8E: "skylake-client", 0x9E: "skylake-client", 0x3C: "haswell", 0x3F: "haswell"}
        found = server.get(model) or client.get(model)
        if found is None and "amx_tile" in flags:
            # A hypervisor may report another model number; AMX exists only on Sapphire
            # Rapids and its successors, which all have two 512-bit FMA pipes per core.
            return "sapphire-rapids"
        return found
    return None


def _nominal_ghz(brand: str, cpuinfo: dict) -> tuple[float | None, str]:
    m = re.search(r"@\s*([\d.]+)\s*GHz", brand)
    if m:
        return float(m.group(1)), "brand string"
    maxfreq = system.cpufreq_max_ghz()
    if maxfreq:
        return maxfreq, "cpufreq cpuinfo_max_freq"
    if "cpu MHz" in cpuinfo:
        return float(cpuinfo["cpu MHz"]) / 1000.0, ("/proc/cpuinfo 'cpu MHz' (in a VM often the "
                                                    "timestamp-counter rate, not the core clock)")
    return None, "unknown"


def _versions() -> dict:
    versions = {"python": platform.python_version()}
    for dist in ("numpy", "torch", "onnxruntime", "onnx", "numba", "llvmlite", "pandas", "scipy"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def blas_info() -> list[dict]:
    from threadpoolctl import threadpool_info

    keep = ("internal_api", "version", "architecture", "threading_layer", "num_threads", "prefix")
    numpy_prefix = os.path.dirname(numpy.__file__)  # .../site-packages/numpy (and numpy.libs beside it)
    # numpy_blas marks the library numpy.matmul calls: which others are loaded (scipy's, torch's)
    # depends on what the process imported, so only that one may key the BLAS ceiling.
    return [{**{k: p.get(k) for k in keep},
             "numpy_blas": (p.get("filepath") or "").startswith(numpy_prefix)}
            for p in threadpool_info()]


def gpus() -> list[dict]:
    """GPUs seen by torch.cuda; empty without CUDA."""
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        out.append({"index": i, "name": p.name, "memory_bytes": p.total_memory,
                    "sm_count": p.multi_processor_count, "capability": f"{p.major}.{p.minor}"})
    return out


def fingerprint(with_gpu: bool = True) -> dict:
    cpuinfo = system.cpuinfo_fields()
    flags = set((cpuinfo.get("flags") or cpuinfo.get("Features") or "").split())
    vendor = cpuinfo.get("vendor_id") or cpuinfo.get("CPU implementer") or platform.processor()
    brand = cpuinfo.get("model name") or platform.processor() or "unknown cpu"
    family = int(cpuinfo["cpu family"]) if cpuinfo.get("cpu family", "").isdigit() else None
    model = int(cpuinfo["model"]) if cpuinfo.get("model", "").isdigit() else None
    uarch = detect_uarch(vendor, family, model, flags)
    logical = os.cpu_count() or 1
    physical = system.physical_cores()
    ghz, ghz_source = _nominal_ghz(brand, cpuinfo)
    levels = isa.usable_levels(flags)
    best = levels[-1]
    if uarch and UARCH_FMA[uarch][2] in levels:
        best = UARCH_FMA[uarch][2]
    peaks = {}
    for dtype in ("float32", "float64"):
        fpc = flops_per_cycle(uarch or "", best, dtype)
        peaks[dtype] = {
            "isa": best,
            "flops_per_cycle_per_core": fpc,
            "cores": physical,
            "ghz": ghz,
            "ghz_source": ghz_source,
            "flops_per_s": physical * ghz * 1e9 * fpc if ghz else None,
            "table": uarch or "assumed: 2 FMA pipes at the widest vector width",
        }
    if "avx512_bf16" in flags and best == "avx512":
        # vdpbf16ps does two bf16 multiply-adds per fp32 lane on the FMA pipes: twice fp32.
        fpc = 2 * flops_per_cycle(uarch or "", best, "float32")
        peaks["bfloat16"] = {**peaks["float32"], "isa": "avx512_bf16", "flops_per_cycle_per_core": fpc,
                             "flops_per_s": physical * ghz * 1e9 * fpc if ghz else None}
    state = conditions.machine_state()
    mem_total, mem_available = system.memory_totals()
    info = {
        "cpu": {
            "model": brand,
            "vendor": vendor,
            "family": family,
            "model_number": model,
            "uarch": uarch,
            "machine": platform.machine(),
            "physical_cores": physical,
            "logical_cpus": logical,
            "available_cpus": system.available_cpus(),
            "isa_levels": isa.flags_by_level(flags),
            "usable_levels": levels,
            "caches": system.cache_list(),
        },
        "memory": {"total_bytes": mem_total, "available_bytes": mem_available,
                   "cgroup_limit_bytes": system.cgroup_memory_limit()},
        "os": {"system": platform.system(), "release": platform.release(),
               "distribution": system.os_release(), "hostname": platform.node()},
        "vm": {"hypervisor": state["hypervisor"],
               "note": ("the guest may not see the real clock; CPUs may be shared with other guests"
                        if state["hypervisor"] else None)},
        "frequency_sources": {
            "cpufreq_sysfs": state["cpufreq_available"],
            "proc_cpuinfo_mhz": float(cpuinfo["cpu MHz"]) if "cpu MHz" in cpuinfo else None,
        },
        "versions": _versions(),
        "blas": blas_info(),
        "env": {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS_", "MKL_", "OMP_", "NUMBA_"))},
        "gpus": gpus() if with_gpu else [],
        "nominal_peak": peaks,
        "machine_state": state,
    }
    return info


def device_slug(fp: dict) -> str:
    cpu = fp["cpu"]
    name = f"{cpu['model']}-{cpu['logical_cpus']}cpu"
    if fp.get("gpus"):
        name += "-" + fp["gpus"][0]["name"]
    return slug(name)
