"""GET /v1/correlations (and /plot.png): how well each voting proxy and the vote predict the observed
accuracies of one configuration's population, as figures or as a correlation plot."""

import math
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

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


class CorrelationOut(BaseModel):
    """Signed figures in the registry's direction: positive = orders architectures the right way."""

    name: str
    kind: str = Field(description="'proxy' or 'vote'")
    higher_is_better: bool
    n: int = Field(description="Architectures with both a score and an observed accuracy")
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


class CorrelationsOut(BaseModel):
    population: PopulationOut
    vote: VoteOut
    observed: int = Field(description="Architectures of the population with an observed accuracy")
    correlations: list[CorrelationOut]


@router.get("", response_model=CorrelationsOut, responses=ERRORS)
def get_correlations(
    session: ReadSession,
    selection: PopulationDep,
    vote: VoteDep,
    bootstrap: BootstrapQuery = 1000,
    seed: SeedQuery = 0,
    top_fraction: TopFractionQuery = 0.10,
) -> CorrelationsOut:
    figures = {"bootstrap": bootstrap, "seed": seed, "top_fraction": top_fraction}
    query = ReportQuery(**selection.query_fields(), vote=vote, **figures)
    return correlations_out(correlations(session, query))


@router.get(
    "/plot.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "One panel per proxy and the vote"}, **ERRORS},
)
def get_correlation_plot(session: ReadSession, selection: PopulationDep, vote: VoteDep) -> Response:
    query = ReportQuery(**selection.query_fields(), vote=vote)
    return Response(correlation_plot(session, query), media_type="image/png")


def correlations_out(summary: CorrelationSummary) -> CorrelationsOut:
    return CorrelationsOut(
        population=population_out(summary.scored),
        vote=vote_out(summary.choice),
        observed=summary.observed,
        correlations=[_correlation_out(entry) for entry in summary.correlations],
    )


def _correlation_out(entry: Correlation) -> CorrelationOut:
    figures = {key: _json_safe(value) for key, value in entry.report.items()}
    return CorrelationOut(name=entry.name, kind=entry.kind, higher_is_better=entry.higher_is_better, **figures)


def _json_safe(value: Any) -> Any:
    """Strict JSON has no NaN: a non-finite figure is reported as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value
