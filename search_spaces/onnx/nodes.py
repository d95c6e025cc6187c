"""One ONNX node as an operator's reader sees it: its attributes (defaults filled in, each one read or the node
refused) and its inputs, each taken as what the operator's slot means — a runtime operand, a layer's weight,
or a compile-time constant."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from search_spaces.onnx.structure import OnnxGraphError

FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16}
INTEGER_TYPES = {onnx.TensorProto.INT64, onnx.TensorProto.INT32}
_SHOWN = 60


def shown(name: str) -> str:
    """`repr(name)`, cut short: names come from the file and end up in error messages."""
    text = repr(name)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 4] + "...'"


def constant_array(tensor: onnx.TensorProto, what: str) -> np.ndarray:
    """A constant's values as float32, int64 or bool (the types the converter computes with)."""
    if tensor.data_type in FLOAT_TYPES:
        return numpy_helper.to_array(tensor).astype(np.float32)
    if tensor.data_type in INTEGER_TYPES:
        return numpy_helper.to_array(tensor).astype(np.int64)
    if tensor.data_type == onnx.TensorProto.BOOL:
        return numpy_helper.to_array(tensor).astype(np.bool_)
    type_name = onnx.TensorProto.DataType.Name(tensor.data_type)
    raise OnnxGraphError(f"{what} is a {type_name} tensor; constants must be float, integer or bool")


@dataclass
class TensorTable:
    """What every tensor name of the graph is: the image input, a node's output, a weight of the file (an
    initializer, or a graph input without values when the file was exported without its weights), or a
    constant. Weights and constants are told apart by the slot that reads them."""

    image_input: str
    image_size: tuple[int, int]
    batch_size: int | None
    initializers: dict[str, onnx.TensorProto]
    placeholders: dict[str, tuple[int, ...]]
    ranks: dict[str, int]
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    outputs: set[str] = field(default_factory=set)
    used_as: dict[str, str] = field(default_factory=dict)

    def mark(self, name: str, use: str, where: str) -> None:
        """Record that weight-or-constant `name` is read as `use`; one tensor cannot be both."""
        if self.used_as.setdefault(name, use) != use:
            raise OnnxGraphError(f"{where}: tensor {shown(name)} is read both as a weight and as a constant")


class NodeReader:
    """Reads one node for its operator; `inputs` and `parameters` collect what the operator asked for, in order."""

    def __init__(self, node: onnx.NodeProto, position: int, tensors: TensorTable) -> None:
        self.node = node
        self.op = node.op_type
        self.name = node.name or f"#{position}"
        self.tensors = tensors
        self._attributes = {attribute.name: attribute for attribute in node.attribute}
        self._read: set[str] = set()
        self.inputs: list[tuple[str, str]] = []
        """Runtime operands: ("value", name) for the image or a node's output, ("constant", name) otherwise."""
        self.parameters: list[str | None] = []

    def fail(self, problem: str) -> OnnxGraphError:
        return OnnxGraphError(f"node {shown(self.name)} ({self.op}): {problem}")

    # Attributes

    def attribute(self, name: str, default: Any) -> Any:
        self._read.add(name)
        attribute = self._attributes.get(name)
        if attribute is None:
            return default
        if attribute.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
            raise self.fail(f"attribute {name!r} holds a subgraph, which is not supported")
        return onnx.helper.get_attribute_value(attribute)

    def integer(self, name: str, default: int) -> int:
        value = self.attribute(name, default)
        if not isinstance(value, int):
            raise self.fail(f"attribute {name!r} must be an integer")
        return value

    def ints(self, name: str, default: Sequence[int]) -> tuple[int, ...]:
        value = self.attribute(name, default)
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, int) for item in value):
            raise self.fail(f"attribute {name!r} must be a list of integers")
        return tuple(value)

    def number(self, name: str, default: float) -> float:
        """A float attribute as the decimal the exporter was given: ONNX stores float32, so 1e-5 arrives as
        9.99999974738e-06, and the shortest decimal that rounds to the same float32 is what was meant."""
        value = self.attribute(name, default)
        if not isinstance(value, (int, float)) or not np.isfinite(value):
            raise self.fail(f"attribute {name!r} must be a finite number")
        return float(str(np.float32(value)))

    def string(self, name: str, default: str) -> str:
        value = self.attribute(name, default)
        return str(value.decode(errors="replace") if isinstance(value, bytes) else value)

    def unread_attributes(self) -> list[str]:
        return sorted(set(self._attributes) - self._read)

    # Inputs

    def has_input(self, slot: int) -> bool:
        return slot < len(self.node.input) and self.node.input[slot] != ""

    def _name(self, slot: int, what: str) -> str:
        if not self.has_input(slot):
            raise self.fail(f"input {slot} ({what}) is missing")
        return str(self.node.input[slot])

    def rank(self, slot: int) -> int | None:
        name = self.node.input[slot]
        if name in self.tensors.initializers:
            return len(self.tensors.initializers[name].dims)
        if name in self.tensors.placeholders:
            return len(self.tensors.placeholders[name])
        if name in self.tensors.constants:
            return self.tensors.constants[name].ndim
        return self.tensors.ranks.get(name)

    def operand(self, slot: int, what: str = "data") -> None:
        """Input `slot` as a runtime operand of the layer (data, or a constant it computes with)."""
        name = self._name(slot, what)
        if name == self.tensors.image_input or name in self.tensors.outputs:
            self.inputs.append(("value", name))
            return
        self.constant(slot, what)
        self.inputs.append(("constant", name))

    def is_value(self, slot: int) -> bool:
        """Whether input `slot` is computed from the image (rather than a weight or a constant)."""
        name = self.node.input[slot]
        return name == self.tensors.image_input or name in self.tensors.outputs

    def is_weight(self, slot: int) -> bool:
        """Whether input `slot` is a tensor of the file that a weight slot can read (an initializer, or a graph
        input without values)."""
        name = self.node.input[slot]
        return name in self.tensors.initializers or name in self.tensors.placeholders

    def parameter(self, slot: int, what: str, *, optional: bool = False) -> tuple[int, ...] | None:
        """Input `slot` as a weight of the layer: its shape. The file's values, if any, are not read."""
        if optional and not self.has_input(slot):
            self.parameters.append(None)
            return None
        name = self._name(slot, what)
        where = f"node {shown(self.name)} ({self.op})"
        if name in self.tensors.initializers:
            tensor = self.tensors.initializers[name]
            if tensor.data_type not in FLOAT_TYPES:
                raise self.fail(f"the {what} {shown(name)} is not a float tensor")
            shape = tuple(int(size) for size in tensor.dims)
        elif name in self.tensors.placeholders:
            shape = self.tensors.placeholders[name]
        else:
            raise self.fail(f"the {what} must be a weight of the file (an initializer), not a computed tensor")
        self.tensors.mark(name, "weight", where)
        self.parameters.append(name)
        return shape

    def constant(self, slot: int, what: str, *, optional: bool = False) -> np.ndarray | None:
        """Input `slot` as a constant whose values the network is built with (a pad width, a shape)."""
        if optional and not self.has_input(slot):
            return None
        name = self._name(slot, what)
        where = f"node {shown(self.name)} ({self.op})"
        if name in self.tensors.constants:
            return self.tensors.constants[name]
        if name in self.tensors.initializers:
            self.tensors.mark(name, "constant", where)
            array = constant_array(self.tensors.initializers[name], f"{where}: the {what} {shown(name)}")
            self.tensors.constants[name] = array
            return array
        if name in self.tensors.placeholders:
            raise self.fail(f"the {what} {shown(name)} is a graph input without values; it must be a constant")
        raise self.fail(f"the {what} must be a constant of the file, not computed from the image")
