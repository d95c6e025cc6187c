"""The ONNX operators the converter reads, each in two halves: a reader that checks one node and describes the
layer it computes (`READERS`, by operator), and a builder that makes that layer (`BUILDERS`, by layer kind).

Layers are real `torch.nn` layers wherever PyTorch has one (Conv → nn.Conv2d, BatchNormalization →
nn.BatchNorm2d, Gemm → nn.Linear, Relu → nn.ReLU, pools, …), so every proxy finds the layers it scores and
hooks; the small modules below cover what PyTorch writes as a function (additions, reshapes, shape
arithmetic). Every operator is read from opset 13 on. An attribute the reader does not read refuses the node
(`graph.read_graph` checks), so a value this converter would ignore can never change a network silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from search_spaces.onnx.nodes import NodeReader
from search_spaces.onnx.structure import Layer

Reader = Callable[[NodeReader], Layer]
READERS: dict[str, Reader] = {}
BUILDERS: dict[str, Callable[[Mapping[str, Any]], nn.Module]] = {}
CONSTANT = "Constant"
"""Read by `graph.read_graph` itself: its value becomes a constant of the graph, not a step."""


def reads(*ops: str) -> Callable[[Reader], Reader]:
    def register(reader: Reader) -> Reader:
        for op in ops:
            READERS[op] = reader
        return reader

    return register


def builds(kind: str) -> Callable[[Callable[[Mapping[str, Any]], nn.Module]], Callable[[Mapping[str, Any]], nn.Module]]:
    def register(builder: Callable[[Mapping[str, Any]], nn.Module]) -> Callable[[Mapping[str, Any]], nn.Module]:
        BUILDERS[kind] = builder
        return builder

    return register


def supported_operators() -> list[str]:
    return sorted([*READERS, CONSTANT])


def build_layer(layer: Layer) -> nn.Module:
    return BUILDERS[layer.kind](layer.args)


# Shared attribute checks


def _spatial(node: NodeReader, name: str, default: Sequence[int], *, positive: bool = True) -> list[int]:
    values = node.ints(name, default)
    if len(values) != 2:
        raise node.fail(f"attribute {name!r} must have 2 values (2-D images), got {list(values)}")
    if positive and min(values) < 1:
        raise node.fail(f"attribute {name!r} must be positive, got {list(values)}")
    return list(values)


def _pads(node: NodeReader) -> list[int]:
    """(top, left, bottom, right) from ONNX's (x1_begin, x2_begin, x1_end, x2_end)."""
    auto_pad = node.string("auto_pad", "NOTSET")
    if auto_pad not in ("NOTSET", "VALID"):
        raise node.fail(f"auto_pad {auto_pad!r} is not supported; export with explicit pads (PyTorch does)")
    pads = node.ints("pads", (0, 0, 0, 0))
    if auto_pad == "VALID":
        pads = (0, 0, 0, 0)
    if len(pads) != 4 or min(pads) < 0:
        raise node.fail(f"pads must be 4 non-negative numbers (2-D images), got {list(pads)}")
    return list(pads)


def _symmetric(node: NodeReader, pads: list[int]) -> list[int]:
    top, left, bottom, right = pads
    if (top, left) != (bottom, right):
        raise node.fail(f"asymmetric pads {pads} are not supported by this pooling layer")
    return [top, left]


def _scalar(node: NodeReader, slot: int, what: str) -> float | None:
    value = node.constant(slot, what, optional=True)
    if value is None:
        return None
    if value.size != 1:
        raise node.fail(f"the {what} must be a single number, got shape {list(value.shape)}")
    number = float(value.reshape(()))
    return number if np.isfinite(number) else None


def _integers(node: NodeReader, slot: int, what: str, *, optional: bool = False) -> list[int] | None:
    value = node.constant(slot, what, optional=optional)
    if value is None:
        return None
    if value.dtype != np.int64 or value.ndim > 1:
        raise node.fail(f"the {what} must be a list of integers")
    return [int(item) for item in value.reshape(-1)]


# Convolution, normalisation, linear layers: the layers that own weights


@reads("Conv")
def read_conv(node: NodeReader) -> Layer:
    node.operand(0)
    weight = node.parameter(1, "weight")
    bias = node.parameter(2, "bias", optional=True)
    assert weight is not None
    if len(weight) != 4:
        raise node.fail(f"only 2-D convolutions are supported (a 4-D weight), got a weight of shape {list(weight)}")
    out_channels, group_channels, *kernel = weight
    groups = node.integer("group", 1)
    if groups < 1 or out_channels % groups:
        raise node.fail(f"group {groups} does not divide the {out_channels} output channels")
    if _spatial(node, "kernel_shape", kernel) != kernel:
        raise node.fail(f"kernel_shape does not match the weight's shape {list(weight)}")
    if bias is not None and bias != (out_channels,):
        raise node.fail(f"the bias has shape {list(bias)}, not [{out_channels}]")
    return Layer(
        "conv2d",
        {
            "in_channels": group_channels * groups,
            "out_channels": out_channels,
            "kernel": kernel,
            "stride": _spatial(node, "strides", (1, 1)),
            "padding": _pads(node),
            "dilation": _spatial(node, "dilations", (1, 1)),
            "groups": groups,
            "bias": bias is not None,
        },
    )


@builds("conv2d")
def build_conv(args: Mapping[str, Any]) -> nn.Module:
    """nn.Conv2d; with uneven pads a ZeroPad2d before it (nn.Conv2d pads both sides alike)."""
    top, left, bottom, right = args["padding"]
    symmetric = (top, left) == (bottom, right)
    conv = nn.Conv2d(
        args["in_channels"],
        args["out_channels"],
        tuple(args["kernel"]),
        stride=tuple(args["stride"]),
        padding=(top, left) if symmetric else 0,
        dilation=tuple(args["dilation"]),
        groups=args["groups"],
        bias=args["bias"],
    )
    return conv if symmetric else nn.Sequential(nn.ZeroPad2d((left, right, top, bottom)), conv)


@reads("BatchNormalization")
def read_batch_norm(node: NodeReader) -> Layer:
    """Running statistics, scale and shift are the layer's (PyTorch's defaults at initialisation). The file's
    `training_mode` is read and left aside: as for every space, the proxies put the network in the mode they
    need."""
    node.operand(0)
    shapes = [node.parameter(slot, what) for slot, what in enumerate(("scale", "bias", "mean", "variance"), 1)]
    channels = shapes[0][0] if shapes[0] is not None and len(shapes[0]) == 1 else None
    if channels is None or any(shape != (channels,) for shape in shapes):
        raise node.fail(f"scale, bias, mean and variance must be vectors of one length, got {shapes}")
    node.integer("training_mode", 0)
    momentum = node.number("momentum", 0.9)
    rank = node.rank(0)
    if rank not in (2, 3, 4):
        raise node.fail(f"only 2-D, 3-D and 4-D inputs are supported, got rank {rank}")
    # ONNX keeps `momentum` of the old running value, PyTorch moves it by `momentum` toward the new one.
    args = {"channels": channels, "eps": node.number("epsilon", 1e-5), "momentum": round(1.0 - momentum, 6)}
    return Layer("batch_norm2d" if rank == 4 else "batch_norm1d", args)


@builds("batch_norm2d")
def build_batch_norm2d(args: Mapping[str, Any]) -> nn.Module:
    return nn.BatchNorm2d(args["channels"], eps=args["eps"], momentum=args["momentum"])


@builds("batch_norm1d")
def build_batch_norm1d(args: Mapping[str, Any]) -> nn.Module:
    return nn.BatchNorm1d(args["channels"], eps=args["eps"], momentum=args["momentum"])


@reads("Gemm")
def read_gemm(node: NodeReader) -> Layer:
    """A · Bᵀ + C as nn.Linear, B the weight and C its bias (how PyTorch exports nn.Linear)."""
    node.operand(0)
    if not node.is_weight(1):
        raise node.fail("B must be a weight of the file (an initializer)")
    if node.integer("transA", 0) != 0:
        raise node.fail("transA = 1 is not supported")
    transposed = node.integer("transB", 0) == 0
    weight = node.parameter(1, "weight")
    bias = node.parameter(2, "bias", optional=True)
    assert weight is not None
    if len(weight) != 2:
        raise node.fail(f"B must be a matrix, got shape {list(weight)}")
    in_features, out_features = weight if transposed else weight[::-1]
    if node.number("alpha", 1.0) != 1.0 or (bias is not None and node.number("beta", 1.0) != 1.0):
        raise node.fail("only alpha = beta = 1 is supported")
    if bias is not None and bias not in ((out_features,), (1, out_features)):
        raise node.fail(f"C must be a bias of {out_features} values, got shape {list(bias)}")
    args = {"in_features": in_features, "out_features": out_features, "bias": bias is not None}
    return Layer("linear", args | {"transposed": transposed})


@reads("MatMul")
def read_matmul(node: NodeReader) -> Layer:
    """Data times a weight matrix is nn.Linear without bias; a product of two computed tensors is a product."""
    if not node.is_value(0):
        raise node.fail("the first operand must be computed from the image")
    node.operand(0)
    if node.is_weight(1):
        weight = node.parameter(1, "weight")
        assert weight is not None
        if len(weight) != 2:
            raise node.fail(f"a weight operand must be a matrix, got shape {list(weight)}")
        return Layer("linear", {"in_features": weight[0], "out_features": weight[1], "bias": False, "transposed": True})
    node.operand(1)
    return Layer("matmul", {})


@builds("linear")
def build_linear(args: Mapping[str, Any]) -> nn.Module:
    return nn.Linear(args["in_features"], args["out_features"], bias=args["bias"])


class MatMul(nn.Module):
    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        return torch.matmul(left, right)


BUILDERS["matmul"] = lambda args: MatMul()


# Activations


def _plain(kind: str) -> Reader:
    def read(node: NodeReader) -> Layer:
        node.operand(0)
        return Layer(kind, {})

    return read


def _without_arguments(module: type[nn.Module]) -> Callable[[Mapping[str, Any]], nn.Module]:
    return lambda args: module()


for _op, _kind, _module in (
    ("Relu", "relu", nn.ReLU),
    ("Sigmoid", "sigmoid", nn.Sigmoid),
    ("Tanh", "tanh", nn.Tanh),
    ("HardSwish", "hardswish", nn.Hardswish),
    ("Identity", "identity", nn.Identity),
):
    READERS[_op] = _plain(_kind)
    BUILDERS[_kind] = _without_arguments(_module)


@reads("LeakyRelu")
def read_leaky_relu(node: NodeReader) -> Layer:
    node.operand(0)
    return Layer("leaky_relu", {"slope": node.number("alpha", 0.01)})


BUILDERS["leaky_relu"] = lambda args: nn.LeakyReLU(args["slope"])


@reads("HardSigmoid")
def read_hard_sigmoid(node: NodeReader) -> Layer:
    node.operand(0)
    return Layer("hard_sigmoid", {"alpha": node.number("alpha", 0.2), "beta": node.number("beta", 0.5)})


class HardSigmoid(nn.Module):
    """max(0, min(1, alpha·x + beta)); PyTorch's nn.Hardsigmoid is alpha = 1/6, beta = 1/2."""

    def __init__(self, alpha: float, beta: float) -> None:
        super().__init__()
        self.alpha, self.beta = alpha, beta

    def forward(self, inputs: Tensor) -> Tensor:
        return torch.clamp(inputs * self.alpha + self.beta, 0.0, 1.0)


BUILDERS["hard_sigmoid"] = lambda args: HardSigmoid(args["alpha"], args["beta"])


@reads("Softmax")
def read_softmax(node: NodeReader) -> Layer:
    node.operand(0)
    return Layer("softmax", {"axis": node.integer("axis", -1)})


BUILDERS["softmax"] = lambda args: nn.Softmax(dim=args["axis"])


@reads("Clip")
def read_clip(node: NodeReader) -> Layer:
    node.operand(0)
    return Layer("clip", {"min": _scalar(node, 1, "minimum"), "max": _scalar(node, 2, "maximum")})


class Clamp(nn.Module):
    """Clip with one bound (nn.Hardtanh takes both)."""

    def __init__(self, low: float | None, high: float | None) -> None:
        super().__init__()
        self.low, self.high = low, high

    def forward(self, inputs: Tensor) -> Tensor:
        return torch.clamp(inputs, self.low, self.high)


@builds("clip")
def build_clip(args: Mapping[str, Any]) -> nn.Module:
    """ReLU6 as nn.ReLU6 (PyTorch's own layer, which ReLU-reading proxies recognise), two bounds as
    nn.Hardtanh, one as a clamp."""
    low, high = args["min"], args["max"]
    if (low, high) == (0.0, 6.0):
        return nn.ReLU6()
    if low is not None and high is not None:
        return nn.Hardtanh(low, high)
    return Clamp(low, high)


@reads("Dropout")
def read_dropout(node: NodeReader) -> Layer:
    """nn.Dropout in a graph exported for training (`training_mode` true); otherwise ONNX's Dropout is the
    identity, and so is the layer."""
    node.operand(0)
    node.integer("seed", 0)  # the seed of the exporting run; the scoring configuration's seed draws instead
    ratio = _scalar(node, 1, "ratio")
    training = node.constant(2, "training_mode", optional=True)
    if training is None or not bool(training.reshape(-1)[0]):
        return Layer("identity", {})
    return Layer("dropout", {"p": 0.5 if ratio is None else ratio})


BUILDERS["dropout"] = lambda args: nn.Dropout(args["p"])


# Pooling


@reads("MaxPool")
def read_max_pool(node: NodeReader) -> Layer:
    node.operand(0)
    node.integer("storage_order", 0)  # only for the indices output, which may not be used
    kernel = _spatial(node, "kernel_shape", ())
    return Layer(
        "max_pool2d",
        {
            "kernel": kernel,
            "stride": _spatial(node, "strides", (1, 1)),
            "padding": _symmetric(node, _pads(node)),
            "dilation": _spatial(node, "dilations", (1, 1)),
            "ceil_mode": bool(node.integer("ceil_mode", 0)),
        },
    )


@builds("max_pool2d")
def build_max_pool(args: Mapping[str, Any]) -> nn.Module:
    return nn.MaxPool2d(
        tuple(args["kernel"]),
        stride=tuple(args["stride"]),
        padding=tuple(args["padding"]),
        dilation=tuple(args["dilation"]),
        ceil_mode=args["ceil_mode"],
    )


@reads("AveragePool")
def read_average_pool(node: NodeReader) -> Layer:
    node.operand(0)
    kernel = _spatial(node, "kernel_shape", ())
    if _spatial(node, "dilations", (1, 1)) != [1, 1]:
        raise node.fail("dilated average pooling is not supported")
    return Layer(
        "avg_pool2d",
        {
            "kernel": kernel,
            "stride": _spatial(node, "strides", (1, 1)),
            "padding": _symmetric(node, _pads(node)),
            "ceil_mode": bool(node.integer("ceil_mode", 0)),
            "count_include_pad": bool(node.integer("count_include_pad", 0)),
        },
    )


@builds("avg_pool2d")
def build_average_pool(args: Mapping[str, Any]) -> nn.Module:
    return nn.AvgPool2d(
        tuple(args["kernel"]),
        stride=tuple(args["stride"]),
        padding=tuple(args["padding"]),
        ceil_mode=args["ceil_mode"],
        count_include_pad=args["count_include_pad"],
    )


def _four_dimensional(kind: str) -> Reader:
    def read(node: NodeReader) -> Layer:
        node.operand(0)
        if node.rank(0) != 4:
            raise node.fail(f"only 4-D inputs (N, C, H, W) are supported, got rank {node.rank(0)}")
        return Layer(kind, {})

    return read


READERS["GlobalAveragePool"] = _four_dimensional("global_avg_pool2d")
READERS["GlobalMaxPool"] = _four_dimensional("global_max_pool2d")
BUILDERS["global_avg_pool2d"] = lambda args: nn.AdaptiveAvgPool2d(1)
BUILDERS["global_max_pool2d"] = lambda args: nn.AdaptiveMaxPool2d(1)


@reads("ReduceMean")
def read_reduce_mean(node: NodeReader) -> Layer:
    """A mean over the last two axes of a 4-D map is global average pooling, and is built as PyTorch's
    nn.AdaptiveAvgPool2d (proxies that look for the network's global pooling find it); other means are means."""
    node.operand(0)
    axes = _integers(node, 1, "axes", optional=True) if node.has_input(1) else node.ints("axes", ()) or None
    keepdims = bool(node.integer("keepdims", 1))
    if node.integer("noop_with_empty_axes", 0) and not axes:
        return Layer("identity", {})
    rank = node.rank(0)
    if rank == 4 and axes is not None and sorted(axis % 4 for axis in axes) == [2, 3]:
        return Layer("global_avg_pool2d" if keepdims else "spatial_mean", {})
    return Layer("mean", {"axes": None if axes is None else list(axes), "keepdim": keepdims})


BUILDERS["spatial_mean"] = lambda args: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))


class Mean(nn.Module):
    def __init__(self, axes: Sequence[int] | None, keepdim: bool) -> None:
        super().__init__()
        self.axes, self.keepdim = axes, keepdim

    def forward(self, inputs: Tensor) -> Tensor:
        axes = list(range(inputs.dim())) if self.axes is None else list(self.axes)
        return inputs.mean(dim=axes, keepdim=self.keepdim)


BUILDERS["mean"] = lambda args: Mean(args["axes"], args["keepdim"])


# Element-wise arithmetic and joins


ARITHMETIC = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div"}


@reads(*ARITHMETIC)
def read_arithmetic(node: NodeReader) -> Layer:
    node.operand(0)
    node.operand(1)
    return Layer("arithmetic", {"op": ARITHMETIC[node.op]})


class Arithmetic(nn.Module):
    """An element-wise binary operation with NumPy broadcasting, as ONNX defines it; integers (shape
    arithmetic) divide truncating, as ONNX's integer Div does."""

    def __init__(self, op: str) -> None:
        super().__init__()
        self.op = op

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        if self.op == "add":
            return left + right
        if self.op == "sub":
            return left - right
        if self.op == "mul":
            return left * right
        if left.is_floating_point():
            return left / right
        return torch.div(left, right, rounding_mode="trunc")

    def extra_repr(self) -> str:
        return self.op


BUILDERS["arithmetic"] = lambda args: Arithmetic(args["op"])


@reads("Sum")
def read_sum(node: NodeReader) -> Layer:
    for slot in range(len(node.node.input)):
        node.operand(slot)
    return Layer("sum", {})


class Sum(nn.Module):
    def forward(self, *terms: Tensor) -> Tensor:
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        return total


BUILDERS["sum"] = lambda args: Sum()


@reads("Concat")
def read_concat(node: NodeReader) -> Layer:
    for slot in range(len(node.node.input)):
        node.operand(slot)
    return Layer("concat", {"axis": node.integer("axis", 0)})


class Concat(nn.Module):
    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, *parts: Tensor) -> Tensor:
        return torch.cat(parts, dim=self.axis)


BUILDERS["concat"] = lambda args: Concat(args["axis"])


@reads("Pad")
def read_pad(node: NodeReader) -> Layer:
    """Constant, reflect and edge padding of any axes; widths in PyTorch's order (last axis first)."""
    node.operand(0)
    modes = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}
    mode = node.string("mode", "constant")
    if mode not in modes:
        raise node.fail(f"mode {mode!r} is not supported; supported: {', '.join(modes)}")
    pads = _integers(node, 1, "pads")
    assert pads is not None
    rank = node.rank(0)
    axes = _integers(node, 3, "axes", optional=True)
    if rank is None:
        raise node.fail("the rank of the padded tensor is unknown")
    axes = list(range(rank)) if axes is None else [axis % rank for axis in axes]
    if len(pads) != 2 * len(axes):
        raise node.fail(f"{len(pads)} pad widths for {len(axes)} axes")
    widths = dict.fromkeys(range(rank), (0, 0)) | {axis: (pads[i], pads[i + len(axes)]) for i, axis in enumerate(axes)}
    padded = [axis for axis in range(rank) if widths[axis] != (0, 0)]
    first = min(padded, default=rank)
    torch_pads = [width for axis in reversed(range(first, rank)) for width in widths[axis]]
    value = _scalar(node, 2, "constant value") or 0.0
    return Layer("pad", {"pads": torch_pads, "mode": modes[mode], "value": value})


class Pad(nn.Module):
    def __init__(self, pads: Sequence[int], mode: str, value: float) -> None:
        super().__init__()
        self.pads, self.mode, self.value = list(pads), mode, value

    def forward(self, inputs: Tensor) -> Tensor:
        if not self.pads:
            return inputs
        if self.mode == "constant":
            return F.pad(inputs, self.pads, value=self.value)
        return F.pad(inputs, self.pads, mode=self.mode)


@builds("pad")
def build_pad(args: Mapping[str, Any]) -> nn.Module:
    """Zero padding of the two spatial axes is nn.ZeroPad2d."""
    if args["mode"] == "constant" and args["value"] == 0.0 and len(args["pads"]) == 4:
        return nn.ZeroPad2d(tuple(args["pads"]))
    return Pad(args["pads"], args["mode"], args["value"])


# Shapes: flattening, reshaping and the shape arithmetic PyTorch exports for `x.view(x.size(0), -1)`


@reads("Flatten")
def read_flatten(node: NodeReader) -> Layer:
    node.operand(0)
    axis = node.integer("axis", 1)
    rank = node.rank(0)
    if axis < 0:
        if rank is None:
            raise node.fail("a negative axis needs the input's rank, which is unknown")
        axis += rank
    return Layer("flatten", {"axis": axis})


class Flatten(nn.Module):
    """ONNX's Flatten: always 2-D, the axes before `axis` into the first dimension, the rest into the second."""

    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, inputs: Tensor) -> Tensor:
        return inputs.reshape(int(np.prod(inputs.shape[: self.axis])), -1)


@builds("flatten")
def build_flatten(args: Mapping[str, Any]) -> nn.Module:
    return nn.Flatten(1) if args["axis"] == 1 else Flatten(args["axis"])


@reads("Reshape")
def read_reshape(node: NodeReader) -> Layer:
    """A constant shape whose first entry is the file's fixed batch size reshapes per image: the entry is
    the batch, whatever its size when the network is scored."""
    node.operand(0)
    allow_zero = bool(node.integer("allowzero", 0))
    batch_first = False
    if not node.is_value(1):
        shape = _integers(node, 1, "shape")
        assert shape is not None
        batch = node.tensors.batch_size
        batch_first = batch is not None and bool(shape) and shape[0] == batch
    node.operand(1, "shape")
    return Layer("reshape", {"allow_zero": allow_zero, "batch_first": batch_first})


class Reshape(nn.Module):
    def __init__(self, allow_zero: bool, batch_first: bool) -> None:
        super().__init__()
        self.allow_zero, self.batch_first = allow_zero, batch_first

    def forward(self, inputs: Tensor, shape: Tensor) -> Tensor:
        sizes = [int(size) for size in shape.tolist()]
        if not self.allow_zero:
            sizes = [inputs.shape[axis] if size == 0 else size for axis, size in enumerate(sizes)]
        if self.batch_first:
            sizes[0] = inputs.shape[0]
        return inputs.reshape(sizes)


BUILDERS["reshape"] = lambda args: Reshape(args["allow_zero"], args["batch_first"])


@reads("Shape")
def read_shape(node: NodeReader) -> Layer:
    node.operand(0)
    end = node.attribute("end", None)
    return Layer("shape", {"start": node.integer("start", 0), "end": end})


class Shape(nn.Module):
    """The input's shape as int64 on the CPU: shape arithmetic never runs on the accelerator."""

    def __init__(self, start: int, end: int | None) -> None:
        super().__init__()
        self.start, self.end = start, end

    def forward(self, inputs: Tensor) -> Tensor:
        return torch.tensor(inputs.shape[self.start : self.end], dtype=torch.int64, device="cpu")


BUILDERS["shape"] = lambda args: Shape(args["start"], args["end"])


@reads("Gather")
def read_gather(node: NodeReader) -> Layer:
    node.operand(0)
    node.operand(1, "indices")
    return Layer("gather", {"axis": node.integer("axis", 0)})


class Gather(nn.Module):
    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, data: Tensor, indices: Tensor) -> Tensor:
        axis = self.axis % data.dim()
        wrapped = torch.remainder(indices.to(data.device), data.shape[axis])
        picked = data.index_select(axis, wrapped.reshape(-1))
        return picked.reshape((*data.shape[:axis], *indices.shape, *data.shape[axis + 1 :]))


BUILDERS["gather"] = lambda args: Gather(args["axis"])


@reads("Unsqueeze")
def read_unsqueeze(node: NodeReader) -> Layer:
    node.operand(0)
    return Layer("unsqueeze", {"axes": _integers(node, 1, "axes")})


class Unsqueeze(nn.Module):
    def __init__(self, axes: Sequence[int]) -> None:
        super().__init__()
        self.axes = list(axes)

    def forward(self, inputs: Tensor) -> Tensor:
        rank = inputs.dim() + len(self.axes)
        for axis in sorted(axis % rank for axis in self.axes):
            inputs = inputs.unsqueeze(axis)
        return inputs


BUILDERS["unsqueeze"] = lambda args: Unsqueeze(args["axes"])


@reads("Squeeze")
def read_squeeze(node: NodeReader) -> Layer:
    node.operand(0)
    return Layer("squeeze", {"axes": _integers(node, 1, "axes", optional=True)})


class Squeeze(nn.Module):
    def __init__(self, axes: Sequence[int] | None) -> None:
        super().__init__()
        self.axes = None if axes is None else list(axes)

    def forward(self, inputs: Tensor) -> Tensor:
        if self.axes is None:
            return inputs.squeeze()
        return inputs.squeeze(tuple(axis % inputs.dim() for axis in self.axes))


BUILDERS["squeeze"] = lambda args: Squeeze(args["axes"])


@reads("Transpose")
def read_transpose(node: NodeReader) -> Layer:
    node.operand(0)
    perm = node.attribute("perm", None)
    return Layer("transpose", {"perm": None if perm is None else [int(axis) for axis in perm]})


class Transpose(nn.Module):
    def __init__(self, perm: Sequence[int] | None) -> None:
        super().__init__()
        self.perm = None if perm is None else list(perm)

    def forward(self, inputs: Tensor) -> Tensor:
        perm = list(reversed(range(inputs.dim()))) if self.perm is None else self.perm
        return inputs.permute(perm)


BUILDERS["transpose"] = lambda args: Transpose(args["perm"])
