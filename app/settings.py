"""Every knob of the service in one place: read from `NASSCORE_*` environment variables (or a `.env`
file), overridable from `nasscore serve` flags, and handed explicitly to `create_app` so tests and the
CLI never depend on process-global state."""

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
    workers: int = Field(1, ge=1, le=256, description="CPU worker processes (ignored when GPUs are used).")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N; auto = one worker per CUDA device.")
    host: str = Field("127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(8000, ge=0, le=65535, description="Port the HTTP server binds.")
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="Largest accepted request body (413).")
    max_batch_items: int = Field(20_000, ge=1, description="Most architectures in one batch (413).")
    max_observations: int = Field(20_000, ge=1, description="Most observations in one POST (413).")
    sync_wait_seconds: float = Field(
        30.0, ge=0, le=300, description="How long POST /v1/scores waits for a result before answering 202."
    )
    poll_seconds: float = Field(0.5, gt=0, le=60, description="Dispatcher idle poll interval.")
    lease_seconds: float = Field(
        60.0, gt=0, description="A running item whose worker stopped renewing for this long is requeued."
    )
    max_attempts: int = Field(3, ge=1, le=20, description="Tries per item when its worker process dies.")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field("info", description="Server log level.")

    @property
    def resolved_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file under `home`."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / SQLITE_FILE_NAME).resolve()}"

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir if self.data_dir is not None else self.home / "data"
