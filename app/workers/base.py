"""The executor interface the dispatcher talks to. A task is a plain picklable description of one cell
to score; an executor runs it somewhere (local processes, or actors of a Ray cluster) and answers through a
`concurrent.futures.Future`."""

import contextlib
import threading
from abc import ABC, abstractmethod
from collections import deque
from concurrent.futures import Future, InvalidStateError
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
    `seed`. `architecture_data` is what the text alone does not carry: an `onnx` architecture's file."""

    space: str
    arch: str
    proxies: tuple[str, ...]
    calibration: CalibrationInput
    seed: int
    init: str
    model_params: dict[str, Any] = field(hash=False)
    architecture_data: bytes | None = field(default=None, repr=False)


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


class QueuedExecutor(Executor):
    """What both executors share: tasks wait in a queue that a supervisor thread hands to free workers, and a
    broken or closed executor fails every task it holds or is given with WorkerDied, so the dispatcher hands
    the items back instead of waiting on them forever."""

    _supervisor: threading.Thread

    def __init__(self) -> None:
        self._queue: deque[tuple[ScoringTask, Future[TaskResult]]] = deque()
        self._lock = threading.Lock()
        self._closed = False
        self._failure: str | None = None  # why the supervisor stopped, once it failed

    def submit(self, task: ScoringTask) -> "Future[TaskResult]":
        future: Future[TaskResult] = Future()
        task = self._prepare(task)
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the {self.kind} is shut down")
            failure = self._failure
            if failure is None:
                self._queue.append((task, future))
        if failure is not None:
            future.set_exception(WorkerDied(failure))
            return future
        self._notify()
        return future

    @property
    @abstractmethod
    def kind(self) -> str:
        """How messages name this executor, e.g. "worker pool"."""

    def _prepare(self, task: ScoringTask) -> ScoringTask:
        """The task as it should travel to a worker (the Ray executor moves its data to the object store)."""
        return task

    @abstractmethod
    def _notify(self) -> None:
        """Wake the supervisor: a task was queued or the executor is closing."""

    def running(self) -> bool:
        return not self._closed and self._failure is None and self._supervisor.is_alive()

    def _supervisor_state(self) -> str:
        if self._failure is not None:
            return f"failed: {self._failure}"
        if self._closed:
            return "stopped"
        return "running" if self._supervisor.is_alive() else "dead"

    def _close(self) -> bool:
        """Mark the executor closed and wake its supervisor; False when it already was."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
        self._notify()
        return True

    def _fail_queued(self, reason: str) -> None:
        with self._lock:
            abandoned = [future for _, future in self._queue]
            self._queue.clear()
        for future in abandoned:
            fail_task(future, reason)


def fail_task(future: "Future[TaskResult]", reason: str) -> None:
    """Fail `future` with WorkerDied (retryable); one already settled or cancelled is left as it is."""
    settle_error(future, WorkerDied(reason))


def settle_error(future: "Future[TaskResult]", error: BaseException) -> None:
    with contextlib.suppress(InvalidStateError):
        future.set_exception(error)
