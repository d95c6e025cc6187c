"""How well every proxy and every vote preset predicts NAS-Bench-201 CIFAR-10 test accuracy.

Scores a seeded sample of cells (or all of them) with the shared CIFAR-10 batch through the normal batch
path (`nasscore batch`: its database, worker pool and resume), imports the shared accuracies
(`nasscore observations import`), and writes a Markdown table (Spearman rho with a bootstrap 95 % CI,
Kendall tau, top-10 % recall, seconds per cell) and a PNG of the same figures. Re-running resumes the
scoring, so an interrupted run loses nothing.

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
from app.services.leaderboard import load_scored_population
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
    report: dict
    seconds_per_cell: float


def main() -> None:
    args = _parse_arguments()
    home = args.home or ROOT / ".nasscore" / f"bench-correlation-{'all' if args.all else args.seed}"
    _run(_batch_command(args, home))
    _run(["observations", "import", str(ACCURACIES), "--dataset", "cifar10", "--acc-col", "cifar10_test_acc",
          "--index-col", "index", "--home", str(home)])
    rows, size = _evaluate(home, args)
    command = " ".join(["python -m bench.correlation", *sys.argv[1:]])
    stem = args.out / f"correlation_nb201_cifar10_{'all' if args.all else f'n{size}_seed{args.seed}'}"
    stem.with_suffix(".md").write_text(_markdown(rows, size, args, command, stem.name + ".png"))
    stem.with_suffix(".png").write_bytes(_bar_chart_png(rows, size))
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
    return ["batch", "nb201", *selection, "--data", str(CALIBRATION), "--proxies", *args.proxies,
            "--workers", str(args.workers), "--home", str(home)]


def _run(argv: list[str]) -> None:
    status = nasscore(argv)
    if status != 0:
        raise SystemExit(f"nasscore {argv[0]} failed with status {status}")


def _evaluate(home: Path, args: argparse.Namespace) -> tuple[list[Row], int]:
    """Figures of each proxy and each preset over exactly the sampled cells (the database also holds the
    scores it recorded for their isomorphic twins); a preset is evaluated when all its proxies were scored."""
    database = Database(f"sqlite:///{(home / 'nasscore.db').resolve()}")
    try:
        with database.read_session() as session:
            population = load_scored_population(session, "nb201", "cifar10").population
    finally:
        database.dispose()
    sample = nb201.all_archs() if args.all else sample_architectures("nb201", args.sample, args.seed)
    rows = np.flatnonzero(np.isin(population.archs, sample))
    accuracy = population.accuracy[rows]
    scores = {name: population.column(name)[rows] for name in args.proxies}
    seconds = {
        name: float(np.nanmean(population.seconds[rows, population.proxies.index(name)])) for name in args.proxies
    }
    directions = {name: get_proxy(name).higher_is_better for name in args.proxies}
    results = [
        Row(name, "proxy", name, _report(scores[name], accuracy, directions[name], args.bootstrap), seconds[name])
        for name in args.proxies
    ]
    for preset in PRESETS.values():
        if set(preset.proxies) <= set(args.proxies):
            votes = vote({name: scores[name] for name in preset.proxies}, directions, preset.method)
            voters = f"{' + '.join(preset.proxies)} ({preset.method})"
            cost = sum(seconds[name] for name in preset.proxies)
            results.append(Row(preset.name, "preset", voters, _report(votes, accuracy, True, args.bootstrap), cost))
    return results, rows.size


def _report(score: np.ndarray, accuracy: np.ndarray, higher_is_better: bool, bootstrap: int) -> dict:
    return correlation_report(score, accuracy, higher_is_better=higher_is_better, bootstrap=bootstrap)


def _markdown(rows: list[Row], size: int, args: argparse.Namespace, command: str, png_name: str) -> str:
    ordered = sorted(rows, key=lambda row: (row.kind != "preset", -(row.report["spearman_rho"] or -2)))
    lines = [
        f"# Zero-cost proxies on NAS-Bench-201 CIFAR-10 ({size:,} cells)",
        "",
        "Generated by the harness; do not edit by hand. Reproduce with",
        "",
        f"    .venv/bin/{command}",
        "",
        f"Sample: {'all cells' if args.all else f'{size:,} cells drawn with seed {args.seed}'}; calibration: "
        "64 images of the shared CIFAR-10 training subset, configuration seed 0, scored through `nasscore batch` "
        f"on {_machine()}; accuracy: the benchmark's CIFAR-10 test accuracy (200 epochs). Commit {_commit()}, "
        f"{time.strftime('%Y-%m-%d')}. Default preset: `{DEFAULT_PRESET}`.",
        "",
        "Signed figures: positive = orders cells the right way in the proxy's registered direction. "
        "Seconds per cell are CPU worker wall time, shared passes split equally between the proxies using them; "
        "a preset's time is the sum of its proxies'.",
        "",
        "| name | kind | voters | Spearman ρ | 95 % CI | Kendall τ | top-10 % recall | s / cell | published ρ |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in ordered:
        report = row.report
        interval = f"[{report['spearman_ci_low']:+.3f}, {report['spearman_ci_high']:+.3f}]" \
            if report["spearman_ci_low"] is not None else "–"
        published = f"{PUBLISHED_RHO[row.name]:.2f}" if row.name in PUBLISHED_RHO else ""
        lines.append(
            f"| {row.name} | {row.kind} | {row.voters if row.kind == 'preset' else ''} | "
            f"{_signed(report['spearman_rho'])} | {interval} | {_signed(report['kendall_tau'])} | "
            f"{_plain(report['top_recall'])} | {row.seconds_per_cell:.3f} | {published} |"
        )
    lines += ["", "Published ρ over all 15,625 cells: snip, grasp, synflow from Abdelfattah et al. (ICLR 2021), "
              "azn from Lee & Ham (AZ-NAS, CVPR 2024).", ""]
    lines += [f"![rho per proxy]({png_name})", ""]
    return "\n".join(lines)


def _bar_chart_png(rows: list[Row], size: int) -> bytes:
    """Horizontal bars of rho with the bootstrap CI as whiskers, presets highlighted, best at the top."""
    ordered = sorted(rows, key=lambda row: row.report["spearman_rho"] or -2)
    rho = np.array([row.report["spearman_rho"] or 0.0 for row in ordered])
    low = np.array([row.report["spearman_ci_low"] or value for row, value in zip(ordered, rho)])
    high = np.array([row.report["spearman_ci_high"] or value for row, value in zip(ordered, rho)])
    figure = Figure(figsize=(7.5, 0.32 * len(ordered) + 1.2), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    colours = ["tab:orange" if row.kind == "preset" else "tab:blue" for row in ordered]
    axis.barh(range(len(ordered)), rho, xerr=np.vstack([rho - low, high - rho]), color=colours, capsize=2)
    axis.set_yticks(range(len(ordered)), [row.name for row in ordered])
    for position, (value, right) in enumerate(zip(rho, high)):
        axis.text(max(right, 0) + 0.015, position, f"{value:+.3f}", va="center", fontsize=8)
    axis.axvline(0.9, color="grey", linestyle="--", linewidth=1)
    axis.set_xlim(min(0.0, rho.min() - 0.05), 1.08)
    axis.set_xlabel("Spearman ρ with CIFAR-10 test accuracy (95 % bootstrap CI); orange: vote presets")
    axis.set_title(f"NAS-Bench-201, {size:,} cells")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


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
