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

import collections
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

from harness.core import conditions, registry, suite_file, system
from harness.core.errors import UsageError
from harness.core.timing import TimingPolicy

TOP_KEYS = {"name", "description", "defaults", "cases", "include"}
CASE_KEYS = {"id", "kind", "params", "matrix", "threads", "cpus", "timeout", "budget",
             "min_samples", "max_samples", "warmup_max", "memory_limit_gb", "processes"}
# Bounds on what a suite may ask for: past them a value is a typo, not a plan (and some
# would overflow the system calls that carry them: select(), setrlimit()).
MAX_SECONDS = 86_400.0  # timeout, budget, warm-up: a day
MAX_SAMPLES = 10_000_000
MAX_PROCESSES = 100
MAX_CASES = 10_000  # cases one suite file expands to, its includes' cases counted
MAX_INCLUDES = 100  # suite files one load reads, the same file counted each time it is included
MAX_TEXT = 10_000  # characters of a name or description
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


@dataclass
class _Loading:
    """What one load_suite has read so far, over all its includes: each bound is checked as
    the suite grows, so a file including another thousands of times stops at the bound."""

    files: int = 0
    cases: int = 0


def _fail(where: str, what: str):
    raise UsageError(f"{where}: {what}")


def _number(where, value, minimum=0.0, maximum=math.inf, allow_none=False, integer=False, unit=""):
    if value is None and allow_none:
        return None
    ok_types = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types):
        _fail(where, f"expected {'an integer' if integer else 'a number'}, got {_short(value)}")
    if not math.isfinite(value):
        _fail(where, f"must be a finite number, got {value!r}")
    if value < minimum:
        _fail(where, f"must be >= {minimum:g}, got {value!r}")
    if value > maximum:
        _fail(where, f"must be <= {maximum:g}{unit}, got {value!r}")
    return value


def _short(value) -> str:
    """A value as the user wrote it, cut so an error stays one readable line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def resolve_threads(where: str, value, allowed: list[int]) -> list[int]:
    """Thread counts from an int, 'all', a range '1..all' / '2..8', or a list of them; each
    checked against the CPUs this process may use before anything is expanded."""
    shape = "a positive integer, 'all', a range like '1..all', or a list of them"
    values = value if isinstance(value, list) else [value]
    if len(values) > len(allowed) * 4 + 16:
        _fail(where, f"{len(values)} thread counts listed; this process may use {len(allowed)} CPUs")
    too_many = f"threads exceed the {len(allowed)} CPUs this process may use ({allowed}, from sched_getaffinity)"
    expanded = []
    for v in values:
        if isinstance(v, str) and ".." in v:
            lo, _, hi = v.partition("..")
            try:
                lo, hi = int(lo), len(allowed) if hi.strip() == "all" else int(hi)
            except ValueError:
                _fail(where, f"expected a range like '1..all' or '1..8', got {_short(v)}")
            if lo < 1 or hi < lo:
                _fail(where, f"range {v!r}: expected 1 <= first <= last")
            if hi > len(allowed):
                _fail(where, f"range {v!r}: {hi} {too_many}")
            expanded.extend(range(lo, hi + 1))
        elif v == "all":
            expanded.append(len(allowed))
        elif isinstance(v, int) and not isinstance(v, bool):
            expanded.append(v)
        else:
            _fail(where, f"expected {shape}; got {_short(v)}")
    if not expanded:
        _fail(where, "empty list")
    values = list(dict.fromkeys(expanded))  # [1, all] on a 1-CPU machine is one case
    for v in values:
        if v < 1:
            _fail(where, f"expected {shape}; got {v!r}")
        if v > len(allowed):
            _fail(where, f"{v} {too_many}")
    return values


def resolve_cpus(where: str, value, threads: int, allowed: list[int]) -> list[int]:
    if value is None:
        return conditions.choose_cpus(threads, allowed)
    if not isinstance(value, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in value):
        _fail(where, f"expected a list of CPU numbers, got {_short(value)}")
    missing = [c for c in value if c not in allowed]
    if missing:
        _fail(where, f"CPUs {missing} are not available to this process (available: {allowed})")
    twice = sorted({c for c in value if value.count(c) > 1})
    if twice:
        _fail(where, f"CPU {twice[0]} listed twice: each thread needs a CPU of its own")
    if len(value) < threads:
        _fail(where, f"{len(value)} CPUs listed for {threads} threads")
    return value


def _check_memory(where: str, needed: float, limit_gb: float | None) -> None:
    """Refuses a case whose memory estimate exceeds what is available (or its memory_limit_gb)."""
    available = system.available_memory()
    limit, what = available, "available on this machine (cgroup limit included)"
    if limit_gb is not None and limit_gb * 1e9 < limit:
        limit, what = limit_gb * 1e9, "its memory_limit_gb"
    if needed > limit:
        _fail(where, f"the case needs about {needed / 1e9:.3g} GB (an estimate), more than the {limit / 1e9:.3g} GB "
                     f"{what}; make it smaller")


def expand_case(where: str, raw: dict, defaults: dict, allowed: list[int]) -> list[Case]:
    """One raw case entry, with defaults applied, into validated Cases."""
    if not isinstance(raw, dict):
        _fail(where, f"expected a mapping with at least 'kind', got {_short(raw)}")
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
        _fail(f"{where}.kind", f"expected a string, got {_short(raw['kind'])}")
    merged = {**DEFAULTS, **defaults, **raw}
    params = {} if merged.get("params") is None else merged["params"]
    if not isinstance(params, dict):
        _fail(f"{where}.params", f"expected a mapping, got {_short(params)}")
    matrix = {} if merged.get("matrix") is None else merged["matrix"]
    if not isinstance(matrix, dict) or not all(isinstance(v, list) and v for v in matrix.values()):
        _fail(f"{where}.matrix", "expected a mapping of parameter -> non-empty list of values")
    combinations = math.prod(len(v) for v in matrix.values())
    if combinations > MAX_CASES:
        _fail(f"{where}.matrix", f"{combinations} combinations; a suite may expand to at most {MAX_CASES} cases")
    case_id = merged.get("id", kind.name)
    if not isinstance(case_id, str) or not case_id:
        _fail(f"{where}.id", f"expected a non-empty string, got {_short(case_id)}")
    timeout = _number(f"{where}.timeout", merged["timeout"], minimum=0.1, maximum=MAX_SECONDS, unit=" s")
    budget = _number(f"{where}.budget", merged["budget"], minimum=0.0, maximum=MAX_SECONDS, unit=" s")
    min_samples = _number(f"{where}.min_samples", merged["min_samples"], minimum=1, maximum=MAX_SAMPLES,
                          integer=True)
    max_samples = _number(f"{where}.max_samples", merged["max_samples"], minimum=1, maximum=MAX_SAMPLES,
                          integer=True)
    if max_samples < min_samples:
        _fail(f"{where}.max_samples", f"{max_samples} is below min_samples {min_samples}")
    warmup_max = _number(f"{where}.warmup_max", merged["warmup_max"], minimum=0.0, maximum=MAX_SECONDS, unit=" s")
    memory_gb = system.total_memory_bytes() / 1e9
    memory_limit = _number(f"{where}.memory_limit_gb", merged["memory_limit_gb"], minimum=0.01, maximum=memory_gb,
                           allow_none=True, unit=" GB (this machine's memory: 1 GB = 1e9 bytes)")
    processes = _number(f"{where}.processes", merged["processes"], minimum=1, maximum=MAX_PROCESSES, integer=True)
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
            if kind.memory is not None:
                _check_memory(f"{where}.params", kind.memory(resolved, threads), memory_limit)
            suffix = ",".join(f"{k}={v}" for k, v in combo.items())
            cid = f"{case_id}[{suffix + ',' if suffix else ''}t={threads}]"
            env = kind.env(resolved) if kind.env else {}
            cases.append(Case(cid, kind.name, resolved, threads, cpus, float(timeout), policy,
                              env, memory_limit, processes, kind.fresh_process))
    return cases


def parse_suite(data, source: str, allowed: list[int] | None = None, _including: tuple = (),
                _loading: _Loading | None = None) -> Suite:
    allowed = allowed if allowed is not None else system.available_cpus()
    loading = _loading if _loading is not None else _Loading()
    if not isinstance(data, dict):
        _fail(source, "a suite file must be a mapping with a 'cases' list")
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        _fail(f"{source}: {unknown[0]}", f"unknown top-level key (allowed: {', '.join(sorted(TOP_KEYS))})")
    included = [] if data.get("include") is None else data["include"]
    raw_cases = data.get("cases", [] if included else None)
    if not isinstance(included, list) or not all(isinstance(i, str) for i in included):
        _fail(f"{source}: include", f"expected a list of suite file names, got {_short(included)}")
    if not isinstance(raw_cases, list) or not (raw_cases or included):
        _fail(f"{source}: cases", "expected a non-empty list of cases")
    defaults = {} if data.get("defaults") is None else data["defaults"]
    if not isinstance(defaults, dict):
        _fail(f"{source}: defaults", f"expected a mapping, got {_short(defaults)}")
    bad = sorted(set(defaults) - (CASE_KEYS - {"id", "kind"}))
    if bad:
        _fail(f"{source}: defaults.{bad[0]}", "unknown key")
    cases: list[Case] = []
    for name in included:
        path = Path(source).parent / name
        if not path.exists():
            _fail(f"{source}: include", f"no such suite file {path}")
        if loading.files >= MAX_INCLUDES:
            _fail(f"{source}: include", f"more than {MAX_INCLUDES} suite files to read (each include counted "
                                        "every time it is reached)")
        cases.extend(load_suite(path, allowed, _including, loading).cases)
    for i, raw in enumerate(raw_cases):
        expanded = expand_case(f"{source}: cases[{i}]", raw, defaults, allowed)
        cases.extend(expanded)
        loading.cases += len(expanded)
        if loading.cases > MAX_CASES:
            _fail(f"{source}: cases[{i}]", f"the suite expands to more than {MAX_CASES} cases (its includes counted)")
    counts = collections.Counter(c.case_id for c in cases)
    dupes = sorted(i for i, n in counts.items() if n > 1)
    if dupes:
        _fail(f"{source}: cases", f"duplicate case id {dupes[0]!r}; give each case a distinct 'id'")
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str) or not 0 < len(name) <= 200:
        _fail(f"{source}: name", f"expected a string of 1 to 200 characters, got {_short(name)}")
    description = data.get("description", "")
    if not isinstance(description, str) or len(description) > MAX_TEXT:
        _fail(f"{source}: description", f"expected a string of at most {MAX_TEXT} characters")
    return Suite(name=name, description=description, cases=cases)


def load_suite(path: str | Path, allowed: list[int] | None = None, _including: tuple = (),
               _loading: _Loading | None = None) -> Suite:
    path = Path(path)
    loading = _loading if _loading is not None else _Loading()
    loading.files += 1
    if not path.exists():
        bundled = Path(__file__).resolve().parents[2] / "suites" / path.name
        hint = f" (did you mean suites/{path.name}?)" if bundled.exists() and path != bundled else ""
        raise UsageError(f"{path}: no such suite file{hint}")
    if path.resolve() in _including:
        raise UsageError(f"{path}: includes itself (through {' -> '.join(p.name for p in _including)})")
    data = suite_file.read(path)
    suite = parse_suite(data, str(path), allowed, _including + (path.resolve(),), loading)
    suite.path = path
    return suite
