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
