"""A model's latency on this device before timing it: each kernel the framework runs is
predicted from its cost against this device's ceilings, corrected by what calibration
measured, and the kernels are summed the way calibration found whole models to add up.

The kernels are the ones the framework runs (ONNX Runtime's optimized graph at the chosen
optimization level: its fused convs, NCHWc reorders, Gemms; in torch eager the calls the
function mode sees), each with the cost model's FLOPs and bytes (harness.cost).

One kernel, t = roofline time x exp(f(features)):
- roofline time: max(FLOPs / peak, bytes / bandwidth) against the ceilings the calibration
  was placed against (its frozen snapshot; placement.roof_at: the compute ceiling of the
  dtype at the thread count, the bandwidth of the memory level the working set fits in);
- f: a random forest (scikit-learn) on the kernel's class (dense kxk conv, 1x1, depthwise,
  grouped, gemm, pooling, element-wise, normalization, softmax, data movement, other) and
  features the roofline cannot see: channels modulo 8 and 16 (padding to the vector
  width), spatial size, stride, kernel size, intensity, output size, the working set
  against each cache level. It is fitted on log(measured / roofline time) of the kernels of
  the calibration networks. Why a random forest: nn-Meter found it the best kernel-level
  predictor on CPUs; the effects to learn are thresholds (a cache boundary, a channel count
  that is not a multiple of 8), a forest needs no tuning on a few hundred samples, and its
  out-of-bag error gives each class an honest uncertainty without a held-out set.
- A kernel whose features lie outside the range calibration covered for its class is named
  in a warning: the forest can only repeat what it saw at the edge.

The model: whole = a + b x sum(kernels) + g x kernels, fitted by least squares on the
calibration networks, each measured whole (no profiler, by the measurement core) and kernel
by kernel (the framework's profiler): a is the framework's per-run cost, b the profiler's
effect on kernel times, g the gap between kernels. Its residuals give the model-level
uncertainty, added to the kernels' (assumed independent) in quadrature; the interval
printed is +-2 standard deviations.

scikit-learn is imported inside functions (deferred on purpose: only calibrate and predict
need it, and it takes a second to import).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from harness.analysis.placement import roof_at, roofline_time
from harness.analysis.snapshot import Snapshot
from harness.core.errors import UsageError
from harness.core.records import Record

CLASSES = ("convkxk", "conv1x1", "depthwise", "grouped", "gemm", "pool", "eltwise", "norm", "softmax", "data",
           "other")
CALIBRATION_SCHEMA = 1
# Kernels with no cost (an op without a formula) are put at the roofline time of moving their
# output twice (read and write) at this many bytes per element: a data-movement guess the
# forest then corrects with what their class measured.
UNCOSTED_BYTES_PER_ELEMENT = 8
TREES = 200
# The forest's uncertainty per class needs this many calibration kernels of it; fewer, and the
# class borrows the spread of all kernels.
MIN_CLASS_SAMPLES = 8
INTERVAL_SDS = 2.0
DATA_OPS = {"concat", "cat", "reshape", "view", "transpose", "permute", "flatten", "split", "slice", "gather",
            "reorderinput", "reorderoutput", "identity", "squeeze", "unsqueeze", "expand", "tile", "pad",
            "contiguous", "chunk", "getitem", "dropout", "shape", "cast", "constantofshape", "channel_shuffle"}


@dataclass
class Kernel:
    """One kernel as the framework runs it: what calibration measures and predict predicts."""

    name: str
    op: str
    category: str | None
    flops: float | None
    bytes: float | None
    flops_main: float | None = None
    params: float | None = None
    output_shape: list = field(default_factory=list)
    input_shapes: list = field(default_factory=list)
    dtype: str = "float32"

    @classmethod
    def from_layer_record(cls, r: Record) -> "Kernel":
        cost, info = r.cost, r.info or {}
        return cls(name=str(r.params.get("layer") or r.case_id), op=str(r.params.get("op") or ""),
                   category=info.get("category"), flops=cost.flops if cost else None,
                   bytes=cost.bytes if cost else None,
                   flops_main=(cost.breakdown or {}).get("flops_main") if cost else None,
                   params=cost.params if cost else None, output_shape=list(info.get("output_shape") or []),
                   input_shapes=[list(s) for s in info.get("input_shapes") or []],
                   dtype=str(r.params.get("dtype") or "float32"))

    @classmethod
    def from_json(cls, data: dict) -> "Kernel":
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__ if k in data})

    @property
    def costed(self) -> bool:
        return self.flops is not None and bool(self.bytes)


def _prod(shape) -> int:
    return int(np.prod([int(d) for d in shape])) if shape else 0


def conv_facts(k: Kernel) -> dict:
    """Kernel size, groups, channels and stride of a conv, from its input and weight shapes
    (NCHW, or ONNX Runtime's blocked NCHWc: 5-D input, 6-D weight, kernel dims at 2 and 3)
    and its cost, which fixes IC/G x KH x KW = multiply-adds per output element."""
    x = k.input_shapes[0] if k.input_shapes else []
    w = k.input_shapes[1] if len(k.input_shapes) > 1 else []
    y = k.output_shape
    ic = int(x[1]) * (int(x[4]) if len(x) == 5 else 1) if len(x) >= 4 else None
    oc = int(y[1]) * (int(y[4]) if len(y) == 5 else 1) if len(y) >= 4 else None
    khkw = int(w[2]) * int(w[3]) if len(w) >= 4 else None
    reduction = (k.flops_main or 0) / (2 * _prod(y)) if _prod(y) and k.flops_main else None
    groups = round(ic * khkw / reduction) if ic and khkw and reduction else None
    stride = int(x[2]) / int(y[2]) if len(x) >= 4 and len(y) >= 4 and int(y[2]) else 1.0
    return {"ic": ic, "oc": oc, "khkw": khkw, "groups": groups, "stride": stride}


def kernel_class(k: Kernel) -> str:
    op, category = k.op.lower(), k.category or ""
    if category == "conv" or "conv" in op:
        f = conv_facts(k)
        if f["groups"] and f["ic"] and f["groups"] >= f["ic"] > 1:
            return "depthwise"
        if f["groups"] and f["groups"] > 1:
            return "grouped"
        return "conv1x1" if f["khkw"] == 1 else "convkxk"
    if category in ("linear", "matmul") or any(m in op for m in ("gemm", "matmul", "linear", "bmm")):
        return "gemm"
    if category == "pool" or "pool" in op:
        return "pool"
    if category == "norm" or "norm" in op:
        return "norm"
    if category == "softmax" or "softmax" in op:
        return "softmax"
    if category == "data" or op in DATA_OPS:
        return "data"
    if category in ("act", "residual", "bias", "eltwise", "reduce"):
        return "eltwise"
    return "other"


def _channels(shape: list) -> int | None:
    """The channel count of a 4-D (NCHW) or 5-D (NCHWc) tensor, else the last dim."""
    if len(shape) == 4:
        return int(shape[1])
    if len(shape) == 5:
        return int(shape[1]) * int(shape[4])
    return int(shape[-1]) if shape else None


def roof_seconds(k: Kernel, threads: int, snap: Snapshot) -> float:
    """The kernel's roofline time against the snapshot (a data-movement guess where uncosted)."""
    flops = k.flops if k.costed else 0.0
    nbytes = k.bytes if k.costed else max(_prod(k.output_shape), 1) * UNCOSTED_BYTES_PER_ELEMENT
    roof = roof_at(k.dtype or "float32", threads, nbytes, snap)
    t = roofline_time(flops, nbytes, roof)
    return t if t and t > 0 else nbytes / 1e10  # no ceiling at all: 10 GB/s, said by the features alone


def features(k: Kernel, threads: int, snap: Snapshot) -> dict[str, float]:
    """The numbers the forest sees for one kernel (the same keys, in the same order, for every kernel)."""
    klass = kernel_class(k)
    out, inp = k.output_shape, k.input_shapes[0] if k.input_shapes else []
    c_out, c_in = _channels(out), _channels(inp)
    conv = conv_facts(k) if klass in ("convkxk", "conv1x1", "depthwise", "grouped") else {}
    nbytes = k.bytes if k.costed else max(_prod(out), 1) * UNCOSTED_BYTES_PER_ELEMENT
    caps = snap.capacity(threads)
    f = {"log_roof_s": math.log10(roof_seconds(k, threads, snap)),
         "log_flops": math.log10((k.flops or 0) + 1), "log_bytes": math.log10(nbytes + 1),
         "log_intensity": math.log10((k.flops or 0) / nbytes + 1e-3),
         "log_out_elements": math.log10(_prod(out) + 1),
         "log_spatial": math.log10(_prod(out[2:4]) + 1) if len(out) >= 4 else 0.0,
         "c_out_mod8": float(c_out is not None and c_out % 8 == 0),
         "c_out_mod16": float(c_out is not None and c_out % 16 == 0),
         "c_in_mod8": float(c_in is not None and c_in % 8 == 0),
         "log_c_out": math.log2(c_out) if c_out else 0.0,
         "khkw": float(conv.get("khkw") or 0), "stride": float(conv.get("stride") or 1.0),
         "log_groups": math.log2(conv["groups"]) if conv.get("groups") else 0.0,
         "costed": float(k.costed)}
    for level in ("L1", "L2", "L3"):
        f[f"ws_{level}"] = math.log2(nbytes / caps[level]) if caps.get(level) else 0.0
    for c in CLASSES:
        f[f"is_{c}"] = float(klass == c)
    return f


# --------------------------------------------------------------------------- calibration data

@dataclass
class KernelSample:
    """One kernel measured during calibration: the kernel, its class, features and median time,
    and the core clock its network ran at (read right after it, by the measurement core)."""

    kernel: dict
    klass: str
    features: dict
    measured_s: float
    network: str
    clock_ghz: float | None = None


@dataclass
class NetworkSample:
    """One calibration network: measured whole (no profiler) and the sum of its kernels (profiled)."""

    network: str
    whole_s: float
    sum_kernels_s: float
    kernels: int
    clock_ghz: float | None = None


@dataclass
class Calibration:
    """A calibration file: what was measured, under what, and the snapshot its roofs came from."""

    device: str
    cpu_model: str
    framework: str
    framework_version: str
    threads: int
    opt_level: str
    kernels: list[KernelSample] = field(default_factory=list)
    networks: list[NetworkSample] = field(default_factory=list)
    snapshot: dict = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    seconds: float = 0.0
    budget_s: float = 0.0
    schema_version: int = CALIBRATION_SCHEMA

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict, source: str) -> "Calibration":
        if not isinstance(data, dict) or data.get("kind") == "snapshot" or "framework" not in data:
            raise UsageError(f"{source}: not a calibration file")
        version = data.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or version > CALIBRATION_SCHEMA:
            raise UsageError(f"{source}: calibration schema {version!r} is not one this harness reads "
                             f"(up to {CALIBRATION_SCHEMA})")
        try:
            cal = cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
            cal.kernels = [KernelSample(**s) for s in data.get("kernels") or []]
            cal.networks = [NetworkSample(**s) for s in data.get("networks") or []]
        except TypeError as exc:
            raise UsageError(f"{source}: not a calibration file this harness can read ({exc})") from None
        return cal

    def snap(self) -> Snapshot:
        return Snapshot.from_json(self.snapshot, "calibration snapshot") if self.snapshot else Snapshot()


def calibration_path(device_dir: Path, framework: str, threads: int) -> Path:
    """results/<device>/calibration-<framework>-t<threads>.json, beside the device profile."""
    return Path(device_dir) / f"calibration-{framework}-t{threads}.json"


def check_calibration(cal: Calibration, source: str, device: str, framework: str, framework_version: str,
                      threads: int, opt_level: str | None = None) -> None:
    """A calibration made under other conditions predicts nothing here: one line naming what differs."""
    wanted = {"device": device, "framework": framework, "framework version": framework_version, "threads": threads}
    got = {"device": cal.device, "framework": cal.framework, "framework version": cal.framework_version,
           "threads": cal.threads}
    if opt_level is not None and framework == "onnxruntime":
        wanted["optimization level"], got["optimization level"] = opt_level, cal.opt_level
    for what, value in wanted.items():
        if got[what] != value:
            raise UsageError(f"{source}: calibrated for {what} {got[what]}, not {value} as here; "
                             f"`harness calibrate --framework {framework} --threads {threads}` calibrates this one")


# --------------------------------------------------------------------------- the predictor

@dataclass
class KernelPrediction:
    kernel: Kernel
    klass: str
    seconds: float
    roof_s: float
    sd_log: float  # natural-log standard deviation of the kernel's prediction
    out_of_range: list[str] = field(default_factory=list)


@dataclass
class Prediction:
    """A model's predicted latency, its interval, and its kernels."""

    seconds: float
    low: float
    high: float
    kernels: list[KernelPrediction]
    sum_kernels_s: float
    composition: dict
    warnings: list[str] = field(default_factory=list)

    def by_class(self) -> dict[str, tuple[float, int]]:
        out: dict[str, list] = {}
        for p in self.kernels:
            entry = out.setdefault(p.klass, [0.0, 0])
            entry[0] += p.seconds
            entry[1] += 1
        return {k: (v[0], v[1]) for k, v in sorted(out.items(), key=lambda kv: -kv[1][0])}

    def bottlenecks(self, n: int = 5) -> list[KernelPrediction]:
        return sorted(self.kernels, key=lambda p: -p.seconds)[:n]


class Predictor:
    """Fitted from a Calibration: predicts kernels and whole models.

    Times are compared at one clock: this VM's host moves the core clock between minutes
    (2.5-3.2 GHz here within an hour), and a kernel's time follows it. Each calibration time
    is brought to the calibration's median clock (t x f / f_ref: the cycles are what stays);
    a prediction for a device running at f_now is scaled by f_ref / f_now.

    Per class, a base t = c0 + c1 x roofline time (a per-call cost and an efficiency, fitted
    by non-negative least squares on relative error) carries the trend, so a kernel larger than
    any calibrated one is extrapolated along it; the forest learns what the base misses
    (channels off the vector width, cache boundaries, kernel size) as log(t / base)."""

    def __init__(self, cal: Calibration):
        if len(cal.kernels) < MIN_CLASS_SAMPLES:
            raise UsageError(f"the calibration holds {len(cal.kernels)} kernels: too few to predict from; "
                             "run `harness calibrate` again with a larger --budget")
        from sklearn.ensemble import RandomForestRegressor  # deferred: only calibrate and predict need it

        self.cal = cal
        self.snap = cal.snap()
        clocks = [s.clock_ghz for s in cal.kernels if s.clock_ghz]
        self.clock_ghz = float(np.median(clocks)) if clocks else None
        self.names = list(cal.kernels[0].features)
        x = np.array([[s.features[n] for n in self.names] for s in cal.kernels])
        t = np.array([s.measured_s * self._to_ref(s.clock_ghz) for s in cal.kernels])
        roof = np.array([10 ** s.features["log_roof_s"] for s in cal.kernels])
        classes = np.array([s.klass for s in cal.kernels])
        self.base = {c: fit_base(roof[classes == c], t[classes == c]) for c in CLASSES if (classes == c).sum()}
        self.base_all = fit_base(roof, t)
        y = np.log(t / self._base(classes, roof))
        self.forest = RandomForestRegressor(n_estimators=TREES, min_samples_leaf=3, oob_score=True, random_state=0,
                                           n_jobs=1).fit(x, y)
        residual = y - self.forest.oob_prediction_
        everyone = float(np.sqrt(np.mean(residual ** 2)))
        self.class_sd = {c: (float(np.sqrt(np.mean(residual[classes == c] ** 2)))
                             if (classes == c).sum() >= MIN_CLASS_SAMPLES else everyone) for c in CLASSES}
        self.class_error = {c: float(np.median(np.abs(np.expm1(residual[classes == c]))))
                            for c in CLASSES if (classes == c).sum()}
        self.class_count = {c: int((classes == c).sum()) for c in CLASSES}
        self.ranges = {c: (x[classes == c].min(axis=0), x[classes == c].max(axis=0))
                       for c in CLASSES if (classes == c).sum()}
        self.composition = fit_composition(cal.networks, self._to_ref)

    def _to_ref(self, clock_ghz: float | None) -> float:
        """The factor that brings a time measured at `clock_ghz` to the calibration's clock."""
        return clock_ghz / self.clock_ghz if clock_ghz and self.clock_ghz else 1.0

    def _base(self, classes, roof):
        return np.array([np.dot(self.base.get(c, self.base_all), (1.0, r)) for c, r in zip(classes, roof)])

    def predict_kernels(self, kernels: list[Kernel], clock_ghz: float | None = None) -> list[KernelPrediction]:
        """Each kernel's time at `clock_ghz` (the calibration's clock where not given)."""
        if not kernels:
            return []
        rows = [features(k, self.cal.threads, self.snap) for k in kernels]
        x = np.array([[f[n] for n in self.names] for f in rows])
        classes = [kernel_class(k) for k in kernels]
        roofs = np.array([10 ** f["log_roof_s"] for f in rows])
        seconds = self._base(classes, roofs) * np.exp(self.forest.predict(x)) / self._to_ref(clock_ghz)
        return [KernelPrediction(k, klass, float(t), float(roof), self.class_sd[klass], self._outside(klass, xrow))
                for k, klass, t, roof, xrow in zip(kernels, classes, seconds, roofs, x)]

    def _outside(self, klass: str, xrow) -> list[str]:
        if klass not in self.ranges:
            return ["no kernel of this class was calibrated"]
        low, high = self.ranges[klass]
        checked = ("log_flops", "log_bytes", "log_out_elements", "log_c_out", "khkw", "stride")
        return [f"{n} {xrow[i]:.3g} outside [{low[i]:.3g}, {high[i]:.3g}]" for i, n in enumerate(self.names)
                if n in checked and not low[i] - 1e-9 <= xrow[i] <= high[i] + 1e-9]

    def predict_model(self, kernels: list[Kernel], clock_ghz: float | None = None) -> Prediction:
        """The whole model at `clock_ghz` (the calibration's clock where not given)."""
        per = self.predict_kernels(kernels, clock_ghz)
        total = sum(p.seconds for p in per)
        comp = self.composition
        scale = 1.0 / self._to_ref(clock_ghz)
        seconds = max(comp["a"] * scale + comp["b"] * total + comp["g"] * scale * len(per), 0.5 * total)
        # kernels' errors assumed independent, the composition's residual on top, in log space
        kernel_var = sum((p.seconds * p.sd_log) ** 2 for p in per)
        sd = math.sqrt(kernel_var * comp["b"] ** 2 + (comp["rel_sd"] * seconds) ** 2)
        warnings = [f"{p.kernel.name} ({p.klass}): {'; '.join(p.out_of_range)}" for p in per if p.out_of_range]
        return Prediction(seconds, max(seconds - INTERVAL_SDS * sd, 0.0), seconds + INTERVAL_SDS * sd, per, total,
                          comp, warnings)


def fit_base(roof, t) -> tuple[float, float]:
    """(c0, c1) of t = c0 + c1 x roof, non-negative, each kernel's relative error weighed alike."""
    from scipy.optimize import nnls  # deferred with the rest: only a fit needs it

    roof, t = np.asarray(roof, dtype=float), np.asarray(t, dtype=float)
    if len(t) < 2:
        return (0.0, float(t[0] / roof[0])) if len(t) else (0.0, 1.0)
    coef, _ = nnls(np.column_stack([np.ones_like(roof), roof]) / t[:, None], np.ones_like(t))
    return (float(coef[0]), float(coef[1])) if coef[1] > 0 else (0.0, float(np.median(t / roof)))


def fit_composition(networks: list[NetworkSample], to_ref=lambda clock: 1.0) -> dict:
    """whole = a + b x sum(kernels) + g x kernels by least squares over the calibration
    networks, each network's relative error weighed alike, their times at the calibration's
    clock. g may be negative: the profiler adds a little to each kernel it times. a < 0 (a
    cost cannot be negative) refits without it; too few networks: whole = b x sum."""
    rows = [n for n in networks if n.whole_s > 0 and n.sum_kernels_s > 0]
    ratios = [n.whole_s / n.sum_kernels_s for n in rows] or [1.0]
    fallback = {"a": 0.0, "b": float(np.median(ratios)), "g": 0.0,
                "rel_sd": float(np.std(np.log(ratios))) if len(ratios) > 1 else 0.1, "networks": len(rows)}
    if len(rows) < 6:
        return fallback
    whole = np.array([n.whole_s * to_ref(n.clock_ghz) for n in rows])
    summed = np.array([n.sum_kernels_s * to_ref(n.clock_ghz) for n in rows])
    count = np.array([float(n.kernels) for n in rows])
    for columns in ((np.ones_like(whole), summed, count), (summed, count)):
        a_matrix = np.column_stack(columns)
        coef = np.linalg.lstsq(a_matrix / whole[:, None], np.ones_like(whole), rcond=None)[0]
        if len(columns) == 2 or coef[0] >= 0:
            break
    a, b, g = (coef if len(coef) == 3 else (0.0, *coef))
    if not 0.5 <= b <= 1.5:  # noise a line cannot explain: the median ratio says more
        return fallback
    fitted = a_matrix @ coef
    rel = np.log(whole / np.maximum(fitted, 1e-12))
    return {"a": float(a), "b": float(b), "g": float(g), "rel_sd": float(np.std(rel)), "networks": len(rows)}
