"""GET /v1/correlations (and /plot.png): how well each voting proxy and the vote predict the observed
accuracies of one configuration's population, as figures or as a correlation plot.

Each entry's own figures are per isomorphism class, the unit whose p-values and intervals hold (isomorphic
cells share one score, so counting each would add copies, not evidence); `per_cell` repeats them over
cells, the benchmark papers' convention, for comparison with published figures."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from app.api import examples
from app.api.auth import require_read
from app.api.deps import PopulationDep, ReadSession, VoteDep
from app.api.schemas import CorrelationsOut
from app.api.views import correlations_out
from app.db.models import MAX_DATABASE_INTEGER
from app.services.reports import MAX_BOOTSTRAP, MAX_BOOTSTRAP_WORK, ReportQuery, correlation_plot, correlations

router = APIRouter(
    prefix="/v1/correlations",
    tags=["reports"],
    dependencies=[Depends(require_read)],
    responses=examples.error_responses(*examples.READ_ERRORS),
)
BootstrapQuery = Annotated[
    int,
    Query(
        ge=0,
        le=MAX_BOOTSTRAP,
        description="Bootstrap resamples for the 95 % CI of rho; fewer on large populations: resamples x observed "
        f"classes and cells x entries is at most {MAX_BOOTSTRAP_WORK:,} (the default over all of NB201)",
    ),
]
SeedQuery = Annotated[int, Query(ge=0, le=MAX_DATABASE_INTEGER, description="Seed of the bootstrap")]
TopFractionQuery = Annotated[float, Query(gt=0, le=1, description="Share of architectures counted as the top")]


@router.get(
    "",
    summary="Correlate proxies and the vote with observed accuracy",
    response_model=CorrelationsOut,
    responses={
        200: examples.json_response("One entry per voter and the vote", examples.CORRELATIONS),
        **examples.error_responses(404, 422),
    },
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
    have both a score and an accuracy. Errors as for the leaderboard.

    The bootstrap is a report's cost, bounded (see `bootstrap`) so that a few uncached reports cannot occupy
    the server: past the bound, 422 names `bootstrap` with the most resamples this population allows.
    Computed reports are kept while the population is unchanged."""
    query = ReportQuery(
        **selection.query_fields(), vote=vote, bootstrap=bootstrap, seed=seed, top_fraction=top_fraction
    )
    return correlations_out(correlations(session, query, max_bootstrap_work=MAX_BOOTSTRAP_WORK))


@router.get(
    "/plot.png",
    summary="Plot scores against observed accuracy",
    response_class=Response,
    responses={
        200: {
            "description": "A PNG image: one scatter panel per voting proxy and one for the vote",
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
        },
        **examples.error_responses(404, 422),
    },
)
def get_correlation_plot(session: ReadSession, selection: PopulationDep, vote: VoteDep) -> Response:
    """GET /v1/correlations as a picture: for each voting proxy and the vote, the score's percentile rank
    against observed accuracy, one point per isomorphism class, with binned medians and the class-level
    Spearman ρ in the panel's title. Population and vote parameters and errors (JSON) as for
    GET /v1/correlations."""
    query = ReportQuery(**selection.query_fields(), vote=vote)
    return Response(correlation_plot(session, query), media_type="image/png")
