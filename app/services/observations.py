"""Observed accuracies (e.g. a benchmark's trained test accuracy) that scores are correlated against.
One value per (architecture, dataset, metric); re-importing overwrites it, so imports are repeatable."""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db import Database
from app.db.models import Architecture, Observation, SearchSpace, utcnow
from app.db.upsert import upsert
from app.services.configs import known_datasets, validate_dataset
from app.services.errors import InvalidInput
from app.services.spaces import architectures_for_strings, ensure_space, normalise, space_module

DEFAULT_METRIC = "test_accuracy"


@dataclass(frozen=True)
class ObservationInput:
    arch: str | list[str]
    dataset: str
    accuracy: float
    metric: str = DEFAULT_METRIC
    epochs: int | None = None
    source: str = "user"
    benchmark_index: int | None = None


def validate_accuracy(accuracy: float, field: str) -> None:
    if not math.isfinite(accuracy) or not 0.0 <= accuracy <= 100.0:
        raise InvalidInput(field, f"accuracy must be a finite percentage in [0, 100], got {accuracy}")


def field_name(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def record_observations(
    session: Session, space_name: str, observations: Sequence[ObservationInput], prefixes: Sequence[str]
) -> int:
    """Validate everything first (errors name `<prefix>.<field>`, e.g. `body[3].accuracy`), then write all
    rows in one transaction; returns the number of distinct rows written."""
    known = set(known_datasets())
    for prefix, observation in zip(prefixes, observations, strict=True):
        if observation.dataset not in known:
            validate_dataset(observation.dataset, field_name(prefix, "dataset"))
        validate_accuracy(observation.accuracy, field_name(prefix, "accuracy"))
    space = ensure_space(session, space_name)
    architectures = _architecture_per_observation(session, space, observations, prefixes)
    now = utcnow()
    rows_by_key = {
        (architecture.id, o.dataset, o.metric, o.source): {
            "architecture_id": architecture.id,
            "dataset": o.dataset,
            "metric": o.metric,
            "accuracy": float(o.accuracy),
            "epochs": o.epochs,
            "source": o.source,
            "observed_at": now,
        }
        for architecture, o in zip(architectures, observations, strict=True)
    }
    upsert(
        session,
        Observation.__table__,
        list(rows_by_key.values()),
        unique=["architecture_id", "dataset", "metric", "source"],
        update=["accuracy", "epochs", "source", "observed_at"],
    )
    _record_benchmark_indices(session, architectures, observations)
    return len(rows_by_key)


def store_observations(
    database: Database, spaces: Sequence[str], observations: Sequence[ObservationInput], prefixes: Sequence[str]
) -> int:
    """All observations in one transaction, so a request stores all or none; `spaces[i]` is the search space
    of `observations[i]` (a request may mix spaces), whose errors name `prefixes[i]`."""
    positions_by_space: dict[str, list[int]] = {}
    for position, space in enumerate(spaces):
        positions_by_space.setdefault(space, []).append(position)

    def store(session: Session) -> int:
        return sum(
            record_observations(session, space, [observations[p] for p in positions], [prefixes[p] for p in positions])
            for space, positions in positions_by_space.items()
        )

    return database.transact(store)


def _architecture_per_observation(
    session: Session, space: SearchSpace, observations: Sequence[ObservationInput], prefixes: Sequence[str]
) -> list[Architecture]:
    module = space_module(space.name)
    strings = [normalise(module, o.arch, field_name(p, "arch")) for p, o in zip(prefixes, observations, strict=True)]
    rows = {a.arch: a for a in architectures_for_strings(session, space, strings)}
    return [rows[arch_str] for arch_str in strings]


def _record_benchmark_indices(
    session: Session, architectures: Sequence[Architecture], observations: Sequence[ObservationInput]
) -> None:
    updates = [
        {"id": a.id, "benchmark_index": o.benchmark_index}
        for a, o in zip(architectures, observations, strict=True)
        if o.benchmark_index is not None and a.benchmark_index != o.benchmark_index
    ]
    if updates:
        session.execute(update(Architecture), updates)
        session.expire_all()


def observations_for(session: Session, architecture_id: int) -> list[Observation]:
    query = (
        select(Observation)
        .where(Observation.architecture_id == architecture_id)
        .order_by(Observation.dataset, Observation.metric)
    )
    return list(session.execute(query).scalars())
