"""Scoring configurations. A proxy value depends on the calibration data, its sampling, the seeded
initialisation, the model's hyper-parameters and the proxy code itself, so all of these go into one
stable fingerprint and scores are only ever compared under the same fingerprint. Calibration data is the
operator's choice: a request names a dataset (or asks for synthetic data), never a server path."""

import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import ScoringConfig
from app.db.upsert import insert_ignore
from app.services.errors import DataUnavailable, InvalidInput

# Bump when proxy code changes the numbers it produces: old and new scores then never mix.
PROXY_IMPLEMENTATION_VERSION = "1"
SYNTHETIC = "synthetic"
INIT_SCHEMES = ("default",)
SAMPLING_METHODS = ("random", "grasp")
# Where an operator's real data for a dataset may live inside NASSCORE_DATA_DIR, in order of preference.
DATASET_DIRECTORIES = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


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


@dataclass(frozen=True)
class ResolvedConfig:
    """A configuration bound to a concrete calibration source on this machine."""

    dataset: str
    source: str
    data_source: str
    batch_size: int
    sampling: str
    seed: int
    init: str
    proxy_version: str
    model_params: dict[str, Any] = field(hash=False)

    @property
    def fingerprint(self) -> str:
        identity = {k: v for k, v in asdict(self).items() if k != "source"}
        encoded = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(encoded.encode()).hexdigest()


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


def _stat_signature(path: Path) -> tuple:
    """Changes whenever a data file (or a file in a data directory) is replaced."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)


class DataCatalog:
    """Finds and describes calibration sources: the operator's data directory, explicit local paths (CLI)
    and synthetic data. Descriptions are cached because producing one loads and hashes the data."""

    def __init__(self, data_dir: Path, extra_sources: tuple[str, ...] = ()) -> None:
        self.data_dir = data_dir
        self.extra_sources = extra_sources
        self._descriptions: dict[tuple, str] = {}
        self._lock = threading.Lock()

    def real_source(self, dataset: str) -> str | None:
        candidates = [self.data_dir / f"{dataset}.npz"]
        if dataset in DATASET_DIRECTORIES:
            candidates.append(self.data_dir / DATASET_DIRECTORIES[dataset])
        return next((str(path) for path in candidates if path.exists()), None)

    def describe(self, dataset: str, source: str, batch_size: int, sampling: str, seed: int) -> str:
        signature = () if source == SYNTHETIC else _stat_signature(Path(source))
        key = (dataset, source, batch_size, sampling, seed, signature)
        with self._lock:
            if key not in self._descriptions:
                from scorers.calibration import load_calibration_batch

                batch = load_calibration_batch(dataset, source, batch_size=batch_size, sampling=sampling, seed=seed)
                self._descriptions[key] = batch.description
            return self._descriptions[key]

    def choose_source(self, dataset: str, data: str) -> str:
        """The source for a request: synthetic when asked for, else the operator's (or the CLI's) real data."""
        if data == SYNTHETIC:
            return SYNTHETIC
        if data != "real":
            raise InvalidInput("config.data", f"must be 'real' or 'synthetic', got {data!r}")
        explicit = [s for s in self.extra_sources if s != SYNTHETIC]
        source = explicit[0] if explicit else self.real_source(dataset)
        if source is None:
            raise DataUnavailable(
                "dataset",
                f"this server has no real calibration data for {dataset!r}; the operator can add it to the data "
                f"directory (as {dataset}.npz or the python-format CIFAR folder), or ask for config.data='synthetic'",
            )
        return source

    def locate(self, config: ScoringConfig) -> str:
        """The local source whose description matches a stored configuration, so a resumed job computes
        exactly what was asked for, or a DataUnavailable naming the mismatch."""
        candidates = [SYNTHETIC, *self.extra_sources]
        real = self.real_source(config.dataset)
        if real is not None:
            candidates.append(real)
        for source in dict.fromkeys(candidates):
            try:
                description = self.describe(config.dataset, source, config.batch_size, config.sampling, config.seed)
            except (ValueError, OSError):
                continue  # an unreadable source cannot be the one the configuration was made from
            if description == config.data_source:
                return source
        raise DataUnavailable(
            "dataset", f"calibration data {config.data_source!r} for {config.dataset!r} is not available here any more"
        )


def resolve_config(catalog: DataCatalog, dataset: str, options: ConfigOptions) -> ResolvedConfig:
    validate_dataset(dataset)
    if options.init not in INIT_SCHEMES:
        raise InvalidInput("config.init", f"unknown init scheme {options.init!r}; known: {', '.join(INIT_SCHEMES)}")
    if options.sampling not in SAMPLING_METHODS:
        raise InvalidInput("config.sampling", f"must be one of {', '.join(SAMPLING_METHODS)}, got {options.sampling!r}")
    source = catalog.choose_source(dataset, options.data)
    try:
        description = catalog.describe(dataset, source, options.batch_size, options.sampling, options.seed)
    except (ValueError, OSError) as error:
        raise DataUnavailable("dataset", f"calibration data for {dataset!r} could not be loaded: {error}") from None
    return ResolvedConfig(
        dataset=dataset,
        source=source,
        data_source=description,
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
    )


def get_or_create_config(session: Session, config: ResolvedConfig) -> ScoringConfig:
    row = {k: v for k, v in asdict(config).items() if k != "source"} | {"fingerprint": config.fingerprint}
    insert_ignore(session, ScoringConfig.__table__, [row], unique=["fingerprint"])
    return session.execute(select(ScoringConfig).where(ScoringConfig.fingerprint == config.fingerprint)).scalar_one()
