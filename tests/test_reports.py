"""Correlation plot PNGs, CSV / NASLib exports, and the NASLib NAS-Bench-201 key encoding."""

import csv
import io
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg

from app.reports.export import export_csv, export_naslib
from app.reports.plots import DPI, PANEL_SIZE_INCHES, Panel, correlation_plot_png, grid_shape
from search_spaces.nb201.naslib import arch_to_naslib_key, naslib_key_to_arch, naslib_task_name

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
NB201_ACCURACIES = SHARED / "data" / "nb201" / "nb201_cifar10_test_acc.csv"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

BEST_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
MIXED_CELL = "|none~0|+|skip_connect~0|nor_conv_3x3~1|+|nor_conv_1x1~0|avg_pool_3x3~1|none~2|"


def _nb201_table() -> list[dict[str, str]]:
    if not NB201_ACCURACIES.exists():
        pytest.skip(f"shared NAS-Bench-201 accuracies not found at {NB201_ACCURACIES}")
    with NB201_ACCURACIES.open() as handle:
        return list(csv.DictReader(handle))


def _decode_png(png: bytes) -> np.ndarray:
    assert png.startswith(PNG_MAGIC)
    return mpimg.imread(io.BytesIO(png), format="png")


def _expected_pixels(panel_count: int) -> tuple[int, int]:
    rows, columns = grid_shape(panel_count)
    return round(rows * PANEL_SIZE_INCHES[1] * DPI), round(columns * PANEL_SIZE_INCHES[0] * DPI)


@pytest.mark.parametrize(
    ("count", "shape"), [(1, (1, 1)), (3, (1, 3)), (4, (2, 2)), (5, (2, 3)), (7, (3, 3))]
)
def test_grid_shape(count, shape):
    assert grid_shape(count) == shape


@pytest.mark.parametrize("panel_count", [1, 4])
def test_correlation_plot_is_a_valid_png_of_the_expected_size(panel_count):
    rng = np.random.default_rng(0)
    accuracy = rng.uniform(80.0, 94.0, 500)
    panels = [
        Panel(f"proxy{index}", accuracy + rng.normal(0.0, 3.0 * (index + 1), 500), accuracy, 0.5)
        for index in range(panel_count)
    ]
    pixels = _decode_png(correlation_plot_png(panels))
    assert pixels.shape[:2] == _expected_pixels(panel_count)
    assert pixels.shape[2] in (3, 4)
    assert pixels[..., :3].std() > 0.05  # something was drawn, not a blank canvas


def test_plot_draws_in_each_proxy_direction_and_survives_degenerate_panels():
    # A perfect lower-is-better score must put the best accuracy at the right edge, exactly like
    # the same score negated and declared higher-is-better: both PNGs are pixel-identical.
    accuracy = np.linspace(60.0, 94.0, 200)
    lower = correlation_plot_png([Panel("grasp", -accuracy, accuracy, 1.0, higher_is_better=False)])
    higher = correlation_plot_png([Panel("grasp", accuracy, accuracy, 1.0, higher_is_better=True)])
    np.testing.assert_array_equal(_decode_png(lower), _decode_png(higher))
    reversed_order = correlation_plot_png([Panel("grasp", accuracy, accuracy, 1.0, higher_is_better=False)])
    assert not np.array_equal(_decode_png(reversed_order), _decode_png(higher))
    degenerate = [
        Panel("empty", np.array([]), np.array([]), None),
        Panel("unobserved", np.ones(5), np.full(5, np.nan), None),
        Panel("nan scores", np.full(5, np.nan), np.arange(5.0), float("nan")),
    ]
    assert _decode_png(correlation_plot_png(degenerate)).shape[:2] == _expected_pixels(3)


def test_plot_rejects_no_panels_and_mismatched_lengths():
    with pytest.raises(ValueError, match="at least one panel"):
        correlation_plot_png([])
    with pytest.raises(ValueError, match="snip"):
        correlation_plot_png([Panel("snip", np.ones(3), np.ones(4), None)])


@pytest.mark.parametrize(
    ("arch", "key"),
    [
        # Edges in NASLib's order (1,2) (1,3) (1,4) (2,3) (2,4) (3,4) = NB201 node pairs 0→1, 0→2,
        # 0→3, 1→2, 1→3, 2→3; ops skip_connect 0, none 1, nor_conv_3x3 2, nor_conv_1x1 3, avg_pool 4.
        # 0→1 conv3, 0→2 conv3, 0→3 skip, 1→2 conv3, 1→3 conv3, 2→3 conv3:
        (BEST_CELL, "(2, 2, 0, 2, 2, 2)"),
        # 0→1 none, 0→2 skip, 0→3 conv1, 1→2 conv3, 1→3 avg_pool, 2→3 none (all positions differ
        # from the NB201 string order, so a wrong edge order cannot pass):
        (MIXED_CELL, "(1, 0, 3, 2, 4, 1)"),
        # Row 0 of the shared table: 0→1 avg, 0→2 conv1, 0→3 conv1, 1→2 skip, 1→3 skip, 2→3 skip:
        ("|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
         "(4, 3, 3, 0, 0, 0)"),
        # Key (4, 0, 3, 1, 4, 3): 0→1 avg, 0→2 skip, 0→3 conv1, 1→2 none, 1→3 avg, 2→3 conv1:
        ("|avg_pool_3x3~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_1x1~2|",
         "(4, 0, 3, 1, 4, 3)"),
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


FINGERPRINT = "ab" * 32
ROWS = [
    {"arch": BEST_CELL, "canonical_key": "best-class", "config_fingerprint": FINGERPRINT,
     "scores": {"synflow": (1.5e30, 0.25), "snip": (12.5, 0.5)}, "accuracy": 94.37},
    {"arch": MIXED_CELL, "canonical_key": "mixed-class", "config_fingerprint": FINGERPRINT,
     "scores": {"synflow": (float("nan"), 0.125)}, "accuracy": None},
]
LABELS = {"config_fingerprint": FINGERPRINT}


def test_export_naslib_layout_round_trips_through_strict_json():
    exported = export_naslib(ROWS, "cifar10")
    parsed = json.loads(json.dumps(exported, allow_nan=False))
    assert list(parsed) == ["cifar10"]
    best = parsed["cifar10"]["(2, 2, 0, 2, 2, 2)"]
    assert best == {"synflow": {"score": 1.5e30, "time": 0.25}, "snip": {"score": 12.5, "time": 0.5},
                    "val_accuracy": 94.37, "canonical_key": "best-class", **LABELS}
    mixed = parsed["cifar10"]["(1, 0, 3, 2, 4, 1)"]
    assert mixed == {"synflow": {"score": None, "time": 0.125}, "val_accuracy": None,
                     "canonical_key": "mixed-class", **LABELS}


def test_export_naslib_rejects_duplicates_and_reserved_names():
    with pytest.raises(ValueError, match="twice"):
        export_naslib([ROWS[0], ROWS[0]], "cifar10")
    for name in ("val_accuracy", "canonical_key", "config_fingerprint"):
        with pytest.raises(ValueError, match=name):
            export_naslib([{**ROWS[0], "scores": {name: (1.0, 0.1)}}], "cifar10")


def test_export_csv_columns_and_values():
    text = export_csv(ROWS, ["synflow", "snip"])
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == ["arch", "canonical_key", "config_fingerprint", "synflow", "synflow_seconds", "snip",
                        "snip_seconds", "accuracy"]
    assert lines[1] == [BEST_CELL, "best-class", FINGERPRINT, "1.5e+30", "0.25", "12.5", "0.5", "94.37"]
    assert lines[2] == [MIXED_CELL, "mixed-class", FINGERPRINT, "nan", "0.125", "", "", ""]
    assert math.isnan(float(lines[2][3]))
