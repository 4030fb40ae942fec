"""Instruction-set levels: the one list of them, their vector widths and the CPU flags that
define each.

A level is what a probe forces (`probe.fma isa=avx2`), what the fingerprint says a CPU
has, what a throttle column is and what a ceiling is measured at. Narrow to wide; x86 and
Arm levels are kept apart because a CPU has one family or the other.
"""
from __future__ import annotations

from harness.core import system

# Vector FMA levels, narrow to wide, per architecture family.
X86_LEVELS = ("scalar", "sse", "avx2", "avx512")
ARM_LEVELS = ("scalar", "neon", "sve")
LEVELS = ("scalar", "sse", "avx2", "avx512", "neon", "sve")
# Register width of one vector at each level, in bits (scalar: one element).
VECTOR_BITS = {"scalar": None, "sse": 128, "avx2": 256, "avx512": 512, "neon": 128, "sve": 256}
# The flag that makes a level usable for FMA-peak purposes (avx2's FMA work needs FMA3).
KEY_FLAG = {"sse": "sse2", "avx2": "fma", "avx512": "avx512f", "neon": "asimd", "sve": "sve"}
# Flags shown per level by the fingerprint (avx and amx are named but are not FMA levels here).
FLAGS = {
    "sse": ["sse", "sse2", "ssse3", "sse4_1", "sse4_2"],
    "avx": ["avx"],
    "avx2": ["avx2", "fma"],
    "avx512": ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni",
               "avx512_bf16", "avx512_fp16", "avx512ifma", "avx512vbmi"],
    "amx": ["amx_tile", "amx_bf16", "amx_int8"],
    "neon": ["asimd", "asimdhp", "asimddp", "fphp"],
    "sve": ["sve", "sve2"],
}
# The throttle table's columns: "none" is the first source document's "Normal" column
# (integer adds only, no vector load), then every level from lightest to heaviest.
LOAD_LEVELS = ("none", *LEVELS)


def flags_by_level(flags: set[str]) -> dict[str, list[str]]:
    """The flags present at each level, only levels with any flag present."""
    found = {level: [f for f in names if f in flags] for level, names in FLAGS.items()}
    return {level: present for level, present in found.items() if present}


def usable_levels(flags: set[str] | None = None) -> list[str]:
    """Vector levels usable for FMA work, narrow to wide, always starting with scalar
    (this CPU's, from /proc/cpuinfo, when `flags` is None)."""
    flags = system.cpu_flags() if flags is None else flags
    return ["scalar"] + [level for level in LEVELS[1:] if KEY_FLAG[level] in flags]


def vector_bits(level: str) -> int:
    """Bits one instruction works on at `level`: 32 for scalar fp32 work, else the width."""
    return VECTOR_BITS.get(level) or 32
