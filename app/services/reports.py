"""Reports on a scored population: how well each proxy and the vote predict the observed accuracies
(figures and a plot), and exports of the scores as CSV or as NASLib's zero-cost benchmark JSON.

Everything here works on the leaderboard's population snapshot, so a report, the plot, the export and
the leaderboard always describe the same architectures under the same configuration. The vote is the
leaderboard's vote over the whole population; the correlations then use the architectures that also
have an observation, so "the vote ranked #1" means the same thing on every page.
"""

import json
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.reports.export import export_csv, export_naslib
from app.reports.plots import Panel, correlation_plot_png
from app.services.errors import InvalidInput
from app.services.leaderboard import (
    Population,
    ScoredPopulation,
    VoteChoice,
    VoteRequest,
    check_vote_request,
    choose_vote,
    load_scored_population,
    population_vote,
    require_scored,
)
from app.services.observations import DEFAULT_METRIC
from scorers import get_proxy
from scorers.evaluation import correlation_report

VOTE = "vote"
EXPORT_FORMATS = ("csv", "naslib")
NASLIB_SPACES = ("nb201",)


@dataclass(frozen=True)
class ReportQuery:
    space: str = "nb201"
    dataset: str = "cifar10"
    vote: VoteRequest = VoteRequest()
    config: str | None = None
    metric: str = DEFAULT_METRIC
    bootstrap: int = 1000
    seed: int = 0
    top_fraction: float = 0.10


@dataclass(frozen=True)
class Correlation:
    """`correlation_report` figures of one proxy (kind "proxy") or of the vote (kind "vote")."""

    name: str
    kind: str
    higher_is_better: bool
    report: dict[str, Any]


@dataclass(frozen=True)
class CorrelationSummary:
    scored: ScoredPopulation
    choice: VoteChoice
    observed: int
    correlations: list[Correlation]


@dataclass(frozen=True)
class _Column:
    name: str
    kind: str
    memo_key: Hashable
    score: np.ndarray
    higher_is_better: bool


@dataclass(frozen=True)
class ExportFile:
    content: str
    media_type: str
    filename: str


def correlations(session: Session, query: ReportQuery) -> CorrelationSummary:
    """Per voting proxy and for the vote: rank correlations and top-k figures against observed accuracy."""
    check_vote_request(query.vote)
    scored = load_scored_population(session, query.space, query.dataset, query.config, query.metric)
    population = scored.population
    choice = choose_vote(population, query.vote, scored.selection.config)
    settings = (query.bootstrap, query.seed, query.top_fraction)
    entries = [
        Correlation(column.name, column.kind, column.higher_is_better, _report(population, column, settings))
        for column in _columns(population, choice)
    ]
    observed = int(np.isfinite(population.accuracy).sum())
    return CorrelationSummary(scored, choice, observed, entries)


def correlation_plot(session: Session, query: ReportQuery) -> bytes:
    """PNG with one panel per voting proxy and one for the vote: score rank against observed accuracy."""
    summary = correlations(session, replace(query, bootstrap=0))
    population = summary.scored.population
    columns = _columns(population, summary.choice)
    panels = [
        Panel(
            name=vote_label(summary.choice) if column.kind == VOTE else column.name,
            score=column.score,
            accuracy=population.accuracy,
            rho=entry.report["spearman_rho"],
            higher_is_better=column.higher_is_better,
        )
        for column, entry in zip(columns, summary.correlations, strict=True)
    ]
    return correlation_plot_png(panels)


def export_population(
    session: Session,
    *,
    space: str = "nb201",
    dataset: str = "cifar10",
    export_format: str = "csv",
    config: str | None = None,
    metric: str = DEFAULT_METRIC,
    proxies: Sequence[str] | None = None,
) -> ExportFile:
    """Every architecture of the population (ascending id) with its scores, timings and accuracy."""
    if export_format not in EXPORT_FORMATS:
        raise InvalidInput("format", f"unknown export format {export_format!r}; known: {', '.join(EXPORT_FORMATS)}")
    if export_format == "naslib" and space not in NASLIB_SPACES:
        raise InvalidInput("format", f"NASLib's encoding covers {', '.join(NASLIB_SPACES)} only, not {space!r}")
    scored = load_scored_population(session, space, dataset, config, metric)
    population = scored.population
    columns = population.proxies if proxies is None else require_scored(population, proxies, scored.selection.config)
    rows = _export_rows(population, columns)
    stem = f"nasscore-{space}-{dataset}-{scored.selection.config.fingerprint[:12]}"
    if export_format == "csv":
        return ExportFile(export_csv(rows, columns), "text/csv", f"{stem}.csv")
    try:
        document = export_naslib(rows, dataset)
    except ValueError as error:
        raise InvalidInput("dataset", str(error)) from None
    return ExportFile(json.dumps(document, allow_nan=False), "application/json", f"{stem}.json")


def vote_label(choice: VoteChoice) -> str:
    """`vote (best, log_rank)`, or `vote (mean_rank)` for a custom list of voters."""
    return f"{VOTE} ({', '.join(filter(None, (choice.preset, choice.method)))})"


def _columns(population: Population, choice: VoteChoice) -> list[_Column]:
    """Each voting proxy, then the vote."""
    columns = [
        _Column(name, "proxy", ("proxy", name), population.column(name), get_proxy(name).higher_is_better)
        for name in choice.voters
    ]
    votes = population_vote(population, choice.voters, choice.method)
    columns.append(_Column(VOTE, VOTE, (VOTE, choice.voters, choice.method), votes, True))
    return columns


def _report(population: Population, column: _Column, settings: tuple[int, int, float]) -> dict[str, Any]:
    """Memoised on the snapshot: a bootstrap over thousands of architectures costs about a second."""
    bootstrap, seed, top_fraction = settings

    def compute() -> dict[str, Any]:
        try:
            return correlation_report(
                column.score,
                population.accuracy,
                higher_is_better=column.higher_is_better,
                bootstrap=bootstrap,
                seed=seed,
                top_fraction=top_fraction,
            )
        except ValueError as error:
            raise InvalidInput("top_fraction", str(error)) from None

    return population.memo(("correlation", column.memo_key, settings), compute)


def _export_rows(population: Population, proxies: Sequence[str]) -> list[dict[str, Any]]:
    columns = [population.proxies.index(proxy) for proxy in proxies]
    return [
        {
            "arch": str(population.archs[row]),
            "scores": {
                population.proxies[column]: (
                    _number_or_none(population.values[row, column]),
                    _number_or_none(population.seconds[row, column]),
                )
                for column in columns
                if population.present[row, column]
            },
            "accuracy": _number_or_none(population.accuracy[row]),
        }
        for row in range(population.size)
    ]


def _number_or_none(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
