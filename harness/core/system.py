"""The one reader of /sys and /proc: CPU topology, caches, flags, memory, huge pages, cpufreq,
and the peak resident memory of this process.

Everything here reads and never writes (the one exception is the peak-RSS counter reset,
which only touches this process's own accounting). Every reader returns None, an empty
value or a stated default where the file is absent, as it is in most VMs and containers:
a missing fact is reported as missing, never guessed.
"""
from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import psutil

SYS_CPU = Path("/sys/devices/system/cpu")
PROC = Path("/proc")
# When sysfs reports no cache at all, STREAM-style sizing still needs a last-level cache
# figure; 32 MiB is larger than most server L3 slices a 2-vCPU guest sees.
DEFAULT_LLC_BYTES = 32 * 1024**2


def read_text(path: str | Path) -> str | None:
    try:
        return Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def cpu_list(text: str | None) -> list[int]:
    """Parses the kernel's CPU-list format: '0-3,8,10-11'."""
    cpus: list[int] = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def size_text(text: str) -> int:
    """'48K' -> 49152: sysfs cache sizes are binary kilo/mega."""
    text = text.strip()
    scale = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(text[-1:].upper(), 1)
    return int(text.rstrip("KMGkmg")) * scale


# --------------------------------------------------------------------------- CPU

def cpuinfo_fields() -> dict[str, str]:
    """The first CPU's fields of /proc/cpuinfo (model name, flags, cpu MHz, ...)."""
    fields: dict[str, str] = {}
    for line in (read_text(PROC / "cpuinfo") or "").splitlines():
        if ":" in line:
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    return fields


def cpuinfo_mhz_per_cpu() -> dict[int, float]:
    """'cpu MHz' of every processor in /proc/cpuinfo (in a VM, often the timestamp-counter
    rate rather than the core clock)."""
    out: dict[int, float] = {}
    cpu = None
    for line in (read_text(PROC / "cpuinfo") or "").splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        try:
            if key == "processor":
                cpu = int(value)
            elif key == "cpu MHz" and cpu is not None:
                out[cpu] = float(value)
        except ValueError:
            continue
    return dict(sorted(out.items()))


def cpu_flags() -> set[str]:
    fields = cpuinfo_fields()
    return set((fields.get("flags") or fields.get("Features") or "").split())


def available_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def core_of(cpu: int) -> tuple[str, str]:
    """(package, core) of a logical CPU; SMT siblings share it."""
    topo = SYS_CPU / f"cpu{cpu}" / "topology"
    return (read_text(topo / "physical_package_id") or "0", read_text(topo / "core_id") or str(cpu))


def smt_siblings(cpu: int) -> list[int]:
    return cpu_list(read_text(SYS_CPU / f"cpu{cpu}" / "topology" / "thread_siblings_list")) or [cpu]


def physical_cores() -> int:
    cores = {core_of(c) for c in range(os.cpu_count() or 1) if (SYS_CPU / f"cpu{c}").exists()}
    return len(cores) or (os.cpu_count() or 1)


def isolated_cpus() -> list[int]:
    return cpu_list(read_text(SYS_CPU / "isolated"))


def cpufreq_available() -> bool:
    return (SYS_CPU / "cpu0" / "cpufreq").exists()


def cpufreq_mhz(cpus: list[int]) -> dict[int, float] | None:
    """Current frequency per CPU from cpufreq, where the OS exposes it (most VMs do not)."""
    out = {}
    for cpu in cpus:
        text = read_text(SYS_CPU / f"cpu{cpu}" / "cpufreq" / "scaling_cur_freq")
        if text and text.isdigit():
            out[cpu] = int(text) / 1000.0
    return out or None


def cpufreq_max_ghz() -> float | None:
    text = read_text(SYS_CPU / "cpu0" / "cpufreq" / "cpuinfo_max_freq")
    return int(text) / 1e6 if text and text.isdigit() else None


def governors(cpus: list[int]) -> dict[int, str]:
    found = {c: read_text(SYS_CPU / f"cpu{c}" / "cpufreq" / "scaling_governor") for c in cpus}
    return {c: g for c, g in found.items() if g}


def turbo_enabled() -> bool | None:
    """True/False where intel_pstate or cpufreq boost says, None where neither exists."""
    no_turbo = read_text(SYS_CPU / "intel_pstate" / "no_turbo")
    if no_turbo is not None:
        return no_turbo == "0"
    boost = read_text(SYS_CPU / "cpufreq" / "boost")
    return boost == "1" if boost is not None else None


# --------------------------------------------------------------------------- caches

def cache_list(cpu: int = 0, cpu_root: Path = SYS_CPU) -> list[dict]:
    """The caches of one CPU: level, type, size in bytes, CPUs sharing it (for the fingerprint)."""
    caches = []
    for index in sorted((cpu_root / f"cpu{cpu}" / "cache").glob("index*")):
        size = read_text(index / "size")
        if not size:
            continue
        try:
            size_bytes = size_text(size)
        except ValueError:
            size_bytes = None
        caches.append({"level": int(read_text(index / "level") or 0), "type": read_text(index / "type"),
                       "size_bytes": size_bytes, "shared_cpu_list": read_text(index / "shared_cpu_list")})
    return caches


def cache_sizes(cpu: int = 0, cpu_root: Path = SYS_CPU) -> dict[str, int]:
    """Data and unified cache sizes of one CPU by level, e.g. {"L1": 49152, "L2": 1048576}:
    one instance each (what one core sees); instruction caches are left out."""
    sizes = {f"L{c['level']}": c["size_bytes"] for c in cache_list(cpu, cpu_root)
             if c["type"] in ("Data", "Unified") and c["size_bytes"]}
    return dict(sorted(sizes.items()))


def cache_capacity(cpus: list[int] | None = None, cpu_root: Path = SYS_CPU) -> dict[str, int]:
    """Cache bytes by level that threads on `cpus` (default: every CPU) hold together: the sum
    of the distinct cache instances they use. Private caches add up across cores (two threads
    on two cores have 2 x L1 and 2 x L2), a shared cache counts once. This, not one core's
    sizes, is where a multi-thread sweep's curve steps down and what a multi-thread op's
    working set must fit in."""
    if cpus is None:
        dirs = list(cpu_root.glob("cpu[0-9]*/cache"))
    else:
        dirs = [cpu_root / f"cpu{cpu}" / "cache" for cpu in cpus]
    instances: dict[str, dict[str, int]] = {}
    for cache_dir in dirs:
        for index in cache_dir.glob("index*"):
            try:
                if (index / "type").read_text().strip() not in ("Data", "Unified"):
                    continue
                level = f"L{int((index / 'level').read_text())}"
                shared = (index / "shared_cpu_list").read_text().strip()
                instances.setdefault(level, {})[shared] = size_text((index / "size").read_text())
            except (OSError, ValueError):
                continue
    return {level: sum(sizes.values()) for level, sizes in sorted(instances.items())}


def llc_total_bytes() -> int:
    """Sum of every distinct last-level cache instance on the machine (STREAM's rule is
    against the sum of all last-level caches); DEFAULT_LLC_BYTES when /sys says nothing."""
    capacity = cache_capacity()
    return capacity[max(capacity, key=lambda name: int(name[1:]))] if capacity else DEFAULT_LLC_BYTES


# --------------------------------------------------------------------------- memory

def cgroup_memory_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        text = read_text(path)
        if text and text.isdigit() and int(text) < 1 << 60:
            return int(text)
    return None


def cgroup_room() -> int | None:
    """Bytes this process's cgroup may still allocate (limit - usage), or None without a limit."""
    candidates = []
    for line in (read_text(PROC / "self" / "cgroup") or "").splitlines():
        try:
            _, controllers, path = line.split(":", 2)
        except ValueError:
            continue
        if controllers == "":  # cgroup v2
            candidates.append((Path("/sys/fs/cgroup" + path) / "memory.max",
                               Path("/sys/fs/cgroup" + path) / "memory.current"))
        elif "memory" in controllers.split(","):  # cgroup v1
            base = Path("/sys/fs/cgroup/memory" + path)
            candidates.append((base / "memory.limit_in_bytes", base / "memory.usage_in_bytes"))
    candidates += [(Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")),
                   (Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
                    Path("/sys/fs/cgroup/memory/memory.usage_in_bytes"))]
    for limit_file, usage_file in candidates:
        limit = read_text(limit_file)
        if limit is None:
            continue
        if limit == "max" or not limit.isdigit() or int(limit) >= 1 << 60:  # v1: "none" is huge
            return None
        usage = read_text(usage_file)
        return max(0, int(limit) - (int(usage) if usage and usage.isdigit() else 0))
    return None


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (another user's counts: it cannot be signalled)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cpu_busy_percent(interval: float) -> list[float]:
    """Each CPU's busy share (all processes) over the next `interval` seconds, from /proc/stat."""
    return psutil.cpu_percent(interval=interval, percpu=True)


def own_cpu_seconds() -> float:
    """User + system CPU seconds this process (all its threads) has used so far."""
    return sum(psutil.Process().cpu_times()[:2])


def cpu_steal_seconds(cpus: list[int]) -> float:
    """Seconds the hypervisor gave `cpus` to someone else (0 where not reported)."""
    times = psutil.cpu_times(percpu=True)
    return sum(getattr(times[c], "steal", 0.0) for c in cpus if c < len(times))


def memory_totals() -> tuple[int, int]:
    """(total, available) bytes of the machine, as the kernel reports them (no cgroup)."""
    mem = psutil.virtual_memory()
    return mem.total, mem.available


def total_memory_bytes() -> int:
    """The machine's memory, or its cgroup limit where that is lower."""
    total = psutil.virtual_memory().total
    limit = cgroup_memory_limit()
    return min(total, limit) if limit else total


def available_memory() -> int:
    """Bytes that can be allocated without swapping or hitting a cgroup limit: the smaller of
    the kernel's MemAvailable and the cgroup's remaining room."""
    room = psutil.virtual_memory().available
    cgroup = cgroup_room()
    return min(room, cgroup) if cgroup is not None else room


def thp_mode() -> str:
    """Transparent huge page mode ("always", "madvise", "never"), or "" if unknown."""
    found = re.search(r"\[(\w+)\]", read_text("/sys/kernel/mm/transparent_hugepage/enabled") or "")
    return found.group(1) if found else ""


def thp_setting() -> str | None:
    """The whole THP line as the kernel prints it ('always [madvise] never')."""
    return read_text("/sys/kernel/mm/transparent_hugepage/enabled")


def page_info(array) -> dict:
    """The pages backing a NumPy array, from /proc/self/smaps.

    Sums over every mapping the array overlaps (NumPy's madvise(MADV_HUGEPAGE) splits its
    allocation into several mappings). AnonHugePages counts transparent huge pages; it is
    clipped to the overlap but a mapping shared with other data may still lend some.
    kernel_page_size is the base page of the mapping holding most of the array (hugetlbfs
    shows its huge size there; THP does not, it shows in huge_pages_bytes).
    """
    start = array.ctypes.data
    end = start + array.nbytes
    info = {"huge_pages_bytes": 0, "kernel_page_size": None, "mappings": 0,
            "thp_advised": False, "thp_mode": thp_mode()}
    header = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) ")
    largest = overlap = 0
    for line in (read_text(PROC / "self" / "smaps") or "").splitlines():
        found = header.match(line)
        if found:
            lo, hi = int(found.group(1), 16), int(found.group(2), 16)
            overlap = max(0, min(hi, end) - max(lo, start))
            if overlap:
                info["mappings"] += 1
            continue
        if not overlap:
            continue
        key, _, value = line.partition(":")
        if key == "AnonHugePages":
            info["huge_pages_bytes"] += min(overlap, int(value.split()[0]) * 1024)
        elif key == "KernelPageSize" and overlap > largest:
            largest = overlap
            info["kernel_page_size"] = int(value.split()[0]) * 1024
        elif key == "VmFlags" and "hg" in value.split():
            info["thp_advised"] = True
    info["huge_page_fraction"] = round(info["huge_pages_bytes"] / array.nbytes, 3) if array.nbytes else 0.0
    return info


def rss_bytes() -> int:
    return psutil.Process().memory_info().rss


def _vm_hwm() -> int | None:
    for line in (read_text(PROC / "self" / "status") or "").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


class PeakRSS:
    """Peak resident memory of this process over a phase: the kernel's VmHWM after a reset
    through /proc/self/clear_refs (exact), or, where that reset is refused, a thread that
    samples RSS every 0.5 ms (a lower bound: a spike shorter than that is missed)."""

    def __init__(self):
        self.exact = self.reset() and _vm_hwm() is not None
        self.method = ("VmHWM reset via /proc/self/clear_refs" if self.exact
                       else "RSS sampled every 0.5 ms (a lower bound)")

    @staticmethod
    def reset() -> bool:
        try:
            with open(PROC / "self" / "clear_refs", "w") as fh:
                fh.write("5")
            return True
        except OSError:
            return False

    def peak_since_reset(self) -> int | None:
        """VmHWM since the last reset; None where the kernel cannot tell."""
        return _vm_hwm() if self.exact else None

    def measure(self, fn):
        """(fn(), peak RSS in bytes while it ran)."""
        if self.exact:
            self.reset()
            result = fn()
            return result, _vm_hwm()
        peak = [rss_bytes()]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], rss_bytes())
                time.sleep(0.0005)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            result = fn()
        finally:
            stop.set()
            thread.join()
        return result, max(peak[0], rss_bytes())


# --------------------------------------------------------------------------- OS

def os_release() -> str | None:
    for line in (read_text("/etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return None
