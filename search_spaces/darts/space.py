"""DARTS / NAS-Bench-301 as a `SearchSpace` (Liu et al., "DARTS: Differentiable Architecture Search", ICLR
2019; Siems et al., "NAS-Bench-301 and the Case for Surrogate Benchmarks for NAS", 2020 / Zela et al., ICLR
2022)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from torch import nn

from search_spaces.base import HyperParameter, SearchSpace, register_space
from search_spaces.darts.genotype import Genotype, canonical, naslib_compact, parse, parse_text, sample
from search_spaces.darts.network import DartsNetwork

DARTS_V2 = Genotype(
    normal=(
        ("sep_conv_3x3", 0),
        ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 0),
        ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 1),
        ("skip_connect", 0),
        ("skip_connect", 0),
        ("dil_conv_3x3", 2),
    ),
    reduce=(
        ("max_pool_3x3", 0),
        ("max_pool_3x3", 1),
        ("skip_connect", 2),
        ("max_pool_3x3", 1),
        ("max_pool_3x3", 0),
        ("skip_connect", 2),
        ("skip_connect", 2),
        ("max_pool_3x3", 1),
    ),
)
"""The cell DARTS found (second-order search; quark0/darts cnn/genotypes.py `DARTS_V2`)."""

_WIDEST_CELL = tuple(("sep_conv_5x5", source) for _node in range(4) for source in (0, 1))
LARGEST = Genotype(normal=_WIDEST_CELL, reduce=_WIDEST_CELL)
"""Every edge a 5×5 separable convolution, the op with the most parameters and the most tensors saved for
backward, and every node reading the two cell inputs, so that in reduction cells every edge works at the
input's resolution before striding: the most parameters and saved activations of the space."""


@register_space
class DartsSpace(SearchSpace):
    """Genotypes as JSON or DARTS `Genotype(...)` text, stored as compact JSON; genotypes that differ only in
    the order of a node's inputs or the numbering of independent nodes are one class; the network is DARTS'
    `NetworkCIFAR` at NAS-Bench-301's size (32 channels, 8 cells)."""

    name = "darts"
    title = "DARTS / NAS-Bench-301 (Liu et al., ICLR 2019; Siems et al. 2020 / Zela et al., ICLR 2022)"
    size = None
    example = DARTS_V2.text
    hyper_parameters: ClassVar[Mapping[str, HyperParameter]] = {
        "channels": HyperParameter(32, 4, 128, "initial channels C (the stem has 3·C; doubled at each reduction)"),
        "layers": HyperParameter(8, 3, 30, "cells; those at layers//3 and 2·layers//3 are reduction cells"),
    }

    def parse(self, arch: object) -> str:
        return parse(arch).text

    def canonical_key(self, arch: str) -> str:
        return canonical(parse_text(arch)).text

    def build_model(self, arch: str, num_classes: int, **hyper_parameters: int) -> nn.Module:
        options = self.model_options(hyper_parameters)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        return DartsNetwork(parse_text(arch), num_classes, **options)

    def sample(self, n: int, seed: int) -> list[str]:
        return [genotype.text for genotype in sample(n, seed)]

    def largest_architecture(self) -> str:
        return LARGEST.text

    def naslib_encoding(self, arch: str) -> str:
        """NASLib's compact encoding, e.g. "(((0, 3), (1, 3), ...), ((0, 0), (1, 0), ...))" for DARTS-V2."""
        return naslib_compact(parse_text(arch))
