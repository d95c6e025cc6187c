"""GET /v1/leaderboard: one configuration's scored population ranked by the rank vote or by one proxy,
with every proxy score, the vote, its rank and percentile, and the observed accuracy where known; one row
per isomorphism class (with its members) unless `expand=cells` lists every cell."""

from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from app.api import examples
from app.api.deps import PageDep, ReadSession
from app.api.schemas import ConfigurationOut
from app.api.views import configuration_out
from app.services.leaderboard import (
    FALLBACK_PRESET,
    RANK_BY_VOTE,
    ConfigCount,
    Leaderboard,
    LeaderboardQuery,
    ScoredPopulation,
    VoteChoice,
    VoteRequest,
    class_population,
    leaderboard,
    split_names,
)
from app.services.observations import DEFAULT_METRIC
from scorers.presets import DEFAULT_PRESET, PRESETS

router = APIRouter(prefix="/v1", tags=["reports"])
ERRORS = examples.error_responses(404, 422)


@dataclass(frozen=True)
class PopulationParams:
    """The query parameters that pick a population, shared by the leaderboard, correlations and export."""

    space: str
    dataset: str
    config: str | None
    metric: str
    proxies: list[str] | None

    def query_fields(self) -> dict[str, str | None]:
        """The population's fields of the services' LeaderboardQuery and ReportQuery."""
        return {"space": self.space, "dataset": self.dataset, "config": self.config, "metric": self.metric}


def population_params(
    space: Annotated[str, Query(max_length=64, description="Search space")] = "nb201",
    dataset: Annotated[str, Query(max_length=64, description="Dataset the scores and accuracies are on")] = "cifar10",
    config: Annotated[
        str | None,
        Query(max_length=64, description="Configuration fingerprint (or a unique prefix); default: most scores"),
    ] = None,
    metric: Annotated[str, Query(max_length=64, description="Observation metric")] = DEFAULT_METRIC,
    proxies: Annotated[
        list[str] | None,
        Query(
            description="Proxies, comma-separated or repeated: the voters instead of a preset, or for an "
            "export the score columns (default: all)"
        ),
    ] = None,
) -> PopulationParams:
    return PopulationParams(space, dataset, config, metric, split_names(proxies))


PopulationDep = Annotated[PopulationParams, Depends(population_params)]


def vote_request(
    selection: PopulationDep,
    preset: Annotated[
        str | None,
        Query(max_length=64, description=f"Vote preset: {', '.join(PRESETS)} (default: {DEFAULT_PRESET} where its "
              f"proxies are scored, else {FALLBACK_PRESET}, else every scored proxy)"),
    ] = None,
    method: Annotated[
        str | None,
        Query(max_length=64, description="Vote method: mean_rank, log_rank or majority (default: the preset's; "
              "mean_rank for a list of proxies)"),
    ] = None,
) -> VoteRequest:
    return VoteRequest(proxies=selection.proxies, preset=preset, method=method)


VoteDep = Annotated[VoteRequest, Depends(vote_request)]


class VoteOut(BaseModel):
    voters: list[str]
    method: str
    preset: str | None = Field(description="The preset voting, null for a list of proxies")


def vote_out(choice: VoteChoice) -> VoteOut:
    return VoteOut(voters=list(choice.voters), method=choice.method, preset=choice.preset)


class ConfigurationCount(BaseModel):
    fingerprint: str
    scores: int
    architectures: int


class PopulationOut(BaseModel):
    """Which architectures a report covers: one space, one dataset, one configuration."""

    space: str
    dataset: str
    metric: str = Field(description="Observation metric the accuracies come from")
    configuration: ConfigurationOut
    selected_by: str = Field(description="'request' (named by `config`) or 'most_scores'")
    size: int = Field(description="Architectures (cells) scored under the configuration")
    classes: int = Field(description="Isomorphism classes those cells fall into")
    scores: int = Field(description="Score rows under the configuration")
    proxies: list[str] = Field(description="Proxies with scores under the configuration")
    alternatives: list[ConfigurationCount] = Field(description="Other configurations scored on the dataset")


class LeaderboardRow(BaseModel):
    id: int = Field(description="The cell; for a class, its representative (the member with the lowest id)")
    arch: str
    canonical_key: str = Field(description="The cell's isomorphism class")
    members: int = Field(description="Cells of the population in this isomorphism class")
    members_url: str = Field(description="Lists the class's members")
    scores: dict[str, float | None] = Field(description="Every stored proxy score (null: not a finite number)")
    vote: float | None = Field(description="Higher = better; its scale depends on the method")
    percentile: float | None = Field(description="Share of the others with a lower vote; null below 2 architectures")
    vote_rank: int | None = Field(description="1 = best vote (ties share the best rank)")
    rank: int | None = Field(description="Rank by `rank_by`; null when that score is missing")
    accuracy: float | None = Field(
        description="Observed accuracy, when known; for a class, the mean over its members' observations"
    )


class LeaderboardOut(BaseModel):
    population: PopulationOut
    vote: VoteOut
    rank_by: str
    unit: Literal["class", "cell"] = Field(
        description="What a row is, and what ranks, votes and percentiles are taken over: 'class' (one row per "
        "isomorphism class, the default) or 'cell' (expand=cells)"
    )
    total: int = Field(description="Rows in the whole listing: classes, or cells with expand=cells")
    limit: int
    offset: int
    items: list[LeaderboardRow]


@router.get(
    "/leaderboard",
    summary="Rank architectures by the vote",
    response_model=LeaderboardOut,
    responses={200: examples.json_response("A page of the ranking", examples.LEADERBOARD), **ERRORS},
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


def population_out(scored: ScoredPopulation) -> PopulationOut:
    selection = scored.selection
    return PopulationOut(
        space=scored.space,
        dataset=scored.dataset,
        metric=scored.metric,
        configuration=configuration_out(selection.config),
        selected_by=selection.selected_by,
        size=scored.population.size,
        classes=class_population(scored.population).size,
        scores=selection.counts.scores,
        proxies=list(scored.population.proxies),
        alternatives=[_count_out(count) for count in selection.alternatives],
    )


def leaderboard_out(board: Leaderboard) -> LeaderboardOut:
    return LeaderboardOut(
        population=population_out(board.scored),
        vote=vote_out(board.choice),
        rank_by=board.rank_by,
        unit=board.unit,
        total=board.total,
        limit=board.limit,
        offset=board.offset,
        items=[
            LeaderboardRow(
                id=row.architecture_id,
                arch=row.arch,
                canonical_key=row.canonical_key,
                members=row.members,
                members_url=class_members_url(board.scored.space, row.canonical_key),
                scores=row.scores,
                vote=row.vote,
                percentile=row.percentile,
                vote_rank=row.vote_rank,
                rank=row.rank,
                accuracy=row.accuracy,
            )
            for row in board.rows
        ],
    )


def class_members_url(space: str, canonical_key: str) -> str:
    """GET /v1/architectures filtered to one isomorphism class."""
    return f"/v1/architectures?{urlencode({'space': space, 'canonical': canonical_key})}"


def _count_out(count: ConfigCount) -> ConfigurationCount:
    return ConfigurationCount(fingerprint=count.fingerprint, scores=count.scores, architectures=count.architectures)
