"""The NATS-Bench size space as a `SearchSpace` (Dong et al., "NATS-Bench: Benchmarking NAS Algorithms for
Architecture Topology and Size", TPAMI 2021)."""

import random
from collections.abc import Mapping, Sequence
from typing import ClassVar

from search_spaces.base import HyperParameter, SearchSpace, register_space
from search_spaces.nats_sss.channels import CHANNEL_CHOICES, EXAMPLE_ARCH, LAYERS, all_archs, arch_string, parse
from search_spaces.nats_sss.network import NATSSizeNetwork, build_model


@register_space
class NATSSizeSpace(SearchSpace):
    """Configurations as `C1:C2:C3:C4:C5`, the network NATS-Bench trains for each.

    Every configuration is its own isomorphism class: the topology is fixed and the five widths are the
    output widths of five layers in a fixed order, so two different configurations differ in the shape of
    some layer's weights and compute different families of functions; there is no relabelling under which
    two of them are one network. The canonical key is therefore the normalised string itself.
    """

    name = "nats_sss"
    title = "NATS-Bench size search space (Dong et al., TPAMI 2021)"
    size = len(CHANNEL_CHOICES) ** LAYERS
    example = EXAMPLE_ARCH
    hyper_parameters: ClassVar[Mapping[str, HyperParameter]] = {}  # the benchmark fixes the cell and the depth
    singleton_classes = True

    def parse(self, arch: object) -> str:
        return arch_string(parse(arch))

    def canonical_key(self, arch: str) -> str:
        return self.parse(arch)

    def build_model(self, arch: str, num_classes: int, **hyper_parameters: int) -> NATSSizeNetwork:
        self.model_options(hyper_parameters)  # refuses any option: there are none
        return build_model(arch, num_classes)

    def sample(self, n: int, seed: int) -> list[str]:
        """`random.Random(seed).sample` of the space in `all_archs` order, as NB201's draw."""
        return random.Random(seed).sample(all_archs(), n)

    def enumerate(self) -> Sequence[str]:
        return all_archs()

    def largest_architecture(self) -> str:
        return arch_string((max(CHANNEL_CHOICES),) * LAYERS)
