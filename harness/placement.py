"""Places each measured op on the roofline as its record arrives.

For a record whose workload counted both FLOPs and bytes, the ceilings are the device
profile's (measured, at the record's thread count when it was probed there, else the
best over thread counts), compute for the record's dtype and bandwidth of DRAM (the
document's model: every tensor moved once from memory). Without a profile, only the
datasheet peak from the fingerprint is known, and the placement says so. The datasheet
figure is always kept beside the measured one, labelled, never in its place.
"""
from __future__ import annotations

from harness.roofline import Roofline, efficiency, roofline_bound

# Dtypes with no ceiling of their own are placed against the fp32 one on CPUs that convert
# them to fp32 for the FMA; the record says so.
FALLBACK_DTYPE = {"bfloat16": "float32", "float16": "float32", "int8": "float32", "uint8": "float32"}


class Placer:
    def __init__(self, profile: dict | None, fingerprint: dict, profile_path: str | None = None):
        self.profile = profile
        self.profile_path = profile_path
        self.datasheet = {dtype: p.get("flops_per_s")
                          for dtype, p in (fingerprint.get("theoretical_peak") or {}).items()}
        self.cores = (fingerprint.get("cpu") or {}).get("physical_cores") or 1
        self._roofs: dict = {}

    def _roof(self, threads: int | None) -> Roofline:
        """The profile's ceilings measured at exactly `threads`, or the best over all (None)."""
        if threads not in self._roofs:
            self._roofs[threads] = Roofline.from_profile(self.profile, threads=threads)
        return self._roofs[threads]

    def _pick(self, get, threads: int, what: str, notes: list[str]):
        """A measured ceiling at the record's thread count, else the best over thread counts,
        saying so in `notes`; (None, None) when the profile has none."""
        for roof, fallback in ((self._roof(threads), False), (self._roof(None), True)):
            try:
                ceiling = get(roof)
            except KeyError:
                continue
            if fallback:
                notes.append(f"no {what} ceiling was measured at {threads} threads: used the best "
                             f"over thread counts ({ceiling.threads} threads)")
            return ceiling.value, ceiling.threads
        return None, None

    def _ceilings(self, dtype: str, threads: int) -> tuple:
        """(peak FLOP/s, DRAM B/s, source, dtype whose ceiling was used, ceiling threads, notes)."""
        notes: list[str] = []
        if self.profile is not None:
            for candidate in (dtype, FALLBACK_DTYPE.get(dtype)):
                if candidate is None:
                    continue
                peak, peak_threads = self._pick(lambda r: r.peak(candidate), threads, f"{candidate} compute", notes)
                if peak is None:
                    continue
                bw, bw_threads = self._pick(lambda r: r.bandwidth("DRAM"), threads, "DRAM bandwidth", notes)
                return peak, bw, "measured", candidate, {"compute": peak_threads, "bandwidth": bw_threads}, notes
        used = dtype if self.datasheet.get(dtype) else FALLBACK_DTYPE.get(dtype, "float32")
        return self._sheet(used, threads), None, "theoretical", used, None, notes

    def _sheet(self, dtype: str, threads: int) -> float | None:
        """The datasheet peak for the cores in use: a 1-thread op is judged against one core."""
        peak = self.datasheet.get(dtype)
        return peak * min(threads, self.cores) / self.cores if peak else None

    def __call__(self, record: dict) -> dict:
        cost = record.get("cost") or {}
        timing = record.get("timing") or {}
        flops, nbytes = cost.get("flops"), cost.get("bytes")
        if (record.get("kind") or "").startswith("probe."):
            return record  # a probe measures a ceiling; judging it against the roof is circular
        if record.get("status") != "ok" or not flops or not nbytes or not (timing.get("median") or 0) > 0:
            return record
        measured_s = timing["median"]
        dtype = (record.get("params") or {}).get("dtype") or "float32"
        peak, bw, source, used, ceiling_threads, notes = self._ceilings(dtype, record.get("threads") or 1)
        if peak is None:
            return record
        if bw is not None:
            b = roofline_bound(flops, nbytes, peak, bw)
            bound, theoretical_s, ridge = b.bound, b.theoretical_time_s, b.ridge_intensity
        else:  # no bandwidth measured: only the compute side of the roof is known
            bound, theoretical_s, ridge = "compute (bandwidth unknown)", flops / peak, None
        sheet_peak = self._sheet(used, record.get("threads") or 1)
        record["roofline"] = {
            "source": source,
            "profile": self.profile_path if source == "measured" else None,
            "dtype": dtype,
            "ceiling_dtype": used,
            "ceiling_threads": ceiling_threads,
            "notes": notes,
            "level": "DRAM",
            "peak_flops_per_s": peak,
            "bandwidth_bytes_per_s": bw,
            "intensity": flops / nbytes,
            "ridge_intensity": ridge,
            "bound": bound,
            "theoretical_time_s": theoretical_s,
            "efficiency": efficiency(measured_s, theoretical_s),
            "attained_flops_per_s": flops / measured_s,
            "attained_bytes_per_s": nbytes / measured_s,
            "datasheet": {
                "peak_flops_per_s": sheet_peak,
                "theoretical_time_s": flops / sheet_peak if sheet_peak else None,
                "efficiency": efficiency(measured_s, flops / sheet_peak) if sheet_peak else None,
                "note": "compute only: the fingerprint has no datasheet bandwidth",
            },
        }
        return record
