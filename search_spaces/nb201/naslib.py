"""NASLib's encoding of NAS-Bench-201 cells, so our scores drop into NASLib's zero-cost analyses.

NASLib (automl/NASLib, naslib/search_spaces/nasbench201/conversions.py) numbers the cell's nodes
from 1 and lists its six edges as (1,2) (1,3) (1,4) (2,3) (2,4) (3,4): grouped by *source* node,
whereas the NAS-Bench-201 string groups them by *target* node (1←0 | 2←0 2←1 | 3←0 3←1 3←2). Ops
are indexed skip_connect 0, none 1, nor_conv_3x3 2, nor_conv_1x1 3, avg_pool_3x3 4. Its zero-cost
benchmark files (NAS-Bench-Suite-Zero, zc_nasbench201.json) key each architecture by
str(tuple(op indices)), e.g. "(4, 0, 3, 1, 4, 3)", under the task names below.
"""

from search_spaces.nb201 import EDGES, ArchLike, parse

NASLIB_OP_NAMES: tuple[str, ...] = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
NASLIB_EDGES: tuple[tuple[int, int], ...] = ((1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4))
"""(source, target) of each NASLib edge, nodes numbered from 1."""

_CELL_POSITIONS = tuple(EDGES.index((target - 1, source - 1)) for source, target in NASLIB_EDGES)
_NASLIB_TASKS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16-120": "ImageNet16-120"}


def arch_to_naslib_key(arch: ArchLike) -> str:
    """NASLib's key for a NAS-Bench-201 cell, e.g. "(2, 2, 0, 2, 2, 2)"."""
    ops = parse(arch).ops
    return str(tuple(NASLIB_OP_NAMES.index(ops[position]) for position in _CELL_POSITIONS))


def naslib_key_to_arch(key: str) -> str:
    """The NAS-Bench-201 string of a NASLib key; accepts NASLib's list form "[2, 2, 0, 2, 2, 2]" too."""
    ops = [""] * len(EDGES)
    for position, index in zip(_CELL_POSITIONS, _op_indices(key), strict=False):
        ops[position] = NASLIB_OP_NAMES[index]
    return parse(ops).arch_str


def naslib_task_name(dataset: str) -> str:
    """NASLib's task name for a dataset: cifar10, cifar100 or ImageNet16-120 (case-insensitive)."""
    try:
        return _NASLIB_TASKS[dataset.lower()]
    except KeyError:
        known = ", ".join(_NASLIB_TASKS.values())
        raise ValueError(f"NASLib has no NAS-Bench-201 task for {dataset!r}; known: {known}") from None


def _op_indices(key: str) -> list[int]:
    text = key.strip()
    if len(text) < 2 or (text[0], text[-1]) not in {("(", ")"), ("[", "]")}:
        raise ValueError(f"NASLib key must look like '(4, 0, 3, 1, 4, 3)', got {key!r}")
    try:
        indices = [int(part) for part in text[1:-1].split(",")]
    except ValueError:
        raise ValueError(f"NASLib key {key!r} holds a non-integer op index") from None
    valid = all(0 <= index < len(NASLIB_OP_NAMES) for index in indices)
    if len(indices) != len(NASLIB_EDGES) or not valid:
        highest = len(NASLIB_OP_NAMES) - 1
        raise ValueError(f"NASLib key {key!r} needs {len(NASLIB_EDGES)} op indices in 0..{highest}")
    return indices
