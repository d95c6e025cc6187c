"""Stored architectures as GET /v1/architectures shows them: one with every score stored for it (grouped by
configuration) and every accuracy observed for it, or a page of a space's architectures filtered by
dataset, isomorphism class or string."""

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, exists, func, or_, select
from sqlalchemy.orm import Session

from app.db.models import Architecture, Observation, Score, ScoringConfig
from app.services.configs import validate_dataset
from app.services.observations import observations_for
from app.services.spaces import get_architecture, lookup_space, normalise, stored_space


@dataclass(frozen=True)
class ConfigScores:
    """An architecture's scores under one configuration, by proxy."""

    config: ScoringConfig
    scores: dict[str, Score]


@dataclass(frozen=True)
class ArchitectureRecord:
    architecture: Architecture
    space: str
    scores: list[ConfigScores]
    observations: list[Observation]


@dataclass(frozen=True)
class ArchitectureFilter:
    """Which of a space's architectures to list: scored or observed on `dataset`, the members of one
    isomorphism class (`canonical` key), or one architecture by its string (`arch`)."""

    space: str = "nb201"
    dataset: str | None = None
    canonical: str | None = None
    arch: str | None = None


def architecture_record(session: Session, architecture_id: int) -> ArchitectureRecord:
    architecture = get_architecture(session, architecture_id)
    return ArchitectureRecord(
        architecture=architecture,
        space=architecture.space.name,
        scores=_scores_by_configuration(session, architecture.id),
        observations=observations_for(session, architecture.id),
    )


def architecture_page(
    session: Session, wanted: ArchitectureFilter, limit: int, offset: int
) -> tuple[list[Architecture], int]:
    """A page of the matching architectures by ascending id, and how many match in all."""
    query = _filtered(session, wanted)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(query.order_by(Architecture.id).limit(limit).offset(offset)).scalars()
    return list(rows), total


def _filtered(session: Session, wanted: ArchitectureFilter) -> Select[Architecture]:
    space = stored_space(session, wanted.space)
    query = select(Architecture).where(Architecture.space_id == space.id)
    if wanted.canonical is not None:
        query = query.where(Architecture.canonical_key == wanted.canonical)
    if wanted.arch is not None:
        query = query.where(Architecture.arch == normalise(lookup_space(wanted.space), wanted.arch, "arch"))
    if wanted.dataset is not None:
        validate_dataset(wanted.dataset)
        query = query.where(or_(_scored_on(wanted.dataset), _observed_on(wanted.dataset)))
    return query


def _scores_by_configuration(session: Session, architecture_id: int) -> list[ConfigScores]:
    rows = session.execute(
        select(Score, ScoringConfig)
        .join(ScoringConfig, ScoringConfig.id == Score.config_id)
        .where(Score.architecture_id == architecture_id)
        .order_by(ScoringConfig.id, Score.proxy)
    ).all()
    grouped: dict[int, ConfigScores] = {}
    for score, config in rows:
        grouped.setdefault(config.id, ConfigScores(config, {})).scores[score.proxy] = score
    return list(grouped.values())


def _scored_on(dataset: str) -> ColumnElement[bool]:
    return exists().where(
        Score.architecture_id == Architecture.id, Score.config_id == ScoringConfig.id, ScoringConfig.dataset == dataset
    )


def _observed_on(dataset: str) -> ColumnElement[bool]:
    return exists().where(Observation.architecture_id == Architecture.id, Observation.dataset == dataset)
