"""FastAPI dependencies: the runtime and settings the app was created with, read-only sessions, and the
query parameters several routes share (a page; the population a report covers and its vote). Writes run in
their own transaction inside the service a route calls, so they are committed before the response leaves
(a yield dependency may only finish after the client already has its answer)."""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, TypedDict

from fastapi import Depends, Path, Query, Request
from sqlalchemy.orm import Session

from app.db.models import MAX_DATABASE_INTEGER
from app.runtime import Runtime
from app.services.observations import DEFAULT_METRIC, MAX_METRIC_LENGTH, MAX_SOURCE_LENGTH
from app.services.votes import FALLBACK_PRESET, VoteRequest
from app.settings import Settings
from scorers.presets import DEFAULT_PRESET, PRESETS


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def read_session(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Iterator[Session]:
    with runtime.database.read_session() as session:
        yield session


@dataclass(frozen=True)
class Pagination:
    limit: int
    offset: int


def pagination(
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size")] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_DATABASE_INTEGER, description="Rows to skip")] = 0,
) -> Pagination:
    return Pagination(limit, offset)


# Ids are bounded by their column (a 32-bit integer on PostgreSQL), so no id reaches the database out of range.
RowId = Annotated[int, Path(ge=1, le=MAX_DATABASE_INTEGER, description="The row's id")]


class PopulationFields(TypedDict):
    """The population's fields of the services' LeaderboardQuery and ReportQuery."""

    space: str
    dataset: str
    config: str | None
    metric: str
    source: str | None


@dataclass(frozen=True)
class PopulationParams:
    """The query parameters that pick a population, shared by the leaderboard, correlations and export."""

    space: str
    dataset: str
    config: str | None
    metric: str
    source: str | None
    proxies: list[str] | None

    def query_fields(self) -> PopulationFields:
        """The population's fields of the services' LeaderboardQuery and ReportQuery."""
        return {
            "space": self.space,
            "dataset": self.dataset,
            "config": self.config,
            "metric": self.metric,
            "source": self.source,
        }


def population_params(
    space: Annotated[str, Query(max_length=64, description="Search space")] = "nb201",
    dataset: Annotated[str, Query(max_length=64, description="Dataset the scores and accuracies are on")] = "cifar10",
    config: Annotated[
        str | None,
        Query(max_length=64, description="Configuration fingerprint (or a unique prefix); default: most scores"),
    ] = None,
    metric: Annotated[str, Query(max_length=MAX_METRIC_LENGTH, description="Observation metric")] = DEFAULT_METRIC,
    source: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MAX_SOURCE_LENGTH,
            description="Observation source the accuracies come from (default: the one with the most "
            "observations of the dataset and metric in the space, ties by name)",
        ),
    ] = None,
    proxies: Annotated[
        list[str] | None,
        Query(
            description="Proxies, comma-separated or repeated: the voters instead of a preset, or for an "
            "export the score columns (default: all)"
        ),
    ] = None,
) -> PopulationParams:
    return PopulationParams(space, dataset, config, metric, source, _split_names(proxies))


def _split_names(values: Sequence[str] | None) -> list[str] | None:
    """`["snip,grasp", "synflow"]` -> `["snip", "grasp", "synflow"]`: lists may be comma-separated or repeated."""
    if values is None:
        return None
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


PopulationDep = Annotated[PopulationParams, Depends(population_params)]


def vote_request(
    selection: PopulationDep,
    preset: Annotated[
        str | None,
        Query(
            max_length=64,
            description=f"Vote preset: {', '.join(PRESETS)} (default: {DEFAULT_PRESET} where its "
            f"proxies are scored, else {FALLBACK_PRESET}, else every scored proxy)",
        ),
    ] = None,
    method: Annotated[
        str | None,
        Query(
            max_length=64,
            description="Vote method: mean_rank, log_rank or majority (default: the preset's; "
            "mean_rank for a list of proxies)",
        ),
    ] = None,
) -> VoteRequest:
    """The vote on top of the population's parameters (its `proxies` are a custom vote's voters); apart from
    `population_params` because the export takes a population without a vote."""
    return VoteRequest(proxies=selection.proxies, preset=preset, method=method)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ReadSession = Annotated[Session, Depends(read_session)]
PageDep = Annotated[Pagination, Depends(pagination)]
VoteDep = Annotated[VoteRequest, Depends(vote_request)]
