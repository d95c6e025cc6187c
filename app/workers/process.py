"""What runs inside a worker process: pin the device and thread count once, keep torch, the search
spaces, the proxies and recently used calibration batches warm, then score tasks until told to stop or
until the parent disappears (so a `kill -9` of the server leaves no orphan behind).

A worker can score several cells at once (`cells_per_worker`): each in a thread of its own ("lane"), on a
CUDA stream of its own when there are several, so while one cell waits on the host the others' kernels keep a
large GPU busy. Values do not depend on the lane count.
"""

import os
import signal
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from app.workers.base import ScoringTask, TaskResult

CALIBRATION_CACHE_SIZE = 4
PARENT_CHECK_SECONDS = 1.0
# Idle OpenMP threads sleep instead of spinning. On a busy or shared host spinning threads fight over the
# cores: measured on 2 busy cores, 2 threads took 13.4 s per NB201 cell spinning and 1.8 s passive.
DEFAULT_OMP_WAIT_POLICY = "PASSIVE"


class WorkerState:
    """One scoring worker's device, torch threads and decoded calibration batches, kept between tasks. The
    local pool's processes and the Ray executor's actors both score through it, so their results agree."""

    def __init__(self, name: str, device: str, threads: int, tf32: bool = False) -> None:
        import torch

        from scorers.device import retain_freed_memory, use_tf32

        self.name = name
        self.device = torch.device(device)
        self.device_label = str(self.device)
        torch.set_num_threads(threads)
        retain_freed_memory()  # a worker scores network after network: reuse freed buffers, no page faults
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            # Set either way: PyTorch lets cuDNN convolutions use TF32 unless told not to.
            use_tf32(tf32)
            self.device_label += "+tf32" if tf32 else ""
        self.torch_version = torch.__version__
        self.calibration: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
        self._calibration_lock = threading.Lock()

    def enter_lane(self, own_stream: bool) -> None:
        """Prepare a thread that scores tasks: the worker's GPU is its current device (CUDA keeps one per
        thread) and, with `own_stream`, its kernels go to a stream of its own. Nothing to do on CPU."""
        import torch

        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            if own_stream:
                torch.cuda.set_stream(torch.cuda.Stream(self.device))

    def batch(self, task: ScoringTask) -> tuple[Any, Any]:
        """The task's calibration batch on the device, decoded once and kept for the next tasks. A new batch is
        copied and waited for before any lane reads it, since lanes read it from their own streams."""
        import torch

        key = task.calibration.key
        with self._calibration_lock:
            if key not in self.calibration:
                batch = task.calibration.load()
                self.calibration[key] = (batch.inputs.to(self.device), batch.targets.to(self.device))
                if self.device.type == "cuda":
                    torch.cuda.current_stream(self.device).synchronize()
                while len(self.calibration) > CALIBRATION_CACHE_SIZE:
                    self.calibration.popitem(last=False)
            self.calibration.move_to_end(key)
            return self.calibration[key]

    def run(self, task: ScoringTask) -> TaskResult:
        from app.workers.scoring import score_architecture

        started = time.perf_counter()
        inputs, targets = self.batch(task)
        results = score_architecture(
            task.space,
            task.arch,
            inputs,
            targets,
            task.proxies,
            seed=task.seed,
            device=self.device,
            model_params=task.model_params,
            init=task.init,
            architecture_data=task.architecture_data,
        )
        seconds = time.perf_counter() - started
        return TaskResult(results, self.device_label, seconds, self.name, self.torch_version)


def worker_main(
    connection: Connection,
    name: str,
    device: str,
    threads: int,
    parent_pid: int,
    tf32: bool = False,
    cells_per_worker: int = 1,
) -> None:
    """Entry point of a spawned worker. Messages in: (number, ScoringTask) or None (stop). Out: ("ready",
    name), then ("ok", number, TaskResult) or ("error", number, text) per task, in the order they finish."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    os.environ.setdefault("OMP_WAIT_POLICY", DEFAULT_OMP_WAIT_POLICY)  # read once, when torch loads below
    import app.workers.scoring  # noqa: F401  (torch, the proxies and the search spaces, loaded before the first task)

    state = WorkerState(name, device, threads, tf32)
    if not _send(connection, ("ready", name)):
        return
    _serve_lanes(connection, parent_pid, state, cells_per_worker)


def _serve_lanes(connection: Connection, parent_pid: int, state: WorkerState, lanes: int) -> None:
    """Score up to `lanes` tasks at once, each in a thread (with its own CUDA stream when there are several);
    answers go back as each task finishes. The parent never sends more than `lanes` tasks before answers come
    back. Stopping lets the tasks under way finish first."""
    sending = threading.Lock()

    def score(number: int, task: ScoringTask) -> None:
        answer = _run(state, number, task)
        with sending:
            _send(connection, answer)

    with ThreadPoolExecutor(
        lanes, thread_name_prefix="nasscore-lane", initializer=state.enter_lane, initargs=(lanes > 1,)
    ) as pool:
        while (message := _next_task(connection, parent_pid)) is not None:
            pool.submit(score, *message)


def _next_task(connection: Connection, parent_pid: int) -> tuple[int, ScoringTask] | None:
    """The next task, or None when told to stop or when the parent process has gone away."""
    while not connection.poll(PARENT_CHECK_SECONDS):
        if os.getppid() != parent_pid:
            return None
    try:
        return connection.recv()
    except (EOFError, OSError):  # closed, or reset when the parent was killed
        return None


def _run(state: WorkerState, number: int, task: ScoringTask) -> tuple[str, int, Any]:
    try:
        return "ok", number, state.run(task)
    except Exception as error:  # reported to the dispatcher as this item's error
        return "error", number, f"{type(error).__name__}: {error}"


def _send(connection: Connection, message: tuple[Any, ...]) -> bool:
    try:
        connection.send(message)
    except OSError:
        return False  # the parent is gone
    return True
