"""What an ONNX file is read into: the network's structure, with the names and the weights left behind.

A graph is a list of steps in the file's node order, each a layer to build (a kind and its arguments, all
JSON values) and the runtime operands it is called with: the image batch, an earlier step's output, or a
constant of the file (a Reshape's shape, a Mul's factor). Weights are not operands: they belong to the layer
(an nn.Conv2d's weight), so they are described only by their shapes. The structure digest is the SHA-256 of
exactly this description, which is why two files that differ only in weights or names share it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

STRUCTURE_VERSION = 1
"""Part of every digest: bump it when the description of a structure changes, so old digests never alias."""


class OnnxGraphError(ValueError):
    """The file cannot be scored: not ONNX, outside the supported operators, or not an image classifier."""


class OnnxFileTooLarge(OnnxGraphError):
    """The file is over the size limit (the service answers 413)."""


class Ref(NamedTuple):
    """A runtime operand: the image batch ("input"), the output of the step at `position` ("step") or the
    constant at `position` ("constant")."""

    kind: str
    position: int = 0


INPUT = Ref("input")


@dataclass(frozen=True)
class Layer:
    """What a step builds: a kind of `operators.BUILDERS` and its arguments (JSON values only)."""

    kind: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Step:
    """One node of the file: `op` and `node` (its name) only for messages, not part of the structure."""

    op: str
    node: str
    layer: Layer
    inputs: tuple[Ref, ...]
    parameters: tuple[int | None, ...]
    """Per weight slot of the layer (e.g. Conv's weight and bias), the index of its parameter, or None."""


@dataclass(frozen=True)
class Parameter:
    """A weight of the file, by shape; `source` names the tensor the file's values are in (None when the
    file was exported without them), for `network.load_file_weights` only."""

    shape: tuple[int, ...]
    source: str | None


@dataclass(frozen=True, eq=False)
class OnnxGraph:
    """A readable, checked network: the structure to rebuild it from and the figures the service shows."""

    steps: tuple[Step, ...]
    parameters: tuple[Parameter, ...]
    constants: tuple[np.ndarray, ...]
    output: Ref
    input_shape: tuple[int, int, int]
    num_classes: int
    nodes: int
    """Nodes of the file (Constant nodes included), as the user counts them."""
    batch_size: int | None
    """The file's fixed batch size, None when its batch dimension is symbolic."""
    parameter_count: int = 0
    saved_floats_per_image: int = 0

    @property
    def digest(self) -> str:
        return structure_digest(self)

    @property
    def arch(self) -> str:
        """The architecture's normalised text."""
        return f"onnx:{self.digest}"


def structure_digest(graph: OnnxGraph) -> str:
    """SHA-256 of the structure: layers with their arguments and operands, weight shapes (with weight sharing),
    constants by the SHA-256 of their values, the input shape and the output. Nothing else of the file."""
    description = {
        "version": STRUCTURE_VERSION,
        "input": list(graph.input_shape),
        "steps": [[step.layer.kind, step.layer.args, step.inputs, step.parameters] for step in graph.steps],
        "parameters": [list(parameter.shape) for parameter in graph.parameters],
        "constants": [_constant_description(constant) for constant in graph.constants],
        "output": graph.output,
    }
    encoded = json.dumps(description, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


def _constant_description(constant: np.ndarray) -> list[Any]:
    values = np.ascontiguousarray(constant)
    return [str(values.dtype), list(values.shape), hashlib.sha256(values.tobytes()).hexdigest()]
