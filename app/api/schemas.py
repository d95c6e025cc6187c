"""Request and response bodies of the HTTP API (kept apart from the ORM models on purpose: the wire
format is a contract, the tables are an implementation detail)."""

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.services.configs import ConfigOptions



def _one_arch_error(value: Any, handler: ValidatorFunctionWrapHandler) -> str | list[str]:
    """Report a wrongly typed architecture once, not once per accepted spelling."""
    try:
        return handler(value)
    except ValidationError:
        raise PydanticCustomError(
            "arch_type", "must be a cell string like '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|' or a list of op names"
        ) from None


ArchSpec = Annotated[
    str | list[str],
    WrapValidator(_one_arch_error),
    Field(description="Benchmark string '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|' or the 6 op names in edge order"),
]
T = TypeVar("T")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConfigIn(Strict):
    """What changes a score; every field is part of the configuration fingerprint."""

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


class ScoreRequest(Strict):
    space: str = Field("nb201", max_length=64)
    arch: ArchSpec
    dataset: str = Field("cifar10", max_length=64)
    proxies: list[str] | None = Field(
        None, max_length=64, description="Default: snip, grasp, synflow and the default vote preset's proxies"
    )
    config: ConfigIn = Field(default_factory=ConfigIn)


class SampleSpec(Strict):
    n: int = Field(ge=1, description="How many distinct architectures to draw")
    seed: int = Field(0, ge=0, le=2**31 - 1)


class BatchRequest(Strict):
    """Exactly one of `archs`, `sample` or `all` selects the architectures."""

    space: str = Field("nb201", max_length=64)
    dataset: str = Field("cifar10", max_length=64)
    proxies: list[str] | None = Field(None, max_length=64)
    config: ConfigIn = Field(default_factory=ConfigIn)
    archs: list[ArchSpec] | None = None
    sample: SampleSpec | None = None
    all: bool = False
    resume: bool = Field(True, description="Return the identical unfinished batch instead of starting another")

    @model_validator(mode="after")
    def _one_selection(self) -> "BatchRequest":
        selections = (("archs", self.archs is not None), ("sample", self.sample is not None), ("all", self.all))
        chosen = [name for name, used in selections if used]
        if len(chosen) != 1:
            raise ValueError(f"give exactly one of archs, sample or all (got {', '.join(chosen) or 'none'})")
        if self.archs is not None and not self.archs:
            raise ValueError("archs must not be empty")
        return self


class ObservationIn(Strict):
    space: str = Field("nb201", max_length=64)
    arch: ArchSpec
    dataset: str = Field(max_length=64)
    accuracy: float = Field(ge=0, le=100, allow_inf_nan=False, description="Observed accuracy in percent")
    metric: str = Field("test_accuracy", min_length=1, max_length=64)
    epochs: int | None = Field(None, ge=0, le=100_000)
    source: str = Field("api", min_length=1, max_length=128)
    benchmark_index: int | None = Field(None, ge=0, description="The architecture's index in its benchmark")


class ProxyScore(BaseModel):
    value: float | None
    seconds: float | None
    device: str
    error: str | None


class ArchitectureOut(BaseModel):
    id: int
    space: str
    arch: str
    canonical_key: str
    benchmark_index: int | None


class ConfigurationOut(BaseModel):
    fingerprint: str
    dataset: str
    data_source: str
    batch_size: int
    sampling: str
    seed: int
    init: str
    proxy_version: str
    model: dict[str, Any]


class JobRef(BaseModel):
    id: int
    status: str
    url: str


class ScoreResponse(BaseModel):
    status: Literal["done"] = "done"
    cached: bool
    architecture: ArchitectureOut
    configuration: ConfigurationOut
    scores: dict[str, ProxyScore]
    job: JobRef | None = None


class ScoreAccepted(BaseModel):
    status: str
    cached: Literal[False] = False
    job: JobRef


class FailedItem(BaseModel):
    arch: str
    error: str | None


class BatchOut(BaseModel):
    id: int
    url: str
    kind: str
    status: str
    space: str
    dataset: str
    configuration: str = Field(description="Configuration fingerprint")
    proxies: list[str]
    total: int
    done: int
    failed: int
    cancelled: int
    pending: int
    running: int
    rate_per_second: float | None
    eta_seconds: float | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    errors: list[FailedItem] = Field(default_factory=list, description="Up to 10 failed items")
    resumed: bool = False


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class ObservationOut(BaseModel):
    dataset: str
    metric: str
    accuracy: float
    epochs: int | None
    source: str
    observed_at: datetime


class ConfigurationScores(BaseModel):
    configuration: ConfigurationOut
    scores: dict[str, ProxyScore]


class ArchitectureDetail(ArchitectureOut):
    scores: list[ConfigurationScores]
    observations: list[ObservationOut]


class ObservationsStored(BaseModel):
    received: int
    stored: int


class ErrorItem(BaseModel):
    field: str
    message: str


class ErrorResponse(BaseModel):
    detail: str
    errors: list[ErrorItem]
