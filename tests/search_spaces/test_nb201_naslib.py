"""NASLib's encoding of NB201 cells: keys checked by hand, the round trip over the whole space, task names."""

import csv
import itertools

import pytest
from conftest import BEST_CELL, NB201_CSV, SCRAMBLED_CELL

from search_spaces.nb201.naslib import (
    arch_to_naslib_key,
    naslib_key_to_arch,
    naslib_task_name,
)


def _nb201_table() -> list[dict[str, str]]:
    if not NB201_CSV.exists():
        pytest.skip(f"shared NAS-Bench-201 accuracies not found at {NB201_CSV}")
    with NB201_CSV.open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize(
    ("arch", "key"),
    [
        # Edges in NASLib's order (1,2) (1,3) (1,4) (2,3) (2,4) (3,4) = NB201 node pairs 0→1, 0→2,
        # 0→3, 1→2, 1→3, 2→3; ops skip_connect 0, none 1, nor_conv_3x3 2, nor_conv_1x1 3, avg_pool 4.
        # 0→1 conv3, 0→2 conv3, 0→3 skip, 1→2 conv3, 1→3 conv3, 2→3 conv3:
        (BEST_CELL, "(2, 2, 0, 2, 2, 2)"),
        # 0→1 none, 0→2 skip, 0→3 conv1, 1→2 conv3, 1→3 avg_pool, 2→3 none (all positions differ
        # from the NB201 string order, so a wrong edge order cannot pass):
        (SCRAMBLED_CELL, "(1, 0, 3, 2, 4, 1)"),
        # Row 0 of the shared table: 0→1 avg, 0→2 conv1, 0→3 conv1, 1→2 skip, 1→3 skip, 2→3 skip:
        (
            "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
            "(4, 3, 3, 0, 0, 0)",
        ),
        # Key (4, 0, 3, 1, 4, 3): 0→1 avg, 0→2 skip, 0→3 conv1, 1→2 none, 1→3 avg, 2→3 conv1:
        (
            "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_1x1~2|",
            "(4, 0, 3, 1, 4, 3)",
        ),
    ],
)
def test_naslib_keys_checked_by_hand(arch, key):
    assert arch_to_naslib_key(arch) == key
    assert naslib_key_to_arch(key) == arch


def test_naslib_round_trip_over_every_nb201_cell():
    archs = [row["arch"] for row in _nb201_table()]
    keys = [arch_to_naslib_key(arch) for arch in archs]
    assert [naslib_key_to_arch(key) for key in keys] == archs
    every_tuple = {str(ops) for ops in itertools.product(range(5), repeat=6)}
    assert set(keys) == every_tuple and len(keys) == 15_625


def test_naslib_key_accepts_list_form_and_rejects_malformed_keys():
    assert naslib_key_to_arch("[2, 2, 0, 2, 2, 2]") == BEST_CELL
    for bad in ("(2, 2, 0, 2, 2)", "(2, 2, 0, 2, 2, 5)", "(a, 2, 0, 2, 2, 2)", ""):
        with pytest.raises(ValueError):
            naslib_key_to_arch(bad)


def test_naslib_task_names():
    assert naslib_task_name("cifar10") == "cifar10"
    assert naslib_task_name("CIFAR100") == "cifar100"
    assert naslib_task_name("imagenet16-120") == "ImageNet16-120"
    with pytest.raises(ValueError, match="svhn"):
        naslib_task_name("svhn")
