"""Scoring configurations. A proxy value depends on the calibration data, its sampling, the seeded
initialisation, the model's hyper-parameters and the proxy code itself, so all of these go into one
stable fingerprint and scores are only ever compared under the same fingerprint. The calibration batch
enters the fingerprint by the digest of its content (never a path), and it is stored in the database with
the configuration. Real data is the operator's choice: a request names a dataset (or asks for synthetic
data), never a server path."""

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import MAX_DATABASE_INTEGER, CalibrationKind, ScoringConfig
from app.db.upsert import insert_ignore
from app.services.calibration import BATCH, CalibrationStore, require_default_pool, store_image_set
from app.services.errors import InvalidInput
from app.services.spaces import lookup_space
from app.workers.scoring import INIT_SCHEMES
from scorers.calibration import CalibrationDataError, ImageSet, synthetic_description
from search_spaces import DEFAULT_SPACE, SPACES, HyperParameter, ModelOptionError, NetworkSize

# Bump when proxy code changes the numbers it produces: old and new scores then never mix.
PROXY_IMPLEMENTATION_VERSION = "1"
SYNTHETIC = "synthetic"
SAMPLING_METHODS = ("random", "grasp")
IDENTITY_FIELDS = ("dataset", "data_source", "batch_size", "sampling", "seed", "init", "proxy_version", "model_params")
SPACE_KEY = "space"
"""The key of `model_params` that names the space of a configuration for any space but NB201's."""


@dataclass(frozen=True, init=False)
class ConfigOptions:
    """What a client may choose; `data` is "real" (the operator's data) or "synthetic". `model` holds the
    network options the client gave (e.g. NB201's `channels`), given as keywords like the others, as in the
    request's `config`; the space checks them and fills in its defaults (`model_params`)."""

    batch_size: int
    sampling: str
    seed: int
    init: str
    data: str
    model: Mapping[str, object]

    def __init__(
        self,
        batch_size: int = 64,
        sampling: str = "random",
        seed: int = 0,
        init: str = "default",
        data: str = "real",
        model: Mapping[str, object] | None = None,
        **model_options: object,
    ) -> None:
        values = {"batch_size": batch_size, "sampling": sampling, "seed": seed, "init": init, "data": data}
        for name, value in values.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "model", {**(model or {}), **model_options})


def _document_model_options(schema: dict[str, Any]) -> None:
    """The network options in the published schema: one property per option name any registered space has,
    described per space (the space the request names checks them; an option it lacks is a 422)."""
    uses: dict[str, list[tuple[str, HyperParameter]]] = {}
    for space in SPACES.values():
        for name, option in space.hyper_parameters.items():
            uses.setdefault(name, []).append((space.name, option))
    for name, options in uses.items():
        schema["properties"][name] = {
            "type": "integer",
            "minimum": min(option.low for _, option in options),
            "maximum": max(option.high for _, option in options),
            "title": name.replace("_", " ").capitalize(),
            "description": "Network option of "
            + "; ".join(f"{space}: {o.description}, {o.low}-{o.high} (default {o.default})" for space, o in options),
        }
    schema["additionalProperties"] = False


# The options as the API's `config` body and `nasscore batch`'s flags check them: one model, so both refuse
# the same values (its docstring is the API's schema description).
class ConfigIn(BaseModel):
    """What changes a score; every field is part of the configuration fingerprint.

    Besides the fields below, the network options of the request's search space (NB201: `channels`,
    `cells_per_stage`), each an integer within the space's bounds, its default when left out; an option the
    space does not have is refused (422 naming `config.<option>`).

    Scoring a network takes memory in proportion to `batch_size` and to the network's size (NB201's
    parameters grow with `channels` squared, its activations with `channels` and `cells_per_stage`), nearly
    twice as much with a second-order proxy (grasp). A server refuses (422, naming the field to lower) a
    configuration whose estimate exceeds its model memory budget (`max_model_memory_mb`, 4096 MB by default):
    at NB201's width and depth, a batch of up to 125 CIFAR images with grasp, 226 without; at batch size 64,
    up to 30 channels with grasp."""

    # As the API's request bodies: no coercion. The network options are the extra fields (checked by the space).
    model_config = ConfigDict(extra="allow", strict=True, json_schema_extra=_document_model_options)

    batch_size: int = Field(
        64,
        ge=1,
        le=1024,
        description="Calibration batch size, 1-1024; with the network's options also bounded by the server's "
        "model memory budget (see the configuration's description)",
    )
    sampling: Literal["random", "grasp"] = Field("random", description="How the calibration batch is drawn")
    seed: int = Field(
        0, ge=0, le=MAX_DATABASE_INTEGER, description="Seed of the batch sampling and of the model's init"
    )
    init: Literal["default"] = Field("default", description="Weight initialisation scheme (PyTorch defaults)")
    data: Literal["real", "synthetic"] = Field(
        "real", description="'real' = the operator's data for the dataset; 'synthetic' = seeded Gaussian images"
    )

    def options(self) -> ConfigOptions:
        fixed = self.model_dump(exclude=set(self.model_extra or {}))
        return ConfigOptions(**fixed, model=dict(self.model_extra or {}))


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


def validate_proxies(
    names: Sequence[str] | None, field_name: str = "proxies", space: str = DEFAULT_SPACE
) -> tuple[str, ...]:
    """Known proxy names in request order without repeats; the registry's default set when None, less the
    proxies the space cannot score. A named proxy the space refuses is a 422 naming it with the space's
    reason."""
    from scorers import DEFAULT_PROXIES, UnknownProxyError, get_proxy

    unsupported = lookup_space(space).unsupported_proxies
    if names is None:
        return tuple(name for name in DEFAULT_PROXIES if name not in unsupported)
    if not names:
        raise InvalidInput(field_name, "must name at least one proxy")
    for position, name in enumerate(names):
        try:
            get_proxy(name)
        except UnknownProxyError as error:
            raise InvalidInput(f"{field_name}[{position}]", str(error)) from None
    check_supported_proxies(names, space, field_name)
    return tuple(dict.fromkeys(names))


def check_supported_proxies(names: Sequence[str], space: str, field_name: str, *, indexed: bool = True) -> None:
    """A 422 naming `field_name[position]` (just `field_name` when not `indexed`) for the first proxy the
    space cannot score, with the space's reason."""
    unsupported = lookup_space(space).unsupported_proxies
    for position, name in enumerate(names):
        if name in unsupported:
            where = f"{field_name}[{position}]" if indexed else field_name
            raise InvalidInput(where, f"{name} cannot score {space} architectures: {unsupported[name]}")


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
    *,
    space: str = DEFAULT_SPACE,
) -> ResolvedConfig:
    """Bind the options to a concrete calibration batch: synthetic, drawn from `images` (a local file the
    CLI was given), or drawn from the dataset's stored default pool. Only reads the database."""
    model = model_params(space, dataset, options)
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
        model_params=model,
        calibration=batch,
        pool_digest=pool_digest,
    )


def validate_space_dataset(space: str, dataset: str, field_name: str = "dataset") -> None:
    """A known dataset that the space's network is defined for."""
    validate_dataset(dataset, field_name)
    datasets = lookup_space(space).datasets
    if dataset not in datasets:
        raise InvalidInput(field_name, f"{space} networks are defined for {', '.join(datasets)}, not {dataset!r}")


def model_options(space: str, options: ConfigOptions) -> dict[str, int]:
    """The space's network options for a request, checked and completed with its defaults; a 422 naming
    `config.<option>` otherwise."""
    try:
        return lookup_space(space).model_options(options.model)
    except ModelOptionError as error:
        raise InvalidInput(f"config.{error.option}", str(error)) from None


def model_params(space: str, dataset: str, options: ConfigOptions) -> dict[str, Any]:
    """What a worker builds the network from, as the configuration's identity holds it: the classes of the
    dataset and the space's options. Any space but NB201 is named in it too, so that configurations of two
    spaces never share a fingerprint; NB201's carry no name, exactly as they did before there were other
    spaces, so their fingerprints (and the scores stored under them) keep their meaning."""
    validate_space_dataset(space, dataset)
    params: dict[str, Any] = {"num_classes": _num_classes(dataset), **model_options(space, options)}
    return params if space == DEFAULT_SPACE else {SPACE_KEY: space, **params}


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


# Memory a worker needs to score one network, beyond its baseline. Scoring keeps the activations one forward
# saves for backward (a second-order proxy keeps the gradient's graph too) and a few copies of the parameters
# (weights, gradients, Hessian-vector products, saliencies). The copies are fitted to measured peaks of NB201
# networks so that the estimate stays above them (tests/app/services/test_memory_bounds.py); each space gives
# the size of its largest network (`SearchSpace.network_size`).
BYTES_PER_FLOAT = 4
PARAMETER_COPIES = 10
ACTIVATION_COPIES = 2.5
SECOND_ORDER_ACTIVATION_COPIES = 4.5
FIXED_OVERHEAD_BYTES = 64 * 2**20
REFERENCE_BATCH_SIZE = 64
"""The batch size a refusal compares a request's with (the default), as it compares options with theirs."""


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


@lru_cache(maxsize=256)
def _network_size(space: str, num_classes: int, image_size: int, options: tuple[tuple[str, int], ...]) -> NetworkSize:
    """Memoised: a space without a formula builds its network on the meta device, and a refusal bisects."""
    return lookup_space(space).network_size(num_classes, image_size, **dict(options))


def model_memory(
    dataset: str,
    options: ConfigOptions,
    proxies: Sequence[str],
    space: str = DEFAULT_SPACE,
    network: NetworkSize | None = None,
) -> ModelMemory:
    """The estimate for the space's largest network under `options` (or for `network`, the size of the very
    networks a request scores, where the service knows it: uploaded ONNX networks), scored with `proxies`
    (known names)."""
    from scorers import get_proxy

    spec = known_datasets()[dataset]
    chosen = model_options(space, options)
    size = network or _network_size(space, spec.num_classes, spec.image_size, tuple(chosen.items()))
    return ModelMemory(
        parameters=size.parameters,
        activation_floats=options.batch_size * size.saved_floats_per_image,
        second_order=any(get_proxy(name).needs_second_order for name in proxies),
    )


def check_model_memory(
    dataset: str,
    options: ConfigOptions,
    proxies: Sequence[str],
    budget_mb: int,
    space: str = DEFAULT_SPACE,
    network: NetworkSize | None = None,
) -> None:
    """Refuse, before anything is built, a configuration whose network needs more memory than a worker has
    (422 naming `config.<field>`): of the batch size and the network's options, the one the request raised
    most above its default, with the largest value of it that fits while the others stay as asked.
    `network`: as for `model_memory`."""
    estimate = model_memory(dataset, options, proxies, space, network)
    if estimate.peak_mb <= budget_mb:
        return
    chosen = model_options(space, options)
    defaults = {name: option.default for name, option in lookup_space(space).hyper_parameters.items()}
    asked = {"batch_size": options.batch_size, **chosen}
    reference = {"batch_size": REFERENCE_BATCH_SIZE, **defaults}
    field_name = max(asked, key=lambda name: asked[name] / reference[name])
    largest = _largest_fitting(dataset, options, proxies, budget_mb, field_name, space, network)
    second_order = " with a second-order proxy (grasp)" if estimate.second_order else ""
    described = f" ({', '.join(f'{name}={value}' for name, value in chosen.items())})" if chosen else ""
    advice = (
        f"with the other values as asked, {field_name} may be at most {largest}"
        if largest is not None
        else f"lower {', '.join(f'config.{name}' for name in asked)}"
    )
    raise InvalidInput(
        f"config.{field_name}",
        f"scoring {'the largest' if network is None else 'the given'} {space} network{described} on "
        f"{options.batch_size} images{second_order} needs "
        f"about {estimate.peak_mb:,.0f} MB, over this server's budget of {budget_mb:,} MB per model; {advice}",
    )


def _largest_fitting(
    dataset: str,
    options: ConfigOptions,
    proxies: Sequence[str],
    budget_mb: int,
    field_name: str,
    space: str,
    network: NetworkSize | None,
) -> int | None:
    """The largest allowed value of `field_name` whose estimate fits (None if none does), by bisection: the
    estimate grows with each field."""
    if field_name == "batch_size":
        lowest, asked = 1, options.batch_size

        def with_value(value: int) -> ConfigOptions:
            return replace(options, batch_size=value)
    else:
        lowest, asked = lookup_space(space).hyper_parameters[field_name].low, model_options(space, options)[field_name]

        def with_value(value: int) -> ConfigOptions:
            return replace(options, model={**options.model, field_name: value})

    low, high = lowest - 1, asked
    while low < high:
        middle = (low + high + 1) // 2
        if model_memory(dataset, with_value(middle), proxies, space, network).peak_mb <= budget_mb:
            low = middle
        else:
            high = middle - 1
    return low if low >= lowest else None
