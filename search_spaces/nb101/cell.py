"""NAS-Bench-101 cells: reading them, pruning them as the benchmark does, hashing them, sampling them.

Ying, Klein, Real, Christiansen, Murphy & Hutter, "NAS-Bench-101: Towards Reproducible Neural Architecture
Search", ICML 2019. A cell is a DAG of at most 7 nodes and 9 edges given as an upper-triangular adjacency
matrix plus one operation per node: node 0 is "input", the last node "output", and each node in between
one of `OPS`. The rules follow google-research/nasbench: `ModelSpec._prune` (nasbench/lib/model_spec.py)
drops the nodes that do not lie on a path from input to output, the search-space limits are checked on
the pruned cell as `NASBench._check_spec` (nasbench/api.py) does, and `graph_hash` is the benchmark's
`graph_util.hash_module`, whose 423,624 classes are the benchmark's unique cells.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

INPUT = "input"
OUTPUT = "output"
OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
"""The interior operations, in the benchmark's `available_ops` order: their indices are the hash labels."""
MAX_NODES = 7
MAX_EDGES = 9
MAX_TEXT = 10_000
"""The longest JSON text read: a 7-node cell takes under 300 characters, however spaced."""
UNIQUE_CELLS = 423_624
"""Isomorphism classes of valid cells (nasbench/scripts/generate_graphs.py): the most `sample` can return."""
INPUT_LABEL = -1
OUTPUT_LABEL = -2

EXAMPLE_ARCH = (
    '{"matrix":[[0,1,1,1,0,1,0],[0,0,0,0,0,0,1],[0,0,0,0,0,0,1],[0,0,0,0,1,0,0],[0,0,0,0,0,0,1],'
    '[0,0,0,0,0,0,1],[0,0,0,0,0,0,0]],"ops":["input","conv1x1-bn-relu","conv3x3-bn-relu","conv3x3-bn-relu",'
    '"conv3x3-bn-relu","maxpool3x3","output"]}'
)
"""The benchmark's own example, the Inception-like cell of its README and notebook (already pruned)."""

_EXPECTED_OPS = ", ".join(OPS)
_ECHO_LIMIT = 60
Matrix = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class Cell:
    """A pruned, valid NAS-Bench-101 cell: adjacency rows (matrix[source][target] = 1 for an edge) and the
    operation of every node, "input" first and "output" last."""

    matrix: Matrix
    ops: tuple[str, ...]

    @property
    def text(self) -> str:
        """Compact JSON with sorted keys: the normalised form that `parse` reads back unchanged."""
        return json.dumps({"matrix": self.matrix, "ops": self.ops}, sort_keys=True, separators=(",", ":"))

    @property
    def num_nodes(self) -> int:
        return len(self.ops)

    @property
    def num_edges(self) -> int:
        return sum(map(sum, self.matrix))


def parse(arch: object) -> Cell:
    """The pruned cell of `arch`: a JSON text or an already-parsed mapping `{"matrix": [[...]], "ops": [...]}`.

    Raises ValueError whose message starts with the offending position (`ops[3]`, `matrix[2][5]`, ...): it is
    shown to API users as is.
    """
    if isinstance(arch, str):
        arch = _from_json(arch)
    if not isinstance(arch, dict):
        raise ValueError(
            f"arch: expected an object with keys 'matrix' and 'ops' (or its JSON text), got {type(arch).__name__}"
        )
    unexpected = sorted(str(key) for key in arch if key not in ("matrix", "ops"))
    if unexpected:
        raise ValueError(f"{unexpected[0]}: unexpected key; a NAS-Bench-101 cell has only 'matrix' and 'ops'")
    for key in ("matrix", "ops"):
        if key not in arch:
            raise ValueError(f"{key}: missing; a NAS-Bench-101 cell needs both 'matrix' and 'ops'")
    ops = _checked_ops(arch["ops"])
    matrix = _checked_matrix(arch["matrix"], len(ops))
    return prune(matrix, ops)


def prune(matrix: Matrix, ops: tuple[str, ...]) -> Cell:
    """Drop every node that is not on a path from input to output, as the benchmark's `ModelSpec._prune`,
    then check the pruned cell against the space's limits. ValueError when input does not reach output."""
    last = len(ops) - 1
    from_input = _reachable(0, lambda node: (target for target in range(node + 1, last + 1) if matrix[node][target]))
    to_output = _reachable(last, lambda node: (source for source in range(node) if matrix[source][node]))
    kept = [node for node in range(len(ops)) if node in from_input and node in to_output]
    if 0 not in kept or last not in kept:
        raise ValueError(f"matrix: the input (node 0) has no path to the output (node {last})")
    cell = Cell(
        matrix=tuple(tuple(matrix[source][target] for target in kept) for source in kept),
        ops=tuple(ops[node] for node in kept),
    )
    if cell.num_edges > MAX_EDGES:
        raise ValueError(
            f"matrix: {cell.num_edges} edges after pruning the nodes off every input-to-output path; "
            f"NAS-Bench-101 cells have at most {MAX_EDGES}"
        )
    return cell


def graph_hash(cell: Cell) -> str:
    """NAS-Bench-101's isomorphism-invariant hash of a pruned cell (`graph_util.hash_module`), the key of
    the benchmark's dataset.

    Each node starts as md5 of str((out-degree, in-degree, label)), labels being -1 for input, -2 for output
    and the index in `OPS` otherwise; then, once per node, each node becomes md5 of its in-neighbours'
    sorted hashes, '|', its out-neighbours' sorted hashes, '|', and its own hash; the graph's hash is md5 of
    str() of the sorted node hashes. Isomorphic cells always hash equal, and the benchmark verified
    exhaustively that no two non-isomorphic cells of the space collide.
    """
    size = cell.num_nodes
    labels = [INPUT_LABEL, *(OPS.index(op) for op in cell.ops[1:-1]), OUTPUT_LABEL]
    in_degrees = [sum(cell.matrix[source][target] for source in range(size)) for target in range(size)]
    hashes = [_md5(str((sum(cell.matrix[node]), in_degrees[node], labels[node]))) for node in range(size)]
    for _ in range(size):
        hashes = [
            _md5(
                "".join(sorted(hashes[source] for source in range(size) if cell.matrix[source][node]))
                + "|"
                + "".join(sorted(hashes[target] for target in range(size) if cell.matrix[node][target]))
                + "|"
                + hashes[node]
            )
            for node in range(size)
        ]
    return _md5(str(sorted(hashes)))


@lru_cache(maxsize=4096)
def parse_text(text: str) -> Cell:
    """`parse` for the normalised texts the service passes around (cached: a batch rebuilds each often)."""
    return parse(text)


def sample(n: int, seed: int) -> list[Cell]:
    """`n` valid cells from distinct isomorphism classes, the same for the same seed.

    Each draw is the benchmark's own random cell (its README and `random_spec` example): every entry above
    the diagonal of a 7×7 matrix is an edge with probability 1/2, every interior node gets a uniformly
    drawn operation, and the draw is kept when its pruned cell is valid (input reaches output, at most 9
    edges) and its class was not drawn before.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= UNIQUE_CELLS:
        raise ValueError(f"n must be an integer from 0 to {UNIQUE_CELLS}, got {n!r}")
    rng = random.Random(seed)
    cells: list[Cell] = []
    seen: set[str] = set()
    while len(cells) < n:
        matrix = tuple(
            tuple(int(target > source and rng.random() < 0.5) for target in range(MAX_NODES))
            for source in range(MAX_NODES)
        )
        ops = (INPUT, *(rng.choice(OPS) for _ in range(MAX_NODES - 2)), OUTPUT)
        try:
            cell = prune(matrix, ops)
        except ValueError:
            continue
        key = graph_hash(cell)
        if key not in seen:
            seen.add(key)
            cells.append(cell)
    return cells


def _from_json(text: str) -> object:
    if len(text) > MAX_TEXT:
        raise ValueError(f"arch: {len(text)} characters; a NAS-Bench-101 cell is at most {MAX_TEXT}")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        problem = f"{error.msg} at column {error.colno}" if isinstance(error, json.JSONDecodeError) else "too deep"
        raise ValueError(
            f"arch: not valid JSON ({problem}); expected an object like "
            '{"matrix": [[0, 1], [0, 0]], "ops": ["input", "output"]}'
        ) from None


def _checked_ops(ops: object) -> tuple[str, ...]:
    if not isinstance(ops, list):
        raise ValueError(f"ops: expected a list of operation names, got {type(ops).__name__}")
    if not 2 <= len(ops) <= MAX_NODES:
        raise ValueError(
            f"ops: {len(ops)} nodes; a NAS-Bench-101 cell has 2 to {MAX_NODES} (input and output included)"
        )
    last = len(ops) - 1
    for index, op in enumerate(ops):
        if index == 0 and op != INPUT:
            raise ValueError(f"ops[0]: the first node must be 'input', got {_shorten(op)}")
        if index == last and op != OUTPUT:
            raise ValueError(f"ops[{last}]: the last node must be 'output', got {_shorten(op)}")
        if 0 < index < last and op not in OPS:
            raise ValueError(f"ops[{index}]: unknown op {_shorten(op)}, expected one of {_EXPECTED_OPS}")
    return tuple(ops)


def _checked_matrix(matrix: object, size: int) -> Matrix:
    if not isinstance(matrix, list):
        raise ValueError(f"matrix: expected a list of {size} rows of 0/1, got {type(matrix).__name__}")
    if len(matrix) != size:
        raise ValueError(f"matrix: {len(matrix)} rows for {size} ops; the matrix is {size}×{size}, one row per op")
    for source, row in enumerate(matrix):
        if not isinstance(row, list) or len(row) != size:
            found = f"{len(row)} entries" if isinstance(row, list) else type(row).__name__
            raise ValueError(f"matrix[{source}]: expected a row of {size} entries (0 or 1), got {found}")
        for target, entry in enumerate(row):
            if isinstance(entry, bool) or not isinstance(entry, int) or entry not in (0, 1):
                raise ValueError(f"matrix[{source}][{target}]: expected 0 or 1, got {_shorten(entry)}")
            if entry and target <= source:
                raise ValueError(
                    f"matrix[{source}][{target}]: an edge must go to a later node (the matrix is strictly "
                    "upper-triangular)"
                )
    return tuple(tuple(row) for row in matrix)


def _reachable(start: int, neighbours: Callable[[int], Iterable[int]]) -> set[int]:
    seen, frontier = {start}, [start]
    while frontier:
        node = frontier.pop()
        for following in neighbours(node):
            if following not in seen:
                seen.add(following)
                frontier.append(following)
    return seen


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def _shorten(value: object) -> str:
    """`repr(value)`, cut short so a huge input cannot flood an error message."""
    text = repr(value)
    return text if len(text) <= _ECHO_LIMIT else text[: _ECHO_LIMIT - 3] + "..."
