"""A zero-cost architecture search with the nasscore Python client.

Sample NAS-Bench-201 cells, score them on a nasscore server with the default vote preset (no training), keep
the best few by the vote, and only then look up how good they really are: import the benchmark's CIFAR-10
test accuracies and compare the chosen cells with as many cells picked at random and with the best cell of
the whole space.

    make serve                                    # in another terminal: the server on 127.0.0.1:8000
    .venv/bin/python examples/zero_cost_search.py # 1,000 cells at NB201's size: about 30 min on 2 CPU cores
    .venv/bin/python examples/zero_cost_search.py --cells 100 --quick   # a small network: a minute or two

Scores are stored per isomorphism class, so a second run (or another seed) reuses every score it can. The
vote ranks the classes of the whole population scored under the configuration; on a server that has scored
more than this sample, the sample is ranked by the same vote, over that larger population."""

import argparse
import csv
import json
import random
import statistics
import sys
from pathlib import Path
from typing import Any

from app.api.schemas import LeaderboardRow
from app.client import Client, NasscoreError
from search_spaces import nb201

DEFAULT_CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nb201" / "nb201_cifar10_test_acc.csv"
ACCURACY_COLUMN = "cifar10_test_acc"
# --quick: NB201's cell in a network of 4 channels and 1 cell per stage, scored on 8 images.
QUICK_CONFIG = {"batch_size": 8, "channels": 4, "cells_per_stage": 1}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    accuracies = _benchmark_accuracies(args.csv)
    draw = random.Random(args.seed)  # draws the sample, then the random choice to compare with
    cells = draw.sample(nb201.all_archs(), args.cells)
    try:
        with Client(args.url, api_key=args.api_key, timeout=300) as nasscore:
            summary = _search(nasscore, args, cells, draw)
    except NasscoreError as error:
        print(f"zero_cost_search: {error}", file=sys.stderr)
        return 1
    summary["space_best"] = max(accuracies.values())
    summary["space_size"] = len(accuracies)
    print(_report(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the nasscore server (default: %(default)s)")
    parser.add_argument("--api-key", help="key with scope write (default: $NASSCORE_API_KEY, or none)")
    parser.add_argument("--cells", type=int, default=1000, help="NB201 cells to sample (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample and of the random choice")
    parser.add_argument("--top", type=int, default=10, help="cells to choose (default: %(default)s)")
    parser.add_argument(
        "--csv", type=Path, default=DEFAULT_CSV, help=f"benchmark accuracies: index,arch,{ACCURACY_COLUMN}"
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"score a small network instead of NB201's: {QUICK_CONFIG}"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the result as JSON to PATH")
    return parser


def _benchmark_accuracies(path: Path) -> dict[str, float]:
    with path.open(newline="") as stream:
        return {row["arch"]: float(row[ACCURACY_COLUMN]) for row in csv.DictReader(stream)}


def _search(nasscore: Client, args: argparse.Namespace, cells: list[str], draw: random.Random) -> dict[str, Any]:
    nasscore.wait_ready()
    batch = nasscore.batch(cells, config=QUICK_CONFIG if args.quick else None)
    print(f"scoring {len(cells)} cells on {args.url} (batch {batch.id})", file=sys.stderr)
    scored = batch.wait(progress=True)
    if scored.failed:
        print(f"{scored.failed} cells failed to score: {scored.errors[:3]}", file=sys.stderr)

    # The search is over: only now are the accuracies looked at.
    imported = nasscore.observations.import_csv(args.csv, "cifar10", ACCURACY_COLUMN, index_column="index")
    source = args.csv.name
    board = nasscore.leaderboard(config=scored.configuration, source=source, expand="cells", limit=None)
    rows = {row.arch: row for row in board.items}
    sampled = [rows[cell] for cell in cells if cell in rows]  # all of them, unless some failed to score
    ranked = sorted(sampled, key=_by_vote)
    rank = {row.arch: position for position, row in enumerate(ranked, start=1)}
    chosen = _one_per_class(ranked, args.top)
    randomly = draw.sample(sampled, args.top)
    report = nasscore.correlations(config=scored.configuration, source=source, bootstrap=0)
    vote = next(entry for entry in report.correlations if entry.kind == "vote")
    return {
        "url": args.url,
        "cells": len(cells),
        "seed": args.seed,
        "configuration": scored.configuration,
        "vote": board.vote.model_dump(),
        "observations_imported": imported.stored,
        "chosen": [_cell(row, rank[row.arch]) for row in chosen],
        "random": [_cell(row, rank[row.arch]) for row in randomly],
        "vote_spearman_rho": vote.spearman_rho,
        "vote_classes": vote.n,
    }


def _by_vote(row: LeaderboardRow) -> tuple[float, int]:
    return (-(row.vote if row.vote is not None else float("-inf")), row.id)


def _one_per_class(ranked: list[LeaderboardRow], count: int) -> list[LeaderboardRow]:
    """The best `count` rows by the vote, one cell per isomorphism class (isomorphic cells share a score, so
    a second one would add a copy, not a candidate)."""
    chosen: dict[str, LeaderboardRow] = {}
    for row in ranked:
        chosen.setdefault(row.canonical_key, row)
        if len(chosen) == count:
            break
    return list(chosen.values())


def _cell(row: LeaderboardRow, rank: int) -> dict[str, Any]:
    """A pick: its rank by the vote among the sampled cells, and its benchmark accuracy."""
    return {"arch": row.arch, "rank": rank, "accuracy": row.accuracy}


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _figures(picks: list[dict[str, Any]]) -> list[str]:
    """Top-1, best and mean accuracy of picks listed best first."""
    accuracies = [pick["accuracy"] for pick in picks if pick["accuracy"] is not None]
    if not accuracies:
        return ["-", "-", "-"]
    return [_percent(picks[0]["accuracy"]), _percent(max(accuracies)), _percent(statistics.mean(accuracies))]


def _report(summary: dict[str, Any]) -> str:
    vote, top, seed = summary["vote"], len(summary["chosen"]), summary["seed"]
    rho = summary["vote_spearman_rho"]
    table = [
        ["CIFAR-10 test accuracy (%)", "top-1", f"best of {top}", f"mean of {top}"],
        [f"zero-cost: vote top {top}", *_figures(summary["chosen"])],
        [f"random {top} (seed {seed})", *_figures(summary["random"])],
        ["best cell of the space", _percent(summary["space_best"]), "", ""],
    ]
    return "\n".join(
        [
            f"{summary['cells']:,} NB201 cells (seed {seed}) scored on {summary['url']}, configuration "
            f"{summary['configuration'][:12]}; vote: preset {vote['preset']} ({vote['method']}) over "
            + ", ".join(vote["voters"]),
            f"vote vs CIFAR-10 test accuracy over the {summary['vote_classes']:,} scored isomorphism classes: "
            f"Spearman rho {'-' if rho is None else format(rho, '+.3f')}",
            "",
            *(f"{row[0]:<28}  {row[1]:>6}  {row[2]:>10}  {row[3]:>10}".rstrip() for row in table),
            f"({summary['space_size']:,} cells in the space)",
            "",
            f"the {top} chosen cells: rank by the vote among the {summary['cells']:,} sampled, accuracy, cell",
            *(f"  {pick['rank']:>5}  {_percent(pick['accuracy']):>6}  {pick['arch']}" for pick in summary["chosen"]),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
