"""Hand-built ONNX graphs shared by the cost, model and layer tests (onnx.helper)."""


def helper_model(path, nodes, inputs, outputs, initializers=()):
    import onnx
    from onnx import helper

    model = helper.make_model(helper.make_graph(nodes, "t", inputs, outputs, list(initializers)),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def typed_inputs_onnx(path):
    """int64 token ids into a 50000 x 16 table, a bool mask, a float16 and a bfloat16 input; an
    int64 ArgMax output and a bfloat16 output."""
    import numpy as np
    from onnx import TensorProto as T, helper, numpy_helper

    table = numpy_helper.from_array(np.random.default_rng(0).standard_normal((50000, 16)).astype(np.float32),
                                    "table")
    zero = numpy_helper.from_array(np.array(0, np.float32), "zero")
    nodes = [helper.make_node("Gather", ["table", "ids"], ["emb"]),
             helper.make_node("Where", ["mask", "emb", "zero"], ["masked"]),
             helper.make_node("Cast", ["half"], ["half32"], to=T.FLOAT),
             helper.make_node("Cast", ["brain"], ["brain32"], to=T.FLOAT),
             helper.make_node("Add", ["masked", "half32"], ["s"]),
             helper.make_node("Add", ["s", "brain32"], ["y"]),
             helper.make_node("ArgMax", ["y"], ["best"], axis=2, keepdims=0),
             helper.make_node("Cast", ["y"], ["y16"], to=T.BFLOAT16)]
    vi = helper.make_tensor_value_info
    return helper_model(path, nodes, [vi("ids", T.INT64, [2, 8]), vi("mask", T.BOOL, [2, 8, 1]),
                                       vi("half", T.FLOAT16, [2, 8, 16]), vi("brain", T.BFLOAT16, [2, 8, 16])],
                         [vi("y", T.FLOAT, [2, 8, 16]), vi("best", T.INT64, [2, 8]), vi("y16", T.BFLOAT16, [2, 8, 16])],
                         [table, zero])


def quantized_input_onnx(path, elem_type):
    """An 8-bit input q (2 x 5; onnx.TensorProto.INT8 or UINT8) dequantized (scale 0.5, zero
    point 3 or 128) and through a Relu: y = relu((q - zero point) * 0.5), float32."""
    import numpy as np
    from onnx import TensorProto as T, helper, numpy_helper

    dtype = np.int8 if elem_type == T.INT8 else np.uint8
    zero = numpy_helper.from_array(np.array(3 if dtype == np.int8 else 128, dtype), "zero")
    scale = numpy_helper.from_array(np.array(0.5, np.float32), "scale")
    nodes = [helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["x"]),
             helper.make_node("Relu", ["x"], ["y"])]
    vi = helper.make_tensor_value_info
    return helper_model(path, nodes, [vi("q", elem_type, [2, 5])], [vi("y", T.FLOAT, [2, 5])], [scale, zero])


def scalar_first_onnx(path, scalar_only=False):
    """y = x * alpha with the scalar alpha as the first input and x (3 x 4) the second; with
    scalar_only, x is a scalar too."""
    from onnx import TensorProto as T, helper

    vi = helper.make_tensor_value_info
    x_shape = [] if scalar_only else [3, 4]
    return helper_model(path, [helper.make_node("Mul", ["x", "alpha"], ["y"])],
                        [vi("alpha", T.FLOAT, []), vi("x", T.FLOAT, x_shape)], [vi("y", T.FLOAT, x_shape)])
