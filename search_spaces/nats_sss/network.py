"""The network NATS-Bench trains for each size configuration (Dong et al., "NATS-Bench: Benchmarking NAS
Algorithms for Architecture Topology and Size", TPAMI 2021): xautodl's size-search inference network
(`DynamicShapeTinyNet`, models/shape_infers/InferTinyCellNet.py, the "infer.shape.tiny" model), written here
with standard `torch.nn` layers.

Five layers, one cell per stage: cell, residual reduction, cell, residual reduction, cell, the i-th layer
putting out C_i channels, after a stem of C_1 channels and before BatchNorm-ReLU, global average pooling
and a linear classifier. A cell whose input width differs from its output width widens on every edge out
of its input node: a 3x3 convolution maps C_in to C_out, and `skip_connect` becomes a 1x1 convolution with
BatchNorm (xautodl's stride-1 `FactorizedReduce`, which applies no ReLU). Module names follow xautodl's, so
state-dict keys are its keys and its weights load as they are.
"""

from __future__ import annotations

from torch import Tensor, nn

from search_spaces.nats_sss.channels import FIXED_CELL, parse
from search_spaces.nb201.cell import EDGES, OUTPUT_NODE
from search_spaces.nb201.cell import parse as parse_cell
from search_spaces.nb201.network import ReLUConvBN, ResidualReduction

REDUCTION_LAYERS = (1, 3)
"""Layers that halve the resolution (residual blocks); the others are cells."""


class ChannelProjection(nn.Module):
    """`skip_connect` between different widths: 1x1 convolution (no bias) and BatchNorm, no ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, inputs: Tensor) -> Tensor:
        output: Tensor = self.bn(self.conv(inputs))
        return output


def make_edge_op(op: str, in_channels: int, out_channels: int) -> nn.Module:
    """The module of one edge of the fixed cell (3x3 convolutions and skips only)."""
    if op == "nor_conv_3x3":
        return ReLUConvBN(in_channels, out_channels, 3)
    if op == "skip_connect":
        return nn.Identity() if in_channels == out_channels else ChannelProjection(in_channels, out_channels)
    raise ValueError(f"the NATS-Bench size space's cell has no {op!r} edge")


class SizedCell(nn.Module):
    """The fixed cell from `in_channels` to `out_channels`: edges out of node 0 change the width, the others
    keep it. Every edge is live (the cell has no `none`), so all of them run."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        ops = parse_cell(FIXED_CELL).ops
        self.layers = nn.ModuleList(
            make_edge_op(op, in_channels if source == 0 else out_channels, out_channels)
            for (_, source), op in zip(EDGES, ops, strict=True)
        )

    def forward(self, inputs: Tensor) -> Tensor:
        nodes = [inputs]
        for node in range(1, OUTPUT_NODE + 1):
            incoming = [index for index, (target, _) in enumerate(EDGES) if target == node]
            total = self.layers[incoming[0]](nodes[EDGES[incoming[0]][1]])
            for index in incoming[1:]:
                total = total + self.layers[index](nodes[EDGES[index][1]])
            nodes.append(total)
        return nodes[OUTPUT_NODE]


class NATSSizeNetwork(nn.Module):
    """Stem, the five layers at the configuration's widths, then BatchNorm-ReLU, global average pooling and
    a linear classifier. Returns the logits only."""

    def __init__(self, widths: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.widths = widths
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]))
        layers: list[nn.Module] = []
        previous = widths[0]
        for layer, width in enumerate(widths):
            layers.append(
                ResidualReduction(previous, width) if layer in REDUCTION_LAYERS else SizedCell(previous, width)
            )
            previous = width
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(previous), nn.ReLU())
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(previous, num_classes)

    def forward(self, inputs: Tensor) -> Tensor:
        features = self.stem(inputs)
        for layer in self.cells:
            features = layer(features)
        pooled = self.global_pooling(self.lastact(features)).flatten(1)
        logits: Tensor = self.classifier(pooled)
        return logits

    def extra_repr(self) -> str:
        return f"widths={':'.join(map(str, self.widths))}"


def build_model(arch: object, num_classes: int = 10) -> NATSSizeNetwork:
    """The benchmark's network for a configuration (any form `parse` accepts), on the CPU in float32."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return NATSSizeNetwork(parse(arch), num_classes)
