"""How numbers are written, everywhere: times, decimal SI values, percentages, binary sizes,
and the one console table renderer. Imports nothing of the project (pyperf's formatter is
a leaf module for the same reason: anything may use it).

Units are decimal SI (1 GB = 1e9 bytes, 1 GFLOP/s = 1e9 FLOP/s); KiB/MiB only for caches
and memory sizes, labelled. Times are seconds per call, written with the SI prefix that
keeps 1-999 before the unit (µs for microseconds).
"""
from __future__ import annotations

import math

TIME_UNITS = (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9))
SI_PREFIXES = (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3))


def finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def fmt_time(seconds, digits: int = 3) -> str:
    """0.00224 -> '2.24 ms'; '' for a missing or non-finite value."""
    if not finite(seconds):
        return ""
    for unit, scale in TIME_UNITS:
        if abs(seconds) >= scale:
            return f"{seconds / scale:.{digits}g} {unit}"
    return f"{seconds / 1e-9:.{digits}g} ns"


def fmt_duration(seconds: float) -> str:
    """Wall-clock durations of long work: 42 -> '42s', 185 -> '3m05s', 7300 -> '2h01m'."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def fmt_si(value, unit: str, digits: int = 3) -> str:
    """Decimal SI: 1.23e11, 'FLOP/s' -> '123 GFLOP/s'; '' for a missing value."""
    if not finite(value):
        return ""
    for prefix, scale in SI_PREFIXES:
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g} {prefix}{unit}"
    return f"{value:.{digits}g} {unit}".rstrip()


def fmt_pct(fraction, digits: int = 3) -> str:
    """0.482 -> '48.2%'; ten or more times a whole as '1544%', not '1.54e+03%'."""
    if not finite(fraction):
        return ""
    if abs(fraction) >= 1:  # 112%, 1544%: not 1.12e+02%
        return f"{100 * fraction:.0f}%"
    return f"{100 * fraction:.{digits}g}%"


def fmt_bytes_binary(n) -> str:
    """Memory and cache sizes in binary units, labelled: 49152 -> '48 KiB'."""
    if not finite(n):
        return ""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def fmt_number(value, digits: int = 3) -> str:
    """A plain figure to its precision: 2.4454059999999997 -> '2.45'."""
    return f"{value:.{digits}g}" if finite(value) else ""


def plural(count: int, word: str, words: str | None = None) -> str:
    """'1 case', '2 cases', '1 thread', '4 threads'."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


def cut(text: str, width: int) -> str:
    """Shortens `text` to `width` characters at a word boundary, with an ellipsis."""
    text = " ".join(str(text).split())
    if len(text) <= width:
        return text
    head = text[:width - 1]
    space = head.rfind(" ")
    return (head[:space] if space > width // 2 else head).rstrip(" ,;:") + "…"


def format_table(headers: list[str], rows: list[list], align_right: set[int] | None = None) -> str:
    """A plain-text table: a header, a rule, one line per row; columns in `align_right`
    (numbers) are right-aligned."""
    right = align_right or set()
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(str(h))] + [len(r[i]) for r in cells if i < len(r)]) for i, h in enumerate(headers)]

    def line(row):
        parts = [(c.rjust(w) if i in right else c.ljust(w)) for i, (c, w) in enumerate(zip(row, widths))]
        return "  ".join(parts).rstrip()

    return "\n".join([line([str(h) for h in headers]), line(["-" * w for w in widths]), *map(line, cells)])
