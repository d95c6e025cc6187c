"""GET /v1/leaderboard: one configuration's scored population ranked by the rank vote or by one proxy,
with every proxy score, the vote, its rank and percentile, and the observed accuracy where known; one row
per isomorphism class (with its members) unless `expand=cells` lists every cell."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.api import examples
from app.api.auth import require_read
from app.api.deps import PageDep, PopulationDep, ReadSession, VoteDep
from app.api.schemas import LeaderboardOut
from app.api.views import leaderboard_out
from app.services.leaderboard import RANK_BY_VOTE, LeaderboardQuery, leaderboard

router = APIRouter(
    prefix="/v1",
    tags=["reports"],
    dependencies=[Depends(require_read)],
    responses=examples.error_responses(*examples.READ_ERRORS),
)


@router.get(
    "/leaderboard",
    summary="Rank architectures by the vote",
    response_model=LeaderboardOut,
    responses={
        200: examples.json_response("A page of the ranking", examples.LEADERBOARD),
        **examples.error_responses(404, 422),
    },
)
def get_leaderboard(
    session: ReadSession,
    selection: PopulationDep,
    vote: VoteDep,
    page: PageDep,
    rank_by: Annotated[str, Query(max_length=64, description="'vote' or a proxy name")] = RANK_BY_VOTE,
    expand: Annotated[
        str | None, Query(max_length=64, description="'cells': list every cell instead of one row per class")
    ] = None,
) -> LeaderboardOut:
    """One configuration's scored population (`config`; by default the one with the most scores on the
    dataset, the others listed under `population.alternatives`), ranked best first by the rank vote or, with
    `rank_by`, by one proxy. Each row has every stored proxy score, the vote, its rank and percentile, and
    the observed accuracy where known.

    **Isomorphism classes**: cells of one NAS-Bench-201 isomorphism class compute the same network and share
    their scores, so by default each class is one row (its representative is the member with the lowest id;
    `members` counts the class's cells in the population, `members_url` lists them, `accuracy` is the mean of
    their observations), and ranks, votes and percentiles are taken over classes. `?expand=cells` lists
    every cell instead (`unit: "cell"`).

    **The vote** (echoed under `vote`): `preset` (default `best` where all its proxies are scored, else
    `mission`, else every scored proxy), or `proxies` as voters (Borda's `mean_rank` unless `method` says
    otherwise); `method` overrides the preset's. A preset or proxy without scores under the configuration is
    a 422 that names it; 404 when nothing is scored for the space, dataset or `config`."""
    query = LeaderboardQuery(
        **selection.query_fields(), rank_by=rank_by, vote=vote, limit=page.limit, offset=page.offset, expand=expand
    )
    return leaderboard_out(leaderboard(session, query))
