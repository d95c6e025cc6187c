"""examples/zero_cost_search.py end to end, as a user runs it: a real subprocess against the real service, a
small sample of cells on the --quick network, and the real NAS-Bench-201 accuracies (skipped without them).
What it reports must be the benchmark's accuracies of the cells it chose by the vote, and a seeded random
choice from the same sample."""

import json
import random
import statistics
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT, LiveServer, service_settings

from search_spaces import nb201

EXAMPLE = REPO_ROOT / "examples" / "zero_cost_search.py"
CELLS, TOP, SEED = 16, 4, 3


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, timeout=900)


def test_the_search_chooses_by_the_vote_and_reports_benchmark_accuracies(tmp_path: Path, nb201_csv: Path) -> None:
    benchmark = {}
    for line in nb201_csv.read_text().splitlines()[1:]:
        _, arch, accuracy = line.split(",")
        benchmark[arch] = float(accuracy)
    with LiveServer(service_settings(tmp_path, f"sqlite:///{tmp_path / 'nasscore.db'}")) as server:
        flags = ["--url", f"http://127.0.0.1:{server.port}", "--cells", str(CELLS), "--top", str(TOP)]
        flags += ["--seed", str(SEED), "--csv", str(nb201_csv), "--quick"]
        result = _run(*flags, "--json", str(tmp_path / "summary.json"))
    assert result.returncode == 0, result.stderr
    assert f"{CELLS}/{CELLS}" in result.stderr  # the batch's progress bar
    summary = json.loads((tmp_path / "summary.json").read_text())

    draw = random.Random(SEED)
    sample = draw.sample(nb201.all_archs(), CELLS)
    assert summary["observations_imported"] == len(benchmark)
    chosen, randomly = summary["chosen"], summary["random"]
    assert len(chosen) == TOP and {pick["arch"] for pick in chosen} <= set(sample)
    assert len({nb201.canonical_key(pick["arch"]) for pick in chosen}) == TOP  # one per isomorphism class
    ranks = [pick["rank"] for pick in chosen]
    assert ranks[0] == 1 and ranks == sorted(ranks)
    assert [pick["arch"] for pick in randomly] == draw.sample(sample, TOP)
    for pick in chosen + randomly:
        assert pick["accuracy"] == benchmark[pick["arch"]]
    assert summary["space_best"] == max(benchmark.values())
    assert summary["vote_classes"] >= TOP and -1 <= summary["vote_spearman_rho"] <= 1

    lines = result.stdout.splitlines()
    zero_cost = next(line for line in lines if line.startswith(f"zero-cost: vote top {TOP}"))
    top1, best, mean = (float(value) for value in zero_cost.split()[-3:])
    accuracies = [pick["accuracy"] for pick in chosen]
    assert (top1, best, mean) == (
        round(accuracies[0], 2),
        round(max(accuracies), 2),
        round(statistics.mean(accuracies), 2),
    )
    assert any(line.startswith(f"random {TOP} (seed {SEED})") for line in lines)
