"""NAS-Bench-201 topology search space (Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible
Neural Architecture Search", ICLR 2020): cell parsing and enumeration, isomorphism keys, and the network
the benchmark trains for each cell; `NB201Space` is all of it behind the `SearchSpace` interface."""

from search_spaces.nb201.cell import EDGES, OPS, ArchLike, Cell, all_archs, canonical_key, live_edges, parse
from search_spaces.nb201.network import NB201Network, build_model
from search_spaces.nb201.space import NB201Space

__all__ = [
    "EDGES",
    "OPS",
    "ArchLike",
    "Cell",
    "NB201Network",
    "NB201Space",
    "all_archs",
    "build_model",
    "canonical_key",
    "live_edges",
    "parse",
]
