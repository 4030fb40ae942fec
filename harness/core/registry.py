"""The case kinds a suite may name, and the parameters each takes.

Each kernel module lists its kinds in a module-level `KINDS` list. Kernel modules
keep heavy imports (torch, numba, onnxruntime) inside functions, so the parent
process can validate a suite without starting those libraries: several of their
settings (thread pools, NUMBA_CPU_FEATURES) only take effect if set before they start.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable

# Modules whose KINDS are registered; a new kernel module is added here.
KERNEL_MODULES = (
    "kernels.basic",
    "kernels.cuda_probes",
    "kernels.fma",
    "kernels.dot_bf16",
    "kernels.frequency",
    "kernels.throttle",
    "kernels.stream",
    "kernels.sweep",
    "kernels.intensity",
    "kernels.conv",
    "kernels.models",
    "kernels.footprint",
    "kernels.layers",
    "kernels.discover",
)

# What the rest of the harness takes from kernels/, by name (TVM's roofline registry works
# the same way): nothing above the core imports a kernel module directly.
CLOCK_READER = "kernels.frequency:measure_ghz"  # the add chain that reads the core clock
MODEL_ZOO = "kernels.zoo"  # MODELS (name -> description) and build(name, seed)

_MISSING = object()


@dataclass
class Param:
    """One parameter of a case kind: its type, default, and allowed values."""

    type: type | tuple[type, ...]
    default: Any = _MISSING
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    help: str = ""

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    def check(self, value: Any) -> str | None:
        """Returns what is wrong with `value`, or None if it is allowed."""
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok and float in types and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            names = " or ".join(t.__name__ for t in types)
            text = repr(value)
            return f"expected {names}, got {type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number; got {value!r}"
        if self.choices is not None and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}; got {value!r}"
        if self.min is not None and value < self.min:
            return f"must be >= {self.min}; got {value!r}"
        if self.max is not None and value > self.max:
            return f"must be <= {self.max}; got {value!r}"
        return None


@dataclass
class Kind:
    """A case kind: the factory that builds its Workload and the parameters it takes.

    factory  -- "module:function"; called in the worker as function(params, ctx) -> Workload.
    env      -- optional function(params) -> dict of environment variables the worker
                needs set before any import (for example NUMBA_CPU_FEATURES);
                cases with different env run in different workers.
    validate -- optional function(params) -> None that raises ValueError("field: what is
                wrong") for combinations a single Param cannot judge.
    fresh_process -- the case needs a worker of its own (a memory footprint must see one
                model in one process).
    memory   -- optional function(params, threads) -> bytes the case will allocate at its
                peak (an estimate, on the safe side): a case that cannot fit in the memory
                available is refused when the suite is validated, before anything allocates.
    """

    name: str
    factory: str
    params: dict[str, Param] = field(default_factory=dict)
    description: str = ""
    env: Callable[[dict], dict] | None = None
    validate: Callable[[dict], None] | None = None
    fresh_process: bool = False
    memory: Callable[[dict, int], float] | None = None

    def resolve_params(self, given: dict) -> tuple[dict, list[str]]:
        """Fills defaults and checks types. Returns (params, problems as 'key: what')."""
        problems = []
        out = {}
        for key in given:
            if key not in self.params:
                known = ", ".join(sorted(self.params)) or "none"
                problems.append(f"{key}: unknown parameter for kind {self.name!r} (known: {known})")
        for key, spec in self.params.items():
            if key in given:
                why = spec.check(given[key])
                if why:
                    problems.append(f"{key}: {why}")
                out[key] = given[key]
            elif spec.required:
                problems.append(f"{key}: required parameter missing")
            else:
                out[key] = spec.default
        if not problems and self.validate is not None:
            try:
                self.validate(out)
            except ValueError as exc:
                problems.append(str(exc))
        return out, problems

    def load_factory(self) -> Callable:
        return resolve(self.factory)


def resolve(ref: str):
    """The object named by "module:attribute", imported on first use."""
    module, _, attribute = ref.partition(":")
    return getattr(importlib.import_module(module), attribute)


def clock_reader() -> Callable[..., float]:
    """measure_ghz(seconds, sample_adds) -> GHz of the calling thread's core."""
    return resolve(CLOCK_READER)


def model_zoo():
    """The zoo module: MODELS and build(name, seed)."""
    return importlib.import_module(MODEL_ZOO)


_kinds: dict[str, Kind] | None = None


def kinds() -> dict[str, Kind]:
    """All registered kinds by name."""
    global _kinds
    if _kinds is None:
        found: dict[str, Kind] = {}
        for module_name in KERNEL_MODULES:
            for kind in importlib.import_module(module_name).KINDS:
                if kind.name in found:
                    raise RuntimeError(f"case kind {kind.name!r} registered twice")
                found[kind.name] = kind
        _kinds = found
    return _kinds


def get(name: str) -> Kind:
    try:
        return kinds()[name]
    except KeyError:
        raise KeyError(f"unknown case kind {name!r} (known: {', '.join(sorted(kinds()))})") from None
