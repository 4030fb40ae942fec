from harness.analysis import fingerprint as fp
from harness.core import isa


def test_flops_per_cycle_table():
    # Zen 4: two 256-bit FMA pipes; a 512-bit FMA runs as two halves, so no gain over AVX2.
    assert fp.flops_per_cycle("zen4", "avx512", "float32") == 32
    assert fp.flops_per_cycle("zen4", "avx2", "float32") == 32
    assert fp.flops_per_cycle("zen4", "avx512", "float64") == 16
    assert fp.flops_per_cycle("zen4", "scalar", "float32") == 4
    # Cascade Lake (10980XE): two 512-bit FMA pipes.
    assert fp.flops_per_cycle("skylake-server", "avx512", "float32") == 64
    assert fp.flops_per_cycle("skylake-server", "sse", "float32") == 16


def test_uarch_detection():
    assert fp.detect_uarch("AuthenticAMD", 0x19, 0x11, {"avx512f"}) == "zen4"
    assert fp.detect_uarch("AuthenticAMD", 0x19, 0x21, set()) == "zen3"
    assert fp.detect_uarch("GenuineIntel", 6, 0x55, set()) == "skylake-server"
    assert fp.detect_uarch("GenuineIntel", 6, 0x01, set()) is None
    # A KVM guest of a Sapphire Rapids host that reports another model number: AMX tells.
    assert fp.detect_uarch("GenuineIntel", 6, 0xA7, {"avx512f", "amx_tile"}) == "sapphire-rapids"


def test_isa_levels_grouping():
    flags = {"sse", "sse2", "avx", "avx2", "fma", "avx512f", "avx512bw"}
    levels = isa.flags_by_level(flags)
    assert levels["avx512"] == ["avx512f", "avx512bw"]
    assert isa.usable_levels(flags) == ["scalar", "sse", "avx2", "avx512"]
    assert isa.usable_levels({"fp", "asimd"}) == ["scalar", "neon"]


def test_fingerprint_fields():
    info = fp.fingerprint(with_gpu=False)
    assert info["cpu"]["physical_cores"] >= 1
    assert all(c["size_bytes"] > 0 for c in info["cpu"]["caches"])
    assert info["versions"]["numpy"]
    peaks = info["nominal_peak"]
    assert {"float32", "float64"} <= set(peaks) <= {"float32", "float64", "bfloat16"}
    assert peaks["float64"]["flops_per_cycle_per_core"] * 2 == peaks["float32"]["flops_per_cycle_per_core"]
    if "bfloat16" in peaks:  # vdpbf16ps: two bf16 multiply-adds per fp32 lane
        assert peaks["bfloat16"]["flops_per_cycle_per_core"] == 2 * peaks["float32"]["flops_per_cycle_per_core"]


def test_the_blas_ceiling_is_keyed_by_numpys_blas_whatever_else_is_loaded():
    import scipy.linalg  # noqa: F401  (loads scipy's own OpenBLAS beside numpy's)

    from harness.analysis.fingerprint import blas_info
    from harness.session.pipeline import blas_library

    libraries = blas_info()
    mine = [b for b in libraries if b["numpy_blas"]]
    assert len(mine) == 1
    assert blas_library({"blas": libraries}) == f"{mine[0]['internal_api']} {mine[0]['version']}"
    fake = [{"internal_api": "openblas", "version": "0.3.30", "numpy_blas": False}, *mine]
    assert blas_library({"blas": fake}) == blas_library({"blas": mine})
    assert blas_library({"blas": [{"internal_api": "mkl", "version": "2024"}]}) == "mkl 2024"  # older fingerprints
