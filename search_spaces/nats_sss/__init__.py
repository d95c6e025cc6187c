"""NATS-Bench size search space (Dong, Liu, Musial & Gabrys, "NATS-Bench: Benchmarking NAS Algorithms for
Architecture Topology and Size", IEEE TPAMI 2021): the channel widths of a fixed network, 8^5 = 32,768
configurations; `NATSSizeSpace` is the space behind the `SearchSpace` interface."""

from search_spaces.nats_sss.channels import CHANNEL_CHOICES, FIXED_CELL, LAYERS, all_archs, parse
from search_spaces.nats_sss.network import NATSSizeNetwork, build_model
from search_spaces.nats_sss.space import NATSSizeSpace

__all__ = [
    "CHANNEL_CHOICES",
    "FIXED_CELL",
    "LAYERS",
    "NATSSizeNetwork",
    "NATSSizeSpace",
    "all_archs",
    "build_model",
    "parse",
]
