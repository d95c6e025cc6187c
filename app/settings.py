"""Every knob of the service in one place: read from `NASSCORE_*` environment variables (or a `.env`
file), overridable from `nasscore serve` flags, and handed explicitly to `create_app` so tests and the
CLI never depend on process-global state."""

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_HOME = Path(".nasscore")
SQLITE_FILE_NAME = "nasscore.db"


class Settings(BaseSettings):
    """Service configuration; field descriptions double as `nasscore serve --help` text."""

    model_config = SettingsConfigDict(env_prefix="NASSCORE_", env_file=".env", extra="ignore")

    home: Path = Field(DEFAULT_HOME, description="Directory for the embedded SQLite database and state.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL, e.g. postgresql+psycopg://user:pw@host/db.",
    )
    data_dir: Path | None = Field(
        None,
        description="Calibration data imported into the database at start-up, like `nasscore data add`: "
        "<dataset>.npz, <dataset>_*.npz, cifar-10-batches-py/ or cifar-100-python/.",
    )
    workers: int = Field(
        1, ge=1, le=256, description="CPU worker processes (local) or actors (Ray); ignored when GPUs are used."
    )
    device: str = Field(
        "auto", description="auto | cpu | cuda | cuda:N; auto = every CUDA device (--workers-per-gpu each), else CPU."
    )
    workers_per_gpu: int = Field(
        1,
        ge=1,
        le=64,
        description="Worker processes (local) or actors (Ray) sharing one GPU: a small NB201 cell leaves a large "
        "GPU mostly idle.",
    )
    cells_per_worker: int = Field(
        1,
        ge=1,
        le=64,
        description="Cells each local worker process scores at once, each in its own thread and, on a GPU, its own "
        "CUDA stream: the other way (beside --workers-per-gpu) to keep a large GPU busy with small cells. Local "
        "pool only.",
    )
    tf32: bool = Field(
        False,
        description="Let CUDA workers use TF32 tensor-core math in convolutions and matrix products: faster on "
        "Ampere and newer GPUs, but scores then differ from CPU ones by about 1e-3 (relative) instead of float "
        "rounding; their device is recorded as e.g. 'cuda:0+tf32'. No effect on CPU.",
    )
    executor: Literal["local", "ray"] = Field(
        "local",
        description="Where cells are scored: local worker processes, or actors of a Ray cluster "
        "(pip install 'nasscore[ray]').",
    )
    ray_address: str | None = Field(
        None,
        description="The Ray cluster to join with --executor ray (e.g. 10.0.0.5:6379, or auto); none starts a "
        "local Ray instance on 127.0.0.1.",
    )
    ray_cpus_per_actor: float = Field(
        1.0, gt=0, le=256, description="CPUs each Ray actor reserves (and torch threads it runs, at least 1)."
    )
    ray_gpus: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="GPUs of the Ray cluster this replica's actors use (default: all). With N API replicas on one "
        "cluster, give each its share, so the first does not take every GPU.",
    )
    host: str = Field("127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(8000, ge=0, le=65535, description="Port the HTTP server binds.")
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="Largest accepted request body (413).")
    max_batch_items: int = Field(20_000, ge=1, description="Most architectures in one batch (413).")
    max_observations: int = Field(20_000, ge=1, description="Most observations in one POST (413).")
    extra_metrics: list[str] = Field(
        default_factory=list,
        description="Observation metrics accepted beside test_accuracy, val_accuracy and train_accuracy.",
    )
    sync_wait_seconds: float = Field(
        30.0, ge=0, le=300, description="How long POST /v1/scores waits for a result before answering 202."
    )
    poll_seconds: float = Field(0.5, gt=0, le=60, description="Dispatcher idle poll interval.")
    lease_seconds: float = Field(
        60.0,
        gt=0,
        description="A running item whose server stopped renewing its lease for this long (killed, lost, cut off) "
        "is requeued by any server on the database.",
    )
    max_attempts: int = Field(3, ge=1, le=20, description="Tries per item when its worker process dies.")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field("info", description="Server log level.")
    auth: Literal["auto", "on", "off"] = Field(
        "auto",
        description="API keys: on, off, or auto = on whenever the server binds a non-loopback address.",
    )
    auth_reads: bool = Field(False, description="Reads (leaderboards, reports, exports) need a `read` key too.")
    admin_key_sha256: str | None = Field(
        None,
        pattern="^[0-9a-f]{64}$",
        description="SHA-256 (hex) of an admin token accepted without a database row: a first key for a "
        "container, made with `nasscore keys hash`.",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed to call the API from a browser (default: none)."
    )
    max_running_batches_per_key: int = Field(
        4, ge=1, description="Batches one key (or all anonymous clients) may have pending or running (429)."
    )
    max_queued_items_per_key: int = Field(
        20_000, ge=1, description="Unfinished batch items one key (or all anonymous clients) may have queued (429)."
    )
    writes_per_minute: int = Field(
        120,
        ge=1,
        description="Write requests per minute per key, or per client address without a key (429); each API "
        "process counts its own.",
    )
    max_model_memory_mb: int = Field(
        4096,
        ge=64,
        description="Memory one worker may need to score one network, as estimated from the request's "
        "batch_size, channels, cells_per_stage and proxies before anything is built (422 past it).",
    )

    @property
    def resolved_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file under `home`."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / SQLITE_FILE_NAME).resolve()}"

    @property
    def auth_enabled(self) -> bool:
        """`auto` keeps `make serve` (loopback) a one-command start and never exposes an open server."""
        if self.auth != "auto":
            return self.auth == "on"
        return not is_loopback(self.host)

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir if self.data_dir is not None else self.home / "data"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
