"""Population exports: NASLib's JSON layout and CSV."""

import csv
import io
import json
import math

import pytest
from conftest import BEST_CELL, SCRAMBLED_CELL

from app.reports.export import export_csv, export_naslib

FINGERPRINT = "ab" * 32


ROWS = [
    {
        "arch": BEST_CELL,
        "canonical_key": "best-class",
        "config_fingerprint": FINGERPRINT,
        "scores": {"synflow": (1.5e30, 0.25), "snip": (12.5, 0.5)},
        "accuracy": 94.37,
    },
    {
        "arch": SCRAMBLED_CELL,
        "canonical_key": "mixed-class",
        "config_fingerprint": FINGERPRINT,
        "scores": {"synflow": (float("nan"), 0.125)},
        "accuracy": None,
    },
]


LABELS = {"config_fingerprint": FINGERPRINT}


def test_export_naslib_layout_round_trips_through_strict_json():
    exported = export_naslib(ROWS, "cifar10")
    parsed = json.loads(json.dumps(exported, allow_nan=False))
    assert list(parsed) == ["cifar10"]
    best = parsed["cifar10"]["(2, 2, 0, 2, 2, 2)"]
    assert best == {
        "synflow": {"score": 1.5e30, "time": 0.25},
        "snip": {"score": 12.5, "time": 0.5},
        "val_accuracy": 94.37,
        "canonical_key": "best-class",
        **LABELS,
    }
    mixed = parsed["cifar10"]["(1, 0, 3, 2, 4, 1)"]
    assert mixed == {
        "synflow": {"score": None, "time": 0.125},
        "val_accuracy": None,
        "canonical_key": "mixed-class",
        **LABELS,
    }


def test_export_naslib_rejects_duplicates_and_reserved_names():
    with pytest.raises(ValueError, match="twice"):
        export_naslib([ROWS[0], ROWS[0]], "cifar10")
    for name in ("val_accuracy", "canonical_key", "config_fingerprint"):
        with pytest.raises(ValueError, match=name):
            export_naslib([{**ROWS[0], "scores": {name: (1.0, 0.1)}}], "cifar10")


def test_export_csv_columns_and_values():
    text = export_csv(ROWS, ["synflow", "snip"])
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == [
        "arch",
        "canonical_key",
        "config_fingerprint",
        "synflow",
        "synflow_seconds",
        "snip",
        "snip_seconds",
        "accuracy",
    ]
    assert lines[1] == [BEST_CELL, "best-class", FINGERPRINT, "1.5e+30", "0.25", "12.5", "0.5", "94.37"]
    assert lines[2] == [SCRAMBLED_CELL, "mixed-class", FINGERPRINT, "nan", "0.125", "", "", ""]
    assert math.isnan(float(lines[2][3]))
