"""The evaluation harness end to end on a few cells: it scores through the real batch path, imports the shared
accuracies and writes a table whose figures, per isomorphism class and per cell, match a direct computation
from the database it filled."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import CIFAR10_NPZ, NB201_CSV, REPO_ROOT
from scipy.stats import spearmanr

from app.db import Database
from app.services.population import load_scored_population
from app.services.spaces import sample_architectures
from search_spaces import nb201

SAMPLE = 12


def test_harness_writes_a_table_that_matches_the_database(tmp_path) -> None:
    if not CIFAR10_NPZ.exists() or not NB201_CSV.exists():
        pytest.skip(f"shared CIFAR-10 batch or NB201 accuracies not found under {CIFAR10_NPZ.parents[2]}")
    home, out = tmp_path / "home", tmp_path / "docs"
    out.mkdir()
    command = [
        sys.executable,
        "-m",
        "bench.correlation",
        "--sample",
        str(SAMPLE),
        "--seed",
        "3",
        "--workers",
        "1",
        "--proxies",
        "snip",
        "grasp",
        "synflow",
        "params",
        "--bootstrap",
        "50",
        "--home",
        str(home),
        "--out",
        str(out),
    ]
    finished = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    stem = out / f"correlation_nb201_cifar10_n{SAMPLE}_seed3"
    table = stem.with_suffix(".md").read_text()
    assert stem.with_suffix(".png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    lines = [[cell.strip() for cell in line.split("|")[1:-1]] for line in table.splitlines() if line.startswith("| ")]
    header, body = lines[0], lines[1:]
    rows = {cells[0]: dict(zip(header, cells, strict=True)) for cells in body}
    assert set(rows) == {"snip", "grasp", "synflow", "params", "mission"}, "presets need all their proxies"

    database = Database(f"sqlite:///{home / 'nasscore.db'}")
    try:
        with database.read_session() as session:
            population = load_scored_population(session, "nb201", "cifar10").population
    finally:
        database.dispose()
    sample = sample_architectures("nb201", SAMPLE, 3)
    sampled = np.isin(population.archs, sample)
    assert sampled.sum() == SAMPLE and np.isfinite(population.accuracy[sampled]).all()
    params = population.column("params")
    expected = spearmanr(params[sampled], population.accuracy[sampled]).statistic
    assert rows["params"]["cells"] == str(SAMPLE)
    assert float(rows["params"]["ρ per cell"]) == pytest.approx(expected, abs=5e-4)

    keys = np.array([nb201.canonical_key(arch) for arch in population.archs])
    classes = sorted(set(keys[sampled]))
    class_params = [params[keys == key][0] for key in classes]
    class_accuracy = [population.accuracy[keys == key].mean() for key in classes]
    expected = spearmanr(class_params, class_accuracy)
    assert rows["params"]["classes"] == str(len(classes))
    assert float(rows["params"]["ρ per class"]) == pytest.approx(expected.statistic, abs=5e-4)
    assert float(rows["params"]["p"]) == pytest.approx(expected.pvalue, rel=0.05)
