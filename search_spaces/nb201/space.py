"""NAS-Bench-201 as a `SearchSpace` (Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural
Architecture Search", ICLR 2020): the module-level functions of this package, behind the interface."""

import random
from collections.abc import Mapping, Sequence
from typing import ClassVar

from search_spaces.base import HyperParameter, NetworkSize, SearchSpace, register_space
from search_spaces.nb201.cell import EDGES, EXAMPLE_ARCH, OPS, Cell, all_archs, canonical_key, parse
from search_spaces.nb201.naslib import arch_to_naslib_key
from search_spaces.nb201.network import (
    WIDEST_CELL,
    NB201Network,
    build_model,
    parameter_count,
    saved_activations,
)


@register_space
class NB201Space(SearchSpace):
    """Cells as the benchmark's string (or the six op names in edge order), stored as the string; the
    benchmark's isomorphism classes; the network the benchmark trains (C=16, N=5 by default)."""

    name = "nb201"
    title = "NAS-Bench-201 (Dong & Yang, ICLR 2020)"
    size = len(OPS) ** len(EDGES)
    example = EXAMPLE_ARCH
    hyper_parameters: ClassVar[Mapping[str, HyperParameter]] = {
        "channels": HyperParameter(16, 1, 128, "model width C of the first stage (NB201 trains C=16)"),
        "cells_per_stage": HyperParameter(5, 1, 10, "cells per stage N (NB201 trains N=5)"),
    }

    def parse(self, arch: object) -> str:
        return parse(arch).arch_str

    def canonical_key(self, arch: str) -> str:
        return canonical_key(arch)

    def build_model(self, arch: str, num_classes: int = 10, **hyper_parameters: int) -> NB201Network:
        return build_model(arch, num_classes, **self.model_options(hyper_parameters))

    def sample(self, n: int, seed: int) -> list[str]:
        """The draw every part of the service shares: `random.Random(seed).sample` of the space in
        `all_archs` order, so the same (n, seed) names the same cells as it always has."""
        return random.Random(seed).sample(all_archs(), n)

    def enumerate(self) -> Sequence[str]:
        return all_archs()

    def naslib_encoding(self, arch: str) -> str:
        return arch_to_naslib_key(arch)

    def largest_architecture(self) -> str:
        return Cell(WIDEST_CELL).arch_str

    def network_size(self, num_classes: int, image_size: int, **hyper_parameters: int) -> NetworkSize:
        """Exact formulas for the widest cell (tests/app/services/test_memory_bounds.py checks them against
        built networks and a measured forward), so no network is built."""
        options = self.model_options(hyper_parameters)
        return NetworkSize(
            parameter_count(WIDEST_CELL, num_classes, options["channels"], options["cells_per_stage"]),
            saved_activations(1, image_size, options["channels"], options["cells_per_stage"]),
        )
