"""The device fingerprint as `harness device` prints it."""
from __future__ import annotations

from harness.core.text import fmt_bytes_binary, fmt_number, fmt_si


def format_fingerprint(fp: dict) -> str:
    """The readable table `harness device` prints."""
    cpu = fp["cpu"]
    gib = 1024**3
    rows = [
        ("CPU", f"{cpu['model']} ({cpu['vendor']}, family {cpu['family']} model {cpu['model_number']}, "
                f"uarch {cpu['uarch'] or 'unknown'})"),
        ("Cores", f"{cpu['physical_cores']} physical, {cpu['logical_cpus']} logical; "
                  f"this process may use CPUs {cpu['available_cpus']}"),
        ("ISA levels", "; ".join(f"{lvl}: {' '.join(f)}" for lvl, f in cpu["isa_levels"].items())),
        ("Caches", ", ".join(f"L{c['level']} {c['type'].lower() if c['type'] else ''} "
                             f"{fmt_bytes_binary(c['size_bytes'])} (shared by CPUs {c['shared_cpu_list']})"
                             for c in cpu["caches"]) or "not reported"),
        ("Memory", f"{fp['memory']['total_bytes'] / gib:.1f} GiB total, "
                   f"{fp['memory']['available_bytes'] / gib:.1f} GiB available"
                   + (f", cgroup limit {fp['memory']['cgroup_limit_bytes'] / gib:.1f} GiB"
                      if fp["memory"]["cgroup_limit_bytes"] else "")),
        ("OS", f"{fp['os']['distribution'] or fp['os']['system']}, kernel {fp['os']['release']}"),
        ("VM", "yes (hypervisor flag): " + fp["vm"]["note"] if fp["vm"]["hypervisor"] else "no hypervisor flag"),
        ("Frequency sources", f"cpufreq sysfs: {'yes' if fp['frequency_sources']['cpufreq_sysfs'] else 'no'}; "
                              f"/proc/cpuinfo cpu MHz: {fp['frequency_sources']['proc_cpuinfo_mhz']}"),
        ("Libraries", ", ".join(f"{k} {v}" for k, v in fp["versions"].items() if v)),
        ("BLAS", "; ".join(f"{b['internal_api']} {b['version']} ({b['architecture']}, {b['num_threads']} threads)"
                           for b in fp["blas"]) or "none loaded"),
        ("GPUs", ", ".join(f"{g['name']} ({g['memory_bytes'] / gib:.0f} GiB, {g['sm_count']} SMs)"
                           for g in fp["gpus"]) or "none (torch.cuda not available)"),
    ]
    peaks = fp.get("nominal_peak") or fp.get("theoretical_peak") or {}
    sources = {p["ghz_source"] for p in peaks.values()}
    for dtype, p in peaks.items():
        value = fmt_si(p["flops_per_s"], "FLOP/s", 4) if p["flops_per_s"] else "unknown (no GHz)"
        rows.append((f"Nominal peak {dtype}",
                     f"{value} = {p['cores']} cores x {fmt_number(p['ghz'], 4)} GHz x "
                     f"{p['flops_per_cycle_per_core']:g} FLOP/cycle ({p['isa']}, table: {p['table']})"))
    if sources:
        rows.append(("Nominal GHz from", "; ".join(sorted(sources)) + " (a datasheet figure, not a measurement: "
                                                               "`harness probe` measures the clock under load)"))
    for w in fp["machine_state"]["warnings"]:
        rows.append(("Warning", w))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
