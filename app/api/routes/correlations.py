"""GET /v1/correlations (and /plot.png): how well each voting proxy and the vote predict the observed
accuracies of one configuration's population, as figures or as a correlation plot.

Each entry's own figures are per isomorphism class, the unit whose p-values and intervals hold (isomorphic
cells share one score, so counting each would add copies, not evidence); `per_cell` repeats them over
cells, the benchmark papers' convention, for comparison with published figures."""

import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app.api import examples
from app.api.deps import ReadSession
from app.api.routes.leaderboard import (
    ERRORS,
    PopulationDep,
    PopulationOut,
    VoteDep,
    VoteOut,
    population_out,
    vote_out,
)
from app.services.reports import Correlation, CorrelationSummary, ReportQuery, correlation_plot, correlations

router = APIRouter(prefix="/v1/correlations", tags=["reports"])
BootstrapQuery = Annotated[int, Query(ge=0, le=10_000, description="Bootstrap resamples for the 95 % CI of rho")]
SeedQuery = Annotated[int, Query(ge=0, le=2**31 - 1, description="Seed of the bootstrap")]
TopFractionQuery = Annotated[float, Query(gt=0, le=1, description="Share of architectures counted as the top")]


class CorrelationFigures(BaseModel):
    """Signed figures in the registry's direction: positive = orders architectures the right way."""

    n: int = Field(description="Units (classes or cells) with both a score and an observed accuracy")
    reason: str | None = Field(description="Why figures are null, when they are")
    spearman_rho: float | None
    spearman_p: float | None
    spearman_ci_low: float | None
    spearman_ci_high: float | None
    kendall_tau: float | None
    kendall_p: float | None
    pearson_rank_r: float | None = Field(description="Pearson r between score rank and accuracy")
    pearson_rank_p: float | None
    top_fraction: float
    top_recall: float | None = Field(description="Share of the true top fraction found in the score's top fraction")
    best_accuracy_top10: float | None
    best_accuracy_top100: float | None
    best_accuracy: float | None


class CorrelationOut(CorrelationFigures):
    """One proxy or the vote: its figures per isomorphism class (an accuracy is the mean of the class's
    members' observations) and, under `per_cell`, the same figures per cell."""

    name: str
    kind: str = Field(description="'proxy' or 'vote'")
    higher_is_better: bool
    per_cell: CorrelationFigures = Field(description="The same figures with every cell counted")


class CorrelationsOut(BaseModel):
    population: PopulationOut
    vote: VoteOut
    unit: Literal["class"] = Field(
        "class", description="Unit of each entry's own figures: one row per isomorphism class; `per_cell` has cells"
    )
    observed: int = Field(description="Isomorphism classes with an observed accuracy (of at least one member)")
    observed_cells: int = Field(description="Cells of the population with an observed accuracy")
    correlations: list[CorrelationOut]


@router.get(
    "",
    summary="Correlate proxies and the vote with observed accuracy",
    response_model=CorrelationsOut,
    responses={200: examples.json_response("One entry per voter and the vote", examples.CORRELATIONS), **ERRORS},
)
def get_correlations(
    session: ReadSession,
    selection: PopulationDep,
    vote: VoteDep,
    bootstrap: BootstrapQuery = 1000,
    seed: SeedQuery = 0,
    top_fraction: TopFractionQuery = 0.10,
) -> CorrelationsOut:
    """How well each voting proxy and the vote predict the accuracies observed (POST /v1/observations) for
    one configuration's population, chosen as for the leaderboard (`space`, `dataset`, `config`, `metric`;
    the vote by `preset`, `proxies` and `method`). Per entry: Spearman ρ with its p-value and bootstrap 95 %
    interval, Kendall τ, Pearson r of the ranks, top-fraction recall and the best accuracy among the top 10
    and 100, all signed so that positive means the score orders architectures the right way.

    Each entry's own figures are per isomorphism class (`unit: "class"`; a class's accuracy is the mean of
    its members' observations), the unit whose p-values hold; `per_cell` repeats them with every cell
    counted, the benchmark papers' convention. Figures are null, with `reason`, when too few architectures
    have both a score and an accuracy. Errors as for the leaderboard."""
    figures = {"bootstrap": bootstrap, "seed": seed, "top_fraction": top_fraction}
    query = ReportQuery(**selection.query_fields(), vote=vote, **figures)
    return correlations_out(correlations(session, query))


@router.get(
    "/plot.png",
    summary="Plot scores against observed accuracy",
    response_class=Response,
    responses={
        200: {
            "description": "A PNG image: one scatter panel per voting proxy and one for the vote",
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
        },
        **ERRORS,
    },
)
def get_correlation_plot(session: ReadSession, selection: PopulationDep, vote: VoteDep) -> Response:
    """GET /v1/correlations as a picture: for each voting proxy and the vote, the score's percentile rank
    against observed accuracy, one point per isomorphism class, with binned medians and the class-level
    Spearman ρ in the panel's title. Population and vote parameters and errors (JSON) as for
    GET /v1/correlations."""
    query = ReportQuery(**selection.query_fields(), vote=vote)
    return Response(correlation_plot(session, query), media_type="image/png")


def correlations_out(summary: CorrelationSummary) -> CorrelationsOut:
    return CorrelationsOut(
        population=population_out(summary.scored),
        vote=vote_out(summary.choice),
        observed=summary.observed_classes,
        observed_cells=summary.observed_cells,
        correlations=[_correlation_out(entry) for entry in summary.correlations],
    )


def _correlation_out(entry: Correlation) -> CorrelationOut:
    return CorrelationOut(
        name=entry.name,
        kind=entry.kind,
        higher_is_better=entry.higher_is_better,
        **_figures(entry.per_class),
        per_cell=CorrelationFigures(**_figures(entry.per_cell)),
    )


def _figures(report: dict[str, Any]) -> dict[str, Any]:
    return {key: _json_safe(value) for key, value in report.items()}


def _json_safe(value: Any) -> Any:
    """Strict JSON has no NaN: a non-finite figure is reported as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value
