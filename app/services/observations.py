"""Observed accuracies (e.g. a benchmark's trained test accuracy) that scores are correlated against.

Each (architecture, dataset, metric, source) keeps its own value with who posted it (`posted_by`: the API
key's name; null for a local import or a client of a server without keys) and when. A source's value for a
cell belongs to whoever posted it: posting it again replaces it (so imports are repeatable) only when that
same key posts, or an admin, or a client of a server without keys; any other key gets a 409 and nothing of
its request is stored. So a client who disagrees with a benchmark import cannot overwrite it: it posts
under its own source (by default the key's name), both values are kept, and reports choose one `source`.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, delete, select, update
from sqlalchemy.orm import Session

from app.db import Database
from app.db.models import MAX_DATABASE_INTEGER, Architecture, Observation, ObservationVersion, SearchSpace, utcnow
from app.db.upsert import increment, upsert
from app.services.configs import known_datasets, validate_dataset
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.keys import ANONYMOUS, Principal, Scope
from app.services.spaces import architectures_for_strings, ensure_space, lookup_space, normalise
from search_spaces import SearchSpace as Space

DEFAULT_METRIC = "test_accuracy"
# The metrics every server accepts; an operator adds more with the `extra_metrics` setting.
KNOWN_METRICS = (DEFAULT_METRIC, "val_accuracy", "train_accuracy")
# The source of an observation posted without a key and without naming one.
ANONYMOUS_SOURCE = "api"
MAX_DATASET_LENGTH = 64
MAX_METRIC_LENGTH = 64
MAX_SOURCE_LENGTH = 128
MAX_EPOCHS = 100_000
SHOWN_SOURCES = 10
_ID_CHUNK = 500

ObservationKey = tuple[int, str, str, str]


@dataclass(frozen=True)
class ObservationInput:
    arch: str | list[str] | dict[str, Any]
    dataset: str
    accuracy: float
    metric: str = DEFAULT_METRIC
    epochs: int | None = None
    source: str = "user"
    benchmark_index: int | None = None


def default_source(author: Principal) -> str:
    """The source of a posted observation that names none: the key's name, so that two keys never collide
    by default; `api` without a key."""
    return author.name or ANONYMOUS_SOURCE


def accepted_metrics(extra_metrics: Sequence[str] = ()) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*KNOWN_METRICS, *extra_metrics)))


def validate_accuracy(accuracy: float, field: str) -> None:
    if not math.isfinite(accuracy) or not 0.0 <= accuracy <= 100.0:
        raise InvalidInput(field, f"accuracy must be a finite percentage in [0, 100], got {accuracy}")


def validate_label(text: str, field: str, max_length: int) -> None:
    """A metric, source or dataset filter: stored, shown in reports and compared in queries, so printable
    (PostgreSQL refuses a NUL in text) and bounded."""
    if not 1 <= len(text) <= max_length or not text.isprintable() or not text.strip():
        raise InvalidInput(field, f"must be 1-{max_length} printable characters, not only spaces; got {_shown(text)}")


def validate_metric(metric: str, field: str, accepted: Sequence[str]) -> None:
    validate_label(metric, field, MAX_METRIC_LENGTH)
    if metric not in accepted:
        raise InvalidInput(
            field,
            f"unknown metric {metric!r}; accepted: {', '.join(accepted)} "
            "(the operator adds more with the extra_metrics setting)",
        )


def field_name(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def record_observations(
    session: Session,
    space_name: str,
    observations: Sequence[ObservationInput],
    prefixes: Sequence[str],
    *,
    author: Principal = ANONYMOUS,
    extra_metrics: Sequence[str] = (),
) -> int:
    """Validate everything first (errors name `<prefix>.<field>`, e.g. `body[3].accuracy`), then write all
    rows in `session`'s transaction; returns the number of distinct rows written. A row that `author` may
    not replace (see the module's docstring) raises Conflict, so the caller's transaction writes nothing."""
    arch_strings = _validated_archs(lookup_space(space_name), observations, prefixes, accepted_metrics(extra_metrics))
    space = ensure_space(session, space_name)
    stored = {
        architecture.arch: architecture for architecture in architectures_for_strings(session, space, arch_strings)
    }
    architectures = [stored[arch] for arch in arch_strings]
    now = utcnow()
    rows_by_key: dict[ObservationKey, dict[str, Any]] = {}
    first_position: dict[ObservationKey, int] = {}
    for position, (architecture, o) in enumerate(zip(architectures, observations, strict=True)):
        key = (architecture.id, o.dataset, o.metric, o.source)
        first_position.setdefault(key, position)
        rows_by_key[key] = {
            "architecture_id": architecture.id,
            "dataset": o.dataset,
            "metric": o.metric,
            "accuracy": float(o.accuracy),
            "epochs": o.epochs,
            "source": o.source,
            "posted_by": author.name,
            "observed_at": now,
        }
    replaces_anyone = author.scope >= Scope.ADMIN
    upsert(
        session,
        Observation.__table__,
        list(rows_by_key.values()),
        unique=["architecture_id", "dataset", "metric", "source"],
        update=["accuracy", "epochs", "posted_by", "observed_at"],
        where=None if replaces_anyone else _posted_by(author),
    )
    if not replaces_anyone:
        _refuse_rows_of_others(session, author, first_position, observations, prefixes)
    _record_benchmark_indices(session, space, architectures, observations, prefixes, author)
    written = sorted({(o.dataset, o.metric) for o in observations})
    increment(session, ObservationVersion.__table__, [{"dataset": d, "metric": m} for d, m in written], "version")
    return len(rows_by_key)


def store_observations(
    database: Database,
    spaces: Sequence[str],
    observations: Sequence[ObservationInput],
    prefixes: Sequence[str],
    *,
    author: Principal = ANONYMOUS,
    extra_metrics: Sequence[str] = (),
) -> int:
    """All observations in one transaction, so a request stores all or none; `spaces[i]` is the search space
    of `observations[i]` (a request may mix spaces), whose errors name `prefixes[i]`."""
    positions_by_space: dict[str, list[int]] = {}
    for position, space in enumerate(spaces):
        positions_by_space.setdefault(space, []).append(position)

    def store(session: Session) -> int:
        return sum(
            record_observations(
                session,
                space,
                [observations[p] for p in positions],
                [prefixes[p] for p in positions],
                author=author,
                extra_metrics=extra_metrics,
            )
            for space, positions in positions_by_space.items()
        )

    return database.transact(store)


def delete_observations(database: Database, source: str, dataset: str | None = None, metric: str | None = None) -> int:
    """Every observation of `source` (of one dataset or metric, when given) in one transaction, e.g. a
    poisoned import; returns how many. NotFound naming `source` when none match."""
    validate_label(source, "source", MAX_SOURCE_LENGTH)
    conditions = [Observation.source == source]
    versions = []
    if dataset is not None:
        validate_label(dataset, "dataset", MAX_DATASET_LENGTH)
        conditions.append(Observation.dataset == dataset)
        versions.append(ObservationVersion.dataset == dataset)
    if metric is not None:
        validate_label(metric, "metric", MAX_METRIC_LENGTH)
        conditions.append(Observation.metric == metric)
        versions.append(ObservationVersion.metric == metric)

    def remove(session: Session) -> int:
        deleted = cast(CursorResult[Any], session.execute(delete(Observation).where(*conditions))).rowcount
        if deleted <= 0:
            of = (f" on {dataset!r}" if dataset else "") + (f" with metric {metric!r}" if metric else "")
            sources = _source_names(session)
            listed = f"; stored sources: {', '.join(map(repr, sources))}" if sources else "; none are stored"
            raise NotFound("source", f"no observations from source {source!r}{of}{listed}")
        session.execute(update(ObservationVersion).where(*versions).values(version=ObservationVersion.version + 1))
        return deleted

    return database.transact(remove)


def observations_for(session: Session, architecture_id: int) -> list[Observation]:
    query = (
        select(Observation)
        .where(Observation.architecture_id == architecture_id)
        .order_by(Observation.dataset, Observation.metric, Observation.source)
    )
    return list(session.execute(query).scalars())


def _validated_archs(
    space: Space, observations: Sequence[ObservationInput], prefixes: Sequence[str], metrics: Sequence[str]
) -> list[str]:
    """Every field of every observation checked before anything is written; returns the normalised cells."""
    known = set(known_datasets())
    index_bound = space.size if space.size is not None else MAX_DATABASE_INTEGER + 1
    arch_strings = []
    for prefix, o in zip(prefixes, observations, strict=True):
        if o.dataset not in known:
            validate_dataset(o.dataset, field_name(prefix, "dataset"))
        validate_accuracy(o.accuracy, field_name(prefix, "accuracy"))
        validate_metric(o.metric, field_name(prefix, "metric"), metrics)
        validate_label(o.source, field_name(prefix, "source"), MAX_SOURCE_LENGTH)
        if o.epochs is not None and not 0 <= o.epochs <= MAX_EPOCHS:
            raise InvalidInput(field_name(prefix, "epochs"), f"must be between 0 and {MAX_EPOCHS:,}, got {o.epochs}")
        arch = normalise(space, o.arch, field_name(prefix, "arch"))
        if o.benchmark_index is not None:
            field = field_name(prefix, "benchmark_index")
            if not 0 <= o.benchmark_index < index_bound:
                raise InvalidInput(field, f"must be in [0, {index_bound:,}), got {o.benchmark_index}")
        arch_strings.append(arch)
    return arch_strings


def _posted_by(author: Principal) -> ColumnElement[bool]:
    return Observation.__table__.c.posted_by.is_not_distinct_from(author.name)


def _refuse_rows_of_others(
    session: Session,
    author: Principal,
    first_position: dict[ObservationKey, int],
    observations: Sequence[ObservationInput],
    prefixes: Sequence[str],
) -> None:
    """After the write, which left others' rows as they were: Conflict if the request touched any of them.
    Checking after writing (not before) also catches a row another key inserted concurrently."""
    ids = sorted({key[0] for key in first_position})
    taken: dict[ObservationKey, str | None] = {}
    for start in range(0, len(ids), _ID_CHUNK):
        query = select(
            Observation.architecture_id,
            Observation.dataset,
            Observation.metric,
            Observation.source,
            Observation.posted_by,
        ).where(Observation.architecture_id.in_(ids[start : start + _ID_CHUNK]), ~_posted_by(author))
        for architecture_id, dataset, metric, source, owner in session.execute(query):
            key = (architecture_id, dataset, metric, source)
            if key in first_position:
                taken[key] = owner
    if not taken:
        return
    key = min(taken, key=first_position.__getitem__)
    position = first_position[key]
    observation, owner = observations[position], taken[key]
    if owner:
        holder = f"key {owner!r}; only that key or an admin may replace it"
    else:
        holder = "no key (a local import, or a server without keys); only an admin may replace it"
    others = f" (as are {len(taken) - 1} more of this request's observations)" if len(taken) > 1 else ""
    raise Conflict(
        field_name(prefixes[position], "source"),
        f"the {observation.dataset} {observation.metric} of this architecture from source {observation.source!r} "
        f"was posted by {holder}{others}. Post under a source of your own (the default is your key's name); "
        "reports choose one with `source`",
    )


def _record_benchmark_indices(
    session: Session,
    space: SearchSpace,
    architectures: Sequence[Architecture],
    observations: Sequence[ObservationInput],
    prefixes: Sequence[str],
    author: Principal,
) -> None:
    """Store each cell's benchmark index. An index is one cell's: two cells never share one. A key below
    admin may only name a cell's stored index or give an unindexed cell a free one; an admin's import (the
    benchmark's own table) may move indices, which is how a wrong one is corrected."""
    claims: dict[int, tuple[Architecture, int, str]] = {}  # index -> (cell, index, field)
    index_of_cell: dict[int, int] = {}
    for architecture, o, prefix in zip(architectures, observations, prefixes, strict=True):
        if o.benchmark_index is None:
            continue
        field = field_name(prefix, "benchmark_index")
        earlier = claims.get(o.benchmark_index)
        if earlier is not None and earlier[0].id != architecture.id:
            raise InvalidInput(field, f"index {o.benchmark_index} is given to {earlier[0].arch} in this request too")
        if index_of_cell.setdefault(architecture.id, o.benchmark_index) != o.benchmark_index:
            raise InvalidInput(field, f"this request gives {architecture.arch} more than one benchmark index")
        claims[o.benchmark_index] = (architecture, o.benchmark_index, field)
    holders = _index_holders(session, space, list(claims))
    admin = author.scope >= Scope.ADMIN
    moved, updates = [], []
    for architecture, index, field in claims.values():
        holder = holders.get(index)
        if holder is not None and holder[0] != architecture.id:
            if not admin:
                raise InvalidInput(field, f"index {index} is the stored benchmark index of {holder[1]}")
            moved.append(holder[0])
        if architecture.benchmark_index not in (None, index) and not admin:
            raise InvalidInput(
                field, f"the stored benchmark index of {architecture.arch} is {architecture.benchmark_index}"
            )
        if architecture.benchmark_index != index:
            updates.append({"id": architecture.id, "benchmark_index": index})
    if moved:
        session.execute(update(Architecture).where(Architecture.id.in_(moved)).values(benchmark_index=None))
    if updates:
        session.execute(update(Architecture), updates)
        session.expire_all()


def _index_holders(session: Session, space: SearchSpace, indices: Sequence[int]) -> dict[int, tuple[int, str]]:
    """index -> (architecture id, cell) of the cells of `space` that hold one of `indices`."""
    holders: dict[int, tuple[int, str]] = {}
    for start in range(0, len(indices), _ID_CHUNK):
        query = select(Architecture.benchmark_index, Architecture.id, Architecture.arch).where(
            Architecture.space_id == space.id, Architecture.benchmark_index.in_(indices[start : start + _ID_CHUNK])
        )
        for index, architecture_id, arch in session.execute(query):
            assert index is not None  # selected by benchmark_index IN (...)
            holders[index] = (architecture_id, arch)
    return holders


def _source_names(session: Session) -> list[str]:
    query = select(Observation.source).distinct().order_by(Observation.source).limit(SHOWN_SOURCES)
    return list(session.execute(query).scalars())


def _shown(text: str, limit: int = 40) -> str:
    return repr(text[:limit]) + ("…" if len(text) > limit else "")
