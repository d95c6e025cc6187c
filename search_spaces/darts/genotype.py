"""DARTS genotypes: reading them (JSON or the DARTS `Genotype(...)` text), isomorphism keys, sampling, and
NASLib's compact encoding.

Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search", ICLR 2019 (quark0/darts,
cnn/genotypes.py), as the space of NAS-Bench-301 (Siems, Zimmer, Zela, Lukasik, Keuper & Hutter,
"NAS-Bench-301 and the Case for Surrogate Benchmarks for NAS", 2020; Zela et al., "Surrogate NAS
Benchmarks: Going Beyond the Limited Search Spaces of Tabular NAS Benchmarks", ICLR 2022). A genotype has a
normal and a reduction cell; each cell has intermediate nodes 2..5, node k takes two different inputs among
nodes 0..k-1 (0 and 1 are the outputs of the two previous cells) through one of the 7 operations in `OPS`,
and the cell outputs the concatenation of nodes 2..5. A cell is written as 8 (operation, input) pairs, two
per node in node order.
"""

from __future__ import annotations

import ast
import json
import random
from dataclasses import dataclass
from functools import lru_cache
from itertools import permutations

OPS = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
"""The operations of a final genotype, in NASLib's compact-encoding order (DARTS' PRIMITIVES without 'none')."""
CELL_TYPES = ("normal", "reduce")
FIRST_NODE = 2
NODES = (2, 3, 4, 5)
PAIRS = 2 * len(NODES)
CONCAT = list(NODES)
MAX_TEXT = 10_000

Edge = tuple[str, int]
CellEdges = tuple[Edge, ...]

_EXPECTED_OPS = ", ".join(OPS)
_ECHO_LIMIT = 60
_TEXT_EXAMPLE = (
    "Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), reduce=[...], reduce_concat=range(2, 6))"
)


@dataclass(frozen=True)
class Genotype:
    """A validated genotype: each cell's 8 (operation, input) pairs in node order."""

    normal: CellEdges
    reduce: CellEdges

    @property
    def text(self) -> str:
        """Compact JSON with sorted keys: the normalised form that `parse` reads back unchanged."""
        body = {
            "normal": [list(edge) for edge in self.normal],
            "normal_concat": CONCAT,
            "reduce": [list(edge) for edge in self.reduce],
            "reduce_concat": CONCAT,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    def cell(self, cell_type: str) -> CellEdges:
        return self.normal if cell_type == "normal" else self.reduce


def parse(arch: object) -> Genotype:
    """The genotype of `arch`: JSON text, an already-parsed mapping, or the DARTS `Genotype(...)` text.

    Raises ValueError whose message starts with the offending position (`normal[3][1]`, `reduce_concat`, ...):
    it is shown to API users as is.
    """
    if isinstance(arch, str):
        arch = _from_text(arch)
    if not isinstance(arch, dict):
        raise ValueError(
            f"arch: expected a genotype object with 'normal' and 'reduce' (or its JSON or DARTS text), "
            f"got {type(arch).__name__}"
        )
    known = ("normal", "normal_concat", "reduce", "reduce_concat")
    unexpected = sorted(str(key) for key in arch if key not in known)
    if unexpected:
        raise ValueError(f"{unexpected[0]}: unexpected key; a DARTS genotype has {', '.join(known)}")
    for cell_type in CELL_TYPES:
        if cell_type not in arch:
            raise ValueError(f"{cell_type}: missing; a DARTS genotype needs both 'normal' and 'reduce' cells")
        _check_concat(f"{cell_type}_concat", arch.get(f"{cell_type}_concat", CONCAT))
    return Genotype(normal=_checked_cell("normal", arch["normal"]), reduce=_checked_cell("reduce", arch["reduce"]))


@lru_cache(maxsize=4096)
def parse_text(text: str) -> Genotype:
    """`parse` for the normalised texts the service passes around (cached: a batch rebuilds each often)."""
    return parse(text)


def canonical(genotype: Genotype) -> Genotype:
    """The representative of the genotype's isomorphism class.

    Two genotypes are one network when they differ only in (a) the order of a node's two inputs, or (b) the
    numbering of the intermediate nodes, as long as every node still comes after its inputs: a cell's output
    concatenates all of nodes 2..5 and every consumer of a cell output (the next cells' ReLU-1×1 conv
    preprocessing, global pooling and the classifier) is equivariant to a permutation of its channels, so
    renumbering only permutes weights. The representative sorts each node's pair by (input, operation) and
    takes, per cell, the lexicographically smallest of the valid renumberings.
    """
    return Genotype(normal=_canonical_cell(genotype.normal), reduce=_canonical_cell(genotype.reduce))


def naslib_compact(genotype: Genotype) -> str:
    """NASLib's compact encoding (naslib/search_spaces/nasbench301/conversions.py,
    `convert_genotype_to_compact`): per cell, the 8 (input, index in `OPS`) pairs in genotype order."""
    cells = tuple(tuple((source, OPS.index(op)) for op, source in genotype.cell(cell_type)) for cell_type in CELL_TYPES)
    return str(cells)


def sample(n: int, seed: int) -> list[Genotype]:
    """`n` genotypes from distinct isomorphism classes, the same for the same seed.

    Each draw is NAS-Bench-301's configuration space sampled uniformly: for every node of each cell, two
    different inputs among the earlier nodes and an operation for each, all uniform; a draw whose class was
    drawn before is skipped. Pairs are written with the smaller input first, as NAS-Bench-301 lists them.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    rng = random.Random(seed)
    genotypes: list[Genotype] = []
    seen: set[Genotype] = set()
    while len(genotypes) < n:
        genotype = Genotype(normal=_random_cell(rng), reduce=_random_cell(rng))
        key = canonical(genotype)
        if key not in seen:
            seen.add(key)
            genotypes.append(genotype)
    return genotypes


def _random_cell(rng: random.Random) -> CellEdges:
    edges: list[Edge] = []
    for node in NODES:
        for source in sorted(rng.sample(range(node), 2)):
            edges.append((rng.choice(OPS), source))
    return tuple(edges)


def _canonical_cell(edges: CellEdges) -> CellEdges:
    inputs = {node: edges[2 * index : 2 * index + 2] for index, node in enumerate(NODES)}
    candidates = []
    for order in permutations(NODES):
        renumber = {0: 0, 1: 1, **dict(zip(order, NODES, strict=True))}
        if all(renumber[source] < renumber[node] for node in NODES for _, source in inputs[node]):
            by_new_node = {renumber[node]: inputs[node] for node in NODES}
            candidates.append(
                tuple(
                    edge
                    for node in NODES
                    for edge in sorted(((op, renumber[source]) for op, source in by_new_node[node]), key=_pair_order)
                )
            )
    return min(candidates, key=lambda cell: [_pair_order(edge) for edge in cell])


def _pair_order(edge: Edge) -> tuple[int, str]:
    op, source = edge
    return source, op


def _from_text(text: str) -> object:
    if len(text) > MAX_TEXT:
        raise ValueError(f"arch: {len(text)} characters; a DARTS genotype is at most {MAX_TEXT}")
    stripped = text.strip()
    if stripped.startswith("Genotype"):
        return _from_darts_text(stripped)
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError) as error:
        problem = f"{error.msg} at column {error.colno}" if isinstance(error, json.JSONDecodeError) else "too deep"
        raise ValueError(
            f"arch: neither JSON nor DARTS text ({problem}); expected "
            '{"normal": [["sep_conv_3x3", 0], ...], "reduce": [...]} or ' + _TEXT_EXAMPLE
        ) from None


def _from_darts_text(text: str) -> dict[str, object]:
    """Read `Genotype(normal=[...], normal_concat=range(2, 6), ...)` without evaluating it: the call's keyword
    values must be literals (read by `ast.literal_eval`), or `range(2, 6)` for a concat."""
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError as error:
        raise ValueError(f"arch: not valid DARTS genotype text ({error.msg} at column {error.offset})") from None
    except (ValueError, RecursionError, MemoryError):
        raise ValueError("arch: not valid DARTS genotype text (too large or too deeply nested)") from None
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "Genotype"):
        raise ValueError(f"arch: expected DARTS genotype text like {_TEXT_EXAMPLE}")
    if tree.args or any(keyword.arg is None for keyword in tree.keywords):
        raise ValueError("arch: write the Genotype's fields by name (normal=..., normal_concat=..., ...)")
    fields: dict[str, object] = {}
    for keyword in tree.keywords:
        assert keyword.arg is not None  # checked above; narrows the type
        if keyword.arg in fields:
            raise ValueError(f"{keyword.arg}: given twice")
        fields[keyword.arg] = _literal(keyword.arg, keyword.value)
    return fields


def _literal(field: str, node: ast.expr) -> object:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        bounds = [argument.value if isinstance(argument, ast.Constant) else None for argument in node.args]
        if node.keywords or bounds != [FIRST_NODE, NODES[-1] + 1]:
            raise ValueError(f"{field}: expected range(2, 6), the nodes 2 to 5, got {_shorten(ast.unparse(node))}")
        return list(CONCAT)
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        raise ValueError(
            f"{field}: expected a literal: a list of (operation, input) pairs, or range(2, 6) for a concat"
        ) from None


def _check_concat(field: str, value: object) -> None:
    if not isinstance(value, (list, tuple, range)) or len(value) != len(CONCAT) or list(value) != CONCAT:
        raise ValueError(
            f"{field}: expected [2, 3, 4, 5] (range(2, 6)): the cell outputs nodes 2 to 5, got {_shorten(value)}"
        )


def _checked_cell(field: str, edges: object) -> CellEdges:
    if not isinstance(edges, (list, tuple)):
        raise ValueError(f"{field}: expected a list of {PAIRS} (operation, input) pairs, got {type(edges).__name__}")
    if len(edges) != PAIRS:
        raise ValueError(
            f"{field}: {len(edges)} (operation, input) pairs; a cell has {PAIRS}, two for each node 2..5 in order"
        )
    checked: list[Edge] = []
    for index, pair in enumerate(edges):
        node = FIRST_NODE + index // 2
        where = f"{field}[{index}]"
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"{where}: expected an [operation, input] pair, got {_shorten(pair)}")
        op, source = pair
        if op == "none":
            raise ValueError(
                f"{where}[0]: 'none' is not an operation of a final DARTS genotype; expected one of {_EXPECTED_OPS}"
            )
        if op not in OPS:
            raise ValueError(f"{where}[0]: unknown operation {_shorten(op)}, expected one of {_EXPECTED_OPS}")
        if isinstance(source, bool) or not isinstance(source, int) or not 0 <= source < node:
            raise ValueError(
                f"{where}[1]: input {_shorten(source)} is not an earlier node (0..{node - 1}) of node {node}"
            )
        if index % 2 and checked[-1][1] == source:
            raise ValueError(
                f"{where}[1]: node {node} already takes input {source} ({field}[{index - 1}]); "
                "a node's two inputs are different nodes"
            )
        checked.append((op, source))
    return tuple(checked)


def _shorten(value: object) -> str:
    """`repr(value)`, cut short so a huge input cannot flood an error message."""
    text = repr(value)
    return text if len(text) <= _ECHO_LIMIT else text[: _ECHO_LIMIT - 3] + "..."
