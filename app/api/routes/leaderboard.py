"""GET /v1/leaderboard: one configuration's scored population ranked by the rank vote or by one proxy,
with every proxy score, the vote, its rank and percentile, and the observed accuracy where known."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from app.api.deps import PageDep, ReadSession
from app.api.schemas import ConfigurationOut, ErrorResponse
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
    leaderboard,
    split_names,
)
from app.services.observations import DEFAULT_METRIC
from scorers.presets import DEFAULT_PRESET, PRESETS

router = APIRouter(prefix="/v1", tags=["reports"])
ERRORS = {404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}}


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
    size: int = Field(description="Architectures scored under the configuration")
    scores: int = Field(description="Score rows under the configuration")
    proxies: list[str] = Field(description="Proxies with scores under the configuration")
    alternatives: list[ConfigurationCount] = Field(description="Other configurations scored on the dataset")


class LeaderboardRow(BaseModel):
    id: int
    arch: str
    scores: dict[str, float | None] = Field(description="Every stored proxy score (null: not a finite number)")
    vote: float | None = Field(description="Higher = better; its scale depends on the method")
    percentile: float | None = Field(description="Share of the others with a lower vote; null below 2 architectures")
    vote_rank: int | None = Field(description="1 = best vote (ties share the best rank)")
    rank: int | None = Field(description="Rank by `rank_by`; null when that score is missing")
    accuracy: float | None = Field(description="Observed accuracy, when known")


class LeaderboardOut(BaseModel):
    population: PopulationOut
    vote: VoteOut
    rank_by: str
    total: int
    limit: int
    offset: int
    items: list[LeaderboardRow]


@router.get("/leaderboard", response_model=LeaderboardOut, responses=ERRORS)
def get_leaderboard(
    session: ReadSession,
    selection: PopulationDep,
    vote: VoteDep,
    page: PageDep,
    rank_by: Annotated[str, Query(max_length=64, description="'vote' or a proxy name")] = RANK_BY_VOTE,
) -> LeaderboardOut:
    query = LeaderboardQuery(
        **selection.query_fields(), rank_by=rank_by, vote=vote, limit=page.limit, offset=page.offset
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
        scores=selection.counts.scores,
        proxies=list(scored.population.proxies),
        alternatives=[_count_out(count) for count in selection.alternatives],
    )


def leaderboard_out(board: Leaderboard) -> LeaderboardOut:
    return LeaderboardOut(
        population=population_out(board.scored),
        vote=vote_out(board.choice),
        rank_by=board.rank_by,
        total=board.scored.population.size,
        limit=board.limit,
        offset=board.offset,
        items=[
            LeaderboardRow(
                id=row.architecture_id,
                arch=row.arch,
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


def _count_out(count: ConfigCount) -> ConfigurationCount:
    return ConfigurationCount(fingerprint=count.fingerprint, scores=count.scores, architectures=count.architectures)
