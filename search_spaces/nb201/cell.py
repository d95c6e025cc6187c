"""NAS-Bench-201 cells: parsing, enumeration, live edges and isomorphism keys.

Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture Search", ICLR 2020.
A cell is a DAG on 4 nodes; every edge (to_node, from_node) carries one of 5 operations, so a cell is
6 operation names in `EDGES` order and the space holds 5**6 = 15,625 cells.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import cast

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
INPUT_NODE = 0
OUTPUT_NODE = 3

EXAMPLE_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
_EXPECTED_OPS = ", ".join(OPS)
_EDGE_ORDER = ", ".join(f"{target}<-{source}" for target, source in EDGES)
_ECHO_LIMIT = 100
ZERO_TERM = "#"
_INPUT_VALUE = "0"


@dataclass(frozen=True)
class Cell:
    """One NAS-Bench-201 cell: the operation on each edge, in `EDGES` order. Validated on creation."""

    ops: tuple[str, ...]  # a list is accepted and stored as a tuple

    def __post_init__(self) -> None:
        _check_ops(self.ops)
        object.__setattr__(self, "ops", tuple(self.ops))

    @property
    def arch_str(self) -> str:
        """The benchmark's spelling, e.g. `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`."""
        groups = []
        for node in range(1, OUTPUT_NODE + 1):
            tokens = [f"{op}~{source}" for (target, source), op in zip(EDGES, self.ops, strict=False) if target == node]
            groups.append("|" + "|".join(tokens) + "|")
        return "+".join(groups)

    def __str__(self) -> str:
        return self.arch_str


ArchLike = str | Sequence[str] | Cell


def parse(arch: object) -> Cell:
    """A `Cell` from the benchmark string, a list/tuple of 6 operation names in `EDGES` order, or a `Cell`.

    Raises ValueError naming the offending token, where it is, and what was expected: the message is
    shown to API users as is.
    """
    if isinstance(arch, Cell):
        return arch
    if isinstance(arch, str):
        return Cell(_ops_from_string(arch))
    if isinstance(arch, (list, tuple)):
        # A list is accepted as is (validation messages show it as given); __post_init__ stores a tuple.
        return Cell(cast("tuple[str, ...]", arch))
    raise ValueError(
        f"cannot read a NAS-Bench-201 cell from {type(arch).__name__} {_shorten(arch)}: expected a cell string "
        f"like {EXAMPLE_ARCH!r}, a list of 6 operation names (edges {_EDGE_ORDER}), or a Cell"
    )


def all_archs() -> list[str]:
    """Every cell string, in `itertools.product(OPS, repeat=6)` order (first edge varies slowest)."""
    return list(_all_arch_strings())


def canonical_key(arch: ArchLike) -> str:
    """The benchmark's isomorphism class of a cell: cells with equal keys compute the same network.

    It follows NAS-Bench-201's own rule (`CellStructure.to_unique_str(consider_zero=True)`), so the space
    splits into exactly the benchmark's 6,466 classes: each node's value is the sorted sum of its incoming
    terms; `skip_connect` passes its input's value through, other operations wrap it as `(value)@op`, and a
    `none` edge, or any edge leaving a node whose value is a single zero, adds the zero term `#`. Edges
    that cannot reach node 3 never enter the output's value. Zero terms stay in sums, so a few cells that
    compute the same function still get different keys; never the other way round.
    """
    return _canonical_key(parse(arch).ops)


def live_edges(arch: ArchLike) -> tuple[int, ...]:
    """Indices into `EDGES` of the edges that can change the cell's output.

    An edge is live when its op is not `none`, its input node is not always zero (some chain of non-`none`
    edges reaches it from node 0), and its output node reaches node 3 through non-`none` edges.
    """
    ops = parse(arch).ops
    fed = {INPUT_NODE}
    for (target, source), op in zip(EDGES, ops, strict=False):  # EDGES is sorted by target: sources are settled first
        if op != "none" and source in fed:
            fed.add(target)
    reaches_output = {OUTPUT_NODE}
    for (target, source), op in reversed(list(zip(EDGES, ops, strict=False))):
        if op != "none" and target in reaches_output:
            reaches_output.add(source)
    return tuple(
        index
        for index, ((target, source), op) in enumerate(zip(EDGES, ops, strict=False))
        if op != "none" and source in fed and target in reaches_output
    )


@lru_cache(maxsize=1)
def _all_arch_strings() -> tuple[str, ...]:
    return tuple(Cell(ops).arch_str for ops in itertools.product(OPS, repeat=len(EDGES)))


@cache
def _canonical_key(ops: tuple[str, ...]) -> str:
    values = [_INPUT_VALUE]
    for node in range(1, OUTPUT_NODE + 1):
        terms = [
            _edge_term(op, values[source]) for (target, source), op in zip(EDGES, ops, strict=False) if target == node
        ]
        values.append("+".join(sorted(terms)))
    return values[OUTPUT_NODE]


def _edge_term(op: str, source_value: str) -> str:
    if op == "none" or source_value == ZERO_TERM:
        return ZERO_TERM
    if op == "skip_connect":
        return source_value
    return f"({source_value})@{op}"


def _check_ops(ops: object) -> None:
    """Validate the list form: 6 operation names in `EDGES` order."""
    prefix = f"invalid NAS-Bench-201 cell {_shorten(ops)}"
    if not isinstance(ops, (list, tuple)):
        raise ValueError(f"{prefix}: expected a list of {len(EDGES)} operation names, got {type(ops).__name__}")
    if len(ops) != len(EDGES):
        raise ValueError(
            f"{prefix}: {_length_problem(ops)}; expected {len(EDGES)} operations, one per edge in the order "
            f"{_EDGE_ORDER}"
        )
    for index, op in enumerate(ops):
        if not isinstance(op, str) or op not in OPS:
            target, source = EDGES[index]
            raise ValueError(
                f"{prefix}: item {index} ({_shorten(op)}, edge {target}<-{source}) is not a NAS-Bench-201 "
                f"operation; expected one of {_EXPECTED_OPS}"
            )


def _length_problem(ops: Sequence[object]) -> str:
    if len(ops) > len(EDGES):
        return f"item {len(EDGES)} ({_shorten(ops[len(EDGES)])}) is one too many ({len(ops)} items)"
    target, source = EDGES[len(ops)]
    return f"item {len(ops)} (edge {target}<-{source}) is missing ({len(ops)} items)"


def _ops_from_string(text: str) -> tuple[str, ...]:
    """Read `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`, reporting the first malformed group before a wrong
    group count, so garbage is named rather than merely counted. Surrounding whitespace is ignored."""
    start = len(text) - len(text.lstrip())
    body = text.strip()
    groups = body.split("+")
    ops: list[str] = []
    offset = start
    for node, group in enumerate(groups[:OUTPUT_NODE], start=1):
        ops.extend(_ops_from_group(text, node, group, offset))
        offset += len(group) + 1
    expected = f"expected {OUTPUT_NODE} node groups joined by '+', like {EXAMPLE_ARCH!r}"
    if len(groups) > OUTPUT_NODE:
        extra = _shorten(groups[OUTPUT_NODE])
        raise _string_error(text, f"unexpected node group {OUTPUT_NODE + 1} {extra} at column {offset + 1}; {expected}")
    if len(groups) < OUTPUT_NODE:
        raise _string_error(text, f"node group {len(groups) + 1} is missing at column {offset}; {expected}")
    return tuple(ops)


def _ops_from_group(text: str, node: int, group: str, offset: int) -> Iterator[str]:
    template = "|" + "|".join(f"op~{source}" for source in range(node)) + "|"
    where = f"node group {node} {_shorten(group)} at column {offset + 1}"
    if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
        raise _string_error(text, f"{where} must be wrapped in '|'; expected {template!r}")
    tokens = group[1:-1].split("|")
    if len(tokens) != node:
        raise _string_error(text, f"{where} has {len(tokens)} input(s); expected {node}: {template!r}")
    position = offset + 1
    for source, token in enumerate(tokens):
        yield _op_from_token(text, node, source, token, position)
        position += len(token) + 1


def _op_from_token(text: str, node: int, source: int, token: str, position: int) -> str:
    where = f"{_shorten(token)} at column {position + 1} (node {node}, input {source})"
    op, separator, written_source = token.partition("~")
    if not separator:
        raise _string_error(text, f"token {where} is malformed; expected 'operation~{source}'")
    if op not in OPS:
        raise _string_error(text, f"unknown operation {op!r} in token {where}; expected one of {_EXPECTED_OPS}")
    if written_source != str(source):
        raise _string_error(
            text,
            f"token {where} reads from node {written_source!r}; expected '~{source}' "
            f"(node {node} lists its inputs in order ~0..~{node - 1})",
        )
    return op


def _string_error(text: str, problem: str) -> ValueError:
    return ValueError(f"invalid NAS-Bench-201 cell string {_shorten(text)}: {problem}")


def _shorten(value: object) -> str:
    """`repr(value)`, cut short so a huge input cannot flood an error message."""
    text = repr(value)
    return text if len(text) <= _ECHO_LIMIT else text[: _ECHO_LIMIT - 3] + "..."
