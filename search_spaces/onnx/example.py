"""The space's example: a small CIFAR classifier written with onnx.helper, exported without weights (as
`export_params=False` writes it) — conv 3×3 to 8 channels, BatchNorm, ReLU, global average pooling and a
linear layer to 10 classes. Built the same, byte for byte, in every process."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

EXAMPLE_DIGEST = "44aa12c5a2484acf44e8bcb182ee23d231af47ee7e6754593f36f215ab64058c"
"""Its structure digest (tests/search_spaces/test_onnx.py checks it): `onnx:` and this are its architecture."""
WIDTH = 8
CLASSES = 10


def example_model() -> bytes:
    def weight(name: str, *shape: int) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))

    nodes = [
        helper.make_node("Conv", ["images", "conv.weight"], ["conv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node(
            "BatchNormalization", ["conv", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"], ["bn"]
        ),
        helper.make_node("Relu", ["bn"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["features"]),
        helper.make_node("Gemm", ["features", "fc.weight", "fc.bias"], ["logits"], transB=1),
    ]
    inputs = [
        helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 32, 32]),
        weight("conv.weight", WIDTH, 3, 3, 3),
        *(weight(f"bn.{name}", WIDTH) for name in ("weight", "bias", "running_mean", "running_var")),
        weight("fc.weight", CLASSES, WIDTH),
        weight("fc.bias", CLASSES),
    ]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", CLASSES])]
    graph = helper.make_graph(nodes, "example", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="nasscore")
    model.ir_version = 8
    return bytes(model.SerializeToString(deterministic=True))
