"""The executor interface the dispatcher talks to. A task is a plain picklable description of one cell
to score; an executor runs it somewhere (local processes today, a distributed engine later) and answers
through a `concurrent.futures.Future`."""

import math
from abc import ABC, abstractmethod
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ScoringTask:
    """Score `arch` of `space` on a calibration batch, with a model initialised from `seed`."""

    space: str
    arch: str
    proxies: tuple[str, ...]
    dataset: str
    source: str
    batch_size: int
    sampling: str
    seed: int
    init: str
    model_params: dict[str, Any] = field(hash=False)


@dataclass(frozen=True)
class ProxyOutcome:
    """One proxy's result; `error` set means its computation raised (possibly transient, e.g. OOM)."""

    value: float
    seconds: float
    error: str | None = None

    @property
    def storable(self) -> bool:
        """Deterministic outcomes (finite or not) are recorded; exceptions are not, so they can be retried."""
        return self.error is None

    @property
    def problem(self) -> str | None:
        if self.error is not None:
            return self.error
        return None if math.isfinite(self.value) else f"non-finite value ({self.value})"


@dataclass(frozen=True)
class TaskResult:
    outcomes: dict[str, ProxyOutcome]
    device: str
    seconds: float
    worker: str


class TaskError(RuntimeError):
    """The task raised inside the worker (bad architecture, model build failure, …)."""


class WorkerDied(RuntimeError):
    """The process running the task exited (crash, kill, out of host memory); the task may be retried."""


class Executor(ABC):
    @property
    @abstractmethod
    def capacity(self) -> int:
        """How many tasks can run at once; the dispatcher never hands out more."""

    @abstractmethod
    def submit(self, task: ScoringTask) -> "Future[TaskResult]":
        """Start `task`; the future raises TaskError or WorkerDied on failure."""

    @abstractmethod
    def alive(self) -> bool:
        """Whether every worker process (or remote engine) is up."""

    def ready(self) -> bool:
        """Whether the executor is up and warm, i.e. can start a task at once (for /readyz)."""
        return self.alive()

    @abstractmethod
    def health(self) -> dict[str, Any]:
        """A JSON-able summary for /readyz."""

    @abstractmethod
    def shutdown(self) -> None:
        """Stop all workers; unfinished futures fail with WorkerDied."""
