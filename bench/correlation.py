"""How well every proxy and every vote preset predicts NAS-Bench-201 CIFAR-10 test accuracy.

Scores a seeded sample of cells (or all of them) with the shared CIFAR-10 batch through the normal batch
path (`nasscore batch`: its database, worker pool and resume), imports the shared accuracies
(`nasscore observations import`), and writes a Markdown table (Spearman rho with a bootstrap 95 % CI,
Kendall tau, top-10 % recall, seconds per cell) and a PNG of the same figures. Figures come per isomorphism
class (the unit whose p-values and intervals hold: isomorphic cells share one score) and per cell (the
benchmark papers' convention, to compare with published figures). Re-running resumes the scoring, so an
interrupted run loses nothing.

    .venv/bin/python -m bench.correlation --sample 1000 --seed 0 --workers 2
"""

import argparse
import io
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from app.cli import main as nasscore
from app.db import Database
from app.services.population import Population, class_population, load_scored_population
from app.services.spaces import sample_architectures
from scorers import get_proxy, list_proxies
from scorers.evaluation import correlation_report
from scorers.presets import DEFAULT_PRESET, PRESETS
from scorers.voting import vote
from search_spaces import nb201

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CALIBRATION = SHARED / "cifar10" / "cifar10_train_3805.npz"
ACCURACIES = SHARED / "nb201" / "nb201_cifar10_test_acc.csv"
PUBLISHED_RHO = {"snip": 0.60, "grasp": 0.51, "synflow": 0.74, "azn": 0.91}


@dataclass(frozen=True)
class Row:
    name: str
    kind: str
    voters: str
    per_class: dict
    per_cell: dict
    seconds_per_cell: float


@dataclass(frozen=True)
class Unit:
    """The rows of a population (cells, or isomorphism classes) that a table column is computed over."""

    population: Population
    selected: np.ndarray

    @property
    def size(self) -> int:
        return int(self.selected.sum())

    def report(self, voters: tuple[str, ...], method: str | None, bootstrap: int) -> dict:
        """Figures of one proxy (`method` None) or of the vote of `voters` over the selected rows."""
        scores = {name: self.population.column(name)[self.selected] for name in voters}
        directions = {name: get_proxy(name).higher_is_better for name in voters}
        if method is None:
            [name] = voters
            score, higher_is_better = scores[name], directions[name]
        else:
            score, higher_is_better = vote(scores, directions, method), True
        accuracy = self.population.accuracy[self.selected]
        return correlation_report(score, accuracy, higher_is_better=higher_is_better, bootstrap=bootstrap)


def main() -> None:
    args = _parse_arguments()
    home = args.home or ROOT / ".nasscore" / f"bench-correlation-{'all' if args.all else args.seed}"
    _run(_batch_command(args, home))
    _run(
        [
            "observations",
            "import",
            str(ACCURACIES),
            "--dataset",
            "cifar10",
            "--acc-col",
            "cifar10_test_acc",
            "--index-col",
            "index",
            "--home",
            str(home),
        ]
    )
    rows, classes, cells = _evaluate(home, args)
    command = " ".join(["python -m bench.correlation", *sys.argv[1:]])
    stem = args.out / f"correlation_nb201_cifar10_{'all' if args.all else f'n{cells.size}_seed{args.seed}'}"
    stem.with_suffix(".md").write_text(_markdown(rows, classes, cells, args, command, stem.name + ".png"))
    stem.with_suffix(".png").write_bytes(_bar_chart_png(rows, classes, cells))
    print(stem.with_suffix(".md").read_text())


def _parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    selection = parser.add_mutually_exclusive_group()
    selection.add_argument("--sample", type=int, default=1000, help="cells drawn with --seed (default: 1000)")
    selection.add_argument("--all", action="store_true", help="all 15,625 cells")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default: 0)")
    parser.add_argument("--workers", type=int, default=2, help="CPU worker processes (default: 2)")
    parser.add_argument("--proxies", nargs="+", default=[info.name for info in list_proxies()])
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples of the CI of rho (default: 1000)")
    parser.add_argument("--home", type=Path, help="database directory (default: .nasscore/bench-correlation-SEED)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where the .md and .png go (default: docs/)")
    args = parser.parse_args()
    if not CALIBRATION.exists() or not ACCURACIES.exists():
        parser.error(f"needs the shared data under {SHARED}")
    return args


def _batch_command(args: argparse.Namespace, home: Path) -> list[str]:
    selection = ["--all"] if args.all else ["--sample", str(args.sample), "--seed", str(args.seed)]
    return [
        "batch",
        "nb201",
        *selection,
        "--data",
        str(CALIBRATION),
        "--proxies",
        *args.proxies,
        "--workers",
        str(args.workers),
        "--home",
        str(home),
    ]


def _run(argv: list[str]) -> None:
    status = nasscore(argv)
    if status != 0:
        raise SystemExit(f"nasscore {argv[0]} failed with status {status}")


def _evaluate(home: Path, args: argparse.Namespace) -> tuple[list[Row], Unit, Unit]:
    """Figures of each proxy and each preset, per cell over exactly the sampled cells, and per isomorphism
    class over the classes they fall into (the database also holds the scores and accuracies of their
    isomorphic twins, so a class's accuracy is the mean over all its members, as GET /v1/correlations
    computes it); a preset is evaluated when all its proxies were scored."""
    population = _load_population(home)
    sample = nb201.all_archs() if args.all else sample_architectures("nb201", args.sample, args.seed)
    sampled = np.isin(population.archs, sample)
    classes = class_population(population)
    class_unit = Unit(classes, np.isin(classes.canonical_keys, population.canonical_keys[sampled]))
    cell_unit = Unit(population, sampled)
    seconds = {
        name: float(np.nanmean(population.seconds[sampled, population.proxies.index(name)])) for name in args.proxies
    }
    results = [
        Row(
            name,
            "proxy",
            name,
            class_unit.report((name,), None, args.bootstrap),
            cell_unit.report((name,), None, args.bootstrap),
            seconds[name],
        )
        for name in args.proxies
    ]
    for preset in PRESETS.values():
        if set(preset.proxies) <= set(args.proxies):
            voters = f"{' + '.join(preset.proxies)} ({preset.method})"
            cost = sum(seconds[name] for name in preset.proxies)
            per_class = class_unit.report(preset.proxies, preset.method, args.bootstrap)
            per_cell = cell_unit.report(preset.proxies, preset.method, args.bootstrap)
            results.append(Row(preset.name, "preset", voters, per_class, per_cell, cost))
    return results, class_unit, cell_unit


def _load_population(home: Path) -> Population:
    database = Database(f"sqlite:///{(home / 'nasscore.db').resolve()}")
    try:
        with database.read_session() as session:
            return load_scored_population(session, "nb201", "cifar10").population
    finally:
        database.dispose()


def _markdown(
    rows: list[Row], classes: Unit, cells: Unit, args: argparse.Namespace, command: str, png_name: str
) -> str:
    ordered = sorted(rows, key=lambda row: (row.kind != "preset", -(row.per_class["spearman_rho"] or -2)))
    sample = "all cells" if args.all else f"{cells.size:,} cells drawn with seed {args.seed}"
    lines = [
        f"# Zero-cost proxies on NAS-Bench-201 CIFAR-10 ({classes.size:,} isomorphism classes, {cells.size:,} cells)",
        "",
        "Generated by the harness; do not edit by hand. Reproduce with",
        "",
        f"    .venv/bin/{command}",
        "",
        f"Sample: {sample}; calibration: "
        "64 images of the shared CIFAR-10 training subset, configuration seed 0, scored through `nasscore batch` "
        f"on {_machine()}; accuracy: the benchmark's CIFAR-10 test accuracy (200 epochs). Commit {_commit()}, "
        f"{time.strftime('%Y-%m-%d')}. Default preset: `{DEFAULT_PRESET}`.",
        "",
        "Two units side by side. *Per class*: one row per isomorphism class the sample falls into, its accuracy the "
        "mean over all its members; isomorphic cells share one score, so this is the unit whose p-values and "
        "intervals hold. *Per cell*: exactly the sampled cells, the benchmark papers' convention, to compare with "
        "published figures.",
        "",
        "Signed figures: positive = orders cells the right way in the proxy's registered direction. "
        "Seconds per cell are CPU worker wall time, shared passes split equally between the proxies using them; "
        "a preset's time is the sum of its proxies'.",
        "",
        "| name | kind | voters | classes | ρ per class | 95 % CI | p | Kendall τ | top-10 % recall "
        "| cells | ρ per cell | 95 % CI (cells) | published ρ | s / cell |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in ordered:
        by_class, by_cell = row.per_class, row.per_cell
        published = f"{PUBLISHED_RHO[row.name]:.2f}" if row.name in PUBLISHED_RHO else ""
        lines.append(
            f"| {row.name} | {row.kind} | {row.voters if row.kind == 'preset' else ''} | {by_class['n']:,} | "
            f"{_signed(by_class['spearman_rho'])} | {_interval(by_class)} | {_p_value(by_class['spearman_p'])} | "
            f"{_signed(by_class['kendall_tau'])} | {_plain(by_class['top_recall'])} | {by_cell['n']:,} | "
            f"{_signed(by_cell['spearman_rho'])} | {_interval(by_cell)} | {published} | {row.seconds_per_cell:.3f} |"
        )
    lines += [
        "",
        "Published ρ over all 15,625 cells (per cell): snip, grasp, synflow from Abdelfattah et al. "
        "(ICLR 2021), azn from Lee & Ham (AZ-NAS, CVPR 2024).",
        "",
    ]
    lines += [f"![rho per proxy]({png_name})", ""]
    return "\n".join(lines)


def _bar_chart_png(rows: list[Row], classes: Unit, cells: Unit) -> bytes:
    """Horizontal bars of rho per class with the bootstrap CI as whiskers, rho per cell as a dot, presets
    highlighted, best at the top."""
    ordered = sorted(rows, key=lambda row: row.per_class["spearman_rho"] or -2)
    rho = np.array([row.per_class["spearman_rho"] or 0.0 for row in ordered])
    low = np.array([row.per_class["spearman_ci_low"] or value for row, value in zip(ordered, rho, strict=False)])
    high = np.array([row.per_class["spearman_ci_high"] or value for row, value in zip(ordered, rho, strict=False)])
    cell_rho = np.array([row.per_cell["spearman_rho"] or 0.0 for row in ordered])
    figure = Figure(figsize=(7.5, 0.32 * len(ordered) + 1.2), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    colours = ["tab:orange" if row.kind == "preset" else "tab:blue" for row in ordered]
    axis.barh(range(len(ordered)), rho, xerr=np.vstack([rho - low, high - rho]), color=colours, capsize=2)
    axis.scatter(cell_rho, range(len(ordered)), color="black", marker="o", s=10, zorder=3)
    axis.set_yticks(range(len(ordered)), [row.name for row in ordered])
    for position, (value, right) in enumerate(zip(rho, high, strict=False)):
        axis.text(max(right, 0) + 0.015, position, f"{value:+.3f}", va="center", fontsize=8)
    axis.axvline(0.9, color="grey", linestyle="--", linewidth=1)
    axis.set_xlim(min(0.0, rho.min() - 0.05, cell_rho.min() - 0.05), 1.08)
    axis.set_xlabel(
        "Spearman ρ with CIFAR-10 test accuracy per class (95 % bootstrap CI); dots: per cell; orange: vote presets",
        fontsize=8,
    )
    axis.set_title(f"NAS-Bench-201, {classes.size:,} isomorphism classes ({cells.size:,} cells)")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _interval(report: dict) -> str:
    low, high = report["spearman_ci_low"], report["spearman_ci_high"]
    return "–" if low is None or high is None else f"[{low:+.3f}, {high:+.3f}]"


def _p_value(value: float | None) -> str:
    return "–" if value is None else f"{value:.1e}"


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.3f}"


def _plain(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _machine() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores"


def _commit() -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return result.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
