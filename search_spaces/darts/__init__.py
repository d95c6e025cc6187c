"""DARTS / NAS-Bench-301 search space (Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search",
ICLR 2019; Siems et al., "NAS-Bench-301 and the Case for Surrogate Benchmarks for NAS", 2020 / Zela et al.,
ICLR 2022): genotypes as JSON or DARTS text, isomorphism keys, seeded sampling, NASLib's compact encoding,
and the network NAS-Bench-301 trains. Importing the package registers the space as "darts"."""

from search_spaces.darts.genotype import OPS, Genotype, canonical, naslib_compact, parse, sample
from search_spaces.darts.network import DartsCell, DartsNetwork, reduction_layers
from search_spaces.darts.space import DARTS_V2, DartsSpace

__all__ = [
    "DARTS_V2",
    "OPS",
    "DartsCell",
    "DartsNetwork",
    "DartsSpace",
    "Genotype",
    "canonical",
    "naslib_compact",
    "parse",
    "reduction_layers",
    "sample",
]
