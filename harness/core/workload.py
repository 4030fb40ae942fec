"""What a kernel hands the measurement core: one timed callable and the facts about it.

A kernel module in `kernels/` declares its case kinds (see `kernels/registry.py`);
each kind's factory is called inside the worker process, after affinity and
thread settings are applied, and returns a `Workload`. The factory does all
allocation and pre-touching up front (the memory pool), so that `fn` only
computes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from harness.core.records import Cost


@dataclass
class Context:
    """Where the worker runs a case: what a factory may need to honour."""

    case_id: str
    threads: int
    cpus: list[int]


@dataclass
class Workload:
    """One unit of timed work and its cost per call.

    fn      -- the timed callable; one call is one unit of work. It must not
               allocate large buffers (write into preallocated ones) unless
               allocation is what is being measured.
    flops   -- floating-point operations per call (a multiply-add counts 2), or None.
    bytes   -- bytes moved per call under the accounting named in
               info["bytes_accounting"], or None.
    check   -- called once after timing; raises if the result is wrong, so dead-code
               elimination or a broken kernel cannot fake a figure.
    info    -- JSON-serialisable facts about the case (sizes, backend, page size...).
    metrics -- given the median seconds per call, returns extra derived figures
               (for example {"ghz": ...}); JSON-serialisable.
    teardown -- releases resources after the case.
    device_timer -- for work that runs asynchronously on an accelerator:
               device_timer(fn, number) calls fn `number` times and returns the
               elapsed seconds measured on the device (CUDA events); the core then
               uses it instead of the host clock.
    working_set_bytes -- the bytes one call touches, where that differs from `bytes` (a
               call that repeats a kernel over the same arrays moves more than it holds):
               the roofline places the op against the cache level this fits in.
    layers  -- for a model profiled layer by layer: called once after timing, returns the
               Layers (one entry per layer, with its samples and cost); the worker writes
               one record per layer after the case's own record.
    """

    fn: Callable[[], Any]
    flops: float | None = None
    bytes: float | None = None
    check: Callable[[], None] | None = None
    info: dict = field(default_factory=dict)
    metrics: Callable[[float], dict] | None = None
    teardown: Callable[[], None] | None = None
    device_timer: Callable[[Callable[[], Any], int], float] | None = None
    working_set_bytes: float | None = None
    layers: Callable[[], "Layers"] | None = None


@dataclass
class LayerTiming:
    """One layer of a profiled model: its times over the profiled runs (seconds, one per
    run) and its cost (None where the cost model has no formula for it)."""

    name: str
    op: str
    samples: list[float]
    cost: Cost | None = None
    info: dict = field(default_factory=dict)


@dataclass
class Layers:
    """What a `layers` hook returns: every layer, how they were timed, and the whole model's
    time with the profiler on (so its overhead can be stated)."""

    layers: list[LayerTiming]
    method: str
    runs: int
    warmup: int
    whole_profiled_s: float
    notes: list[str] = field(default_factory=list)


class Skip(Exception):
    """Raised by a factory when the case cannot run here (no GPU, ISA missing).
    The case is recorded as skipped with this message as the reason, never faked."""


def prefault(array) -> None:
    """Write to every page of a writable NumPy array so the timed region takes no first-touch faults."""
    flat = array.reshape(-1).view(np.uint8)
    flat[::4096] = 0  # one write per 4 KiB page: call on a fresh np.empty buffer before filling it
    flat[-1:] = 0
