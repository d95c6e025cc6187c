"""The network NAS-Bench-201 trains for each cell (Dong & Yang, "NAS-Bench-201: Extending the Scope of
Reproducible Neural Architecture Search", ICLR 2020; D-X-Y's `TinyNetwork`).

Layout, module names and construction order follow the benchmark's code, so parameter counts equal its
published sizes and state-dict keys are those of its `TinyNetwork`. Only standard `torch.nn` layers with
default initialisation are used, so any model tooling applies.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from search_spaces.nb201.cell import EDGES, OUTPUT_NODE, ArchLike, Cell, live_edges, parse

# One computed node: (node, ((edge index, input node, is skip_connect), ...)).
NodePlan = tuple[int, tuple[tuple[int, int, bool], ...]]
# The largest cell of NB201: every edge a 3x3 convolution (a memory bound from it holds for every cell).
WIDEST_CELL = ("nor_conv_3x3",) * len(EDGES)
_EDGE_CONV_KERNELS = {"nor_conv_3x3": 3, "nor_conv_1x1": 1}


class Zero(nn.Module):
    """The `none` operation. Cells never call it (their forward skips `none` edges); it exists so every
    edge owns a module, and reference code that evaluates all edges gets the benchmark's zeros."""

    def forward(self, inputs: Tensor) -> Tensor:
        return torch.zeros_like(inputs)


class ReLUConvBN(nn.Module):
    """ReLU -> Conv (no bias) -> BatchNorm. The ReLU is not in-place: its input is a node value that other
    edges and double backward (Hessian-vector products) still need."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, inputs: Tensor) -> Tensor:
        output: Tensor = self.op(inputs)
        return output


def make_edge_op(op: str, channels: int) -> nn.Module:
    """The module for one cell edge: only its own operation is instantiated."""
    if op == "none":
        return Zero()
    if op == "skip_connect":
        return nn.Identity()
    if op == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if op == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NAS-Bench-201 operation {op!r}")


class CellModule(nn.Module):
    """One searched cell. Every edge keeps its module (so parameter counts are the benchmark's), but the
    forward evaluates only live edges (see `live_edges`): `none` edges, edges fed by an always-zero node and
    edges that cannot reach node 3 change neither the output nor any Conv/Linear weight's gradient, as long
    as BatchNorm biases are zero as at initialisation (a conv edge fed by zeros outputs its BatchNorm bias).
    A cell whose node 3 receives nothing outputs zeros."""

    def __init__(self, cell: Cell, channels: int) -> None:
        super().__init__()
        self.arch = cell
        self.layers = nn.ModuleList(make_edge_op(op, channels) for op in cell.ops)
        self.plan = _forward_plan(cell)

    def forward(self, inputs: Tensor) -> Tensor:
        if not self.plan:
            return torch.zeros_like(inputs)
        values: dict[int, Tensor] = {0: inputs}
        for node, edges in self.plan:
            values[node] = _sum_terms(
                [values[source] if is_skip else self.layers[index](values[source]) for index, source, is_skip in edges]
            )
        return values[OUTPUT_NODE]

    def extra_repr(self) -> str:
        return f"arch={self.arch.arch_str!r}, live_edges={live_edges(self.arch)}"


class ResidualReduction(nn.Module):
    """The residual block between stages: halves the resolution and changes the width. The shortcut is a
    2x2 average pool then a 1x1 conv without BatchNorm, as in the benchmark's `ResNetBasicblock`."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(in_channels, out_channels, 3, stride=2)
        self.conv_b = ReLUConvBN(out_channels, out_channels, 3)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
        )

    def forward(self, inputs: Tensor) -> Tensor:
        output: Tensor = self.conv_b(self.conv_a(inputs)) + self.downsample(inputs)
        return output


class NB201Network(nn.Module):
    """Stem, three stages of cells at C, 2C and 4C channels joined by residual reductions, then
    BatchNorm-ReLU, global average pooling and a linear classifier. Returns the logits only."""

    def __init__(self, cell: Cell, num_classes: int, channels: int, cells_per_stage: int) -> None:
        super().__init__()
        self.arch = cell
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        self.cells = nn.ModuleList(_stage_blocks(cell, channels, cells_per_stage))
        width = channels * 4
        self.lastact = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU())
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, inputs: Tensor) -> Tensor:
        features = self.stem(inputs)
        for block in self.cells:
            features = block(features)
        pooled = self.global_pooling(self.lastact(features)).flatten(1)
        logits: Tensor = self.classifier(pooled)
        return logits


def build_model(arch: ArchLike, num_classes: int = 10, *, channels: int = 16, cells_per_stage: int = 5) -> NB201Network:
    """The benchmark's network for `arch` (any form `parse` accepts), on the CPU in float32."""
    cell = parse(arch)
    for name, value in (("num_classes", num_classes), ("channels", channels), ("cells_per_stage", cells_per_stage)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return NB201Network(cell, num_classes, channels, cells_per_stage)


def _stage_blocks(cell: Cell, channels: int, cells_per_stage: int) -> Iterator[nn.Module]:
    for stage in range(3):
        width = channels * 2**stage
        if stage:
            yield ResidualReduction(width // 2, width)
        for _ in range(cells_per_stage):
            yield CellModule(cell, width)


def _forward_plan(cell: Cell) -> tuple[NodePlan, ...]:
    """The nodes to compute, in order, each with its live incoming edges; empty when node 3 gets nothing."""
    live = live_edges(cell)
    plan = []
    for node in range(1, OUTPUT_NODE + 1):
        edges = tuple(
            (index, source, cell.ops[index] == "skip_connect")
            for index, (target, source) in enumerate(EDGES)
            if target == node and index in live
        )
        if edges:
            plan.append((node, edges))
    return tuple(plan)


def _sum_terms(terms: list[Tensor]) -> Tensor:
    """Sum a node's inputs: a lone input is passed through without a copy, and later inputs accumulate in
    place into the fresh tensor made by the first addition (`add` saves no tensors for backward)."""
    if len(terms) == 1:
        return terms[0]
    total = terms[0] + terms[1]
    for term in terms[2:]:
        total += term
    return total


def parameter_count(ops: Sequence[str], num_classes: int, channels: int, cells_per_stage: int) -> int:
    """Parameters of the network of the cell `ops` (its six edges in order), as `build_model` lays it out:
    convolutions without bias, affine BatchNorms. Computed, not built, for the service's memory bound."""
    count = 3 * 9 * channels + 2 * channels  # stem: 3x3 conv and BatchNorm
    for stage in range(3):
        width = channels * 2**stage
        if stage:  # the residual reduction from width / 2: two 3x3 ReLUConvBNs and a 1x1 shortcut conv
            half = width // 2
            count += 9 * half * width + 2 * width + 9 * width * width + 2 * width + half * width
        edges = sum(_EDGE_CONV_KERNELS[op] ** 2 * width * width + 2 * width for op in ops if op in _EDGE_CONV_KERNELS)
        count += cells_per_stage * edges
    width = 4 * channels
    return count + 2 * width + width * num_classes + num_classes  # last BatchNorm and the classifier


def saved_activations(batch_size: int, image_size: int, channels: int, cells_per_stage: int) -> int:
    """Floats one forward of the widest network saves for backward: per 3x3-conv edge its ReLU's output and
    its convolution's output; per residual reduction the same for its two convolutions, plus the block's
    input (for the shortcut's pooling) and the pooled shortcut; the stem's input and convolution output; the
    final BatchNorm's input and ReLU's output."""
    sizes = [image_size, (image_size + 1) // 2, (image_size + 3) // 4]  # stride-2 convolutions round up
    maps = 3 * sizes[0] ** 2 + channels * sizes[0] ** 2  # stem
    for stage, size in enumerate(sizes):
        width = channels * 2**stage
        if stage:
            half, previous = width // 2, sizes[stage - 1]
            maps += 2 * half * previous**2 + 3 * width * size**2 + half * (previous // 2) ** 2
        maps += cells_per_stage * 2 * len(WIDEST_CELL) * width * size**2
    last = 4 * channels * sizes[2] ** 2
    return batch_size * (maps + 2 * last)
