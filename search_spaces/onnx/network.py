"""The network of an `OnnxGraph`: its layers built in the file's node order (so a seed draws the same weights
as a PyTorch network that builds its layers in forward order), run in that order by a small module.

Weights are PyTorch's layer defaults drawn from the scoring configuration's seed, as for every space: a file's
weights are never used for scoring. `load_file_weights` copies them in on request (the tests compare the
converted network with ONNX's reference evaluator that way).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import Tensor, nn

from search_spaces.onnx.operators import build_layer
from search_spaces.onnx.structure import OnnxGraph, OnnxGraphError, Ref

VALIDATION_BATCH_SIZES = (2, 3)


class OnnxNetwork(nn.Module):
    """`layers[i]` computes step i from its operands; a layer whose weights the file shares between nodes is
    built once and called at each (weight tying, as the exporting network had it)."""

    def __init__(self, graph: OnnxGraph) -> None:
        super().__init__()
        self.num_classes = graph.num_classes
        layers: list[nn.Module] = []
        shared: dict[tuple[int | None, ...], nn.Module] = {}
        for step in graph.steps:
            weights = step.parameters if any(slot is not None for slot in step.parameters) else None
            if weights is not None and weights in shared:
                layers.append(shared[weights])
                continue
            layer = build_layer(step.layer)
            if weights is not None:
                shared[weights] = layer
            layers.append(layer)
        self.layers = nn.ModuleList(layers)
        self._integers: dict[int, Tensor] = {}
        for index, values in enumerate(graph.constants):
            if values.dtype == np.float32:
                self.register_buffer(f"constant_{index}", torch.tensor(values))
            else:  # shapes, indices, flags: computed with on the CPU
                self._integers[index] = torch.tensor(values, device="cpu")
        self._inputs = [step.inputs for step in graph.steps]
        self._names = [f"node {step.node!r} ({step.op})" for step in graph.steps]
        self._output = graph.output.position
        last_use = {index: index for index in range(len(graph.steps))}
        for index, step in enumerate(graph.steps):
            for ref in step.inputs:
                if ref.kind == "step":
                    last_use[ref.position] = index
        self._released: list[list[int]] = [[] for _ in graph.steps]
        for value, index in last_use.items():
            if value != self._output:
                self._released[index].append(value)

    def _operand(self, ref: Ref, images: Tensor, values: list[Any]) -> Tensor:
        if ref.kind == "input":
            return images
        if ref.kind == "step":
            value: Tensor = values[ref.position]
            return value
        if ref.position in self._integers:
            return self._integers[ref.position]
        constant: Tensor = getattr(self, f"constant_{ref.position}")
        return constant

    def forward(self, images: Tensor) -> Tensor:
        values: list[Any] = [None] * len(self.layers)
        for index, layer in enumerate(self.layers):
            operands = [self._operand(ref, images, values) for ref in self._inputs[index]]
            try:
                values[index] = layer(*operands)
            except Exception as error:
                error.add_note(f"in {self._names[index]} of the ONNX graph")
                raise
            for released in self._released[index]:
                values[released] = None
        logits: Tensor = values[self._output]
        return logits


@dataclass(frozen=True)
class MeasuredSize:
    num_classes: int
    parameters: int
    saved_floats_per_image: int


def measure(graph: OnnxGraph, max_parameters: int) -> MeasuredSize:
    """Build the network on the meta device (no memory), refuse it over `max_parameters`, and run images and
    a cross-entropy loss through it at each of VALIDATION_BATCH_SIZES, counting what autograd saves for
    backward per image (as `SearchSpace.network_size` does for the other spaces). The output must be
    [batch, classes] at every batch size."""
    with torch.device("meta"):
        network = OnnxNetwork(graph)
    parameters = sum(parameter.numel() for parameter in network.parameters())
    if parameters > max_parameters:
        raise OnnxGraphError(f"the network has {parameters:,} parameters, over the limit of {max_parameters:,}")
    classes: set[int] = set()
    saved_per_image = 0
    for batch in VALIDATION_BATCH_SIZES:
        logits, saved = _run(network, graph, batch)
        if logits.dim() != 2 or logits.shape[0] != batch:
            raise OnnxGraphError(
                f"the network puts out shape {list(logits.shape)} for {batch} images; expected logits "
                f"[{batch}, classes] (the file's batch size must not be fixed in the graph)"
            )
        classes.add(int(logits.shape[1]))
        saved_per_image = max(saved_per_image, -(-saved // batch))
    if len(classes) != 1:
        raise OnnxGraphError("the number of logits changes with the batch size")
    return MeasuredSize(classes.pop(), parameters, saved_per_image)


def _run(network: OnnxNetwork, graph: OnnxGraph, batch: int) -> tuple[Tensor, int]:
    parameters = {parameter.untyped_storage()._cdata for parameter in network.parameters()}
    saved: dict[int, int] = {}

    def count(tensor: Tensor) -> Tensor:
        storage = tensor.untyped_storage()
        if storage._cdata not in parameters:
            saved[storage._cdata] = storage.nbytes() // tensor.element_size()
        return tensor

    images = torch.zeros(batch, *graph.input_shape, device="meta")
    try:
        with torch.autograd.graph.saved_tensors_hooks(count, lambda tensor: tensor):
            logits = network(images)
            if not isinstance(logits, Tensor) or not logits.is_floating_point():
                raise OnnxGraphError("the network's output is not a float tensor of logits")
            if logits.dim() == 2 and logits.shape[0] == batch:
                targets = torch.zeros(batch, dtype=torch.long, device="meta")
                nn.functional.cross_entropy(logits, targets)
    except OnnxGraphError:
        raise
    except Exception as error:
        where = "; ".join(getattr(error, "__notes__", []))
        raise OnnxGraphError(f"the network does not run on {batch} images ({where}): {error}") from None
    return logits, sum(saved.values())


def load_file_weights(network: OnnxNetwork, graph: OnnxGraph, data: bytes) -> None:
    """Copy the file's weights (and BatchNorm statistics) into the network built from it; a ValueError for
    a file exported without them."""
    model = onnx.ModelProto()
    model.ParseFromString(data)
    values = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    for step, layer in zip(graph.steps, network.layers, strict=True):
        targets = _weight_slots(layer, step.layer.args)
        for slot, target in zip(step.parameters, targets, strict=False):
            if slot is None or target is None:
                continue
            source = graph.parameters[slot].source
            if source is None:
                raise ValueError(f"{step.node!r} ({step.op}): the file has no values for its weights")
            array = values[source]
            if step.layer.kind == "linear" and target is _linear_weight(layer) and step.layer.args["transposed"]:
                array = array.T
            with torch.no_grad():
                target.copy_(torch.from_numpy(np.array(array, dtype=np.float32)).reshape(target.shape))


def _linear_weight(layer: nn.Module) -> Tensor | None:
    return layer.weight if isinstance(layer, nn.Linear) else None


def _weight_slots(layer: nn.Module, args: dict[str, Any]) -> list[Tensor | None]:
    """The tensors of `layer` that the file's weight slots of its node fill, in slot order."""
    if isinstance(layer, nn.Sequential):  # a convolution with uneven padding: ZeroPad2d, then the Conv2d
        layer = layer[-1]
    if isinstance(layer, nn.Conv2d | nn.Linear):
        return [layer.weight, layer.bias]
    if isinstance(layer, nn.modules.batchnorm._BatchNorm):
        return [layer.weight, layer.bias, layer.running_mean, layer.running_var]
    return []
