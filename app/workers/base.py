"""The executor interface the dispatcher talks to. A task is a plain picklable description of one cell
to score; an executor runs it somewhere (local processes, or actors of a Ray cluster) and answers through a
`concurrent.futures.Future`."""

from abc import ABC, abstractmethod
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scorers import ProxyResult
    from scorers.calibration import CalibrationBatch


@dataclass(frozen=True)
class CalibrationInput:
    """A configuration's calibration batch as it travels to a worker: the stored real images themselves
    (uint8 pixels and int64 labels, ~200 KB for 64 CIFAR images), or for synthetic data only its recipe.
    `key` (the batch digest, or the synthetic description) lets a worker keep it decoded between tasks."""

    dataset: str
    key: str
    count: int
    batch_size: int
    sampling: str
    seed: int
    images: bytes | None = field(default=None, repr=False)
    labels: bytes | None = field(default=None, repr=False)

    def load(self) -> "CalibrationBatch":
        from scorers.calibration import ImageSet, synthetic_batch

        if self.images is None or self.labels is None:
            return synthetic_batch(self.dataset, batch_size=self.batch_size, sampling=self.sampling, seed=self.seed)
        real = ImageSet.from_buffers(self.dataset, self.count, self.images, self.labels)
        if real.digest != self.key:
            raise ValueError(f"calibration batch {self.key[:12]} arrived corrupted (digest {real.digest[:12]})")
        return real.to_batch()


@dataclass(frozen=True)
class ScoringTask:
    """Score `arch` of `space` on a calibration batch, with a model initialised by the `init` scheme from
    `seed`."""

    space: str
    arch: str
    proxies: tuple[str, ...]
    calibration: CalibrationInput
    seed: int
    init: str
    model_params: dict[str, Any] = field(hash=False)


@dataclass(frozen=True)
class TaskResult:
    """What a worker computed — each proxy's `ProxyResult` as the scorer returned it — and with what (device
    and torch version are kept with every score)."""

    outcomes: dict[str, "ProxyResult"]
    device: str
    seconds: float
    worker: str
    torch_version: str


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
    def running(self) -> bool:
        """Whether the executor still runs tasks, even while it replaces a worker. False once it is shut down
        or broken: nothing it was given will run any more, so the dispatcher hands those items back."""

    @abstractmethod
    def alive(self) -> bool:
        """Whether it is running and every worker process (or remote engine) is up."""

    def ready(self) -> bool:
        """Whether the executor is up and warm, i.e. can start a task at once (for /readyz)."""
        return self.alive()

    @abstractmethod
    def health(self) -> dict[str, Any]:
        """A JSON-able summary for /readyz."""

    @abstractmethod
    def shutdown(self) -> None:
        """Stop all workers; unfinished futures fail with WorkerDied."""
