"""Architectures: one with every score it has (per configuration) and its observations, or a paginated
list filtered by space, dataset (scored or observed on it) and isomorphism class."""

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.orm import Session

from app.api import examples
from app.api.deps import PageDep, ReadSession
from app.api.schemas import (
    ArchitectureDetail,
    ArchitectureOut,
    ConfigurationScores,
    ObservationOut,
    Page,
)
from app.api.views import architecture_out, configuration_out, proxy_score
from app.db.models import Architecture, Observation, Score, ScoringConfig, SearchSpace
from app.services.configs import validate_dataset
from app.services.errors import InvalidInput
from app.services.observations import observations_for
from app.services.spaces import get_architecture, normalise, space_module

router = APIRouter(prefix="/v1/architectures", tags=["architectures"])


@router.get(
    "/{architecture_id}",
    summary="Get an architecture with its scores and observations",
    response_model=ArchitectureDetail,
    responses={
        200: examples.json_response("The architecture", examples.ARCHITECTURE_DETAIL),
        **examples.error_responses(404, 422),
    },
)
def get_architecture_detail(architecture_id: int, session: ReadSession) -> ArchitectureDetail:
    """One architecture (its string, isomorphism class and benchmark index) with every score stored for it,
    grouped by configuration, and every accuracy observed for it. Ids come from POST /v1/scores, the
    leaderboard and GET /v1/architectures."""
    architecture = get_architecture(session, architecture_id)
    return ArchitectureDetail(
        **architecture_out(session, architecture).model_dump(),
        scores=_scores_by_configuration(session, architecture.id),
        observations=[
            ObservationOut(
                dataset=o.dataset, metric=o.metric, accuracy=o.accuracy, epochs=o.epochs, source=o.source,
                observed_at=o.observed_at,
            )
            for o in observations_for(session, architecture.id)
        ],
    )


def _scores_by_configuration(session: Session, architecture_id: int) -> list[ConfigurationScores]:
    rows = session.execute(
        select(Score, ScoringConfig)
        .join(ScoringConfig, ScoringConfig.id == Score.config_id)
        .where(Score.architecture_id == architecture_id)
        .order_by(ScoringConfig.id, Score.proxy)
    ).all()
    grouped: dict[int, ConfigurationScores] = {}
    for score, config in rows:
        entry = grouped.setdefault(config.id, ConfigurationScores(configuration=configuration_out(config), scores={}))
        entry.scores[score.proxy] = proxy_score(score)
    return list(grouped.values())


@router.get(
    "",
    summary="List architectures",
    response_model=Page[ArchitectureOut],
    responses={
        200: examples.json_response("A page of architectures", examples.ARCHITECTURE_PAGE),
        **examples.error_responses(422),
    },
)
def list_architectures(
    session: ReadSession,
    page: PageDep,
    space: Annotated[str, Query(max_length=64)] = "nb201",
    dataset: Annotated[str | None, Query(max_length=64, description="Scored or observed on this dataset")] = None,
    canonical: Annotated[str | None, Query(description="Canonical key: all members of one isomorphism class")] = None,
    arch: Annotated[str | None, Query(description="One architecture by its string")] = None,
) -> Page[ArchitectureOut]:
    """The stored architectures of one search space, by ascending id: every member of one isomorphism class
    (`canonical`, the leaderboard's `members_url`), one architecture by its string (`arch`), or those scored
    or observed on a `dataset`. The server stores every cell of NAS-Bench-201 at start-up, so unfiltered this
    pages through all 15,625. 422 for an unknown space or cell string."""
    space_row = _space(session, space)
    query = select(Architecture).where(Architecture.space_id == space_row.id)
    if canonical is not None:
        query = query.where(Architecture.canonical_key == canonical)
    if arch is not None:
        query = query.where(Architecture.arch == normalise(space_module(space), arch, "arch"))
    if dataset is not None:
        validate_dataset(dataset)
        query = query.where(or_(_scored_on(dataset), _observed_on(dataset)))
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(query.order_by(Architecture.id).limit(page.limit).offset(page.offset)).scalars()
    items = [
        ArchitectureOut(
            id=a.id, space=space, arch=a.arch, canonical_key=a.canonical_key, benchmark_index=a.benchmark_index
        )
        for a in rows
    ]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


def _space(session: Session, name: str) -> SearchSpace:
    space_module(name)
    space = session.execute(select(SearchSpace).where(SearchSpace.name == name)).scalar_one_or_none()
    if space is None:
        raise InvalidInput("space", f"search space {name!r} has no architectures stored yet")
    return space


def _scored_on(dataset: str) -> ColumnElement[bool]:
    return exists().where(
        Score.architecture_id == Architecture.id, Score.config_id == ScoringConfig.id, ScoringConfig.dataset == dataset
    )


def _observed_on(dataset: str) -> ColumnElement[bool]:
    return exists().where(Observation.architecture_id == Architecture.id, Observation.dataset == dataset)
