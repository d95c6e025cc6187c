"""`nasscore correlate`: how well each proxy and the vote predict observed accuracy, as a table (and with
`--plot FILE.png`, the correlation plot), from the local database or a running service (`--server URL`).

The table puts both units side by side: per isomorphism class first (its n, p-values and CI are the ones
that hold), then per cell (the benchmark papers' convention, to compare with published figures)."""

import argparse
from pathlib import Path
from typing import Any

from app.cli._common import format_table, number
from app.cli.leaderboard import (
    CommandError,
    add_population_arguments,
    fetch,
    population_lines,
    population_params,
    query_fields,
    run_reporting,
    vote_line,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "correlate",
        help="correlate proxy scores and the vote with observed accuracies",
        description="Spearman rho (with a bootstrap 95 % CI), Kendall tau, Pearson r of score rank, and top-k "
        "figures of each voting proxy and of the vote against observed accuracies, over the architectures "
        "of one configuration that have an observation: per isomorphism class (significance) and per cell "
        "(as the benchmark papers count).",
    )
    add_population_arguments(parser)
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples for the CI of rho")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--top-fraction", type=float, default=0.10, help="share counted as the top")
    parser.add_argument(
        "--plot", type=Path, metavar="FILE.png", help="also write the correlation plot here (default: no plot)"
    )
    parser.set_defaults(handler=_correlate)


def _correlate(args: argparse.Namespace) -> int:
    return run_reporting(lambda: _print_correlations(args))


def _print_correlations(args: argparse.Namespace) -> int:
    params = population_params(args)
    report_params = params | {"bootstrap": args.bootstrap, "seed": args.seed, "top_fraction": args.top_fraction}
    summary = fetch(
        args,
        lambda client: client.correlations(**report_params).model_dump(mode="json"),
        lambda session: _local_correlations(session, args),
    )
    print("\n".join(population_lines(summary["population"])))
    print(
        f"{summary['observed_cells']:,} of them ({summary['observed']:,} isomorphism classes) have an observed "
        f"{summary['population']['metric']}; {vote_line(summary['vote'])}"
    )
    print("per isomorphism class (n = classes; p and CI hold here), then per cell (as published figures count):")
    print(format_table(*_correlation_table(summary), left=("name",)))
    for entry in summary["correlations"]:
        if entry["reason"]:
            print(f"{entry['name']} per class: {entry['reason']}")
        if entry["per_cell"]["reason"]:
            print(f"{entry['name']} per cell: {entry['per_cell']['reason']}")
    if args.plot:
        _write_plot(args, params)
    return 0


def _local_correlations(session: Any, args: argparse.Namespace) -> dict[str, Any]:
    from app.api.views import correlations_out
    from app.services.reports import correlations

    return correlations_out(correlations(session, _report_query(args))).model_dump(mode="json")


def _report_query(args: argparse.Namespace) -> Any:
    from app.services.errors import InvalidInput
    from app.services.reports import ReportQuery

    if args.bootstrap < 0:
        raise InvalidInput("--bootstrap", f"must be at least 0, got {args.bootstrap}")
    return ReportQuery(**query_fields(args), bootstrap=args.bootstrap, seed=args.seed, top_fraction=args.top_fraction)


def _write_plot(args: argparse.Namespace, params: dict[str, Any]) -> None:
    from app.services.reports import correlation_plot

    query = _report_query(args)
    png = fetch(
        args, lambda client: client.correlation_plot(**params), lambda session: correlation_plot(session, query)
    )
    if not isinstance(png, bytes) or not png.startswith(PNG_SIGNATURE):
        raise CommandError("the server did not answer with a PNG image")
    try:
        args.plot.write_bytes(png)
    except OSError as error:
        raise CommandError(f"cannot write {args.plot}: {error.strerror}") from None
    print(f"wrote the correlation plot to {args.plot}")


def _correlation_table(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    top = f"top{round(100 * summary['correlations'][0]['top_fraction'])}%" if summary["correlations"] else "top"
    headers = [
        "name",
        "classes",
        "rho",
        "95% CI",
        "p",
        "tau",
        "r(rank)",
        top,
        "best@10",
        "best@100",
        "best",
        "cells",
        "cell rho",
        "cell 95% CI",
        "cell tau",
    ]
    rows = [
        [
            entry["name"] if entry["kind"] == "proxy" else f"vote ({summary['vote']['method']})",
            f"{entry['n']:,}",
            number(entry["spearman_rho"], "+.3f"),
            _interval(entry["spearman_ci_low"], entry["spearman_ci_high"]),
            number(entry["spearman_p"], ".1e"),
            number(entry["kendall_tau"], "+.3f"),
            number(entry["pearson_rank_r"], "+.3f"),
            number(entry["top_recall"], ".3f"),
            number(entry["best_accuracy_top10"], ".2f"),
            number(entry["best_accuracy_top100"], ".2f"),
            number(entry["best_accuracy"], ".2f"),
            f"{entry['per_cell']['n']:,}",
            number(entry["per_cell"]["spearman_rho"], "+.3f"),
            _interval(entry["per_cell"]["spearman_ci_low"], entry["per_cell"]["spearman_ci_high"]),
            number(entry["per_cell"]["kendall_tau"], "+.3f"),
        ]
        for entry in summary["correlations"]
    ]
    return headers, rows


def _interval(low: float | None, high: float | None) -> str:
    return "-" if low is None or high is None else f"[{low:+.3f}, {high:+.3f}]"
