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

from app.db.models import MAX_DATABASE_INTEGER
from app.services.configs import ConfigIn
from app.services.leaderboard import MIN_VOTE_POPULATION
from app.services.observations import (
    DEFAULT_METRIC,
    KNOWN_METRICS,
    MAX_EPOCHS,
    MAX_METRIC_LENGTH,
    MAX_SOURCE_LENGTH,
)
from app.services.population import LISTED_SOURCES
from search_spaces import DEFAULT_SPACE, SPACES


def _one_arch_error(value: Any, handler: ValidatorFunctionWrapHandler) -> str | list[str] | dict[str, Any]:
    """Report a wrongly typed architecture once, not once per accepted spelling."""
    try:
        return handler(value)
    except ValidationError:
        raise PydanticCustomError(
            "arch_type",
            "must be the space's text (e.g. an NB201 cell string like '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'), a "
            "list of op names or a JSON object",
        ) from None


ArchSpec = Annotated[
    str | list[str] | dict[str, Any],
    WrapValidator(_one_arch_error),
    Field(
        description="An architecture of the request's space, as its text (what `nasscore spaces SPACE` prints; "
        "NB201: the benchmark string '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|' or its 6 op names in edge order) "
        'or as a JSON object where the space reads one (onnx: the file as {"onnx_base64": "..."}, stored on '
        "the way, or `onnx:<digest>` of one stored before)"
    ),
]
SPACE_DESCRIPTION = "Search space: " + "; ".join(f"`{name}`, {space.title}" for name, space in SPACES.items())
T = TypeVar("T")


class Strict(BaseModel):
    """Request bodies: unknown fields refused, and no coercion (`true` is not the integer 1, `"5"` not 5), so
    a body that the schema rejects is rejected here too."""

    model_config = ConfigDict(extra="forbid", strict=True)


class VoteIn(Strict):
    """The vote that ranks a scored architecture: GET /v1/leaderboard's `preset`, `proxies` and `method`.
    Named voters are computed too, whatever `proxies` of the request says."""

    preset: str | None = Field(
        None, max_length=64, description="Vote preset (default: the leaderboard's default, judged on this architecture)"
    )
    proxies: list[str] | None = Field(None, max_length=64, description="Voters instead of a preset")
    method: str | None = Field(
        None, max_length=64, description="mean_rank, log_rank or majority (default: the preset's; mean_rank for a list)"
    )


class ScoreRequest(Strict):
    space: str = Field(DEFAULT_SPACE, max_length=64, description=SPACE_DESCRIPTION)
    arch: ArchSpec
    dataset: str = Field(
        "cifar10", max_length=64, description="cifar10, cifar100 or imagenet16-120: the calibration data and classes"
    )
    proxies: list[str] | None = Field(
        None,
        max_length=64,
        description="Proxies to compute. Default: snip, grasp, synflow and the default vote "
        "preset's proxies (every preset's voters)",
    )
    config: ConfigIn = Field(
        default_factory=ConfigIn,
        description="What changes a score (default: the space's network as its benchmark trains it)",
    )
    vote: VoteIn = Field(default_factory=VoteIn, description="The vote that ranks the architecture")


class SampleSpec(Strict):
    n: int = Field(
        ge=1, le=MAX_DATABASE_INTEGER, description="How many distinct architectures to draw: at most the space's size"
    )
    seed: int = Field(
        0, ge=0, le=MAX_DATABASE_INTEGER, description="Seed of the draw: the same seed draws the same cells"
    )


class BatchRequest(Strict):
    """Exactly one of `archs`, `sample` or `all` selects the architectures."""

    space: str = Field(DEFAULT_SPACE, max_length=64, description=SPACE_DESCRIPTION)
    dataset: str = Field(
        "cifar10", max_length=64, description="cifar10, cifar100 or imagenet16-120: the calibration data and classes"
    )
    proxies: list[str] | None = Field(
        None, max_length=64, description="Proxies to compute (default: as for POST /v1/scores)"
    )
    config: ConfigIn = Field(
        default_factory=ConfigIn,
        description="What changes a score (default: the space's network as its benchmark trains it)",
    )
    archs: list[ArchSpec] | None = Field(None, description="These architectures")
    sample: SampleSpec | None = Field(None, description="Distinct architectures drawn at random from the space")
    all: bool = Field(False, description="Every architecture of the space")
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
    space: str = Field(DEFAULT_SPACE, max_length=64, description=SPACE_DESCRIPTION)
    arch: ArchSpec
    dataset: str = Field(max_length=64, description="The dataset the accuracy was measured on")
    accuracy: float = Field(ge=0, le=100, allow_inf_nan=False, description="Observed accuracy in percent")
    metric: str = Field(
        DEFAULT_METRIC,
        min_length=1,
        max_length=MAX_METRIC_LENGTH,
        description=f"What was measured: {', '.join(KNOWN_METRICS)} or one of the server's `extra_metrics`; "
        "reports pick one with `metric`",
    )
    epochs: int | None = Field(None, ge=0, le=MAX_EPOCHS, description="Training epochs behind the accuracy")
    source: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_SOURCE_LENGTH,
        description="Where it comes from, e.g. a benchmark's file; each source keeps its own value and reports "
        "pick one with `source` (default: the posting key's name, or 'api' without a key)",
    )
    benchmark_index: int | None = Field(
        None,
        ge=0,
        le=MAX_DATABASE_INTEGER,
        description="The architecture's index in its benchmark, below the size of the space (NAS-Bench-201: "
        "0-15,624); no other cell may hold it, and only an admin may change a cell's stored index",
    )


class ProxyScore(BaseModel):
    value: float | None = Field(description="The proxy's score, higher = better (null: not finite, or not computed)")
    seconds: float | None = Field(description="Time it took, shared passes split among the proxies using them")
    device: str = Field(description="Device the value was computed on (provenance, not identity)")
    torch_version: str | None = Field(None, description="PyTorch version it was computed with (provenance)")
    error: str | None = Field(description="Why no value was computed")


class ArchitectureOut(BaseModel):
    id: int
    space: str
    arch: str
    canonical_key: str
    benchmark_index: int | None


class OnnxArchitectureOut(ArchitectureOut):
    """An uploaded ONNX network's architecture: `arch` is `onnx:<digest>`, what requests name it by."""

    digest: str = Field(description="SHA-256 of the network's structure (weights and names left out)")
    nodes: int = Field(description="Nodes of the file")
    parameters: int = Field(description="Parameters of the network rebuilt from it")
    input_shape: list[int] = Field(description="The images it takes: [3, H, W]")
    num_classes: int = Field(description="The logits it puts out")
    file_bytes: int = Field(description="Size of the stored file (the first uploaded with this structure)")


class ConfigurationOut(BaseModel):
    fingerprint: str
    dataset: str
    data_source: str = Field(description="Readable name of the calibration batch")
    calibration_digest: str | None = Field(
        description="SHA-256 of the calibration batch stored in the database (null: synthetic or legacy)"
    )
    legacy: bool = Field(False, description="Made from a local file before batches were stored; not scorable")
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


class VoteStandingOut(BaseModel):
    """The zero-cost score: how the architecture's isomorphism class ranks by the vote among the classes
    scored under the same space and configuration."""

    preset: str | None = Field(description="The preset voting, null for a list of proxies")
    method: str
    voters: list[str]
    rank: int | None = Field(description="1 = best vote among the classes (ties share the best rank)")
    percentile: float | None = Field(description="Share of the other classes with a lower vote, ties counting half")
    population: int = Field(description="Isomorphism classes voted on, this architecture's own once")
    leaderboard_url: str | None = Field(description="The leaderboard page listing this architecture's class")
    reason: str | None = Field(
        description=f"Why rank and percentile are null: a voter was not scored, or fewer than "
        f"{MIN_VOTE_POPULATION} classes are scored"
    )


class ScoreResponse(BaseModel):
    status: Literal["done"] = "done"
    cached: bool = Field(description="Every score was stored already; nothing was computed for this request")
    architecture: ArchitectureOut
    configuration: ConfigurationOut
    scores: dict[str, ProxyScore]
    vote: VoteStandingOut
    job: JobRef | None = Field(None, description="The job that computed the missing scores, when there was one")


class ScoreAccepted(BaseModel):
    status: str = Field(description="The job's status: 'pending' or 'running'")
    cached: Literal[False] = False
    job: JobRef


class FailedItem(BaseModel):
    arch: str
    error: str | None


class BatchLinks(BaseModel):
    """Where the batch's population is reported (its space, dataset and configuration)."""

    leaderboard: str
    correlations: str
    correlation_plot: str
    export: str


class BatchOut(BaseModel):
    id: int
    url: str
    kind: str = Field(description="'batch', or 'score' for a job POST /v1/scores queued")
    status: str = Field(description="'pending', 'running', 'done' or 'cancelled'")
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
    rate_per_second: float | None = Field(description="Items finished per second since the batch started")
    eta_seconds: float | None = Field(description="Seconds until the pending and running items are done, at that rate")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    errors: list[FailedItem] = Field(default_factory=list, description="Up to 10 failed items")
    resumed: bool = Field(False, description="An identical batch was resumed (its failed items retried)")
    owner: str | None = Field(None, description="The API key that started it (null: no key was sent)")
    links: BatchLinks


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
    posted_by: str | None = Field(description="The API key that posted it (null: a local import or no key)")
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


class ObservationsDeleted(BaseModel):
    deleted: int = Field(description="Observations removed")


class ErrorItem(BaseModel):
    field: str = Field(description="The parameter or body field at fault, e.g. 'arch' or 'body[3].accuracy'")
    message: str


class ErrorResponse(BaseModel):
    """Every 4xx: one entry per faulty field; `detail` joins them as 'field: message; ...'."""

    detail: str
    errors: list[ErrorItem]


class Readiness(BaseModel):
    """GET /readyz: each check, and `status` 'ready' only when the database, workers and dispatcher all are."""

    status: Literal["ready", "not ready"]
    database_url: str = Field(description="The database, password hidden")
    database: str = Field(description="'ok' or 'unreachable: <error type>'")
    data: dict[str, str] | None = Field(
        None, description="Per dataset: the real calibration images stored, or 'synthetic only'"
    )
    workers: dict[str, Any] | str = Field(
        description="The executor's health, or 'not started'. `executor` says which: `local` (its worker "
        "processes: devices, pids, restarts) or `ray` (the cluster's address and one entry per actor under "
        "`actors`: state starting/ready/lost, node, pid, GPUs, restarts)"
    )
    dispatcher: str = Field(description="'ok' or 'not running'")
    auth: Literal["on", "off"] = Field(description="Whether write requests need an API key (`--auth`)")


class DatasetOut(BaseModel):
    """A dataset and the real calibration data the service holds for it."""

    dataset: str
    num_classes: int
    image_size: int
    real_data: bool = Field(description="Whether real images are stored (else only config.data='synthetic')")
    images: int | None = Field(description="How many real images new calibration batches are drawn from")
    digest: str | None = Field(description="SHA-256 of those images")
    origin: str | None = Field(description="Where they came from (informational)")
    builtin: bool = Field(description="The small real set shipped with nasscore")
    add_command: str | None = Field(description="How an operator adds real data, when there is none")


class VoteOut(BaseModel):
    voters: list[str]
    method: str
    preset: str | None = Field(description="The preset voting, null for a list of proxies")


class ConfigurationCount(BaseModel):
    fingerprint: str
    scores: int
    architectures: int


class SourceCountOut(BaseModel):
    source: str
    observations: int = Field(description="Its observations of the dataset and metric in the space")


class PopulationOut(BaseModel):
    """Which architectures a report covers: one space, one dataset, one configuration; and which
    observations its accuracies are: one metric, one source."""

    space: str
    dataset: str
    metric: str = Field(description="Observation metric the accuracies come from")
    source: str | None = Field(
        description="Observation source the accuracies come from: `source` when given, else the one with the "
        "most observations of the dataset and metric in the space (ties by name); null when there are none"
    )
    sources: list[SourceCountOut] = Field(
        description="The sources of the dataset and metric in the space with the most observations (up to "
        f"{LISTED_SOURCES}), most first"
    )
    configuration: ConfigurationOut
    selected_by: str = Field(description="'request' (named by `config`) or 'most_scores'")
    size: int = Field(description="Architectures (cells) scored under the configuration")
    classes: int = Field(description="Isomorphism classes those cells fall into")
    scores: int = Field(description="Score rows under the configuration")
    proxies: list[str] = Field(description="Proxies with scores under the configuration")
    alternatives: list[ConfigurationCount] = Field(description="Other configurations scored on the dataset")


class LeaderboardRow(BaseModel):
    id: int = Field(description="The cell; for a class, its representative (the member with the lowest id)")
    arch: str
    canonical_key: str = Field(description="The cell's isomorphism class")
    members: int = Field(description="Cells of the population in this isomorphism class")
    members_url: str = Field(description="Lists the class's members")
    scores: dict[str, float | None] = Field(description="Every stored proxy score (null: not a finite number)")
    vote: float | None = Field(description="Higher = better; its scale depends on the method")
    percentile: float | None = Field(description="Share of the others with a lower vote; null below 2 architectures")
    vote_rank: int | None = Field(description="1 = best vote (ties share the best rank)")
    rank: int | None = Field(description="Rank by `rank_by`; null when that score is missing")
    accuracy: float | None = Field(
        description="Observed accuracy, when known; for a class, the mean over its members' observations"
    )


class LeaderboardOut(BaseModel):
    population: PopulationOut
    vote: VoteOut
    rank_by: str
    unit: Literal["class", "cell"] = Field(
        description="What a row is, and what ranks, votes and percentiles are taken over: 'class' (one row per "
        "isomorphism class, the default) or 'cell' (expand=cells)"
    )
    total: int = Field(description="Rows in the whole listing: classes, or cells with expand=cells")
    limit: int
    offset: int
    items: list[LeaderboardRow]


class CorrelationFigures(BaseModel):
    """Signed figures in the registry's direction: positive = orders architectures the right way."""

    n: int = Field(description="Units (classes or cells) with both a score and an observed accuracy")
    reason: str | None = Field(description="Why figures are null, when they are")
    spearman_rho: float | None
    spearman_p: float | None
    spearman_ci_low: float | None
    spearman_ci_high: float | None
    kendall_tau: float | None
    kendall_p: float | None
    pearson_rank_r: float | None = Field(description="Pearson r between score rank and accuracy")
    pearson_rank_p: float | None
    top_fraction: float
    top_recall: float | None = Field(description="Share of the true top fraction found in the score's top fraction")
    best_accuracy_top10: float | None
    best_accuracy_top100: float | None
    best_accuracy: float | None


class CorrelationOut(CorrelationFigures):
    """One proxy or the vote: its figures per isomorphism class (an accuracy is the mean of the class's
    members' observations) and, under `per_cell`, the same figures per cell."""

    name: str
    kind: str = Field(description="'proxy' or 'vote'")
    higher_is_better: bool
    per_cell: CorrelationFigures = Field(description="The same figures with every cell counted")


class CorrelationsOut(BaseModel):
    population: PopulationOut
    vote: VoteOut
    unit: Literal["class"] = Field(
        "class", description="Unit of each entry's own figures: one row per isomorphism class; `per_cell` has cells"
    )
    observed: int = Field(description="Isomorphism classes with an observed accuracy (of at least one member)")
    observed_cells: int = Field(description="Cells of the population with an observed accuracy")
    correlations: list[CorrelationOut]
