"""The `onnx` space: the converter against ONNX's own reference evaluator (`onnx.reference.ReferenceEvaluator`)
operator by operator, with the file's weights loaded; what it refuses and how it says so (an unsupported
operator, a custom domain, a file too large, too many nodes or parameters, garbage, external data, a fixed
batch size); the structure digest (weights and names left out, everything else in); and an NB201 network
exported from PyTorch, rebuilt from its ONNX file with the same seed: the same weights, the same logits and
the same scores as the network built natively."""

import io
import math
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from torch import nn

from scorers import list_proxies, score_model_detailed
from scorers.calibration import load_calibration_batch
from search_spaces import get_space
from search_spaces.onnx import (
    MAX_FILE_BYTES,
    MAX_NODES,
    OnnxFileTooLarge,
    OnnxGraphError,
    OnnxNetwork,
    OnnxSpace,
    load_file_weights,
    read_graph,
    supported_operators,
)
from search_spaces.onnx.example import EXAMPLE_DIGEST, example_model

SPACE = get_space("onnx")
IMAGE = (3, 8, 8)
RNG = np.random.default_rng(0)
CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
MODULE_HIERARCHY_PROXIES = {
    "meco": "hooks every module, containers included: NB201's ReLUConvBN and cell containers add terms",
    "nwot": "counts modules whose type name contains 'ReLU', NB201's ReLUConvBN blocks twice",
}
"""Proxies whose value depends on how a network is split into modules, not only on the function and its
weights: a rebuilt ONNX graph has only its layers, so these differ from the native network's."""


def weight(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(RNG.standard_normal(shape).astype(np.float32), name)


def constant(name: str, values: object, dtype: object = np.int64) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def model_bytes(
    nodes: list[onnx.NodeProto],
    initializers: list[onnx.TensorProto] = (),  # type: ignore[assignment]
    *,
    image: tuple[int, ...] = IMAGE,
    batch: int | str = "N",
    flatten: bool = True,
    output_shape: tuple[str, ...] = ("N", "K"),
    opset: int = 17,
) -> bytes:
    """A graph from `images` [batch, *image] through `nodes` (the last one putting out "y"), flattened to
    [batch, features] so that the converter reads it as a classifier."""
    if flatten:
        nodes = [*nodes, helper.make_node("Flatten", ["y"], ["out"])]
    inputs = [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, *image])]
    shape = ["N", "K"] if flatten else output_shape
    outputs = [helper.make_tensor_value_info("out" if flatten else "y", TensorProto.FLOAT, shape)]
    graph = helper.make_graph(nodes, "test", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return model.SerializeToString()


def converted(data: bytes) -> OnnxNetwork:
    graph = read_graph(data)
    network = OnnxNetwork(graph)
    load_file_weights(network, graph, data)
    return network.eval()


def node(op: str, inputs: list[str], output: str = "y", **attributes: object) -> onnx.NodeProto:
    return helper.make_node(op, inputs, [output], **attributes)


CASES = {
    "conv_bias_stride_dilation": (
        [node("Conv", ["images", "w", "b"], strides=[2, 1], dilations=[1, 2], pads=[1, 2, 1, 2])],
        [weight("w", 5, 3, 3, 3), weight("b", 5)],
    ),
    "conv_groups_uneven_pads": (
        [node("Conv", ["images", "w"], group=3, pads=[0, 1, 2, 1])],
        [weight("w", 6, 1, 3, 3)],
    ),
    "batch_norm_then_relu": (
        [
            node("BatchNormalization", ["images", "s", "b", "m", "v"], "n", epsilon=1e-3),
            node("Relu", ["n"]),
        ],
        [weight("s", 3), weight("b", 3), weight("m", 3), constant("v", [0.5, 1.5, 2.0], np.float32)],
    ),
    "activations": (
        [
            node("Sigmoid", ["images"], "a"),
            node("Tanh", ["a"], "b"),
            node("LeakyRelu", ["b"], "c", alpha=0.2),
            node("HardSigmoid", ["c"], "d", alpha=0.3, beta=0.4),
            node("HardSwish", ["d"], "e"),
            node("Softmax", ["e"], "y", axis=1),
        ],
        [],
    ),
    "clip_both_relu6_and_one_sided": (
        [
            node("Clip", ["images", "low", "high"], "a"),
            node("Mul", ["a", "ten"], "b"),
            node("Clip", ["b", "zero", "six"], "c"),
            node("Clip", ["c", "", "high"], "y"),
        ],
        [
            constant("low", -0.5, np.float32),
            constant("high", 0.7, np.float32),
            constant("ten", 10.0, np.float32),
            constant("zero", 0.0, np.float32),
            constant("six", 6.0, np.float32),
        ],
    ),
    "arithmetic_with_constants_and_broadcasting": (
        [
            node("Add", ["images", "bias"], "a"),
            node("Sub", ["a", "half"], "b"),
            node("Mul", ["b", "images"], "c"),
            node("Div", ["c", "two"], "d"),
            node("Sum", ["d", "a", "images"], "y"),
        ],
        [
            weight("bias", 3, 1, 1),
            constant("half", 0.5, np.float32),
            constant("two", [2.0] * 8, np.float32),
        ],
    ),
    "concat_and_identity": (
        [node("Identity", ["images"], "a"), node("Concat", ["images", "a"], "y", axis=1)],
        [],
    ),
    "max_pool_ceil_and_padding": (
        [node("MaxPool", ["images"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)],
        [],
    ),
    "average_pools_with_and_without_padding_counted": (
        [
            node("AveragePool", ["images"], "a", kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=0),
            node(
                "AveragePool", ["a"], "y", kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1
            ),
        ],
        [],
    ),
    "global_pools": (
        [node("GlobalAveragePool", ["images"], "a"), node("GlobalMaxPool", ["images"], "b"), node("Add", ["a", "b"])],
        [],
    ),
    "reduce_mean_over_space_and_channels": (
        [
            node("ReduceMean", ["images"], "a", axes=[2, 3], keepdims=0),
            node("ReduceMean", ["images"], "b", axes=[1]),
            node("Flatten", ["b"], "c"),
            node("Concat", ["a", "c"], "y", axis=1),
        ],
        [],
    ),
    "reduce_mean_with_axes_as_input_from_opset_18": (
        [node("ReduceMean", ["images", "spatial"], "a"), node("ReduceMean", ["a", "channels"], "y", keepdims=0)],
        [constant("spatial", [-2, -1]), constant("channels", [1])],
        18,
    ),
    "flatten_axis_2_gemm_both_layouts": (
        [
            node("Flatten", ["images"], "a", axis=2),
            node("Reshape", ["a", "rows"], "b"),
            node("Gemm", ["b", "w1", "b1"], "c", transB=1),
            node("Gemm", ["c", "w2"], "y"),
        ],
        [constant("rows", [-1, 192]), weight("w1", 7, 192), weight("b1", 7), weight("w2", 7, 4)],
    ),
    "matmul_by_weight_and_of_two_values": (
        [
            node("MatMul", ["images", "w"], "a"),
            node("Transpose", ["a"], "b", perm=[0, 1, 3, 2]),
            node("MatMul", ["a", "b"], "y"),
        ],
        [weight("w", 8, 5)],
    ),
    "dynamic_flatten_as_pytorch_exports_view": (
        [
            node("Shape", ["images"], "shape"),
            node("Gather", ["shape", "zero"], "n", axis=0),
            node("Unsqueeze", ["n", "axes"], "n1"),
            node("Concat", ["n1", "minus_one"], "target", axis=0),
            node("Reshape", ["images", "target"], "flat"),
            node("Unsqueeze", ["flat", "axes_last"], "u"),
            node("Squeeze", ["u", "axes_last"], "y"),
        ],
        [constant("zero", 0), constant("axes", [0]), constant("minus_one", [-1]), constant("axes_last", [-1])],
    ),
    "reshape_keeping_a_dimension_and_dropout": (
        [
            node("Reshape", ["images", "keep"], "a"),
            helper.make_node("Dropout", ["a", "ratio", "off"], ["y", "mask"]),
        ],
        [constant("keep", [0, 0, 64]), constant("ratio", 0.3, np.float32), constant("off", False, np.bool_)],
    ),
    "pads_constant_reflect_edge": (
        [
            node("Pad", ["images", "p1", "value"], "a"),
            node("Pad", ["a", "p2"], "b", mode="reflect"),
            node("Pad", ["b", "p3"], "y", mode="edge"),
        ],
        [
            constant("p1", [0, 0, 1, 2, 0, 0, 3, 0]),
            constant("value", 0.25, np.float32),
            constant("p2", [0, 0, 1, 1, 0, 0, 1, 1]),
            constant("p3", [0, 0, 0, 2, 0, 0, 1, 0]),
        ],
    ),
    "constant_nodes": (
        [
            helper.make_node(
                "Constant", [], ["c"], value=numpy_helper.from_array(np.full((1, 3, 1, 1), 2.0, np.float32))
            ),
            helper.make_node("Constant", [], ["f"], value_float=0.5),
            node("Mul", ["images", "c"], "a"),
            node("Add", ["a", "f"]),
        ],
        [],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_each_operator_computes_what_onnx_reference_evaluator_computes(case: str) -> None:
    nodes, initializers, *opset = CASES[case]
    data = model_bytes(nodes, initializers, opset=opset[0] if opset else 17)
    images = RNG.standard_normal((4, *IMAGE)).astype(np.float32)
    [expected] = ReferenceEvaluator(onnx.load_from_string(data)).run(None, {"images": images})
    with torch.no_grad():
        ours = converted(data)(torch.from_numpy(images))
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_every_supported_operator_is_checked_against_the_reference() -> None:
    checked = {n.op_type for nodes, *_ in CASES.values() for n in nodes} | {"Flatten"}
    assert checked == set(supported_operators())


def test_layers_are_pytorch_layers_built_in_node_order() -> None:
    data = model_bytes(
        [
            node("Conv", ["images", "w"], "a", pads=[1, 1, 1, 1]),
            node("BatchNormalization", ["a", "s", "b", "m", "v"], "n"),
            node("Relu", ["n"], "r"),
            node("GlobalAveragePool", ["r"], "p"),
            node("Flatten", ["p"], "f"),
            node("Gemm", ["f", "fc", "fc_b"], "y", transB=1),
        ],
        [weight("w", 4, 3, 3, 3), *(weight(name, 4) for name in "sbmv"), weight("fc", 10, 4), weight("fc_b", 10)],
        flatten=False,
    )
    torch.manual_seed(3)
    network = SPACE.build_model(SPACE.parse(data), 10)
    kinds = [type(layer) for layer in network.layers]
    assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear]
    torch.manual_seed(3)
    conv, linear = nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.Linear(4, 10)
    assert torch.equal(network.layers[0].weight, conv.weight) and torch.equal(network.layers[5].bias, linear.bias)


# What the converter refuses


def error_of(data: bytes) -> str:
    with pytest.raises(OnnxGraphError) as refused:
        read_graph(data)
    return str(refused.value)


def test_an_unsupported_operator_is_named_with_its_node_and_the_supported_ones() -> None:
    data = model_bytes([helper.make_node("LSTM", ["images", "w", "r"], ["y"], name="lstm_1", hidden_size=2)])
    message = error_of(data)
    assert message.startswith("unsupported ONNX operator 'LSTM' (node 'lstm_1'); supported: Add, AveragePool, ")
    assert all(op in message for op in supported_operators())


def test_a_custom_domain_is_refused_before_anything_runs() -> None:
    nodes = [helper.make_node("Relu", ["images"], ["y"], name="mine", domain="com.example.evil")]
    graph = helper.make_graph(
        [*nodes, node("Flatten", ["y"], "out")],
        "test",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", *IMAGE])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", "K"])],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.example.evil", 1)]
    data = helper.make_model(graph, opset_imports=opsets).SerializeToString()
    assert "node 'mine' ('Relu') is in operator domain 'com.example.evil'; only the standard" in error_of(data)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"garbage", "not an ONNX file"),
        (b"", "not an ONNX file: it holds no graph of nodes"),
        (bytes(range(256)) * 4, "not an ONNX file"),
        (model_bytes([node("Relu", ["images"])], opset=11), "opset 11 is older than the oldest this converter reads"),
        (model_bytes([node("Relu", ["images"])], image=(1, 8, 8)), "expected images [N, 3, H, W]"),
        (
            model_bytes([node("Relu", ["images"])], flatten=False, output_shape=("N", "C", "H", "W")),
            "the graph's output has rank 4; expected logits [N, classes]",
        ),
        (
            model_bytes([node("Conv", ["images", "w"], auto_pad="SAME_UPPER")], [weight("w", 2, 3, 3, 3)]),
            "auto_pad 'SAME_UPPER' is not supported",
        ),
        (
            model_bytes([node("Relu", ["images"], note=1)]),
            "ONNX checker refuses the file: Unrecognized attribute: note",
        ),
        (
            model_bytes([node("Reshape", ["images", "fixed"])], [constant("fixed", [2, -1])]),
            "for 3 images; expected logits [3, classes] (the file's batch size must not be fixed",
        ),
    ],
)
def test_unreadable_files_are_refused_with_the_reason(data: bytes, problem: str) -> None:
    assert problem in error_of(data)


def test_the_bounds_on_size_nodes_and_parameters() -> None:
    with pytest.raises(OnnxFileTooLarge, match=f"over the limit of {MAX_FILE_BYTES:,}"):
        read_graph(bytes(MAX_FILE_BYTES + 1))
    chain = [node("Relu", ["images" if i == 0 else f"r{i}"], f"r{i + 1}") for i in range(MAX_NODES)]
    assert f"nodes, over the limit of {MAX_NODES:,}" in error_of(model_bytes([*chain, node("Relu", ["r1"])]))
    huge = helper.make_tensor_value_info("w", TensorProto.FLOAT, [192, 300_000])
    graph = helper.make_graph(
        [node("Flatten", ["images"], "f"), node("MatMul", ["f", "w"], "out")],
        "huge",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 8, 8]), huge],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", "K"])],
    )
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    assert "the network has 57,600,000 parameters, over the limit of 50,000,000" in error_of(data)


def test_a_tensor_in_an_external_file_is_refused_so_no_path_is_ever_read() -> None:
    tensor = weight("w", 2, 3, 3, 3)
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="/etc/passwd")
    data = model_bytes([node("Conv", ["images", "w"])], [tensor])
    assert "keeps its values in an external file" in error_of(data)


def test_a_weight_shared_between_unlike_layers_is_refused() -> None:
    data = model_bytes(
        [node("Conv", ["images", "w"], "a", pads=[1, 1, 1, 1]), node("Conv", ["a", "w"], "y", strides=[2, 2])],
        [weight("w", 3, 3, 3, 3)],
    )
    assert "weight 'w' is shared with node '#0'" in error_of(data)


def test_a_layer_called_twice_is_one_layer() -> None:
    data = model_bytes(
        [node("Conv", ["images", "w"], "a", pads=[1, 1, 1, 1]), node("Conv", ["a", "w"], "y", pads=[1, 1, 1, 1])],
        [weight("w", 3, 3, 3, 3)],
    )
    network = OnnxNetwork(read_graph(data))
    assert network.layers[0] is network.layers[1] and len(list(network.parameters())) == 1


# The structure digest


def resnet_like(seed: int) -> nn.Module:
    torch.manual_seed(seed)

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.bn = nn.BatchNorm2d(3)
            self.fc = nn.Linear(3 * 8 * 8, 10)

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            features = torch.relu(self.bn(self.conv(images))) + images
            return self.fc(features.view(features.size(0), -1))

    return Block()


def exported(model: nn.Module, **options: object) -> bytes:
    """PyTorch's TorchScript exporter (`dynamo=False`: torch 2.13's default exporter needs onnxscript), in
    training mode so that BatchNorm stays a node rather than being folded into the convolution."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(2, *IMAGE if "image" not in options else options.pop("image")),),  # type: ignore[misc]
            buffer,
            dynamo=False,
            training=torch.onnx.TrainingMode.TRAINING,
            input_names=["images"],
            **options,  # type: ignore[arg-type]
        )
    return buffer.getvalue()


def test_the_digest_leaves_out_weights_and_names_and_keeps_the_structure() -> None:
    dynamic = {"dynamic_axes": {"images": {0: "N"}}}
    first = read_graph(exported(resnet_like(0), **dynamic))
    assert read_graph(exported(resnet_like(1), **dynamic)).digest == first.digest  # other weights
    assert read_graph(exported(resnet_like(1), export_params=False, **dynamic)).digest == first.digest  # none
    renamed = onnx.load_from_string(exported(resnet_like(0), **dynamic))
    for position, each in enumerate(renamed.graph.node):
        each.name = f"renamed_{position}"
    assert read_graph(renamed.SerializeToString()).digest == first.digest
    wider = resnet_like(0)
    wider.conv = nn.Conv2d(3, 3, 3, padding=2, dilation=2)
    assert read_graph(exported(wider, **dynamic)).digest != first.digest  # an attribute
    fixed_batch = read_graph(exported(resnet_like(0)))  # the view's batch comes as a constant 2
    assert fixed_batch.batch_size == 2 and fixed_batch.digest != first.digest
    network = OnnxNetwork(fixed_batch)
    assert network(torch.zeros(5, *IMAGE)).shape == (5, 10)  # still any batch size


def test_parse_reads_the_file_or_its_text_and_builds_only_what_it_has_read() -> None:
    space = OnnxSpace()  # a fresh space, as in a worker that has not seen the file yet
    data = exported(resnet_like(0), dynamic_axes={"images": {0: "N"}})
    arch = read_graph(data).arch
    with pytest.raises(ValueError, match="is not at hand in this process; its bytes must come with it"):
        space.build_model(arch, 10)
    assert space.parse(f"  {arch.upper().replace('ONNX:', 'onnx:')} ") == arch
    assert space.parse(data) == arch == space.parse({"onnx_base64": __import__("base64").b64encode(data).decode()})
    assert space.canonical_key(arch) == arch
    assert space.build_model(arch, 10)(torch.zeros(2, *IMAGE)).shape == (2, 10)
    with pytest.raises(ValueError, match="puts out 10 logits, not 100"):
        space.build_model(arch, 100)
    for bad in ({"onnx_base64": "not base64!"}, {"onnx_base64": 3}, {"file": "x"}, "onnx:abc", b"\x00junk"):
        with pytest.raises(ValueError):
            space.parse(bad)
    with pytest.raises(ValueError, match="cannot be sampled"):
        space.sample(1, 0)


def test_the_example_is_a_small_classifier_whose_digest_is_the_declared_one() -> None:
    graph = read_graph(example_model())
    assert graph.digest == EXAMPLE_DIGEST and SPACE.example == f"onnx:{EXAMPLE_DIGEST}"
    assert (graph.input_shape, graph.num_classes, graph.nodes, graph.parameter_count) == ((3, 32, 32), 10, 6, 322)
    model = SPACE.build_model(SPACE.example, 10)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    network_size = SPACE.network_size(10, 32)
    assert network_size.parameters >= graph.parameter_count
    assert network_size.saved_floats_per_image >= graph.saved_floats_per_image > 0


# NB201 exported from PyTorch, rebuilt


@pytest.fixture(scope="module")
def nb201_export() -> tuple[nn.Module, bytes]:
    """A natively built NB201 network (4 channels, one cell per stage; every edge of the cell live, so every
    layer of the native network is in the graph) and its ONNX export without weights."""
    native = get_space("nb201").build_model(CELL, 10, channels=4, cells_per_stage=1)
    return native, exported(native, image=(3, 32, 32), export_params=False, dynamic_axes={"images": {0: "N"}})


def test_an_nb201_export_rebuilds_the_native_network_weight_for_weight(nb201_export: tuple[nn.Module, bytes]) -> None:
    _, data = nb201_export
    arch = SPACE.parse(data)
    torch.manual_seed(7)
    native = get_space("nb201").build_model(CELL, 10, channels=4, cells_per_stage=1)
    torch.manual_seed(7)
    rebuilt = SPACE.build_model(arch, 10)
    native_weights = list(native.parameters())
    assert [p.shape for p in rebuilt.parameters()] == [p.shape for p in native_weights]
    assert all(torch.equal(ours, theirs) for ours, theirs in zip(rebuilt.parameters(), native_weights, strict=True))
    images = torch.randn(8, 3, 32, 32)
    assert torch.equal(rebuilt(images), native(images))


def test_the_converter_is_faithful_with_the_native_weights_copied_in() -> None:
    """Native weights and BatchNorm statistics that are not PyTorch's defaults, exported in the file and copied
    into the rebuilt network: the same logits in evaluation mode (running statistics) and in training mode."""
    torch.manual_seed(1)
    native = get_space("nb201").build_model(CELL, 10, channels=4, cells_per_stage=1)
    with torch.no_grad():
        for module in native.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    data = exported(native, image=(3, 32, 32), dynamic_axes={"images": {0: "N"}})
    rebuilt = converted(data)
    images = torch.randn(6, 3, 32, 32)
    native.eval()
    torch.testing.assert_close(rebuilt(images), native(images), rtol=1e-5, atol=1e-6)
    rebuilt.train()
    native.train()
    torch.testing.assert_close(rebuilt(images), native(images), rtol=1e-5, atol=1e-6)


def test_an_nb201_export_scores_as_the_native_network(
    nb201_export: tuple[nn.Module, bytes], one_torch_thread: None
) -> None:
    """Every proxy the space scores, on the same batch and seed: within 1e-4 (relative) of the native
    network's, except those that read the module hierarchy (MODULE_HIERARCHY_PROXIES)."""
    _, data = nb201_export
    arch = SPACE.parse(data)
    batch = load_calibration_batch("cifar10", "synthetic", batch_size=8, seed=0)
    proxies = [info.name for info in list_proxies() if info.name not in SPACE.unsupported_proxies]
    torch.manual_seed(0)
    native = score_model_detailed(
        get_space("nb201").build_model(CELL, 10, channels=4, cells_per_stage=1), batch.inputs, batch.targets, proxies
    )
    torch.manual_seed(0)
    rebuilt = score_model_detailed(SPACE.build_model(arch, 10), batch.inputs, batch.targets, proxies)
    assert {name: result.error for name, result in rebuilt.items() if result.error} == {}
    for name in proxies:
        if name in MODULE_HIERARCHY_PROXIES:
            assert math.isfinite(rebuilt[name].value), name
            continue
        assert rebuilt[name].value == pytest.approx(native[name].value, rel=1e-4), name
