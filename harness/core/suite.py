"""Suite files: load, validate, expand into cases.

A suite is YAML:

    name: quick                  # optional, defaults to the file's stem
    description: ...
    include: [probe-quick.yaml]  # optional: other suites (relative to this file) run first,
                                 # each with its own defaults
    defaults:                    # optional, any case key below except id/kind
      threads: 1
      budget: 0.5
    cases:
      - id: gemm                 # optional, defaults to the kind
        kind: numpy.matmul       # see `harness kinds`
        params: {n: 512}
        matrix: {dtype: [float32, float64]}   # optional: one case per combination
        threads: [1, 2]          # an int, a list, "all", or a range "1..all"
        cpus: [0, 1]             # optional: which CPUs to pin (default: one per core)
        timeout: 60              # seconds before a hanging case is killed
        budget: 1.0              # seconds of timed sampling
        min_samples: 10
        max_samples: 2000
        warmup_max: 3.0          # seconds of warm-up at most
        memory_limit_gb: 4       # optional address-space cap for the worker
        processes: 1             # run the case in this many fresh workers and pool the
                                 # samples (pyperf's way to average out per-process effects)

Every problem is reported as one line naming the file and the key, and the CLI exits 2.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harness.core import conditions, registry, system
from harness.core.errors import UsageError
from harness.core.timing import TimingPolicy

TOP_KEYS = {"name", "description", "defaults", "cases", "include"}
CASE_KEYS = {"id", "kind", "params", "matrix", "threads", "cpus", "timeout", "budget",
             "min_samples", "max_samples", "warmup_max", "memory_limit_gb", "processes"}
_POLICY = TimingPolicy()
# A suite key's default; the timing keys take theirs from TimingPolicy (one home).
DEFAULTS = {"threads": 1, "cpus": None, "timeout": 120.0, "budget": _POLICY.budget_s,
            "min_samples": _POLICY.min_samples, "max_samples": _POLICY.max_samples,
            "warmup_max": _POLICY.warmup_max_s, "memory_limit_gb": None, "processes": 1}


@dataclass
class Case:
    """One measurement to make: a kind, its resolved params, where and how long."""

    case_id: str
    kind: str
    params: dict
    threads: int
    cpus: list[int]
    timeout: float
    policy: TimingPolicy
    env: dict = field(default_factory=dict)
    memory_limit_gb: float | None = None
    processes: int = 1
    fresh_process: bool = False
    attempt: int = 1

    def worker_key(self) -> tuple:
        """Cases with equal keys may share a worker process."""
        return (tuple(self.cpus), self.threads, tuple(sorted(self.env.items())), self.memory_limit_gb)

    def identity(self) -> dict:
        """The fields every record of this case starts with."""
        return {"case_id": self.case_id, "kind": self.kind, "params": self.params, "threads": self.threads,
                "cpus_requested": self.cpus, "env": self.env, "attempt": self.attempt}

    def to_dict(self) -> dict:
        return {"case_id": self.case_id, "kind": self.kind, "params": self.params,
                "threads": self.threads, "cpus": self.cpus, "timeout": self.timeout,
                "policy": self.policy.to_dict(), "env": self.env, "memory_limit_gb": self.memory_limit_gb,
                "processes": self.processes, "fresh_process": self.fresh_process, "attempt": self.attempt}

    @classmethod
    def from_dict(cls, d: dict) -> "Case":
        return cls(**{**d, "policy": TimingPolicy.from_dict(d.get("policy"))})


@dataclass
class Suite:
    name: str
    description: str
    cases: list[Case]
    path: Path | None = None


def _fail(where: str, what: str):
    raise UsageError(f"{where}: {what}")


def _number(where, value, minimum=0.0, allow_none=False, integer=False):
    if value is None and allow_none:
        return None
    ok_types = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types):
        _fail(where, f"expected {'an integer' if integer else 'a number'}, got {value!r}")
    if not math.isfinite(value):
        _fail(where, f"must be a finite number, got {value!r}")
    if value < minimum:
        _fail(where, f"must be >= {minimum}, got {value!r}")
    return value


def resolve_threads(where: str, value, allowed: list[int]) -> list[int]:
    values = value if isinstance(value, list) else [value]
    expanded = []
    for v in values:  # "1..all" or "2..8": every thread count in the range
        if isinstance(v, str) and ".." in v:
            lo, _, hi = v.partition("..")
            try:
                lo, hi = int(lo), len(allowed) if hi == "all" else int(hi)
            except ValueError:
                _fail(where, f"expected a range like '1..all' or '1..8', got {v!r}")
            expanded.extend(range(lo, hi + 1))
        else:
            expanded.append(len(allowed) if v == "all" else v)
    values = expanded
    if not values:
        _fail(where, "empty list")
    values = list(dict.fromkeys(values))  # [1, all] on a 1-CPU machine is one case
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            _fail(where, f"expected a positive integer, a list of them, 'all' or a range '1..all'; got {v!r}")
        if v > len(allowed):
            _fail(where, f"{v} threads exceed the {len(allowed)} CPUs this process may use "
                         f"({allowed}, from sched_getaffinity)")
    return values


def resolve_cpus(where: str, value, threads: int, allowed: list[int]) -> list[int]:
    if value is None:
        return conditions.choose_cpus(threads, allowed)
    if not isinstance(value, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in value):
        _fail(where, f"expected a list of CPU numbers, got {value!r}")
    missing = [c for c in value if c not in allowed]
    if missing:
        _fail(where, f"CPUs {missing} are not available to this process (available: {allowed})")
    if len(value) < threads:
        _fail(where, f"{len(value)} CPUs listed for {threads} threads")
    return value


def expand_case(where: str, raw: dict, defaults: dict, allowed: list[int]) -> list[Case]:
    """One raw case entry, with defaults applied, into validated Cases."""
    if not isinstance(raw, dict):
        _fail(where, f"expected a mapping with at least 'kind', got {raw!r}")
    unknown = sorted(set(raw) - CASE_KEYS)
    if unknown:
        _fail(f"{where}.{unknown[0]}", f"unknown key (allowed: {', '.join(sorted(CASE_KEYS))})")
    if "kind" not in raw:
        _fail(where, "missing required key 'kind'")
    try:
        kind = registry.get(raw["kind"]) if isinstance(raw["kind"], str) else None
    except KeyError as exc:
        _fail(f"{where}.kind", exc.args[0])
    if kind is None:
        _fail(f"{where}.kind", f"expected a string, got {raw['kind']!r}")
    merged = {**DEFAULTS, **defaults, **raw}
    params = merged.get("params") or {}
    if not isinstance(params, dict):
        _fail(f"{where}.params", f"expected a mapping, got {params!r}")
    matrix = merged.get("matrix") or {}
    if not isinstance(matrix, dict) or not all(isinstance(v, list) and v for v in matrix.values()):
        _fail(f"{where}.matrix", "expected a mapping of parameter -> non-empty list of values")
    case_id = merged.get("id", kind.name)
    if not isinstance(case_id, str) or not case_id:
        _fail(f"{where}.id", f"expected a non-empty string, got {case_id!r}")
    timeout = _number(f"{where}.timeout", merged["timeout"], minimum=0.1)
    budget = _number(f"{where}.budget", merged["budget"], minimum=0.0)
    min_samples = _number(f"{where}.min_samples", merged["min_samples"], minimum=1, integer=True)
    max_samples = _number(f"{where}.max_samples", merged["max_samples"], minimum=1, integer=True)
    if max_samples < min_samples:
        _fail(f"{where}.max_samples", f"{max_samples} is below min_samples {min_samples}")
    warmup_max = _number(f"{where}.warmup_max", merged["warmup_max"], minimum=0.0)
    memory_limit = _number(f"{where}.memory_limit_gb", merged["memory_limit_gb"], minimum=0.01, allow_none=True)
    processes = _number(f"{where}.processes", merged["processes"], minimum=1, integer=True)
    policy = TimingPolicy(budget_s=float(budget), min_samples=min_samples, max_samples=max_samples,
                          warmup_max_s=float(warmup_max))

    cases = []
    combos = [dict(zip(matrix, values)) for values in itertools.product(*matrix.values())] or [{}]
    for threads in resolve_threads(f"{where}.threads", merged["threads"], allowed):
        cpus = resolve_cpus(f"{where}.cpus", merged["cpus"], threads, allowed)
        for combo in combos:
            given = {**params, **combo}
            resolved, problems = kind.resolve_params(given)
            if problems:
                key, _, what = problems[0].partition(": ")
                _fail(f"{where}.params.{key}", what)
            suffix = ",".join(f"{k}={v}" for k, v in combo.items())
            cid = f"{case_id}[{suffix + ',' if suffix else ''}t={threads}]"
            env = kind.env(resolved) if kind.env else {}
            cases.append(Case(cid, kind.name, resolved, threads, cpus, float(timeout), policy,
                              env, memory_limit, processes, kind.fresh_process))
    return cases


def parse_suite(data, source: str, allowed: list[int] | None = None, _including: tuple = ()) -> Suite:
    allowed = allowed if allowed is not None else system.available_cpus()
    if not isinstance(data, dict):
        _fail(source, "a suite file must be a mapping with a 'cases' list")
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        _fail(f"{source}: {unknown[0]}", f"unknown top-level key (allowed: {', '.join(sorted(TOP_KEYS))})")
    included = data.get("include") or []
    raw_cases = data.get("cases", [] if included else None)
    if not isinstance(included, list) or not all(isinstance(i, str) for i in included):
        _fail(f"{source}: include", f"expected a list of suite file names, got {included!r}")
    if not isinstance(raw_cases, list) or not (raw_cases or included):
        _fail(f"{source}: cases", "expected a non-empty list of cases")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        _fail(f"{source}: defaults", f"expected a mapping, got {defaults!r}")
    bad = sorted(set(defaults) - (CASE_KEYS - {"id", "kind"}))
    if bad:
        _fail(f"{source}: defaults.{bad[0]}", "unknown key")
    cases: list[Case] = []
    for name in included:
        path = Path(source).parent / name
        if not path.exists():
            _fail(f"{source}: include", f"no such suite file {path}")
        cases.extend(load_suite(path, allowed, _including).cases)
    for i, raw in enumerate(raw_cases):
        cases.extend(expand_case(f"{source}: cases[{i}]", raw, defaults, allowed))
    ids = [c.case_id for c in cases]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        _fail(f"{source}: cases", f"duplicate case id {dupes[0]!r}; give each case a distinct 'id'")
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str):
        _fail(f"{source}: name", f"expected a string, got {name!r}")
    return Suite(name=name, description=str(data.get("description", "")), cases=cases)


def load_suite(path: str | Path, allowed: list[int] | None = None, _including: tuple = ()) -> Suite:
    path = Path(path)
    if not path.exists():
        bundled = Path(__file__).resolve().parent.parent / "suites" / path.name
        hint = f" (did you mean suites/{path.name}?)" if bundled.exists() and path != bundled else ""
        raise UsageError(f"{path}: no such suite file{hint}")
    if path.resolve() in _including:
        raise UsageError(f"{path}: includes itself (through {' -> '.join(p.name for p in _including)})")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the suite file ({exc.__class__.__name__}: "
                         f"{getattr(exc, 'strerror', None) or exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"{path}:{where}: not valid YAML: {problem}") from None
    suite = parse_suite(data, str(path), allowed, _including + (path.resolve(),))
    suite.path = path
    return suite
