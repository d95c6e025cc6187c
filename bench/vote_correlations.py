"""Spearman rho of each proxy and of each vote method on a NAS-Bench-201 CIFAR-10 sample.

Scores a seeded sample of cells with the shared CIFAR-10 batch, then reports, per proxy and per vote
method, the correlation with the shared test accuracies, next to the published single-proxy figures
(Abdelfattah et al., ICLR 2021, NAS-Bench-201 CIFAR-10: snip 0.60, grasp 0.51, synflow 0.74).

    .venv/bin/python -m bench.vote_correlations --sample 500 [--plot rho.png] [--scores scores.csv]
"""

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch

from app.reports.export import export_csv
from app.reports.plots import Panel, correlation_plot_png
from scorers import get_proxy, score_model_detailed
from scorers.calibration import load_calibration_batch
from scorers.device import resolve_device
from scorers.evaluation import correlation_report
from scorers.voting import DEFAULT_VOTERS, VOTE_METHODS, vote
from search_spaces.nb201 import build_model

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PUBLISHED_RHO = {"snip": 0.60, "grasp": 0.51, "synflow": 0.74}


def sample_cells(count: int, seed: int) -> tuple[list[str], np.ndarray]:
    """A seeded sample of (arch, test accuracy) from the shared NAS-Bench-201 table."""
    with (SHARED / "nb201" / "nb201_cifar10_test_acc.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    picks = np.random.default_rng(seed).choice(len(rows), size=count, replace=False)
    return [rows[i]["arch"] for i in picks], np.array([float(rows[i]["cifar10_test_acc"]) for i in picks])


def score_cells(archs: list[str], args: argparse.Namespace) -> dict[str, list[tuple[float, float]]]:
    """Per proxy, (value, seconds) for each cell, every network initialised from the same seed."""
    device = resolve_device(args.device)
    batch = load_calibration_batch(
        "cifar10", SHARED / "cifar10" / "cifar10_train_3805.npz", batch_size=args.batch_size, seed=args.seed
    )
    inputs, targets = batch.inputs.to(device), batch.targets.to(device)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in args.proxies}
    started = time.perf_counter()
    for done, arch in enumerate(archs, start=1):
        torch.manual_seed(args.seed)
        model = build_model(arch).to(device)
        for name, result in score_model_detailed(model, inputs, targets, args.proxies).items():
            results[name].append((result.value, result.seconds))
        if done % 50 == 0:
            print(f"  scored {done}/{len(archs)} cells in {time.perf_counter() - started:.0f} s", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--proxies", nargs="+", default=list(DEFAULT_VOTERS))
    parser.add_argument("--plot", type=Path, help="write the correlation plot PNG here")
    parser.add_argument("--scores", type=Path, help="write the raw scores as CSV here")
    args = parser.parse_args()

    archs, accuracy = sample_cells(args.sample, args.seed)
    results = score_cells(archs, args)
    scores = {name: np.array([value for value, _ in pairs]) for name, pairs in results.items()}
    directions = {name: get_proxy(name).higher_is_better for name in args.proxies}
    columns = {name: (scores[name], directions[name]) for name in args.proxies}
    columns |= {f"vote:{method}": (vote(scores, directions, method), True) for method in VOTE_METHODS}

    print(f"n = {args.sample} NAS-Bench-201 cells, CIFAR-10 test accuracy, seed {args.seed}")
    print(f"{'':<16}{'rho':>7}{'95% CI':>19}{'tau':>7}{'top10%':>8}{'best@10':>9}{'best@100':>9}{'published':>10}")
    panels = []
    for name, (values, higher_is_better) in columns.items():
        report = correlation_report(values, accuracy, higher_is_better=higher_is_better)
        published = PUBLISHED_RHO.get(name)
        print(
            f"{name:<16}{report['spearman_rho']:>+7.3f}"
            f"   [{report['spearman_ci_low']:+.3f}, {report['spearman_ci_high']:+.3f}]"
            f"{report['kendall_tau']:>+7.3f}{report['top_recall']:>8.2f}"
            f"{report['best_accuracy_top10']:>9.2f}{report['best_accuracy_top100']:>9.2f}"
            f"{'' if published is None else f'{published:+.2f}':>10}"
        )
        panels.append(Panel(name, values, accuracy, report["spearman_rho"], higher_is_better))
    print(f"best accuracy in the sample: {accuracy.max():.2f}")
    if args.plot:
        args.plot.write_bytes(correlation_plot_png(panels))
    if args.scores:
        rows = [
            {"arch": arch, "scores": {name: results[name][i] for name in args.proxies}, "accuracy": accuracy[i]}
            for i, arch in enumerate(archs)
        ]
        args.scores.write_text(export_csv(rows, args.proxies))


if __name__ == "__main__":
    main()
