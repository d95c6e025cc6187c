"""Scoring configurations. A proxy value depends on the calibration data, its sampling, the seeded
initialisation, the model's hyper-parameters and the proxy code itself, so all of these go into one
stable fingerprint and scores are only ever compared under the same fingerprint. The calibration batch
enters the fingerprint by the digest of its content (never a path), and it is stored in the database with
the configuration. Real data is the operator's choice: a request names a dataset (or asks for synthetic
data), never a server path."""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import ScoringConfig
from app.db.upsert import insert_ignore
from app.services.calibration import BATCH, CalibrationStore, require_default_pool, store_image_set
from app.services.errors import InvalidInput
from app.workers.scoring import INIT_SCHEMES
from scorers.calibration import CalibrationDataError, ImageSet, synthetic_description

# Bump when proxy code changes the numbers it produces: old and new scores then never mix.
PROXY_IMPLEMENTATION_VERSION = "1"
SYNTHETIC = "synthetic"
SAMPLING_METHODS = ("random", "grasp")
IDENTITY_FIELDS = ("dataset", "data_source", "batch_size", "sampling", "seed", "init", "proxy_version", "model_params")


@dataclass(frozen=True)
class ConfigOptions:
    """What a client may choose; `data` is "real" (the operator's data) or "synthetic"."""

    batch_size: int = 64
    sampling: str = "random"
    seed: int = 0
    init: str = "default"
    data: str = "real"
    channels: int = 16
    cells_per_stage: int = 5


# The options as the API's `config` body and `nasscore batch`'s flags check them: one model, so both refuse
# the same values (its docstring is the API's schema description).
class ConfigIn(BaseModel):
    """What changes a score; every field is part of the configuration fingerprint."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(64, ge=1, le=1024, description="Calibration batch size")
    sampling: Literal["random", "grasp"] = Field("random", description="How the calibration batch is drawn")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed of the batch sampling and of the model's init")
    init: Literal["default"] = Field("default", description="Weight initialisation scheme (PyTorch defaults)")
    data: Literal["real", "synthetic"] = Field(
        "real", description="'real' = the operator's data for the dataset; 'synthetic' = seeded Gaussian images"
    )
    channels: int = Field(16, ge=1, le=128, description="Model width C (NB201 trains C=16)")
    cells_per_stage: int = Field(5, ge=1, le=10, description="Cells per stage N (NB201 trains N=5)")

    def options(self) -> ConfigOptions:
        return ConfigOptions(**self.model_dump())


@dataclass(frozen=True)
class ResolvedConfig:
    """A configuration bound to its calibration batch (None for synthetic data, a pure function of the
    options that any worker regenerates)."""

    dataset: str
    data_source: str
    batch_size: int
    sampling: str
    seed: int
    init: str
    proxy_version: str
    model_params: dict[str, Any] = field(hash=False)
    calibration: ImageSet | None = field(default=None, hash=False, compare=False)
    pool_digest: str | None = None

    @property
    def calibration_digest(self) -> str | None:
        return self.calibration.digest if self.calibration is not None else None

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self)


def known_datasets() -> dict[str, Any]:
    from scorers.calibration import DATASETS

    return DATASETS


def validate_dataset(dataset: str, field_name: str = "dataset") -> None:
    datasets = known_datasets()
    if dataset not in datasets:
        raise InvalidInput(field_name, f"unknown dataset {dataset!r}; known datasets: {', '.join(sorted(datasets))}")


def _num_classes(dataset: str) -> int:
    return known_datasets()[dataset].num_classes


def validate_proxies(names: Sequence[str] | None, field_name: str = "proxies") -> tuple[str, ...]:
    """Known proxy names in request order without repeats; the registry's default set when None."""
    from scorers import DEFAULT_PROXIES, UnknownProxyError, get_proxy

    if names is None:
        return tuple(DEFAULT_PROXIES)
    if not names:
        raise InvalidInput(field_name, "must name at least one proxy")
    for position, name in enumerate(names):
        try:
            get_proxy(name)
        except UnknownProxyError as error:
            raise InvalidInput(f"{field_name}[{position}]", str(error)) from None
    return tuple(dict.fromkeys(names))


def real_data_source(dataset: str, batch: ImageSet, options: ConfigOptions) -> str:
    """A readable name of a real batch; the full digest is part of the identity too."""
    return f"sha256:{batch.digest[:12]}|{dataset}|{options.sampling}|seed={options.seed}|n={len(batch)}"


def fingerprint_of(values: Any, **overrides: Any) -> str:
    """SHA-256 of a configuration's identity, from a ResolvedConfig or a stored row (plus overrides).
    A synthetic configuration has no calibration digest, so its fingerprint is what it always was."""
    identity = {name: overrides.get(name, getattr(values, name)) for name in IDENTITY_FIELDS}
    digest = overrides.get("calibration_digest", getattr(values, "calibration_digest", None))
    if digest is not None:
        identity["calibration_digest"] = digest
    encoded = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()


def resolve_config(
    session: Session,
    store: CalibrationStore,
    dataset: str,
    options: ConfigOptions,
    images: ImageSet | None = None,
) -> ResolvedConfig:
    """Bind the options to a concrete calibration batch: synthetic, drawn from `images` (a local file the
    CLI was given), or drawn from the dataset's stored default pool. Only reads the database."""
    validate_dataset(dataset)
    if options.init not in INIT_SCHEMES:
        raise InvalidInput("config.init", f"unknown init scheme {options.init!r}; known: {', '.join(INIT_SCHEMES)}")
    if options.sampling not in SAMPLING_METHODS:
        raise InvalidInput("config.sampling", f"must be one of {', '.join(SAMPLING_METHODS)}, got {options.sampling!r}")
    if options.data not in ("real", SYNTHETIC):
        raise InvalidInput("config.data", f"must be 'real' or 'synthetic', got {options.data!r}")
    batch, pool_digest = (
        (None, None) if options.data == SYNTHETIC else _real_batch(session, store, dataset, options, images)
    )
    data_source = (
        synthetic_description(dataset, options.batch_size, options.sampling, options.seed)
        if batch is None
        else real_data_source(dataset, batch, options)
    )
    return ResolvedConfig(
        dataset=dataset,
        data_source=data_source,
        batch_size=options.batch_size,
        sampling=options.sampling,
        seed=options.seed,
        init=options.init,
        proxy_version=PROXY_IMPLEMENTATION_VERSION,
        model_params={
            "num_classes": _num_classes(dataset),
            "channels": options.channels,
            "cells_per_stage": options.cells_per_stage,
        },
        calibration=batch,
        pool_digest=pool_digest,
    )


def _real_batch(
    session: Session, store: CalibrationStore, dataset: str, options: ConfigOptions, images: ImageSet | None
) -> tuple[ImageSet, str]:
    field_name = "config.batch_size" if options.sampling == "random" else "config.sampling"
    try:
        if images is not None:
            if images.dataset != dataset:
                raise InvalidInput("dataset", f"the given images are {images.dataset!r} data, not {dataset!r}")
            return images.select(options.batch_size, options.sampling, options.seed), images.digest
        pool = require_default_pool(session, dataset)
        return store.select_batch(session, pool.digest, options.batch_size, options.sampling, options.seed), pool.digest
    except CalibrationDataError as error:
        raise InvalidInput(field_name, f"cannot draw the calibration batch from {dataset!r} data: {error}") from None


def get_or_create_config(session: Session, config: ResolvedConfig) -> ScoringConfig:
    """The stored configuration (and its calibration batch), created once whoever asks first."""
    if config.calibration is not None:
        store_image_set(session, config.calibration, BATCH)
    row = {name: getattr(config, name) for name in IDENTITY_FIELDS} | {
        "fingerprint": config.fingerprint,
        "calibration_digest": config.calibration_digest,
        "pool_digest": config.pool_digest,
        "legacy": False,
    }
    insert_ignore(session, ScoringConfig.__table__, [row], unique=["fingerprint"])
    return session.execute(select(ScoringConfig).where(ScoringConfig.fingerprint == config.fingerprint)).scalar_one()
