"""NAS-Bench-101 as a `SearchSpace` (Ying et al., "NAS-Bench-101: Towards Reproducible Neural Architecture
Search", ICML 2019)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from torch import nn

from search_spaces.base import HyperParameter, NetworkSize, SearchSpace, register_space
from search_spaces.nb101.cell import EXAMPLE_ARCH, graph_hash, parse, parse_text, sample
from search_spaces.nb101.network import NB101Network

NASLIB_OPS = ("input", "output", "maxpool3x3", "conv1x1-bn-relu", "conv3x3-bn-relu")
"""NASLib's op indices for NAS-Bench-101 (naslib/search_spaces/nasbench101/conversions.py, `all_ops`)."""

_CONVS = '"conv3x3-bn-relu","conv3x3-bn-relu","conv3x3-bn-relu","conv3x3-bn-relu"'
MOST_PARAMETERS = (
    '{"matrix":[[0,1,1,1,1,0,0],[0,0,1,0,0,0,0],[0,0,0,1,0,0,0],[0,0,0,0,1,0,0],[0,0,0,0,0,1,0],[0,0,0,0,0,0,1],'
    f'[0,0,0,0,0,0,0]],"ops":["input",{_CONVS},"conv3x3-bn-relu","output"]}}'
)
"""A chain of five 3×3 convolutions, three of them also fed the projected input: 49,979,274 parameters at the
benchmark's size, the space's largest (tied with a few other 9-edge chains; see `network_size`)."""
MOST_ACTIVATIONS = (
    '{"matrix":[[0,1,1,1,1,1],[0,0,1,0,0,0],[0,0,0,1,0,0],[0,0,0,0,1,0],[0,0,0,0,0,1],[0,0,0,0,0,0]],'
    f'"ops":["input",{_CONVS},"output"]}}'
)
"""A chain of four 3×3 convolutions, every node also fed the projected input: five projections at full width
save the most for backward (about 4% more than `MOST_PARAMETERS` at the benchmark's size)."""


@register_space
class NB101Space(SearchSpace):
    """Cells as `{"matrix": [[...]], "ops": [...]}` JSON, pruned and stored as compact JSON; isomorphic cells
    share the benchmark's graph hash; the network is the benchmark's (128-channel stem, 3 stacks × 3 cells)."""

    name = "nb101"
    title = "NAS-Bench-101 (Ying et al., ICML 2019)"
    size = None  # 423,624 classes (cell.UNIQUE_CELLS): sampled, not enumerated
    example = EXAMPLE_ARCH
    hyper_parameters: ClassVar[Mapping[str, HyperParameter]] = {
        "stem_channels": HyperParameter(128, 8, 512, "channels of the stem and of the first stack's cells"),
        "stacks": HyperParameter(3, 1, 4, "stacks of cells; each later one halves the resolution, doubles channels"),
        "cells_per_stack": HyperParameter(3, 1, 10, "cells in each stack"),
    }

    def parse(self, arch: object) -> str:
        return parse(arch).text

    def canonical_key(self, arch: str) -> str:
        return graph_hash(parse_text(arch))

    def build_model(self, arch: str, num_classes: int, **hyper_parameters: int) -> nn.Module:
        options = self.model_options(hyper_parameters)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        return NB101Network(parse_text(arch), num_classes, **options)

    def sample(self, n: int, seed: int) -> list[str]:
        return [cell.text for cell in sample(n, seed)]

    def largest_architecture(self) -> str:
        return MOST_PARAMETERS

    def network_size(self, num_classes: int, image_size: int, **hyper_parameters: int) -> NetworkSize:
        """The most parameters and the most saved activations of any cell, which no single cell has both of:
        `MOST_PARAMETERS`'s parameters and the larger saved count of it and `MOST_ACTIVATIONS`, each counted as
        `SearchSpace.network_size` counts them.

        The two cells were found by counting every one of the 6,472 pruned adjacency matrices with 3×3
        convolutions at every node (the op with the most parameters, and no op saves more for backward),
        and checked against every labelling of the winner and against sampled cells at the benchmark's size.
        """
        counts = [
            SearchSpace.network_size(_OneCellSpace(arch), num_classes, image_size, **hyper_parameters)
            for arch in (MOST_PARAMETERS, MOST_ACTIVATIONS)
        ]
        return NetworkSize(counts[0].parameters, max(count.saved_floats_per_image for count in counts))

    def naslib_encoding(self, arch: str) -> str:
        """NASLib's key of a cell, str() of the flattened matrix followed by the op indices in `NASLIB_OPS`
        (`convert_spec_to_tuple`), e.g. "(0, 1, 0, 0, 0, 1)" for input -> output.

        NASLib's NAS-Bench-Suite-Zero files key each class by the benchmark's stored cell, so a lookup there
        matches when the posted cell is written as the benchmark stores it, not as any isomorphic relabelling.
        """
        cell = parse_text(arch)
        entries = [entry for row in cell.matrix for entry in row]
        return str(tuple(entries + [NASLIB_OPS.index(op) for op in cell.ops]))


class _OneCellSpace(NB101Space):
    """NAS-Bench-101 whose largest architecture is the given cell: lets `SearchSpace.network_size` count any
    cell. Not registered."""

    def __init__(self, arch: str) -> None:
        self.arch = arch

    def largest_architecture(self) -> str:
        return self.arch
