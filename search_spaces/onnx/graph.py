"""Reading an uploaded ONNX file into an `OnnxGraph`, refusing anything this converter cannot rebuild exactly.

An ONNX file is data: a protobuf message, parsed by the `onnx` package and never executed. Nothing in it is
loaded as code — no pickle, no `torch.load`, no custom operator (a node outside the standard domain is
refused), no model-local function, no external data file (a tensor that points at one is refused, so a file
can never make the server read a path). Its size, its node count, its network's parameters and what one
image's forward keeps for backward are bounded; its depth is bounded by its node count (the network runs
its nodes in a loop, without recursion), and protobuf's own recursion limit bounds nesting in the file.
The checks run in this order, so that each message names the first problem: size, protobuf, opset and
domains, operators, external data, `onnx.checker`, ONNX shape inference, then the structure itself, which is
finally built on PyTorch's `meta` device (no memory) and run at two batch sizes to prove that it computes
logits for any batch.
"""

from __future__ import annotations

import dataclasses

import onnx
from google.protobuf.message import DecodeError  # protobuf, installed with onnx

from search_spaces.onnx.network import measure
from search_spaces.onnx.nodes import FLOAT_TYPES, NodeReader, TensorTable, constant_array, shown
from search_spaces.onnx.operators import CONSTANT, READERS, supported_operators
from search_spaces.onnx.structure import INPUT, OnnxFileTooLarge, OnnxGraph, OnnxGraphError, Parameter, Ref, Step

MAX_FILE_BYTES = 5 * 2**20
"""Fits a request body of the default 8 MiB limit once base64-encoded. Weights are not needed: export with
`export_params=False` and a network of any width is a few kilobytes."""
MAX_NODES = 2_000
MAX_PARAMETERS = 50_000_000
MAX_SAVED_FLOATS_PER_IMAGE = 50_000_000
"""What one image's forward may keep for backward (200 MB): far past any network a worker's memory budget
admits at a useful batch size, and the bound `OnnxSpace.network_size` reports for the space."""
MIN_OPSET = 13
STANDARD_DOMAINS = ("", "ai.onnx")
IMAGE_CHANNELS = 3


def read_graph(data: bytes) -> OnnxGraph:
    """The checked structure of an ONNX file; OnnxGraphError (a ValueError) saying what is wrong otherwise,
    OnnxFileTooLarge when it is over MAX_FILE_BYTES."""
    if len(data) > MAX_FILE_BYTES:
        raise OnnxFileTooLarge(f"the ONNX file has {len(data):,} bytes, over the limit of {MAX_FILE_BYTES:,}")
    model = _parse(data)
    _check_contents(model)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        raise OnnxGraphError(f"the ONNX checker refuses the file: {_first_line(error)}") from None
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as error:
        raise OnnxGraphError(f"ONNX shape inference fails: {_first_line(error)}") from None
    graph = _structure(model, _ranks(inferred.graph))
    return _measured(graph)


def _parse(data: bytes) -> onnx.ModelProto:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RecursionError, ValueError):
        raise OnnxGraphError("not an ONNX file: the bytes are not an ONNX model (protobuf ModelProto)") from None
    if not model.HasField("graph") or not model.graph.node:
        raise OnnxGraphError("not an ONNX file: it holds no graph of nodes")
    return model


def _check_contents(model: onnx.ModelProto) -> None:
    versions = {entry.domain: entry.version for entry in model.opset_import}
    opset = versions.get("", versions.get("ai.onnx"))
    if opset is None:
        raise OnnxGraphError("the file imports no standard ONNX opset")
    if opset < MIN_OPSET:
        raise OnnxGraphError(
            f"opset {opset} is older than the oldest this converter reads ({MIN_OPSET}); export with "
            f"opset_version={MIN_OPSET} or later"
        )
    if model.functions:
        raise OnnxGraphError("the file defines its own functions; only standard ONNX operators are read")
    graph = model.graph
    if len(graph.node) > MAX_NODES:
        raise OnnxGraphError(f"the graph has {len(graph.node):,} nodes, over the limit of {MAX_NODES:,}")
    for position, node in enumerate(graph.node):
        name = shown(node.name or f"#{position}")
        if node.domain not in STANDARD_DOMAINS:
            raise OnnxGraphError(
                f"node {name} ({shown(node.op_type)}) is in operator domain {shown(node.domain)}; only the "
                "standard ONNX operators are read (no custom operators)"
            )
        if node.op_type not in READERS and node.op_type != CONSTANT:
            raise OnnxGraphError(
                f"unsupported ONNX operator {shown(node.op_type)} (node {name}); supported: "
                f"{', '.join(supported_operators())}"
            )
    if graph.sparse_initializer:
        raise OnnxGraphError("sparse initializers are not supported")
    tensors = [*graph.initializer, *(a.t for node in graph.node for a in node.attribute if a.HasField("t"))]
    for tensor in tensors:
        if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
            raise OnnxGraphError(
                f"tensor {shown(tensor.name)} keeps its values in an external file; export one self-contained "
                "file (or without weights: export_params=False)"
            )


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(error).__name__


def _ranks(graph: onnx.GraphProto) -> dict[str, int]:
    """The rank ONNX shape inference gives every tensor it could type."""
    return {
        info.name: len(info.type.tensor_type.shape.dim)
        for info in [*graph.input, *graph.value_info, *graph.output]
        if info.type.tensor_type.HasField("shape")
    }


def _dims(info: onnx.ValueInfoProto) -> list[int | None]:
    """Static sizes of a graph input, None for a symbolic one."""
    return [dim.dim_value if dim.HasField("dim_value") else None for dim in info.type.tensor_type.shape.dim]


def _tensors(graph: onnx.GraphProto, ranks: dict[str, int]) -> TensorTable:
    """The image input (the first graph input that is not an initializer, as exporters write it) and the
    weights without values (the other such inputs, as `export_params=False` writes them)."""
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    inputs = [info for info in graph.input if info.name not in initializers]
    if not inputs:
        raise OnnxGraphError("the graph has no input for the images")
    image, *others = inputs
    dims = _dims(image)
    if image.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise OnnxGraphError(f"the graph's input {shown(image.name)} must be a float tensor of images")
    if len(dims) != 4 or dims[1] != IMAGE_CHANNELS or dims[2] is None or dims[3] is None:
        shown_dims = ["?" if size is None else size for size in dims]
        raise OnnxGraphError(
            f"the graph's input {shown(image.name)} has shape {shown_dims}; expected images [N, 3, H, W] with "
            "fixed H, W"
        )
    placeholders: dict[str, tuple[int, ...]] = {}
    for info in others:
        shape = _dims(info)
        if info.type.tensor_type.elem_type not in FLOAT_TYPES or any(size is None or size < 1 for size in shape):
            raise OnnxGraphError(
                f"the graph has a second input {shown(info.name)}; a network takes one image tensor (weights "
                "exported without values must be float tensors of fixed shape)"
            )
        placeholders[info.name] = tuple(size for size in shape if size is not None)
    return TensorTable(image.name, (dims[2], dims[3]), dims[0] or None, initializers, placeholders, ranks)


def _constant_node(node: onnx.NodeProto, position: int) -> onnx.TensorProto:
    """A Constant node's value as a tensor (it may be given as a tensor, a float, an int or lists of them)."""
    reader = NodeReader(node, position, TensorTable("", (0, 0), None, {}, {}, {}))
    for kind in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        value = reader.attribute(kind, None)
        if value is None:
            continue
        if isinstance(value, onnx.TensorProto):
            return value
        data_type = onnx.TensorProto.FLOAT if "float" in kind else onnx.TensorProto.INT64
        values = value if isinstance(value, list) else [value]
        return onnx.helper.make_tensor("", data_type, [len(values)] if isinstance(value, list) else [], values)
    raise reader.fail("only tensor, float and integer constants are supported")


def _structure(model: onnx.ModelProto, ranks: dict[str, int]) -> OnnxGraph:
    """Every node read by its operator's reader, in file order; then only the steps the output depends on
    are kept and their weights and constants numbered by first use."""
    graph = model.graph
    tensors = _tensors(graph, ranks)
    if len(graph.output) != 1:
        raise OnnxGraphError(f"the graph has {len(graph.output)} outputs; a classifier has one, its logits")
    consumed = {name for node in graph.node for name in node.input} | {graph.output[0].name}
    steps: list[tuple[NodeReader, Step]] = []
    producer: dict[str, int] = {}
    for position, node in enumerate(graph.node):
        if node.op_type == CONSTANT:
            where = f"node {shown(node.name or f'#{position}')} (Constant)"
            tensors.constants[node.output[0]] = constant_array(_constant_node(node, position), where)
            continue
        reader = NodeReader(node, position, tensors)
        layer = READERS[node.op_type](reader)
        unread = reader.unread_attributes()
        if unread:
            raise reader.fail(f"attribute {unread[0]!r} is not supported")
        for extra, output in enumerate(node.output[1:], start=2):
            if output and output in consumed:
                raise reader.fail(f"output {extra} ({shown(output)}) is used; only a node's first output can be")
        producer[node.output[0]] = len(steps)
        tensors.outputs.add(node.output[0])
        steps.append((reader, Step(node.op_type, reader.name, layer, (), ())))
    output_name = graph.output[0].name
    if output_name not in producer:
        raise OnnxGraphError(f"the graph's output {shown(output_name)} is not computed from its input")
    if ranks.get(output_name, 2) != 2:
        raise OnnxGraphError(f"the graph's output has rank {ranks[output_name]}; expected logits [N, classes]")
    live = _live_steps(steps, producer, output_name)
    return _numbered(steps, live, producer, output_name, tensors, len(graph.node))


def _live_steps(steps: list[tuple[NodeReader, Step]], producer: dict[str, int], output: str) -> list[int]:
    """The steps the output depends on, in file order (a node whose result is never used builds nothing)."""
    live, pending = set(), [producer[output]]
    while pending:
        index = pending.pop()
        if index not in live:
            live.add(index)
            pending.extend(
                producer[name] for kind, name in steps[index][0].inputs if kind == "value" and name in producer
            )
    return sorted(live)


def _numbered(
    steps: list[tuple[NodeReader, Step]],
    live: list[int],
    producer: dict[str, int],
    output: str,
    tensors: TensorTable,
    nodes: int,
) -> OnnxGraph:
    position = {old: new for new, old in enumerate(live)}
    parameters: dict[str, int] = {}
    constants: dict[str, int] = {}
    owners: dict[str, tuple[int, tuple[str | None, ...]]] = {}  # weight -> (first step, that step's weight slots)
    numbered: list[Step] = []
    for old in live:
        reader, step = steps[old]
        refs = []
        for kind, name in reader.inputs:
            if kind == "constant":
                refs.append(Ref("constant", constants.setdefault(name, len(constants))))
            else:
                refs.append(INPUT if name == tensors.image_input else Ref("step", position[producer[name]]))
        for weight in reader.parameters:
            if weight is None:
                continue
            owner = owners.setdefault(weight, (old, tuple(reader.parameters)))
            if owner[0] != old and (owner[1] != tuple(reader.parameters) or steps[owner[0]][1].layer != step.layer):
                raise reader.fail(
                    f"weight {shown(weight)} is shared with node {shown(steps[owner[0]][0].name)} in a way this "
                    "converter cannot rebuild (only whole layers may be reused)"
                )
        slots = tuple(
            None if name is None else parameters.setdefault(name, len(parameters)) for name in reader.parameters
        )
        numbered.append(dataclasses.replace(step, inputs=tuple(refs), parameters=slots))
    parameter_table = tuple(
        Parameter(
            tuple(int(size) for size in tensors.initializers[name].dims)
            if name in tensors.initializers
            else tensors.placeholders[name],
            name if name in tensors.initializers else None,
        )
        for name in parameters
    )
    height, width = tensors.image_size
    return OnnxGraph(
        steps=tuple(numbered),
        parameters=parameter_table,
        constants=tuple(tensors.constants[name] for name in constants),
        output=Ref("step", position[producer[output]]),
        input_shape=(IMAGE_CHANNELS, height, width),
        num_classes=0,
        nodes=nodes,
        batch_size=tensors.batch_size,
    )


def _measured(graph: OnnxGraph) -> OnnxGraph:
    """The graph with its classes, parameters and activation size, from the network built on the meta device
    and run at two batch sizes (a graph that fixes its batch size fails one of them)."""
    size = measure(graph, MAX_PARAMETERS)
    if size.saved_floats_per_image > MAX_SAVED_FLOATS_PER_IMAGE:
        raise OnnxGraphError(
            f"the network keeps {size.saved_floats_per_image:,} values per image for backward, over the limit "
            f"of {MAX_SAVED_FLOATS_PER_IMAGE:,}"
        )
    return dataclasses.replace(
        graph,
        num_classes=size.num_classes,
        parameter_count=size.parameters,
        saved_floats_per_image=size.saved_floats_per_image,
    )
