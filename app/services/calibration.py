"""Calibration data in the database. Real images are stored once under the SHA-256 of their content: an
operator's *pool* per dataset (`nasscore data add`, the data directory at start-up, or the small real
CIFAR-10 set shipped with the package) and every configuration's selected *batch*. A configuration names
its batch by digest, so any process that reaches the database — the server's workers, a local `nasscore
batch`, a worker on another host — can score it; no file path is ever part of an identity."""

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db.models import CalibrationKind, CalibrationSet, DatasetDefault, ScoringConfig, utcnow
from app.db.upsert import insert_ignore, upsert
from app.services.errors import DataUnavailable, InvalidInput, NotFound
from app.workers.base import CalibrationInput
from scorers.calibration import (
    BUILTIN_SETS,
    DATASETS,
    CalibrationDataError,
    ImageSet,
    builtin_image_set,
    read_image_set,
)

log = logging.getLogger("nasscore.data")

POOL, BATCH = "pool", "batch"
CACHED_SETS = 8  # decoded image sets kept per process (a full CIFAR pool is 150 MB; batches are ~200 KB)
CIFAR_DIRECTORIES = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


@dataclass(frozen=True)
class DatasetData:
    """What real data a dataset has: its default pool, or None."""

    dataset: str
    num_classes: int
    image_size: int
    pool_digest: str | None
    images: int | None
    origin: str | None
    builtin: bool

    @property
    def real(self) -> bool:
        return self.pool_digest is not None


def add_command(dataset: str) -> str:
    """The exact command that gives a dataset real data (for error messages and logs)."""
    if dataset in CIFAR_DIRECTORIES:
        return f"`nasscore data download {dataset}` or `nasscore data add {dataset} PATH` (an .npz or the CIFAR folder)"
    return f"`nasscore data add {dataset} PATH` (an .npz with uint8 images N×3×H×W and integer labels)"


class CalibrationStore:
    """Reads and writes image sets, keeping recently used ones decoded in memory (thread-safe)."""

    def __init__(self) -> None:
        self._sets: OrderedDict[str, ImageSet] = OrderedDict()
        self._selections: dict[tuple[str, int, str, int], str] = {}
        self._lock = threading.Lock()

    def store(self, session: Session, images: ImageSet, role: str) -> CalibrationSet:
        """`store_image_set`, keeping the images decoded in memory for the workers' next tasks."""
        self._remember(images)
        return store_image_set(session, images, role)

    def image_set(self, session: Session, digest: str) -> ImageSet:
        """The decoded images stored under `digest` (from memory when recently used)."""
        with self._lock:
            if digest in self._sets:
                self._sets.move_to_end(digest)
                return self._sets[digest]
        row = session.execute(select(CalibrationSet).where(CalibrationSet.digest == digest)).scalar_one_or_none()
        if row is None:
            raise NotFound("digest", f"no calibration data with digest {digest!r} is stored")
        images = ImageSet.from_buffers(row.dataset, row.count, row.images, row.labels, row.origin)
        self._remember(images)
        return images

    def select_batch(self, session: Session, pool_digest: str, batch_size: int, sampling: str, seed: int) -> ImageSet:
        """The batch drawn from a stored pool; the pool is decoded only the first time a choice is made."""
        key = (pool_digest, batch_size, sampling, seed)
        with self._lock:
            known = self._selections.get(key)
            if known is not None and known in self._sets:
                return self._sets[known]
        batch = self.image_set(session, pool_digest).select(batch_size, sampling, seed)
        with self._lock:
            self._selections[key] = batch.digest
        self._remember(batch)
        return batch

    def _remember(self, images: ImageSet) -> None:
        with self._lock:
            self._sets[images.digest] = images
            self._sets.move_to_end(images.digest)
            while len(self._sets) > CACHED_SETS:
                self._sets.popitem(last=False)


def store_image_set(session: Session, images: ImageSet, role: str) -> CalibrationSet:
    """Insert `images` under its digest unless already there (checked first, so a large pool is only sent
    to the database once); returns the row."""
    query = select(CalibrationSet).where(CalibrationSet.digest == images.digest)
    existing = session.execute(query).scalar_one_or_none()
    if existing is not None:
        return existing
    pixels, labels = images.buffers()
    row = {
        "digest": images.digest,
        "dataset": images.dataset,
        "role": role,
        "count": len(images),
        "images": pixels,
        "labels": labels,
        "origin": images.origin or images.dataset,
        "created_at": utcnow(),
    }
    insert_ignore(session, CalibrationSet.__table__, [row], unique=["digest"])
    return session.execute(query).scalar_one()


def default_pool(session: Session, dataset: str) -> CalibrationSet | None:
    return session.execute(
        select(CalibrationSet)
        .join(DatasetDefault, DatasetDefault.pool_id == CalibrationSet.id)
        .where(DatasetDefault.dataset == dataset)
    ).scalar_one_or_none()


def require_default_pool(session: Session, dataset: str) -> CalibrationSet:
    pool = default_pool(session, dataset)
    if pool is None:
        raise DataUnavailable(
            "dataset",
            f"this server has no real calibration data for {dataset!r}; the operator adds it with "
            f"{add_command(dataset)}, or ask for config.data='synthetic'",
        )
    return pool


def add_pool(
    session: Session, store: CalibrationStore, images: ImageSet, *, make_default: bool = True
) -> CalibrationSet:
    """Store a pool of real images; by default it becomes the dataset's data for new configurations.
    Legacy configurations made from the same file get their batch back (see `revive_legacy`)."""
    row = store.store(session, images, POOL)
    if make_default:
        upsert(
            session,
            DatasetDefault.__table__,
            [{"dataset": images.dataset, "pool_id": row.id, "updated_at": utcnow()}],
            unique=["dataset"],
            update=["pool_id", "updated_at"],
        )
    revived = revive_legacy(session, store, images)
    if revived:
        log.info("revived %d legacy configuration(s) of %s from %s", revived, images.dataset, images.origin)
    return row


def ensure_builtin_pools(session: Session, store: CalibrationStore) -> list[str]:
    """Give every dataset that ships real images and has no data yet its shipped set; returns those datasets."""
    installed = []
    for dataset in BUILTIN_SETS:
        if default_pool(session, dataset) is None:
            shipped = builtin_image_set(dataset)
            if shipped is not None:  # always: every dataset of BUILTIN_SETS ships its images
                add_pool(session, store, shipped)
                installed.append(dataset)
    return installed


def data_directory_files(data_dir: Path) -> dict[str, Path]:
    """The real-data source per dataset found in an operator's data directory: `<dataset>.npz`, else the
    first `<dataset>_*.npz` / `<dataset>-*.npz` by name, else the python-format CIFAR folder."""
    found: dict[str, Path] = {}
    if not data_dir.is_dir():
        return found
    for dataset in DATASETS:
        candidates = [data_dir / f"{dataset}.npz"]
        candidates += sorted(p for p in data_dir.glob("*.npz") if p.stem.startswith((f"{dataset}_", f"{dataset}-")))
        if dataset in CIFAR_DIRECTORIES:
            candidates.append(data_dir / CIFAR_DIRECTORIES[dataset])
        source = next((path for path in candidates if path.exists()), None)
        if source is not None:
            found[dataset] = source
    return found


def import_data_directory(session: Session, store: CalibrationStore, data_dir: Path) -> dict[str, str]:
    """`nasscore data add` for every source found in the data directory that the database does not hold
    yet (so a restart never undoes a later `data add`); {dataset: outcome text}."""
    outcomes = {}
    for dataset, path in data_directory_files(data_dir).items():
        try:
            images = read_image_set(dataset, path)
        except CalibrationDataError as error:
            log.warning("data directory: %s is not usable for %s: %s", path, dataset, error)
            outcomes[dataset] = f"unusable: {error}"
            continue
        known = session.execute(select(CalibrationSet.id).where(CalibrationSet.digest == images.digest)).scalar()
        if known is None:
            add_pool(session, store, images)
        state = "already stored" if known is not None else "added"
        outcomes[dataset] = f"{path} ({len(images)} images, sha256:{images.digest[:12]}, {state})"
    return outcomes


def revive_legacy(session: Session, store: CalibrationStore, images: ImageSet) -> int:
    """Configurations made before batches were stored named their file by `origin` (name and file digest);
    when `images` was read from that same file, select each one's batch again, store it and give the
    configuration its content-addressed identity. Returns how many were revived."""
    from app.services.configs import ConfigOptions, fingerprint_of, real_data_source

    if not images.origin or ":sha256-" not in images.origin:
        return 0
    legacy = (
        session.execute(
            select(ScoringConfig).where(
                ScoringConfig.calibration_kind == CalibrationKind.LEGACY,
                ScoringConfig.dataset == images.dataset,
                ScoringConfig.data_source.startswith(f"{images.origin}|"),
            )
        )
        .scalars()
        .all()
    )
    revived = 0
    for config in legacy:
        batch = images.select(config.batch_size, config.sampling, config.seed)
        options = ConfigOptions(batch_size=config.batch_size, sampling=config.sampling, seed=config.seed)
        data_source = real_data_source(images.dataset, batch, options)
        fingerprint = fingerprint_of(config, data_source=data_source, calibration_digest=batch.digest)
        taken = session.execute(select(ScoringConfig.id).where(ScoringConfig.fingerprint == fingerprint)).scalar()
        if taken is not None:
            log.warning("legacy configuration %s matches existing configuration %s; left legacy", config.id, taken)
            continue
        store.store(session, batch, BATCH)
        session.execute(
            update(ScoringConfig)
            .where(ScoringConfig.id == config.id)
            .values(
                calibration_kind=CalibrationKind.STORED,
                calibration_digest=batch.digest,
                pool_digest=images.digest,
                data_source=data_source,
                fingerprint=fingerprint,
            )
        )
        revived += 1
    return revived


def describe_datasets(session: Session) -> list[DatasetData]:
    """Every known dataset and the real data it has (for `GET /v1/datasets`, `nasscore data list`, logs)."""
    described = []
    for name, spec in DATASETS.items():
        pool = default_pool(session, name)
        described.append(
            DatasetData(
                dataset=name,
                num_classes=spec.num_classes,
                image_size=spec.image_size,
                pool_digest=pool.digest if pool else None,
                images=pool.count if pool else None,
                origin=pool.origin if pool else None,
                builtin=bool(pool and pool.origin.startswith("shipped")),
            )
        )
    return described


def read_operator_images(dataset: str, path: Path, field: str = "path") -> ImageSet:
    """Real images from an operator's file, with errors naming `field`."""
    if dataset not in DATASETS:
        raise InvalidInput("dataset", f"unknown dataset {dataset!r}; known datasets: {', '.join(DATASETS)}")
    try:
        return read_image_set(dataset, path)
    except CalibrationDataError as error:
        raise InvalidInput(field, str(error)) from None


def worker_input(session: Session, store: CalibrationStore, config: ScoringConfig) -> CalibrationInput:
    """What a worker anywhere needs to rebuild `config`'s batch, by the kind of source the configuration was
    resolved to: the images stored under its digest (the worker checks them against it), or the recipe of
    its synthetic batch. Nothing is looked up anywhere but in the database."""
    recipe: dict[str, Any] = {
        "dataset": config.dataset,
        "batch_size": config.batch_size,
        "sampling": config.sampling,
        "seed": config.seed,
    }
    if config.calibration_kind == CalibrationKind.SYNTHETIC:
        return CalibrationInput(key=config.data_source, count=config.batch_size, **recipe)
    if config.calibration_kind == CalibrationKind.STORED and config.calibration_digest is not None:
        batch = store.image_set(session, config.calibration_digest)
        pixels, labels = batch.buffers()
        return CalibrationInput(key=config.calibration_digest, count=len(batch), images=pixels, labels=labels, **recipe)
    raise DataUnavailable(
        "dataset",
        f"configuration {config.fingerprint[:12]} was made from a local file before calibration data was "
        f"stored in the database ({config.data_source}); add that file with `nasscore data add "
        f"{config.dataset} PATH` and resume",
    )
