"""Scoring configurations. A proxy value depends on the calibration data, its sampling, the seeded
initialisation, the model's hyper-parameters and the proxy code itself, so all of these go into one
stable fingerprint and scores are only ever compared under the same fingerprint. The calibration batch
enters the fingerprint by the digest of its content (never a path), and it is stored in the database with
the configuration. Real data is the operator's choice: a request names a dataset (or asks for synthetic
data), never a server path."""

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import MAX_DATABASE_INTEGER, CalibrationKind, ScoringConfig
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
    """What changes a score; every field is part of the configuration fingerprint.

    Scoring a network takes memory in proportion to `batch_size`, `channels` and `cells_per_stage` (its
    parameters grow with `channels` squared), nearly twice as much with a second-order proxy (grasp). A server
    refuses (422, naming the field to lower) a configuration whose estimate exceeds its model memory budget
    (`max_model_memory_mb`, 4096 MB by default): at NB201's width and depth, a batch of up to 125 CIFAR
    images with grasp, 226 without; at batch size 64, up to 30 channels with grasp."""

    model_config = ConfigDict(extra="forbid", strict=True)  # as the API's request bodies: no coercion

    batch_size: int = Field(
        64,
        ge=1,
        le=1024,
        description="Calibration batch size, 1-1024; with `channels` and `cells_per_stage` also bounded by the "
        "server's model memory budget (see the configuration's description)",
    )
    sampling: Literal["random", "grasp"] = Field("random", description="How the calibration batch is drawn")
    seed: int = Field(
        0, ge=0, le=MAX_DATABASE_INTEGER, description="Seed of the batch sampling and of the model's init"
    )
    init: Literal["default"] = Field("default", description="Weight initialisation scheme (PyTorch defaults)")
    data: Literal["real", "synthetic"] = Field(
        "real", description="'real' = the operator's data for the dataset; 'synthetic' = seeded Gaussian images"
    )
    channels: int = Field(16, ge=1, le=128, description="Model width C, 1-128 (NB201 trains C=16)")
    cells_per_stage: int = Field(5, ge=1, le=10, description="Cells per stage N, 1-10 (NB201 trains N=5)")

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
    def calibration_kind(self) -> CalibrationKind:
        return CalibrationKind.SYNTHETIC if self.calibration is None else CalibrationKind.STORED

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
        "calibration_kind": config.calibration_kind,
    }
    insert_ignore(session, ScoringConfig.__table__, [row], unique=["fingerprint"])
    return session.execute(select(ScoringConfig).where(ScoringConfig.fingerprint == config.fingerprint)).scalar_one()


# Memory a worker needs to score one NB201 network, beyond its baseline. Scoring keeps the activations one
# forward saves for backward (a second-order proxy keeps the gradient's graph too) and a few copies of the
# parameters (weights, gradients, Hessian-vector products, saliencies). The copies are fitted to measured
# peaks so that the estimate stays above them (tests/app/services/test_memory_bounds.py).
BYTES_PER_FLOAT = 4
PARAMETER_COPIES = 10
ACTIVATION_COPIES = 2.5
SECOND_ORDER_ACTIVATION_COPIES = 4.5
FIXED_OVERHEAD_BYTES = 64 * 2**20
# The largest cell of NB201: every edge a 3x3 convolution (the estimate holds for any cell of a batch).
WIDEST_CELL = ("nor_conv_3x3",) * 6
_EDGE_CONV_KERNELS = {"nor_conv_3x3": 3, "nor_conv_1x1": 1}
MEMORY_FIELDS = {"batch_size": 64, "channels": 16, "cells_per_stage": 5}  # each with NB201's value


@dataclass(frozen=True)
class ModelMemory:
    """What scoring a configuration's largest network holds at its peak, estimated without building it."""

    parameters: int
    activation_floats: int
    second_order: bool

    @property
    def peak_bytes(self) -> int:
        copies = SECOND_ORDER_ACTIVATION_COPIES if self.second_order else ACTIVATION_COPIES
        floats = PARAMETER_COPIES * self.parameters + copies * self.activation_floats
        return math.ceil(floats * BYTES_PER_FLOAT) + FIXED_OVERHEAD_BYTES

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20


def nb201_parameter_count(ops: Sequence[str], num_classes: int, channels: int, cells_per_stage: int) -> int:
    """Parameters of the NB201 network of the cell `ops` (its six edges in order), as
    search_spaces.nb201.build_model lays it out: convolutions without bias, affine BatchNorms."""
    count = 3 * 9 * channels + 2 * channels  # stem: 3x3 conv and BatchNorm
    for stage in range(3):
        width = channels * 2**stage
        if stage:  # the residual reduction from width / 2: two 3x3 ReLUConvBNs and a 1x1 shortcut conv
            half = width // 2
            count += 9 * half * width + 2 * width + 9 * width * width + 2 * width + half * width
        edges = sum(_EDGE_CONV_KERNELS[op] ** 2 * width * width + 2 * width for op in ops if op in _EDGE_CONV_KERNELS)
        count += cells_per_stage * edges
    width = 4 * channels
    return count + 2 * width + width * num_classes + num_classes  # last BatchNorm and the classifier


def nb201_saved_activations(batch_size: int, image_size: int, channels: int, cells_per_stage: int) -> int:
    """Floats one forward of the widest NB201 network saves for backward: per 3x3-conv edge its ReLU's output
    and its convolution's output; per residual reduction the same for its two convolutions, plus the block's
    input (for the shortcut's pooling) and the pooled shortcut; the stem's input and convolution output; the
    final BatchNorm's input and ReLU's output."""
    sizes = [image_size, (image_size + 1) // 2, (image_size + 3) // 4]  # stride-2 convolutions round up
    maps = 3 * sizes[0] ** 2 + channels * sizes[0] ** 2  # stem
    for stage, size in enumerate(sizes):
        width = channels * 2**stage
        if stage:
            half, previous = width // 2, sizes[stage - 1]
            maps += 2 * half * previous**2 + 3 * width * size**2 + half * (previous // 2) ** 2
        maps += cells_per_stage * 2 * len(WIDEST_CELL) * width * size**2
    last = 4 * channels * sizes[2] ** 2
    return batch_size * (maps + 2 * last)


def model_memory(dataset: str, options: ConfigOptions, proxies: Sequence[str]) -> ModelMemory:
    """The estimate for the widest cell of NB201 under `options`, scored with `proxies` (known names)."""
    from scorers import get_proxy

    spec = known_datasets()[dataset]
    return ModelMemory(
        parameters=nb201_parameter_count(WIDEST_CELL, spec.num_classes, options.channels, options.cells_per_stage),
        activation_floats=nb201_saved_activations(
            options.batch_size, spec.image_size, options.channels, options.cells_per_stage
        ),
        second_order=any(get_proxy(name).needs_second_order for name in proxies),
    )


def check_model_memory(dataset: str, options: ConfigOptions, proxies: Sequence[str], budget_mb: int) -> None:
    """Refuse, before anything is built, a configuration whose network needs more memory than a worker has
    (422 naming `config.<field>`): the field the request raised most above NB201's value, with the largest
    value of it that fits while the others stay as asked."""
    estimate = model_memory(dataset, options, proxies)
    if estimate.peak_mb <= budget_mb:
        return
    field_name = max(MEMORY_FIELDS, key=lambda name: getattr(options, name) / MEMORY_FIELDS[name])
    largest = _largest_fitting(dataset, options, proxies, budget_mb, field_name)
    second_order = " with a second-order proxy (grasp)" if estimate.second_order else ""
    advice = (
        f"with the other values as asked, {field_name} may be at most {largest}"
        if largest
        else f"lower {', '.join(f'config.{name}' for name in MEMORY_FIELDS)}"
    )
    raise InvalidInput(
        f"config.{field_name}",
        f"scoring a network of {options.channels} channels and {options.cells_per_stage} cells per stage on "
        f"{options.batch_size} images{second_order} needs about {estimate.peak_mb:,.0f} MB, over this server's "
        f"budget of {budget_mb:,} MB per model; {advice}",
    )


def _largest_fitting(
    dataset: str, options: ConfigOptions, proxies: Sequence[str], budget_mb: int, field_name: str
) -> int:
    """The largest value of `field_name` (0 if none) whose estimate fits, by bisection: the estimate grows
    with each field."""
    low, high = 0, getattr(options, field_name)
    while low < high:
        middle = (low + high + 1) // 2
        if model_memory(dataset, replace(options, **{field_name: middle}), proxies).peak_mb <= budget_mb:
            low = middle
        else:
            high = middle - 1
    return low
