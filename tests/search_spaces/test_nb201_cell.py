"""NB201 cells: parsing both forms, error messages, the whole space, canonical (isomorphism) keys, live edges."""

import csv
import itertools
import random
import re
from pathlib import Path

import pytest
from conftest import ALL_CONV, ALL_NONE, DEAD_EDGE_CELLS, README_CELL

from search_spaces import SPACES, nb201

MIXED_OPS = ("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_3x3", "skip_connect")


PRIME = (1 << 61) - 1


def functional_fingerprint(ops: tuple[str, ...], points: list[int], coefficients: dict[str, tuple[int, ...]]) -> tuple:
    """The cell as an exact function on integers mod a prime: each parametric op is a random cubic with no
    constant term (so it maps zero to zero), `skip_connect` is the identity and `none` is zero. Two cells
    that are the same network get equal fingerprints; different ones differ with overwhelming probability."""

    def apply(op: str, value: int) -> int:
        a, b, c = coefficients[op]
        return (a * value**3 + b * value**2 + c * value) % PRIME

    fingerprint = []
    for point in points:
        values = [point]
        for node in (1, 2, 3):
            total = 0
            for (target, source), op in zip(nb201.EDGES, ops, strict=False):
                if target == node and op != "none":
                    total += values[source] if op == "skip_connect" else apply(op, values[source])
            values.append(total % PRIME)
        fingerprint.append(values[3])
    return tuple(fingerprint)


def test_space_is_registered_by_name():
    assert isinstance(SPACES["nb201"], nb201.NB201Space)
    assert nb201.OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    assert nb201.EDGES == ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


def test_string_and_list_forms_parse_to_the_same_cell():
    from_string = nb201.parse(README_CELL)
    assert from_string.ops == MIXED_OPS
    assert nb201.parse(list(MIXED_OPS)) == from_string
    assert nb201.parse(MIXED_OPS) == from_string
    assert nb201.parse(from_string) is from_string
    assert from_string.arch_str == README_CELL and str(from_string) == README_CELL
    assert nb201.parse(f"  {README_CELL}\n") == from_string
    assert isinstance(nb201.parse(list(MIXED_OPS)).ops, tuple)
    assert hash(nb201.parse(list(MIXED_OPS))) == hash(from_string)


def test_cells_are_frozen():
    cell = nb201.parse(README_CELL)
    with pytest.raises(AttributeError):
        cell.ops = MIXED_OPS  # type: ignore[misc]


def test_every_string_round_trips_through_both_forms():
    for arch in nb201.all_archs():
        cell = nb201.parse(arch)
        assert cell.arch_str == arch
        assert nb201.parse(list(cell.ops)).arch_str == arch


def _names_column_of(message: str, text: str, fragment: str) -> bool:
    """Whether `message` gives the 1-based column where `fragment` (unique in `text`) starts."""
    assert text.count(fragment) == 1, "test inputs must make the bad token unique"
    return re.search(rf"\bcolumn {text.index(fragment) + 1}\b", message) is not None


BAD_STRINGS = [
    # (input, the bad token the message must quote, what it must say is expected)
    (README_CELL.replace("avg_pool_3x3~1", "max_pool_3x3~1"), "'max_pool_3x3~1'", "nor_conv_3x3"),
    (README_CELL.replace("avg_pool_3x3~1", "avg_pool_3x3~0"), "'avg_pool_3x3~0'", "'~1'"),
    (README_CELL.replace("skip_connect~2", "skip_connect~7"), "'skip_connect~7'", "'~2'"),
    (README_CELL.replace("|nor_conv_3x3~0|avg_pool_3x3~1|", "|avg_pool_3x3~1|"), "'|avg_pool_3x3~1|'", "'|op~0|op~1|'"),
    (README_CELL.replace("skip_connect~2", "skip_connect2"), "'skip_connect2'", "'operation~2'"),
    (README_CELL + "+|none~0|", "'|none~0|'", "3 node groups"),
    ("hello world", "'hello world'", "'|op~0|'"),
    ("|nor_conv_3x3~0|+nor_conv_3x3~0|nor_conv_1x1~1|", "'nor_conv_3x3~0|nor_conv_1x1~1|'", "'|op~0|op~1|'"),
]


@pytest.mark.parametrize(("text", "bad_token", "expected"), BAD_STRINGS)
def test_bad_strings_name_the_token_its_column_and_what_is_expected(text, bad_token, expected):
    with pytest.raises(ValueError) as raised:
        nb201.parse(text)
    message = str(raised.value)
    assert bad_token in message
    assert _names_column_of(message, text, bad_token.strip("'"))
    assert "expected" in message and expected in message


def test_a_truncated_string_says_which_node_group_is_missing():
    text = "|none~0|+|none~0|none~1|"
    with pytest.raises(ValueError, match=r"node group 3 is missing .*expected 3 node groups"):
        nb201.parse(text)


@pytest.mark.parametrize(
    ("ops", "fragments"),
    [
        (["none"] * 5, ["item 5", "edge 3<-2", "missing", "expected 6 operations"]),
        (["none"] * 7, ["item 6", "one too many", "expected 6 operations"]),
        (["none", "conv3x3", "none", "none", "none", "none"], ["item 1", "'conv3x3'", "edge 2<-0", "nor_conv_3x3"]),
        (["none", "none", "none", 3, "none", "none"], ["item 3", "(3,", "edge 3<-0", "expected one of"]),
    ],
)
def test_bad_lists_name_the_item_its_edge_and_what_is_expected(ops, fragments):
    with pytest.raises(ValueError) as raised:
        nb201.parse(ops)
    for fragment in fragments:
        assert fragment in str(raised.value)


@pytest.mark.parametrize("garbage", [42, None, b"|none~0|", {"ops": MIXED_OPS}, 3.5])
def test_other_types_are_rejected_with_a_value_error_naming_them(garbage):
    with pytest.raises(ValueError) as raised:
        nb201.parse(garbage)
    message = str(raised.value)
    assert type(garbage).__name__ in message and repr(garbage)[:20] in message
    assert "expected a cell string" in message


def test_direct_cell_construction_is_validated():
    with pytest.raises(ValueError, match="item 0"):
        nb201.Cell(("sep_conv_3x3",) + MIXED_OPS[1:])


def test_error_messages_stay_short_for_huge_inputs():
    with pytest.raises(ValueError) as raised:
        nb201.parse("|" + "x" * 100_000)
    assert len(str(raised.value)) < 1_000


def test_all_archs_is_the_whole_space_in_a_fixed_order():
    archs = nb201.all_archs()
    assert len(archs) == 5**6 == 15_625
    assert len(set(archs)) == len(archs)
    assert archs == nb201.all_archs()
    assert archs[0] == ALL_NONE
    archs.append("mutated")
    assert len(nb201.all_archs()) == 15_625
    assert {nb201.parse(arch).ops for arch in archs[:-1]} == set(itertools.product(nb201.OPS, repeat=6))


def test_all_archs_are_exactly_the_benchmarks_strings(nb201_csv: Path):
    with nb201_csv.open(newline="") as handle:
        benchmark_archs = [row["arch"] for row in csv.DictReader(handle)]
    assert len(benchmark_archs) == 15_625
    assert set(benchmark_archs) == set(nb201.all_archs())


def test_canonical_keys_split_the_space_into_the_benchmarks_6466_classes():
    assert len({nb201.canonical_key(ops) for ops in itertools.product(nb201.OPS, repeat=6)}) == 6_466


def test_cells_sharing_a_key_compute_the_same_function():
    """The converse does not hold: the benchmark's rule keeps zero terms in sums, so a few equal functions
    (4,930 distinct ones over the space) are split across several of its classes."""
    rng = random.Random(201)
    coefficients = {op: tuple(rng.randrange(1, PRIME) for _ in range(3)) for op in nb201.OPS[2:]}
    points = [rng.randrange(1, PRIME) for _ in range(2)]
    key_to_fingerprint: dict[str, tuple] = {}
    fingerprints: set[tuple] = set()
    for ops in itertools.product(nb201.OPS, repeat=6):
        key = nb201.canonical_key(ops)
        fingerprint = functional_fingerprint(ops, points, coefficients)
        assert key_to_fingerprint.setdefault(key, fingerprint) == fingerprint, ops
        fingerprints.add(fingerprint)
    assert len(fingerprints) == 4_930


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # Differ only in edges that cannot reach node 3.
        (
            "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|none~2|",
            "|avg_pool_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|",
        ),
        # conv1(x) + avg(conv3(x)): node 2's edges change but node 2 never reaches node 3.
        (
            "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|none~2|",
            "|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|none~2|",
        ),
        # conv3(x) + conv1(x) reached directly or through a skip to node 1.
        (
            "|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_1x1~0|skip_connect~1|none~2|",
            "|nor_conv_1x1~0|+|none~0|none~1|+|nor_conv_3x3~0|skip_connect~1|none~2|",
        ),
        # Edges out of an always-zero node are zero, whatever they carry.
        (
            "|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|",
            "|none~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|skip_connect~2|",
        ),
        # A cell whose output is always zero is the all-`none` cell.
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|", ALL_NONE),
    ],
)
def test_isomorphic_cells_share_a_key(first, second):
    assert first != second
    assert nb201.canonical_key(first) == nb201.canonical_key(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # skip vs convolution on a live edge.
        (
            "|skip_connect~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|",
            "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|",
        ),
        # Sums keep multiplicity: conv3(x) + conv3(x) is not conv3(x).
        (
            "|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_3x3~0|skip_connect~1|none~2|",
            "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|",
        ),
        # Order of composition matters: avg(conv3(x)) vs conv3(avg(x)).
        (
            "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|none~0|none~1|skip_connect~2|",
            "|avg_pool_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|",
        ),
        # 1x1 vs 3x3 convolution.
        (ALL_CONV, ALL_CONV.replace("nor_conv_3x3~2", "nor_conv_1x1~2")),
    ],
)
def test_different_networks_get_different_keys(first, second):
    assert nb201.canonical_key(first) != nb201.canonical_key(second)


def test_canonical_key_accepts_every_form():
    key = nb201.canonical_key(README_CELL)
    assert key == nb201.canonical_key(list(MIXED_OPS)) == nb201.canonical_key(nb201.parse(README_CELL))
    with pytest.raises(ValueError, match="max_pool_3x3"):
        nb201.canonical_key(README_CELL.replace("avg_pool_3x3", "max_pool_3x3"))


@pytest.mark.parametrize(("arch", "live"), DEAD_EDGE_CELLS.items())
def test_live_edges_by_hand(arch, live):
    assert nb201.live_edges(arch) == live


def test_dead_edges_never_change_the_function():
    """Replacing every dead edge by `none` leaves the network's function unchanged: why the forward may
    skip them."""
    rng = random.Random(7)
    coefficients = {op: tuple(rng.randrange(1, PRIME) for _ in range(3)) for op in nb201.OPS[2:]}
    points = [rng.randrange(1, PRIME) for _ in range(2)]
    for ops in itertools.product(nb201.OPS, repeat=6):
        live = nb201.live_edges(ops)
        pruned = tuple(op if index in live else "none" for index, op in enumerate(ops))
        assert functional_fingerprint(pruned, points, coefficients) == functional_fingerprint(ops, points, coefficients)
