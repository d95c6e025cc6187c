"""The network DARTS evaluates a genotype with, as NAS-Bench-301 trains it.

Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search", ICLR 2019: `NetworkCIFAR` and its
operations (quark0/darts, cnn/model.py and cnn/operations.py). NAS-Bench-301 (Siems et al., 2020; Zela et al.,
ICLR 2022) trains it with 32 initial channels and 8 cells (automl/nasbench301,
nasbench301/data_generation/configs: `init_channels` 32, `layers` 8). A stem (3×3 conv to 3·C channels and
BatchNorm) feeds `layers` cells; the cells at layers//3 and 2·layers//3 are reduction cells that halve the
resolution and double C; each cell reads the outputs of the two cells before it and outputs 4·C channels;
global average pooling and a linear classifier follow. The auxiliary head and drop-path are training aids
and are left out: the network returns its logits only.

Module names, construction order and initialisation (PyTorch's defaults) are the reference's, so parameter
counts equal those of its `NetworkCIFAR(C, num_classes, layers, auxiliary=False, genotype)` (DARTS-V2 at 36
channels and 20 cells: 3,349,342) and state dicts have its keys.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from search_spaces.darts.genotype import CONCAT, CellEdges, Genotype

STEM_MULTIPLIER = 3


class ReLUConvBN(nn.Module):
    """ReLU -> Conv (no bias) -> BatchNorm. ReLUs here are never in-place: their inputs are node values that
    other edges and second derivatives still need."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, inputs: Tensor) -> Tensor:
        output: Tensor = self.op(inputs)
        return output


class DilConv(nn.Module):
    """ReLU -> dilated depthwise conv -> pointwise conv -> BatchNorm."""

    def __init__(self, channels: int, kernel_size: int, stride: int, padding: int, dilation: int) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, channels, kernel_size, stride, padding, dilation=dilation, groups=channels, bias=False),
            nn.Conv2d(channels, channels, kernel_size=1, padding=0, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, inputs: Tensor) -> Tensor:
        output: Tensor = self.op(inputs)
        return output


class SepConv(nn.Module):
    """Two stacked (ReLU -> depthwise conv -> pointwise conv -> BatchNorm); only the first one strides."""

    def __init__(self, channels: int, kernel_size: int, stride: int, padding: int) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, channels, kernel_size, stride, padding, groups=channels, bias=False),
            nn.Conv2d(channels, channels, kernel_size=1, padding=0, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, kernel_size, 1, padding, groups=channels, bias=False),
            nn.Conv2d(channels, channels, kernel_size=1, padding=0, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, inputs: Tensor) -> Tensor:
        output: Tensor = self.op(inputs)
        return output


class FactorizedReduce(nn.Module):
    """Halves the resolution: ReLU, two 1×1 stride-2 convs on the input and on it shifted by one pixel,
    concatenated, then BatchNorm. `out_channels` must be even."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.conv_1 = nn.Conv2d(in_channels, out_channels // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(in_channels, out_channels // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, inputs: Tensor) -> Tensor:
        activated = self.relu(inputs)
        output: Tensor = self.bn(torch.cat([self.conv_1(activated), self.conv_2(activated[:, :, 1:, 1:])], dim=1))
        return output


def make_edge_op(op: str, channels: int, stride: int) -> nn.Module:
    """The module of one cell edge (DARTS' `OPS` table with affine BatchNorm, as `NetworkCIFAR` builds them)."""
    if op == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if op == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels)
    if op == "sep_conv_3x3":
        return SepConv(channels, 3, stride, 1)
    if op == "sep_conv_5x5":
        return SepConv(channels, 5, stride, 2)
    if op == "dil_conv_3x3":
        return DilConv(channels, 3, stride, 2, 2)
    if op == "dil_conv_5x5":
        return DilConv(channels, 5, stride, 4, 2)
    raise ValueError(f"unknown DARTS operation {op!r}")


class DartsCell(nn.Module):
    """One cell: both inputs preprocessed to C channels (the earlier one also halved in resolution when the
    previous cell reduced), each node the sum of its two edges, the output the concatenation of nodes 2..5.
    In a reduction cell the edges leaving the cell inputs have stride 2."""

    def __init__(
        self,
        edges: CellEdges,
        channels_prev_prev: int,
        channels_prev: int,
        channels: int,
        reduction: bool,
        reduction_prev: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.edges = edges
        self.preprocess0: nn.Module = (
            FactorizedReduce(channels_prev_prev, channels)
            if reduction_prev
            else ReLUConvBN(channels_prev_prev, channels, 1, 1, 0)
        )
        self.preprocess1 = ReLUConvBN(channels_prev, channels, 1, 1, 0)
        # `_ops` is the reference's name, so DARTS state dicts load as they are.
        self._ops = nn.ModuleList(
            make_edge_op(op, channels, 2 if reduction and source < 2 else 1) for op, source in edges
        )
        self.multiplier = len(CONCAT)

    def forward(self, input_prev_prev: Tensor, input_prev: Tensor) -> Tensor:
        states = [self.preprocess0(input_prev_prev), self.preprocess1(input_prev)]
        for node in range(len(self.edges) // 2):
            (_, first), (_, second) = self.edges[2 * node], self.edges[2 * node + 1]
            states.append(self._ops[2 * node](states[first]) + self._ops[2 * node + 1](states[second]))
        return torch.cat([states[node] for node in CONCAT], dim=1)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction}, edges={list(self.edges)}"


class DartsNetwork(nn.Module):
    """DARTS' `NetworkCIFAR` without the auxiliary head: stem, `layers` cells, global pooling, classifier."""

    def __init__(self, genotype: Genotype, num_classes: int, channels: int, layers: int) -> None:
        super().__init__()
        self.arch = genotype
        stem_channels = STEM_MULTIPLIER * channels
        self.stem = nn.Sequential(
            nn.Conv2d(3, stem_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(stem_channels),
        )
        self.cells = nn.ModuleList(_cells(genotype, stem_channels, channels, layers))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(len(CONCAT) * _cell_channels(channels, layers, layers - 1), num_classes)

    def forward(self, inputs: Tensor) -> Tensor:
        state_prev_prev = state_prev = self.stem(inputs)
        for cell in self.cells:
            state_prev_prev, state_prev = state_prev, cell(state_prev_prev, state_prev)
        logits: Tensor = self.classifier(self.global_pooling(state_prev).flatten(1))
        return logits


def reduction_layers(layers: int) -> frozenset[int]:
    """The indices of the reduction cells: layers//3 and 2·layers//3, as in `NetworkCIFAR`."""
    return frozenset((layers // 3, 2 * layers // 3))


def _cell_channels(channels: int, layers: int, index: int) -> int:
    """C of cell `index`: doubled at every reduction cell up to and including it."""
    doublings = sum(1 for reduction in reduction_layers(layers) if reduction <= index)
    return channels << doublings


def _cells(genotype: Genotype, stem_channels: int, channels: int, layers: int) -> Iterator[DartsCell]:
    reductions = reduction_layers(layers)
    channels_prev_prev = channels_prev = stem_channels
    reduction_prev = False
    for index in range(layers):
        reduction = index in reductions
        cell_channels = _cell_channels(channels, layers, index)
        cell = DartsCell(
            genotype.reduce if reduction else genotype.normal,
            channels_prev_prev,
            channels_prev,
            cell_channels,
            reduction,
            reduction_prev,
        )
        yield cell
        channels_prev_prev, channels_prev = channels_prev, cell.multiplier * cell_channels
        reduction_prev = reduction
