"""Reading and recording proxy scores. A result computed for one member of an isomorphism class is
recorded for every member, each write an insert-or-nothing on (architecture, configuration, proxy): a
retry, a restart or a second worker can neither duplicate nor overwrite a score."""

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db.models import Score, ScoringConfig, utcnow
from app.db.upsert import insert_ignore
from scorers import ProxyResult

UNIQUE_SCORE = ("architecture_id", "config_id", "proxy")


def stored_scores(session: Session, architecture_id: int, config_id: int, proxies: Iterable[str]) -> dict[str, Score]:
    query = select(Score).where(
        Score.architecture_id == architecture_id, Score.config_id == config_id, Score.proxy.in_(list(proxies))
    )
    return {score.proxy: score for score in session.execute(query).scalars()}


def record_scores(
    session: Session,
    *,
    member_ids: Sequence[int],
    computed_from_id: int,
    config_id: int,
    outcomes: Mapping[str, ProxyResult],
    device: str,
    torch_version: str | None = None,
) -> None:
    """Store each proxy's result for every member of the class (existing rows are left untouched).

    A value is deterministic, finite or not: a non-finite one is stored as null with the reason, so the cell
    ranks last and is never computed again. A proxy that raised is not stored: the error may be transient
    (out of memory, say), so the item fails and a retry computes it again."""
    now = utcnow()
    rows = [
        _row(
            member_id,
            config_id,
            proxy,
            value=result.value if math.isfinite(result.value) else None,
            seconds=result.seconds,
            device=device,
            torch_version=torch_version,
            error=None if math.isfinite(result.value) else f"non-finite value ({result.value})",
            computed_from_id=computed_from_id,
            created_at=now,
        )
        for proxy, result in outcomes.items()
        if result.error is None
        for member_id in member_ids
    ]
    insert_scores(session, config_id, rows)


def share_class_scores(session: Session, config_id: int, member_ids: Sequence[int], proxies: Iterable[str]) -> None:
    """Give every member of an isomorphism class the scores some member already has, so a class is never
    computed twice under one configuration (even when members were added after it was scored)."""
    stored = session.execute(
        select(Score)
        .where(Score.config_id == config_id, Score.architecture_id.in_(member_ids), Score.proxy.in_(list(proxies)))
        .order_by(Score.id)
    ).scalars()
    first_per_proxy: dict[str, Score] = {}
    held: set[tuple[int, str]] = set()
    for score in stored:
        first_per_proxy.setdefault(score.proxy, score)
        held.add((score.architecture_id, score.proxy))
    rows = [
        _row(
            member_id,
            config_id,
            score.proxy,
            value=score.value,
            seconds=score.seconds,
            device=score.device,
            torch_version=score.torch_version,
            error=score.error,
            computed_from_id=score.computed_from_id,
            created_at=score.created_at,
        )
        for score in first_per_proxy.values()
        for member_id in member_ids
        if (member_id, score.proxy) not in held
    ]
    insert_scores(session, config_id, rows)


def insert_scores(session: Session, config_id: int, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert-or-nothing score rows of one configuration, stamped with its next `scores_version`.

    The counter goes up first: that update holds the configuration's row lock until commit, so writers of
    one configuration take their versions in commit order, and once a reader sees version v every row up to
    v is visible to it. That is what lets a cached population read only the rows above its own version."""
    if not rows:
        return
    version = session.execute(
        update(ScoringConfig)
        .where(ScoringConfig.id == config_id)
        .values(scores_version=ScoringConfig.scores_version + 1)
        .returning(ScoringConfig.scores_version)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    insert_ignore(session, Score.__table__, [{**row, "version": version} for row in rows], unique=UNIQUE_SCORE)


def _row(architecture_id: int, config_id: int, proxy: str, **values: Any) -> dict[str, Any]:
    return {"architecture_id": architecture_id, "config_id": config_id, "proxy": proxy, **values}
