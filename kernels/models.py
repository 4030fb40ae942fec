"""Whole models as case kinds: a zoo model in PyTorch (eager or torch.compile) or in
ONNX Runtime, or any ONNX file in ONNX Runtime.

    model.torch        model, batch, framework (eager | compile), dtype, image
    model.onnxruntime  model or onnx, batch, opt_level, shape, image

Latency is the core's median seconds per call (one call = one forward pass of a batch);
metrics add throughput = batch / median in images per second: the second source
document's distinction, latency for one request, throughput for a stream of them.
One-off costs are reported apart, never mixed into the samples: torch.compile's
compilation (info["compile_s"], done in the factory so a failing compiler becomes a
skipped case with its reason), ONNX Runtime's session creation (info["session_create_s"]),
and the first run after them (the core's timing.first_call_s).

FLOPs and bytes are the whole model's (harness.cost): for a zoo model the torch
walk of the model as defined, the same figure for every framework so their times compare
directly; for an ONNX file, onnx_model_cost of the graph as given. info carries the four
size metrics: FLOPs, params, memory access bytes, and the memory footprint as this worker
saw it (its peak RSS over the case, and the activation high-water mark of the torch walk).

Zoo models are exported to ONNX once per (model, batch, image) with torch.onnx.export into
results/.onnx-cache/ (HARNESS_ONNX_CACHE overrides), written under a temporary name and
renamed, so workers exporting at once never read half a file.

torch and onnxruntime are imported inside functions (deferred on purpose: a suite is validated
without starting them, and their thread pools take the worker's settings).
"""
from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import time
import warnings
from pathlib import Path

import numpy as np

from harness.core import system
from harness.core.registry import Kind, Param
from harness.core.workload import Context, Skip, Workload
from harness.core.errors import UsageError
from harness.cost.onnx_graph import load_onnx, onnx_model_cost, parse_shapes, resolve_onnx_shapes
from harness.cost.onnx_weights import is_float, np_dtype, onnx_input_specs, onnx_memory_estimate
from harness.cost.torch_walk import model_cost
from kernels import zoo, zoo_random
from kernels.ort import OPT_LEVELS, create_session

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("eager", "compile")
# Relative to the output's largest magnitude: float32 kernels that sum in another order
# (oneDNN vs ORT's MLAS, inductor's fused loops) differ by a few ulps per layer, ~1e-6 of
# the scale over these depths; a wrong graph differs by O(1).
TOLERANCE = 1e-3
ZOO_NAME_HELP = (f"zoo model name: {', '.join(zoo.MODELS)}; or a calibration network "
                 "calib-cnn-<seed>[-<focus>], calib-vit-<seed>[-<focus>] (kernels/zoo_random.py)")


def onnx_cache_dir() -> Path:
    return Path(os.environ.get("HARNESS_ONNX_CACHE") or ROOT / "results" / ".onnx-cache")


def export_onnx(name: str, batch: int = 1, image: int = 224, seed: int = 0, cache_dir=None) -> Path:
    """The zoo model `name` exported to ONNX at a fixed input (batch, 3, image, image), cached.

    torch's default exporter (torch.export based; it folds BatchNorm into the convs) with
    the weights in the file; dynamo=False (TorchScript based) if that fails."""
    import torch

    cache = Path(cache_dir) if cache_dir else onnx_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    exporter = "-ts" if zoo_random.is_calib(name) else ""
    path = cache / f"{name}-b{batch}-{image}px-seed{seed}-torch{torch.__version__.split('+')[0]}{exporter}.onnx"
    if path.exists():
        return path
    _remove_orphans(cache, path.name)
    model = zoo.build(name, seed)
    x = torch.randn(batch, 3, image, image)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    quiet = io.StringIO()
    # A calibration network goes through the TorchScript exporter: 0.1-0.6 s against 2-6 s for
    # torch.export's, which calibration would pay per network; ONNX Runtime folds the
    # BatchNorms it leaves, so the kernels it runs are the same.
    fast = zoo_random.is_calib(name)
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet), _quiet_logs():
            try:
                if fast:
                    raise RuntimeError("TorchScript exporter for calibration networks")
                torch.onnx.export(model, (x,), str(tmp), input_names=["input"], output_names=["output"],
                                  external_data=False)
            except Exception:
                torch.onnx.export(model, (x,), str(tmp), input_names=["input"], output_names=["output"],
                                  dynamo=False)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _remove_orphans(cache: Path, name: str) -> None:
    """Half-written exports of `name` whose exporting process is gone (a worker killed mid-export
    leaves its .NAME.PID.tmp; a live one may still be writing its own)."""
    for tmp in cache.glob(f".{name}.*.tmp"):
        pid = tmp.name[len(name) + 2:-len(".tmp")]
        if pid.isdigit() and not system.process_alive(int(pid)):
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _quiet_logs():
    # The exporter logs a line per missing optional package (torchvision) and a progress line per stage.
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _four_metrics(cost) -> dict:
    return {"flops": cost.flops, "flops_main_conv_linear_matmul": cost.flops_main_contractions,
            "params": cost.params, "params_by_op": cost.params_by_op, "memory_access_bytes": cost.bytes,
            "intensity": cost.intensity,
            "activation_peak_bytes": cost.activation_peak_bytes,
            "unknown_ops": [u["op"] for u in cost.unknown]}


def _footprint_info(info: dict, peak: system.PeakRSS, rss_start: int) -> None:
    info["footprint"] = {
        "rss_start_bytes": rss_start,
        "rss_end_bytes": system.rss_bytes(),
        "peak_rss_bytes": peak.peak_since_reset(),
        "note": "this worker's resident memory; peak over the case (build, export, compile and timing) "
                "when the kernel let the peak counter be reset",
    }


def _compare(out, ref, what: str) -> None:
    out, ref = np.asarray(out, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if out.shape != ref.shape:
        raise AssertionError(f"{what}: output shape {out.shape} != reference {ref.shape}")
    if not np.isfinite(out).all():
        raise AssertionError(f"{what}: output has non-finite values")
    scale = float(np.abs(ref).max()) or 1.0
    err = float(np.abs(out - ref).max())
    if err > TOLERANCE * scale:
        raise AssertionError(f"{what}: max |difference| {err:.3g} exceeds {TOLERANCE:g} x max |reference| "
                             f"{scale:.3g}")


def model_memory(params: dict, threads: int) -> float:
    """The peak bytes of a model case (see zoo.memory_estimate); an ONNX file: the runtime,
    WEIGHT_COPIES x its constant tensors and ACTIVATION_COPIES x its activation high-water mark
    from shape inference (onnx_memory_estimate), before any forward pass. An ONNX file that
    cannot be read is refused when the case is validated (validate_onnx_file); should it fail
    here still, the UsageError says why: never an estimate of 0."""
    if params.get("model"):
        return zoo.memory_estimate(params["model"], params.get("batch", 1), params.get("image", 224), copies=3)
    return onnx_memory_bytes(onnx_estimate(params))


def onnx_estimate(params: dict):
    """The memory estimate of the case's ONNX file at its shapes (cached per file version and
    shapes); UsageError naming the file and what is wrong: missing, not ONNX, an external
    weights file missing or short, an input's shape not fixed."""
    path = str(params["onnx"])
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or type(exc).__name__}") from None
    try:
        return _onnx_estimate(path, stat.st_mtime_ns, stat.st_size, params.get("shape") or "")
    except UsageError as exc:
        text = str(exc)
        raise UsageError(text if text.startswith(path) else f"{path}: {text}") from None


def validate_onnx_file(params: dict) -> None:
    """A case's validate step for its shapes and ONNX file (a zoo model has none): ValueError
    'shape: ...' for shapes that do not parse, 'onnx: FILE: what is wrong' for a file that
    cannot be costed, so a suite names the case, the file and the reason before anything runs."""
    if params.get("shape"):
        try:
            parse_shapes(params["shape"])
        except Exception as exc:
            raise ValueError(f"shape: {exc}") from None
    if params.get("onnx"):
        try:
            onnx_estimate(params)
        except UsageError as exc:
            raise ValueError(f"onnx: {exc}") from None


def onnx_batch(shapes: dict) -> int | None:
    """The batch of an ONNX file's run: the first dim of the first input that has one (a
    scalar input has none); None where every input is a scalar."""
    return next((int(s[0]) for s in shapes.values() if len(s) >= 1), None)


def run_metrics(batch: int | None):
    """Latency, and throughput = batch / latency where the run has a batch."""
    return lambda median: {"latency_s": median, **({"throughput_per_s": batch / median} if batch else {})}


# The weights three times: the file read into a ModelProto, ONNX Runtime's initializer tensors
# made from it, and the copies MLAS prepacks for its GEMM and conv kernels. Activations twice:
# ORT's CPU arena grows by doubling regions (kNextPowerOfTwo), so it may hold up to twice
# what is live at the high-water mark.
WEIGHT_COPIES = 3
ACTIVATION_COPIES = 2


def onnx_memory_bytes(estimate) -> float:
    return zoo.RUNTIME_BYTES + WEIGHT_COPIES * estimate.weights_bytes + ACTIVATION_COPIES * estimate.activation_peak_bytes


@functools.lru_cache(maxsize=16)
def _onnx_estimate(path: str, mtime_ns: int, size: int, shape: str):
    # Cached per file version and shapes: a suite validates the footprint, timing and layer
    # cases of one file, each asking.
    model = load_onnx(path, load_weights=False)
    return onnx_memory_estimate(model, resolve_onnx_shapes(model, parse_shapes(shape), path))


def validate_zoo_name(params: dict) -> None:
    """'model: ...' for a name that is neither a zoo model nor a calibration network."""
    why = zoo.name_error(params["model"]) if params["model"] else None
    if why:
        raise ValueError(f"model: {why}")


def _validate_torch(params: dict) -> None:
    validate_zoo_name(params)
    if params["model"] == "vit_tiny" and params["image"] != 224:
        raise ValueError("image: vit_tiny's position embedding fixes its input at 224")


def _validate_ort(params: dict) -> None:
    if bool(params["model"]) == bool(params["onnx"]):
        raise ValueError("model: give exactly one of model (a zoo name) or onnx (a .onnx path)")
    validate_zoo_name(params)
    if params["model"] == "vit_tiny" and params["image"] != 224:
        raise ValueError("image: vit_tiny's position embedding fixes its input at 224")
    validate_onnx_file(params)


def torch_model(params: dict, ctx: Context) -> Workload:
    import torch

    peak = system.PeakRSS()  # reset here: the peak read at the end is this case's own
    rss_start = system.rss_bytes()
    name, batch, framework = params["model"], params["batch"], params["framework"]
    model = zoo.build(name)
    shape = (batch, 3, params["image"], params["image"])
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    cost = model_cost(model, shape, example=x, source=name)
    with torch.inference_mode():
        reference = model(x)
    info = {"model": name, "framework": framework, "batch": batch, "input_shape": list(shape),
            "dtype": params["dtype"], "torch": torch.__version__, "four_metrics": _four_metrics(cost),
            "cost_source": "harness.cost.torch_walk of the model as defined",
            "bytes_accounting": "sum over ops of inputs + weights + output, each moved once"}
    runner = model
    if framework == "compile":
        try:
            runner = torch.compile(model)
            t0 = time.perf_counter()
            with torch.inference_mode():
                runner(x)
            info["compile_s"] = time.perf_counter() - t0
        except Exception as exc:
            # A missing C++ compiler or an inductor/dynamo error means torch.compile cannot run
            # here: a skip, with the reason. Anything else is a bug in the case: a failure.
            from torch._dynamo.exc import TorchDynamoException
            from torch._inductor.exc import CppCompileError

            if not isinstance(exc, (TorchDynamoException, CppCompileError, OSError)):
                raise
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise Skip(f"torch.compile failed here: {type(exc).__name__}: {first}") from None
        info["compile_backend"] = "inductor"
    last = {}

    def fn():
        with torch.inference_mode():
            last["out"] = runner(x)

    def check():
        _compare(last["out"].numpy(), reference.numpy(), f"{name} {framework} vs eager")
        _footprint_info(info, peak, rss_start)

    return Workload(fn=fn, flops=float(cost.flops), bytes=float(cost.bytes), check=check, info=info,
                    metrics=lambda median: {"latency_s": median, "throughput_per_s": batch / median})


def onnx_feed(model, shapes: dict, seed: int = 1) -> dict:
    """Inputs for an ONNX graph at `shapes`: for each input, seeded data of its own ONNX type in
    the range the graph's use of it allows (onnx_input_specs: token ids within the embedding's
    rows, masks of ones, float16/bfloat16 normal values)."""
    rng = np.random.default_rng(seed)
    feed = {}
    for spec in onnx_input_specs(model, shapes):
        if spec.low is None:
            feed[spec.name] = rng.standard_normal(spec.shape).astype(spec.dtype)
        else:
            feed[spec.name] = rng.integers(spec.low, spec.high, size=spec.shape).astype(spec.dtype)
    return feed


def ort_value(array):
    """An OrtValue sharing `array`'s memory. ONNX Runtime's numpy bridge has no bfloat16
    (ml_dtypes'): such an array is bound by its bits, as uint16 typed BFLOAT16."""
    import onnxruntime as ort

    array = np.ascontiguousarray(array)
    if array.dtype.name == "bfloat16":
        from onnx import TensorProto

        return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(array.view(np.uint16), TensorProto.BFLOAT16)
    return ort.OrtValue.ortvalue_from_numpy(array)


def _ort_numpy_dtype(type_text: str):
    """The numpy dtype of an ONNX Runtime type string ('tensor(int64)'), or None."""
    name = ORT_TYPES.get(type_text)
    if name == "bfloat16":  # numpy's twin comes from ml_dtypes, through onnx
        from onnx import TensorProto

        return np_dtype(TensorProto.BFLOAT16)
    return np.dtype(name) if name else None


ORT_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
             "tensor(bfloat16)": "bfloat16", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
             "tensor(int16)": "int16", "tensor(uint16)": "uint16", "tensor(int32)": "int32",
             "tensor(uint32)": "uint32", "tensor(int64)": "int64", "tensor(uint64)": "uint64",
             "tensor(bool)": "bool"}


def ort_model(params: dict, ctx: Context) -> Workload:
    import onnxruntime as ort

    peak = system.PeakRSS()
    rss_start = system.rss_bytes()
    name = params["model"]
    info = {"opt_level": params["opt_level"], "onnxruntime": ort.__version__}
    reference = None
    if name:
        import torch

        batch = params["batch"]
        shape = (batch, 3, params["image"], params["image"])
        t0 = time.perf_counter()
        path = export_onnx(name, batch, params["image"])
        info["export_or_cache_s"] = time.perf_counter() - t0
        model = zoo.build(name)
        x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
        cost = model_cost(model, shape, example=x, source=name)
        with torch.inference_mode():
            reference = [model(x).numpy()]
        del model
        feed_arrays = {"input": x.numpy()}
        info.update(model=name, batch=batch, input_shape=list(shape),
                    cost_source="harness.cost.torch_walk of the model as defined")
    else:
        path = Path(params["onnx"])
        graph = load_onnx(path, load_weights=False)  # cost and feed need dims; the session reads the file
        shapes = resolve_onnx_shapes(graph, parse_shapes(params["shape"]), str(path))
        cost = onnx_model_cost(graph, shapes)
        feed_arrays = onnx_feed(graph, shapes)
        del graph
        batch = onnx_batch(shapes)
        info.update(onnx=str(path), input_shapes={k: list(v) for k, v in shapes.items()},
                    cost_source="harness.cost.onnx_graph of the graph as given")
        if batch is not None:
            info["batch"] = batch
    info.update(onnx_path=str(path), four_metrics=_four_metrics(cost),
                bytes_accounting="sum over ops of inputs + weights + output, each moved once")

    t0 = time.perf_counter()
    built = create_session(path, ctx.threads, ctx.cpus, params["opt_level"])
    session = built.session
    info["session_create_s"] = time.perf_counter() - t0
    info["optimized_graph"] = built.optimized_nodes

    # Inputs and outputs bound to preallocated buffers, so a run allocates no tensors of its own.
    binding = session.io_binding()
    inputs = {}
    for meta in session.get_inputs():
        if meta.name not in feed_arrays:
            raise ValueError(f"onnx: the session wants input {meta.name!r}, not given")
        array = np.ascontiguousarray(feed_arrays[meta.name])
        try:
            inputs[meta.name] = ort_value(array)
        except Exception as exc:
            raise ValueError(f"onnx: input {meta.name!r} of type {array.dtype.name}: onnxruntime cannot bind it "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})") from None
        binding.bind_ortvalue_input(meta.name, inputs[meta.name])
    outputs, buffers = {}, {}
    for meta in session.get_outputs():
        dims, dtype = meta.shape, _ort_numpy_dtype(meta.type)
        if dtype is not None and all(isinstance(d, int) for d in dims):
            buffers[meta.name] = np.zeros(dims, dtype)  # ORT writes into it: read back from here
            outputs[meta.name] = ort_value(buffers[meta.name])
            binding.bind_ortvalue_output(meta.name, outputs[meta.name])
        else:  # dynamic output or a type without a numpy twin: ORT allocates it each run
            binding.bind_output(meta.name, "cpu")
    out_names = [meta.name for meta in session.get_outputs()]

    def fn():
        session.run_with_iobinding(binding)

    def check():
        got = [buffers[n] if n in buffers else o.numpy() for n, o in zip(out_names, binding.get_outputs())]
        for i, out in enumerate(got):  # integer and bool outputs (argmax, masks) are finite by type
            if is_float(out.dtype) and not np.isfinite(out.astype(np.float64)).all():
                raise AssertionError(f"output {i} has non-finite values")
        if reference is not None:
            _compare(got[0], reference[0], f"{name} onnxruntime vs torch eager")
        _footprint_info(info, peak, rss_start)

    return Workload(fn=fn, flops=float(cost.flops), bytes=float(cost.bytes), check=check, info=info,
                    metrics=run_metrics(batch))


KINDS = [
    Kind("model.torch", "kernels.models:torch_model",
         {"model": Param(str, help=ZOO_NAME_HELP),
          "batch": Param(int, 1, min=1, max=4096, help="images per forward pass"),
          "framework": Param(str, "eager", choices=FRAMEWORKS,
                             help="eager, or torch.compile (inductor; skipped with the reason if it fails here)"),
          "dtype": Param(str, "float32", choices=("float32",)),
          "image": Param(int, 224, min=32, max=1024, help="input height = width (vit_tiny: 224 only)")},
         "a zoo model's forward pass in PyTorch: latency (median) and throughput = batch / latency",
         validate=_validate_torch, memory=model_memory),
    Kind("model.onnxruntime", "kernels.models:ort_model",
         {"model": Param(str, "", help="zoo model name (exported to ONNX once, cached)"),
          "onnx": Param(str, "", help="path to a .onnx file instead of a zoo model"),
          "batch": Param(int, 1, min=1, max=4096, help="images per run (zoo models)"),
          "opt_level": Param(str, "all", choices=OPT_LEVELS, help="ONNX Runtime graph optimization level"),
          "shape": Param(str, "", help="fixed shapes for dynamic inputs: input=1x3x224x224[,name=...]"),
          "image": Param(int, 224, min=32, max=1024, help="input height = width for zoo models")},
         "a model in ONNX Runtime (CPU, io_binding, intra-op threads = case threads): latency and throughput",
         validate=_validate_ort, memory=model_memory),
]
