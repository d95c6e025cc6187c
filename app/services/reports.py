"""Reports on a scored population: how well each proxy and the vote predict the observed accuracies
(figures and a plot), and exports of the scores as CSV or as NASLib's zero-cost benchmark JSON.

Everything here works on the leaderboard's population snapshot (app.services.population), so a report,
the plot, the export and the leaderboard always describe the same architectures under the same
configuration. The vote is the leaderboard's vote over the whole population; the correlations then use
the architectures that also have an observation, so "the vote ranked #1" means the same thing on every
page.

Correlations come in two units. Per isomorphism class (the leaderboard's default rows) is the one whose
significance means something: isomorphic cells share one score, so counting each of them adds copies,
not evidence, and shrinks p-values and bootstrap intervals. Per cell is the benchmark papers' convention,
kept for comparison with published figures. The plot draws classes.
"""

import json
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.reports.export import export_csv, export_naslib
from app.reports.plots import Panel, correlation_plot_png
from app.services.errors import InvalidInput
from app.services.observations import DEFAULT_METRIC
from app.services.population import (
    Population,
    ScoredPopulation,
    class_population,
    load_scored_population,
    require_scored,
)
from app.services.spaces import lookup_space
from app.services.votes import VoteChoice, VoteRequest, check_vote_request, choose_vote, population_vote
from scorers import get_proxy
from scorers.evaluation import correlation_report
from search_spaces import SPACES

VOTE = "vote"
# Bounds on an uncached correlation report (measured on NB201, docs in GET /v1/correlations): a request's
# resamples, and resamples x observed units x entries, which admits the default 1000 resamples over the
# whole of NB201 (6,466 classes + 15,625 cells) for the default vote's 7 entries, and no more.
MAX_BOOTSTRAP = 2000
MAX_BOOTSTRAP_WORK = 1000 * (6_466 + 15_625) * 7
EXPORT_FORMATS = ("csv", "naslib")


@dataclass(frozen=True)
class ReportQuery:
    space: str = "nb201"
    dataset: str = "cifar10"
    vote: VoteRequest = VoteRequest()
    config: str | None = None
    metric: str = DEFAULT_METRIC
    source: str | None = None
    bootstrap: int = 1000
    seed: int = 0
    top_fraction: float = 0.10


@dataclass(frozen=True)
class Correlation:
    """`correlation_report` figures of one proxy (kind "proxy") or of the vote (kind "vote"), over
    isomorphism classes and over cells."""

    name: str
    kind: str
    higher_is_better: bool
    per_class: dict[str, Any]
    per_cell: dict[str, Any]


@dataclass(frozen=True)
class CorrelationSummary:
    scored: ScoredPopulation
    choice: VoteChoice
    observed_classes: int
    observed_cells: int
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


def correlations(session: Session, query: ReportQuery, max_bootstrap_work: int | None = None) -> CorrelationSummary:
    """Per voting proxy and for the vote: rank correlations and top-k figures against observed accuracy,
    over isomorphism classes and over cells. `max_bootstrap_work` bounds resamples x observed units x
    entries (a server's bound, see MAX_BOOTSTRAP_WORK; None for a local run)."""
    scored, choice = _population_and_vote(session, query)
    cells = scored.population
    classes = class_population(cells)
    if max_bootstrap_work is not None:
        units = (_observed(classes) + _observed(cells)) * (len(choice.voters) + 1)
        _check_bootstrap_work(query.bootstrap, units, max_bootstrap_work)
    settings = (query.bootstrap, query.seed, query.top_fraction)
    entries = [
        Correlation(
            name=by_class.name,
            kind=by_class.kind,
            higher_is_better=by_class.higher_is_better,
            per_class=_report(classes, by_class, settings),
            per_cell=_report(cells, by_cell, settings),
        )
        for by_class, by_cell in zip(_columns(classes, choice), _columns(cells, choice), strict=True)
    ]
    return CorrelationSummary(scored, choice, _observed(classes), _observed(cells), entries)


def _check_bootstrap_work(bootstrap: int, units: int, max_work: int) -> None:
    """An uncached report's cost is its bootstrap: `units` (observed classes and cells, times the entries)
    resampled `bootstrap` times. Refused past `max_work` (422), with the most resamples this report allows."""
    if bootstrap * units <= max_work:
        return
    raise InvalidInput(
        "bootstrap",
        f"{bootstrap} resamples of this population ({units:,} observed units over all entries) exceed this "
        f"server's bound on a report's work; ask for at most {max_work // units} (or 0: no intervals)",
    )


def correlation_plot(session: Session, query: ReportQuery) -> bytes:
    """PNG with one panel per voting proxy and one for the vote: score rank against observed accuracy."""
    return correlation_plot_png(correlation_panels(session, query), point_label="isomorphism class")


def correlation_panels(session: Session, query: ReportQuery) -> list[Panel]:
    """The plot's panels: one point per isomorphism class, so a large class is not drawn as a heap of
    identical points that outweighs the rest."""
    scored, choice = _population_and_vote(session, query)
    classes = class_population(scored.population)
    settings = (0, query.seed, query.top_fraction)
    return [
        Panel(
            name=vote_label(choice) if column.kind == VOTE else column.name,
            score=column.score,
            accuracy=classes.accuracy,
            rho=_report(classes, column, settings)["spearman_rho"],
            higher_is_better=column.higher_is_better,
        )
        for column in _columns(classes, choice)
    ]


def export_population(
    session: Session,
    *,
    space: str = "nb201",
    dataset: str = "cifar10",
    export_format: str = "csv",
    config: str | None = None,
    metric: str = DEFAULT_METRIC,
    source: str | None = None,
    proxies: Sequence[str] | None = None,
) -> ExportFile:
    """Every cell of the population (ascending id) with its isomorphism class, the configuration's
    fingerprint, its scores, timings and accuracy: cells, so a consumer can pick either unit."""
    if export_format not in EXPORT_FORMATS:
        raise InvalidInput("format", f"unknown export format {export_format!r}; known: {', '.join(EXPORT_FORMATS)}")
    searched = lookup_space(space)
    if export_format == "naslib" and searched.naslib_encoding(searched.example) is None:
        with_encoding = [name for name, known in SPACES.items() if known.naslib_encoding(known.example) is not None]
        raise InvalidInput(
            "format", f"NASLib has no encoding of {space} architectures; it has one for {', '.join(with_encoding)}"
        )
    scored = load_scored_population(session, space, dataset, config, metric, source)
    population = scored.population
    columns = population.proxies if proxies is None else require_scored(population, proxies, scored.selection.config)
    rows = _export_rows(population, columns, scored.selection.config.fingerprint)
    stem = f"nasscore-{space}-{dataset}-{scored.selection.config.fingerprint[:12]}"
    if export_format == "csv":
        return ExportFile(export_csv(rows, columns), "text/csv", f"{stem}.csv")
    try:
        document = export_naslib(rows, dataset, searched.naslib_encoding)
    except ValueError as error:
        raise InvalidInput("dataset", str(error)) from None
    return ExportFile(json.dumps(document, allow_nan=False), "application/json", f"{stem}.json")


def vote_label(choice: VoteChoice) -> str:
    """`vote (best, log_rank)`, or `vote (mean_rank)` for a custom list of voters."""
    return f"{VOTE} ({', '.join(filter(None, (choice.preset, choice.method)))})"


def _population_and_vote(session: Session, query: ReportQuery) -> tuple[ScoredPopulation, VoteChoice]:
    check_vote_request(query.vote)
    scored = load_scored_population(session, query.space, query.dataset, query.config, query.metric, query.source)
    return scored, choose_vote(scored.population, query.vote, scored.selection.config)


def _observed(population: Population) -> int:
    return int(np.isfinite(population.accuracy).sum())


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


def _export_rows(population: Population, proxies: Sequence[str], fingerprint: str) -> list[dict[str, Any]]:
    columns = [population.proxies.index(proxy) for proxy in proxies]
    return [
        {
            "arch": str(population.archs[row]),
            "canonical_key": str(population.canonical_keys[row]),
            "config_fingerprint": fingerprint,
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
