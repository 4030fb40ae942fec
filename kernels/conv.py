"""One 2-D convolution, timed on PyTorch or ONNX Runtime, with its cost from harness.cost.

Kinds
    conv.torch        torch.nn.functional.conv2d (oneDNN, im2col + BLAS, ... as torch picks)
    conv.onnxruntime  a one-node ONNX model (Conv; QLinearConv for int8) run with io_binding
    conv              either of them, chosen by the `backend` parameter, so a suite can
                      put both backends in one case's matrix

Every config is checked against the cost model when the suite loads (Kind.validate calls
conv2d_cost), so an impossible one fails there with the offending field named. FLOPs and
bytes per call are conv2d_cost's, for the dtype that runs (a multiply-add = 2 FLOPs; every
tensor moved once).

Data come from one NumPy seed, identical for both backends. check() compares the last
output with a float64 torch conv of the same (rounded or quantized) data:
    float32   max |out - ref| <= 1e-4 x max |ref|
    bfloat16  max |out - ref| <= 2e-2 x max |ref|   (a bf16 output keeps 8 significant bits)
    int8      the uint8 output within one quantization step of the requantized reference

int8 is per-tensor quantized: uint8 activations in 7 bits (0..127, zero point 64; see
make_data for why), int8 weights
(symmetric), an int32 bias at scale x_scale * w_scale, a uint8 output. torch runs
quantized::conv2d with prepacked weights; ONNX Runtime runs QLinearConv. The cost model
counts every tensor at one byte then (the int32 bias is counted at one byte too).

torch, onnx and onnxruntime are imported inside functions (deferred on purpose: a suite is validated
without starting them, and their thread pools take the worker's settings).
"""
from __future__ import annotations

import ctypes
import math
import os
import sys
import tempfile
import warnings

import numpy as np

from harness.core.registry import Kind, Param
from harness.core.workload import Context, Skip, Workload
from harness.cost.ops import conv2d_cost
from kernels.cuda_probes import torch_event_timer, torch_gpu
from kernels.ort import create_session

DTYPES = ("float32", "bfloat16", "int8")
BACKENDS = ("torch", "onnxruntime")
GRAPH_OPTIMIZATION = ("disable", "basic", "extended", "layout", "all")
MEMORY_FORMATS = ("contiguous", "channels_last")
SEED = 0
# A worker with torch and ONNX Runtime loaded, before any tensor.
RUNTIME_BYTES = 0.5e9
TOLERANCE = {"float32": 1e-4, "bfloat16": 2e-2}

# torch's conv2d returns a fresh output tensor on every call, and glibc serves a block of
# 128 KiB or more with mmap and hands it back to the OS on free: every call then pays one
# minor fault per 4 KiB page of output (about 3,900 for 12.8 MB; MACHINE-NOTES), timing
# the kernel's page-fault handler rather than the conv. With the mmap threshold above any
# buffer we allocate and the trim threshold out of reach, freed outputs stay in the heap
# and the next call reuses them. glibc reads these only at process start, so they travel
# in Kind.env. aten::convolution.out is no way out: on the oneDNN path it computes into a
# fresh tensor and copies that into `out`, an extra pass over the output.
MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(4 * 1024**3),  # bytes
    "MALLOC_TRIM_THRESHOLD_": str(1024**5),
}


# ---------------------------------------------------------------- config and cost

def conv_shape(params: dict) -> dict:
    """The conv's fields with the shorthands resolved: w 0 -> h, kw 0 -> kh."""
    return {
        "n": params["n"], "ic": params["ic"], "oc": params["oc"],
        "h": params["h"], "w": params["w"] or params["h"],
        "kh": params["kh"], "kw": params["kw"] or params["kh"],
        "stride": params["stride"], "pad": params["pad"], "dilation": params["dilation"],
        "groups": params["groups"], "bias": params["bias"],
    }


def conv_cost(params: dict):
    """conv2d_cost for a case's params: the one place a conv case's FLOPs and bytes come from."""
    s = conv_shape(params)
    return conv2d_cost((s["n"], s["ic"], s["h"], s["w"]), s["oc"], (s["kh"], s["kw"]),
                       s["stride"], s["pad"], s["dilation"], s["groups"],
                       bias=s["bias"], dtype=params["dtype"])


def validate(params: dict) -> None:
    """Impossible configs fail at suite load; CostError is a ValueError naming the field."""
    conv_cost(params)
    if params.get("backend") == "onnxruntime" and params.get("memory_format", "contiguous") != "contiguous":
        raise ValueError("memory_format: channels_last applies to backend torch only "
                         "(an ONNX model's tensors are NCHW)")


def conv_memory(params: dict, threads: int) -> float:
    """Peak bytes of a conv case, on the safe side: the input and weights (4 B) and two live
    outputs (torch returns a fresh one per call), the float64 reference of all three, the
    check's float64 copies of the output, and ONNX Runtime's serialised model and its copy."""
    s = conv_shape(params)
    oh = (s["h"] + 2 * s["pad"] - s["dilation"] * (s["kh"] - 1) - 1) // s["stride"] + 1
    ow = (s["w"] + 2 * s["pad"] - s["dilation"] * (s["kw"] - 1) - 1) // s["stride"] + 1
    x = s["n"] * s["ic"] * s["h"] * s["w"]
    w = s["oc"] * (s["ic"] // s["groups"]) * s["kh"] * s["kw"]
    y = s["n"] * s["oc"] * max(oh, 1) * max(ow, 1)
    return RUNTIME_BYTES + 4 * (x + w) + 8 * y + 8 * (x + w + y) + 16 * y + 8 * w


def worker_env(params: dict) -> dict:
    return dict(MALLOC_ENV)


# ---------------------------------------------------------------- data and reference

def _round_to_bfloat16(a):
    """float32 values rounded to the nearest bfloat16 (ties to even), kept as float32."""
    bits = a.astype(np.float32).view(np.uint32)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32)


def make_data(params: dict) -> dict:
    """Inputs, weights and bias from one seed: the same numbers for every backend.

    Weights are scaled by 1/sqrt(IC/G x KH x KW) so outputs are of order 1 whatever the
    size, which keeps tolerances and the int8 output scale meaningful."""
    s = conv_shape(params)
    rng = np.random.default_rng(SEED)
    fan_in = s["ic"] // s["groups"] * s["kh"] * s["kw"]
    x_shape = (s["n"], s["ic"], s["h"], s["w"])
    w_shape = (s["oc"], s["ic"] // s["groups"], s["kh"], s["kw"])
    if params["dtype"] == "int8":
        # Activations use 7 bits (0..127), as torch's x86 default qconfig does (reduce_range):
        # fbgemm's u8 x s8 kernels add pairs of products in int16, which saturates with
        # full-range activations (a 128-channel depthwise conv came out 32 steps wrong).
        x_scale, w_scale = 1.0 / 32, 1.0 / (73.0 * math.sqrt(fan_in))  # uniform int8 has std ~73
        x = rng.integers(0, 128, x_shape, dtype=np.uint8)
        w = rng.integers(-127, 128, w_shape, dtype=np.int8)
        b = rng.integers(-2000, 2001, s["oc"]).astype(np.int32) if s["bias"] else None
        return {"x": x, "w": w, "b": b, "x_scale": x_scale, "x_zero_point": 64,
                "w_scale": w_scale, "y_scale": 8.0 / 127, "y_zero_point": 128}
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = (rng.standard_normal(w_shape, dtype=np.float32) / np.float32(math.sqrt(fan_in)))
    b = (0.1 * rng.standard_normal(s["oc"], dtype=np.float32)) if s["bias"] else None
    if params["dtype"] == "bfloat16":
        x, w = _round_to_bfloat16(x), _round_to_bfloat16(w)
        b = _round_to_bfloat16(b) if b is not None else None
    return {"x": x, "w": w, "b": b}


def reference(params: dict, data: dict):
    """The expected output as a float64 NumPy array (for int8: the requantized uint8 values)."""
    import torch

    s = conv_shape(params)
    if params["dtype"] == "int8":
        x = (torch.from_numpy(data["x"]).double() - data["x_zero_point"]) * data["x_scale"]
        w = torch.from_numpy(data["w"]).double() * data["w_scale"]
        b = (torch.from_numpy(data["b"]).double() * data["x_scale"] * data["w_scale"]
             if data["b"] is not None else None)
    else:
        x, w = torch.from_numpy(data["x"]).double(), torch.from_numpy(data["w"]).double()
        b = torch.from_numpy(data["b"]).double() if data["b"] is not None else None
    with torch.inference_mode():
        ref = torch.nn.functional.conv2d(x, w, b, s["stride"], s["pad"], s["dilation"], s["groups"])
    ref = ref.numpy()
    if params["dtype"] == "int8":
        ref = np.clip(np.round(ref / data["y_scale"]) + data["y_zero_point"], 0, 255)
    return ref


def compare(params: dict, out, expected) -> None:
    """Raises AssertionError if `out` (a NumPy array) is not the reference within tolerance."""
    out = np.asarray(out, dtype=np.float64)
    if out.shape != expected.shape:
        raise AssertionError(f"output shape {out.shape} != expected {expected.shape}")
    if not np.all(np.isfinite(out)):
        raise AssertionError("output has non-finite values")
    error = float(np.max(np.abs(out - expected)))
    if params["dtype"] == "int8":
        if error > 1:
            raise AssertionError(f"int8 output differs from the reference by {error:.0f} quantization "
                                 "steps (at most 1 allowed)")
        return
    scale = max(float(np.max(np.abs(expected))), 1e-30)
    if error > TOLERANCE[params["dtype"]] * scale:
        raise AssertionError(f"{params['dtype']} output differs from the float64 reference: "
                             f"max error {error:.3g} vs max |ref| {scale:.3g} "
                             f"(tolerance {TOLERANCE[params['dtype']]:g} of it)")


def _common_info(params: dict, cost) -> dict:
    s = conv_shape(params)
    return {
        "conv": s, "dtype": params["dtype"], "device": params["device"],
        "output_shape": list(cost.output_shape),
        "cost": cost.as_dict(),
        "bytes_accounting": "input and weights (and bias) read once, output written once "
                            "(harness.cost.conv2d_cost)",
        "malloc_env": {k: os.environ.get(k) for k in MALLOC_ENV},
    }


# ---------------------------------------------------------------- torch

def _capture_stdout(fn) -> str:
    """What C code prints to file descriptor 1 while fn runs (oneDNN's verbose log)."""
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(1)
        os.dup2(tmp.fileno(), 1)
        try:
            fn()
        finally:
            libc.fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
        tmp.seek(0)
        return tmp.read().decode(errors="replace")


def _onednn_primitives(log: str) -> list[dict]:
    """oneDNN's verbose 'exec' lines: which primitives ran, in which implementation and
    memory formats (aBcd16b is the blocked N16CHW layout; abcd is plain NCHW)."""
    primitives = []
    for line in log.splitlines():
        fields = line.split(",")
        if len(fields) < 12 or fields[0] != "onednn_verbose" or "exec" not in fields[:4]:
            continue
        at = fields.index("exec")
        # exec, engine, primitive, implementation, prop_kind, memory descriptors, attributes,
        # auxiliary, problem, time
        rest = fields[at + 1:]
        primitives.append({"primitive": rest[1], "implementation": rest[2], "prop_kind": rest[3],
                           "memory": rest[4], "auxiliary": rest[6], "problem": rest[7]})
    return primitives


def _memory_format_of(torch, t) -> str:
    if t.is_contiguous():
        return "NCHW (contiguous)"
    if t.is_contiguous(memory_format=torch.channels_last):
        return "NHWC (channels_last)"
    return f"strided {tuple(t.stride())}"


def torch_conv(params: dict, ctx: Context) -> Workload:
    import torch

    s = conv_shape(params)
    dtype, device = params["dtype"], params["device"]
    cost = conv_cost(params)
    info = _common_info(params, cost)
    device_timer = None
    if device == "cuda":
        torch_gpu()
        if dtype == "int8":
            raise Skip("int8: torch's quantized conv2d runs on the CPU only")
        device_timer = torch_event_timer(torch)
    torch.set_num_threads(ctx.threads)
    data = make_data(params)
    memory_format = (torch.channels_last if params["memory_format"] == "channels_last"
                     else torch.contiguous_format)
    stride, pad, dilation = [s["stride"]] * 2, [s["pad"]] * 2, [s["dilation"]] * 2
    backend = {"library": "torch", "version": torch.__version__, "threads": torch.get_num_threads(),
               "mkldnn_available": torch.backends.mkldnn.is_available(),
               "mkldnn_enabled": torch._C._get_mkldnn_enabled()}

    if dtype == "int8":
        with warnings.catch_warnings():  # quantized tensor constructors warn of deprecation
            warnings.simplefilter("ignore")
            x = torch._make_per_tensor_quantized_tensor(
                torch.from_numpy(data["x"]), data["x_scale"], data["x_zero_point"])
            w = torch._make_per_tensor_quantized_tensor(torch.from_numpy(data["w"]), data["w_scale"], 0)
        x = x.contiguous(memory_format=memory_format)
        bias = (torch.from_numpy(data["b"]).float() * (data["x_scale"] * data["w_scale"])
                if data["b"] is not None else None)
        packed = torch.ops.quantized.conv2d_prepack(w, bias, stride, pad, dilation, s["groups"])
        y_scale, y_zero_point = data["y_scale"], data["y_zero_point"]
        conv = lambda: torch.ops.quantized.conv2d(x, packed, y_scale, y_zero_point)
        backend["conv_backend"] = f"quantized::conv2d (engine {torch.backends.quantized.engine})"
    else:
        torch_dtype = torch.float32 if dtype == "float32" else torch.bfloat16
        x = torch.from_numpy(data["x"]).to(device=device, dtype=torch_dtype).contiguous(memory_format=memory_format)
        w = torch.from_numpy(data["w"]).to(device=device, dtype=torch_dtype).contiguous(memory_format=memory_format)
        bias = (torch.from_numpy(data["b"]).to(device=device, dtype=torch_dtype)
                if data["b"] is not None else None)
        conv = lambda: torch.nn.functional.conv2d(x, w, bias, stride, pad, dilation, s["groups"])
        try:  # what torch says it will run; a private API, so informative only
            chosen = torch._C._select_conv_backend(x, w, bias, stride, pad, dilation, False, [0, 0],
                                                   s["groups"], None)
            backend["conv_backend"] = chosen.name
            backend["suggested_memory_format"] = str(
                torch._C._conv_determine_backend_memory_format(x, w, chosen))
        except Exception as exc:
            backend["conv_backend"] = f"unknown ({type(exc).__name__}: {exc})"

    state = {"out": None}

    def fn():
        with torch.inference_mode():
            state["out"] = conv()
        return state["out"]

    # One call now, with oneDNN's verbose log on: it tells which kernels and layouts run
    # (the log is off again for the timed calls). A combination torch has no kernel for
    # is a skip with torch's own words, not a failure.
    try:
        if device == "cpu" and torch.backends.mkldnn.is_available():
            def logged():
                with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                    fn()
            backend["onednn_primitives"] = _onednn_primitives(_capture_stdout(logged))
        else:
            fn()
    except (RuntimeError, NotImplementedError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        # Only the combinations a backend may lack (reduced precision, CUDA) may skip; a
        # float32 CPU conv that fails is a failure, whatever its message says.
        maybe_missing = dtype != "float32" or device != "cpu"
        if maybe_missing and (isinstance(exc, NotImplementedError) or "not implemented" in message.lower()
                              or "not supported" in message.lower()):
            raise Skip(f"torch {torch.__version__} cannot run this {dtype} conv on {device}: {message}") from None
        raise
    if device == "cuda":
        torch.cuda.synchronize()
    if dtype == "int8":  # the x86 engine hands each conv to oneDNN or to fbgemm
        backend["conv_backend"] += " -> oneDNN" if backend.get("onednn_primitives") else " -> fbgemm"

    out = state["out"]
    info.update(
        backend=backend,
        layout={"memory_format_param": params["memory_format"],
                "input": _memory_format_of(torch, x), "weight": _memory_format_of(torch, w) if dtype != "int8"
                else "prepacked by quantized::conv2d_prepack",
                "output": _memory_format_of(torch, out)},
        output_buffer=("a fresh tensor per call from torch's caching CUDA allocator" if device == "cuda" else
                       "a fresh tensor per call from torch's CPU allocator (glibc malloc); the worker "
                       "starts with MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ raised, so freed outputs "
                       "stay in the process heap and calls take no page faults"),
    )

    def check():
        result = state["out"]
        result = result.int_repr() if dtype == "int8" else result
        compare(params, result.detach().to("cpu", torch.float64).numpy(), reference(params, data))

    return Workload(fn=fn, flops=float(cost.flops), bytes=float(cost.bytes), check=check, info=info,
                    device_timer=device_timer)


# ---------------------------------------------------------------- ONNX Runtime

def onnx_conv_model(params: dict, data: dict):
    """A one-node ONNX model: Conv (float32, bfloat16) or QLinearConv (int8); X in, Y out,
    weights and bias as initializers (so ONNX Runtime may prepack them once)."""
    from onnx import TensorProto, helper, numpy_helper

    s = conv_shape(params)
    attrs = {"kernel_shape": [s["kh"], s["kw"]], "strides": [s["stride"]] * 2,
             "pads": [s["pad"]] * 4, "dilations": [s["dilation"]] * 2, "group": s["groups"]}
    x_shape = [s["n"], s["ic"], s["h"], s["w"]]
    opset = 17
    if params["dtype"] == "int8":
        elem = TensorProto.UINT8
        inits = [
            numpy_helper.from_array(np.array(data["x_scale"], np.float32), "x_scale"),
            numpy_helper.from_array(np.array(data["x_zero_point"], np.uint8), "x_zero_point"),
            numpy_helper.from_array(data["w"], "W"),
            numpy_helper.from_array(np.array(data["w_scale"], np.float32), "w_scale"),
            numpy_helper.from_array(np.array(0, np.int8), "w_zero_point"),
            numpy_helper.from_array(np.array(data["y_scale"], np.float32), "y_scale"),
            numpy_helper.from_array(np.array(data["y_zero_point"], np.uint8), "y_zero_point"),
        ]
        inputs = ["X", "x_scale", "x_zero_point", "W", "w_scale", "w_zero_point", "y_scale", "y_zero_point"]
        if data["b"] is not None:
            inits.append(numpy_helper.from_array(data["b"], "B"))
            inputs.append("B")
        node = helper.make_node("QLinearConv", inputs, ["Y"], **attrs)
    else:
        bf16 = params["dtype"] == "bfloat16"
        elem = TensorProto.BFLOAT16 if bf16 else TensorProto.FLOAT
        opset = 22 if bf16 else 17  # Conv takes bfloat16 from opset 22

        def init(name, a):
            if not bf16:
                return numpy_helper.from_array(a, name)
            raw = (a.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)  # exact: already rounded
            return helper.make_tensor(name, TensorProto.BFLOAT16, a.shape, raw.tobytes(), raw=True)

        inits = [init("W", data["w"])]
        inputs = ["X", "W"]
        if data["b"] is not None:
            inits.append(init("B", data["b"]))
            inputs.append("B")
        node = helper.make_node("Conv", inputs, ["Y"], **attrs)
    graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info("X", elem, x_shape)],
                              [helper.make_tensor_value_info("Y", elem, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="roofline-harness")
    model.ir_version = 10 if opset >= 21 else 8  # what ONNX Runtime 1.16+ reads
    return model


def ort_conv(params: dict, ctx: Context) -> Workload:
    import onnxruntime as ort

    dtype, device = params["dtype"], params["device"]
    cost = conv_cost(params)
    info = _common_info(params, cost)
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise Skip(f"no CUDA GPU for onnxruntime {ort.__version__}: CUDAExecutionProvider not "
                       f"available (providers: {', '.join(ort.get_available_providers())})")
        providers = ["CUDAExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    data = make_data(params)
    try:
        built = create_session(onnx_conv_model(params, data).SerializeToString(), ctx.threads, ctx.cpus,
                               params["graph_optimization"], providers=providers)
    except Exception as exc:  # no kernel for this type here: ORT says NOT_IMPLEMENTED
        if "NOT_IMPLEMENTED" in str(exc) or "NotImplemented" in type(exc).__name__:
            raise Skip(f"onnxruntime {ort.__version__} {providers[0]} has no {dtype} kernel for this "
                       f"conv: {' '.join(str(exc).split())[:200]}") from None
        raise
    # The optimized graph tells which kernels run: for example NCHWc blocked convs between
    # ReorderInput and ReorderOutput, or QLinearConv between Transposes (NHWC).
    session, nodes = built.session, built.optimized_nodes
    if dtype == "bfloat16":
        raise Skip("bfloat16: onnxruntime accepted the model, but NumPy has no bfloat16 to bind "
                   "inputs and outputs with; not measured")

    out_shape = tuple(cost.output_shape)
    x = data["x"]
    y = np.zeros(out_shape, dtype=np.uint8 if dtype == "int8" else np.float32)
    ort_device = "cuda" if device == "cuda" else "cpu"
    # Bound once: ORT reads X from and writes Y into these buffers, no allocation per call.
    x_value = ort.OrtValue.ortvalue_from_numpy(x, ort_device, 0)
    y_value = ort.OrtValue.ortvalue_from_numpy(y, ort_device, 0)
    binding = session.io_binding()
    binding.bind_ortvalue_input("X", x_value)
    binding.bind_ortvalue_output("Y", y_value)

    def fn():
        session.run_with_iobinding(binding)
        return y

    fn()
    info.update(
        backend={"library": "onnxruntime", "version": ort.__version__, "providers": session.get_providers(),
                 "graph_optimization": params["graph_optimization"], "optimized_graph": nodes,
                 "intra_op_num_threads": ctx.threads, "inter_op_num_threads": 1,
                 "calling_thread_affinity": sorted(os.sched_getaffinity(0)), "thread_pool_affinity": sorted(ctx.cpus),
                 "onnx_op": "QLinearConv" if dtype == "int8" else "Conv"},
        layout={"input": "NCHW", "output": "NCHW",
                "internal": ("NCHWc blocked (com.microsoft.nchwc)" if any("nchwc" in n for n in nodes)
                             else "NHWC (Transpose around the op)" if any("Transpose" in n for n in nodes)
                             else "NCHW")},
        output_buffer="preallocated NumPy output bound with io_binding; no allocation per call",
    )

    def check():
        result = y if device == "cpu" else y_value.numpy()
        compare(params, result, reference(params, data))

    return Workload(fn=fn, flops=float(cost.flops), bytes=float(cost.bytes), check=check, info=info)


def conv(params: dict, ctx: Context) -> Workload:
    """Kind `conv`: the backend named by params["backend"]."""
    return (torch_conv if params["backend"] == "torch" else ort_conv)(params, ctx)


# ---------------------------------------------------------------- kinds

# Bounds well past any network's layer; memory_estimate judges what fits on this machine.
MAX_CHANNELS, MAX_SIDE, MAX_BATCH = 1 << 16, 1 << 15, 1 << 12
SHAPE_PARAMS = {
    "n": Param(int, 1, min=1, max=MAX_BATCH, help="batch"),
    "ic": Param(int, min=1, max=MAX_CHANNELS, help="input channels"),
    "oc": Param(int, min=1, max=MAX_CHANNELS, help="output channels"),
    "h": Param(int, min=1, max=MAX_SIDE, help="input height"),
    "w": Param(int, 0, min=0, max=MAX_SIDE, help="input width (0: = h)"),
    "kh": Param(int, min=1, max=MAX_SIDE, help="kernel height"),
    "kw": Param(int, 0, min=0, max=MAX_SIDE, help="kernel width (0: = kh)"),
    "stride": Param(int, 1, min=1, max=MAX_SIDE),
    "pad": Param(int, 0, min=0, max=MAX_SIDE, help="zero padding on every side"),
    "dilation": Param(int, 1, min=1, max=MAX_SIDE),
    "groups": Param(int, 1, min=1, max=MAX_CHANNELS, help="groups (= ic for depthwise)"),
    "bias": Param(bool, False),
    "dtype": Param(str, "float32", choices=DTYPES, help="unsupported on a backend: skipped with the reason"),
    "device": Param(str, "cpu", choices=("cpu", "cuda")),
}
TORCH_PARAMS = {"memory_format": Param(str, "contiguous", choices=MEMORY_FORMATS,
                                       help="input and weight layout handed to torch")}
ORT_PARAMS = {"graph_optimization": Param(str, "all", choices=GRAPH_OPTIMIZATION,
                                          help="onnxruntime graph optimization level")}

KINDS = [
    Kind("conv.torch", "kernels.conv:torch_conv", {**SHAPE_PARAMS, **TORCH_PARAMS},
         "2-D convolution with torch.nn.functional.conv2d (quantized::conv2d for int8)",
         env=worker_env, validate=validate, memory=conv_memory),
    Kind("conv.onnxruntime", "kernels.conv:ort_conv", {**SHAPE_PARAMS, **ORT_PARAMS},
         "2-D convolution as a one-node ONNX model (Conv, QLinearConv for int8) on ONNX Runtime, io_binding",
         env=worker_env, validate=validate, memory=conv_memory),
    Kind("conv", "kernels.conv:conv",
         {"backend": Param(str, choices=BACKENDS), **SHAPE_PARAMS, **TORCH_PARAMS, **ORT_PARAMS},
         "2-D convolution on the backend named by `backend` (conv.torch or conv.onnxruntime), "
         "so both can sit in one case's matrix",
         env=worker_env, validate=validate, memory=conv_memory),
]
