"""The network NAS-Bench-101 trains for each cell (Ying et al., "NAS-Bench-101: Towards Reproducible Neural
Architecture Search", ICML 2019, Section 2.1 and google-research/nasbench `model_builder.py`).

A 3×3 conv-BN-ReLU stem of 128 channels, then 3 stacks of 3 cells; between stacks a 2×2 max pool halves
the resolution and the cells double the channels; global average pooling and a dense layer. Inside a cell,
the output node concatenates the nodes that feed it, so the cell's output channels are split between them
(`vertex_channels`), and the input reaches other nodes only through 1×1 conv-BN-ReLU projections. Layers,
channel counts and the order of operations are the benchmark's, so parameter counts equal its
`trainable_parameters`. Training-only settings (BatchNorm momentum, the TensorFlow initialisers) are left
at PyTorch's defaults, as for every network this service builds: the proxies that prescribe an
initialisation draw their own.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from search_spaces.nb101.cell import Cell, Matrix


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """Conv (same padding, no bias) -> BatchNorm -> ReLU, the benchmark's `conv_bn_relu`. The ReLU is not
    in-place: proxies take second derivatives through it."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


def make_node_op(op: str, channels: int) -> nn.Module:
    """The module of one interior node; every op keeps its input's channel count."""
    if op == "conv3x3-bn-relu":
        return conv_bn_relu(channels, channels, 3)
    if op == "conv1x1-bn-relu":
        return conv_bn_relu(channels, channels, 1)
    if op == "maxpool3x3":
        return nn.MaxPool2d(3, stride=1, padding=1)
    raise ValueError(f"unknown NAS-Bench-101 operation {op!r}")


def vertex_channels(in_channels: int, out_channels: int, matrix: Matrix) -> list[int]:
    """Each node's channel count, as the benchmark's `compute_vertex_channels`: the output's channels are
    split evenly over the nodes feeding it (the first `remainder` of them get one more), and every other
    interior node takes the largest count among the interior nodes it feeds."""
    last = len(matrix) - 1
    channels = [in_channels, *([0] * (last - 1)), out_channels]
    feeding_output = [node for node in range(1, last) if matrix[node][last]]
    if not feeding_output:  # a cell of input and output only
        return channels
    share, remainder = divmod(out_channels, len(feeding_output))
    for rank, node in enumerate(feeding_output):
        channels[node] = share + (1 if rank < remainder else 0)
    for node in range(last - 2, 0, -1):
        if not matrix[node][last]:
            channels[node] = max(channels[target] for target in range(node + 1, last) if matrix[node][target])
    return channels


class NB101Cell(nn.Module):
    """One cell. Interior node t sums its inputs (other nodes' outputs, cut to its channel count when one
    channel wider, and the projected cell input) and applies its op; the output concatenates the nodes
    feeding it and adds the projected cell input when input and output are joined directly."""

    def __init__(self, cell: Cell, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.arch = cell
        last = cell.num_nodes - 1
        self.channels = vertex_channels(in_channels, out_channels, cell.matrix)
        self.ops = nn.ModuleList(make_node_op(cell.ops[node], self.channels[node]) for node in range(1, last))
        self.projections = nn.ModuleDict(
            {
                str(node): conv_bn_relu(in_channels, self.channels[node], 1)
                for node in range(1, last + 1)
                if cell.matrix[0][node]
            }
        )

    def forward(self, inputs: Tensor) -> Tensor:
        matrix, last = self.arch.matrix, self.arch.num_nodes - 1
        values = [inputs]
        for node in range(1, last):
            width = self.channels[node]
            terms = [values[source][:, :width] for source in range(1, node) if matrix[source][node]]
            if matrix[0][node]:
                terms.append(self.projections[str(node)](inputs))
            values.append(self.ops[node - 1](_sum(terms)))
        concatenated = [values[node] for node in range(1, last) if matrix[node][last]]
        projected: list[Tensor] = [self.projections[str(last)](inputs)] if matrix[0][last] else []
        if not concatenated:
            return projected[0]
        output = concatenated[0] if len(concatenated) == 1 else torch.cat(concatenated, dim=1)
        return _sum([output, *projected])

    def extra_repr(self) -> str:
        return f"arch={self.arch.text}, channels={self.channels}"


class NB101Network(nn.Module):
    """Stem, `stacks` stacks of `cells_per_stack` cells (a 2×2 max pool before every stack but the first,
    where the width doubles), global average pooling and a linear classifier. Returns the logits.

    The stem and the cells are `stem` and `cells`, the blocks that AZ-NAS and similar proxies read; the
    poolings between stacks have no parameters and sit outside `cells`.
    """

    def __init__(self, cell: Cell, num_classes: int, stem_channels: int, stacks: int, cells_per_stack: int) -> None:
        super().__init__()
        self.arch = cell
        self.stem = conv_bn_relu(3, stem_channels, 3)
        self.cells = nn.ModuleList(_cells(cell, stem_channels, stacks, cells_per_stack))
        self.pooled_before = frozenset(stack * cells_per_stack for stack in range(1, stacks))
        # TensorFlow's 'same' max pooling keeps a partial window at odd sizes, as ceil_mode does.
        self.downsample = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(stem_channels * 2 ** (stacks - 1), num_classes)

    def forward(self, inputs: Tensor) -> Tensor:
        features = self.stem(inputs)
        for index, cell in enumerate(self.cells):
            if index in self.pooled_before:
                features = self.downsample(features)
            features = cell(features)
        logits: Tensor = self.classifier(self.global_pooling(features).flatten(1))
        return logits


def _cells(cell: Cell, stem_channels: int, stacks: int, cells_per_stack: int) -> Iterator[NB101Cell]:
    in_channels = stem_channels
    for stack in range(stacks):
        out_channels = stem_channels * 2**stack
        for _ in range(cells_per_stack):
            yield NB101Cell(cell, in_channels, out_channels)
            in_channels = out_channels


def _sum(terms: list[Tensor]) -> Tensor:
    """Sum without in-place updates: every term may still be needed for backward."""
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total
