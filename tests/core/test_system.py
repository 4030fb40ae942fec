"""The one reader of /sys and /proc, on files written by the tests and on this machine."""
import pytest

from harness.core import system
from kernels.stream import aligned_empty


def test_page_info_fields():
    a = aligned_empty(4 * 1024 * 1024)  # 32 MiB, 2 MiB aligned
    a.fill(1.0)
    info = system.page_info(a)
    assert info["mappings"] >= 1
    assert info["kernel_page_size"] in (4096, 16384, 65536, 2 * 1024 * 1024)
    assert 0 <= info["huge_pages_bytes"] <= a.nbytes
    assert 0.0 <= info["huge_page_fraction"] <= 1.0
    assert info["thp_mode"] in ("always", "madvise", "never", "")


def test_cache_sizes_parses_sysfs(tmp_path):
    for index, (level, kind, size) in enumerate([(1, "Data", "48K"), (1, "Instruction", "32K"),
                                                 (2, "Unified", "1024K"), (3, "Unified", "32M")]):
        d = tmp_path / "cpu0" / "cache" / f"index{index}"
        d.mkdir(parents=True)
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    assert system.cache_sizes(0, tmp_path) == {"L1": 49152, "L2": 1048576, "L3": 33554432}


def test_cache_capacity_adds_private_caches(tmp_path):
    """Two cores: private L1 and L2 each, one shared L3."""
    for cpu in (0, 1):
        for index, (level, kind, size, shared) in enumerate([(1, "Data", "48K", str(cpu)),
                                                             (1, "Instruction", "32K", str(cpu)),
                                                             (2, "Unified", "1024K", str(cpu)),
                                                             (3, "Unified", "32768K", "0-1")]):
            d = tmp_path / f"cpu{cpu}" / "cache" / f"index{index}"
            d.mkdir(parents=True)
            for name, value in (("level", level), ("type", kind), ("size", size), ("shared_cpu_list", shared)):
                (d / name).write_text(f"{value}\n")
    mib = 1024 * 1024
    assert system.cache_capacity([0], tmp_path) == {"L1": 48 * 1024, "L2": mib, "L3": 32 * mib}
    assert system.cache_capacity([0, 1], tmp_path) == {"L1": 96 * 1024, "L2": 2 * mib, "L3": 32 * mib}
    assert system.cache_capacity(None, tmp_path) == system.cache_capacity([0, 1], tmp_path)


def test_cache_sizes_here():
    sizes = system.cache_sizes()
    if not sizes:
        pytest.skip("no cache information in /sys")
    assert list(sizes) == sorted(sizes) and all(v > 0 for v in sizes.values())
