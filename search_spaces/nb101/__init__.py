"""NAS-Bench-101 search space (Ying, Klein, Real, Christiansen, Murphy & Hutter, "NAS-Bench-101: Towards
Reproducible Neural Architecture Search", ICML 2019): cells as adjacency matrix plus operations, the
benchmark's pruning and graph hash, seeded sampling, and the network the benchmark trains. Importing the
package registers the space as "nb101"."""

from search_spaces.nb101.cell import MAX_EDGES, MAX_NODES, OPS, UNIQUE_CELLS, Cell, graph_hash, parse, sample
from search_spaces.nb101.network import NB101Cell, NB101Network, vertex_channels
from search_spaces.nb101.space import NB101Space

__all__ = [
    "MAX_EDGES",
    "MAX_NODES",
    "OPS",
    "UNIQUE_CELLS",
    "Cell",
    "NB101Cell",
    "NB101Network",
    "NB101Space",
    "graph_hash",
    "parse",
    "sample",
    "vertex_channels",
]
