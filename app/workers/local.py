"""The local executor: N spawned processes per CUDA device (pinned to it; --workers-per-gpu, default 1) or N
CPU processes sharing the cores, each scoring up to --cells-per-worker cells at once (default 1). A supervisor
thread feeds tasks to workers with a free lane and collects results; a worker that dies fails only the tasks it
held (WorkerDied) and is replaced, so one bad cell never takes the pool down. Should the supervisor itself
fail, the pool is broken: every task it holds or is given fails with WorkerDied and the pool reports itself
dead, instead of silently keeping its work forever."""

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from app.workers.base import QueuedExecutor, ScoringTask, TaskError, TaskResult, WorkerDied, fail_task
from app.workers.process import worker_main

log = logging.getLogger("nasscore.pool")

SUPERVISOR_TICK_SECONDS = 1.0
STOP_GRACE_SECONDS = 5.0
MAX_RESPAWN_DELAY_SECONDS = 30.0


@dataclass
class _Slot:
    name: str
    device: str
    process: BaseProcess | None = None
    connection: Connection | None = None
    ready: bool = False
    # Tasks sent to the worker and not answered yet, by the number they travelled with.
    in_flight: dict[int, tuple[ScoringTask, "Future[TaskResult]"]] = field(default_factory=dict)
    sent: int = 0
    failed_starts: int = 0
    respawn_at: float = 0.0
    restarts: int = 0

    # `process` and `connection` are set together by _spawn and cleared together by _bury and _stop.
    def running_process(self) -> BaseProcess:
        if self.process is None:
            raise RuntimeError(f"worker slot {self.name} has no process")
        return self.process

    def pipe(self) -> Connection:
        if self.connection is None:
            raise RuntimeError(f"worker slot {self.name} has no process")
        return self.connection


def plan_devices(device: str, workers: int, workers_per_gpu: int = 1, visible_gpus: int | None = None) -> list[str]:
    """One entry per worker process: `workers` CPU processes, or `workers_per_gpu` processes on each GPU used
    (every visible one for auto/cuda, the named one for cuda:N), since one small cell leaves a large GPU mostly
    idle. `visible_gpus` is how many CUDA devices this host shows (torch's count unless given), so the plan of
    a GPU host can be checked anywhere."""
    if visible_gpus is None:
        visible_gpus = visible_cuda_devices()
    name = device.strip().lower()
    if name == "cpu" or (name == "auto" and visible_gpus == 0):
        return ["cpu"] * workers
    if name in ("auto", "cuda"):
        if visible_gpus == 0:
            raise ValueError(f"device {device!r} requested but CUDA is not available here; use auto or cpu")
        indices: Sequence[int] = range(visible_gpus)
    elif name.startswith("cuda:") and name.removeprefix("cuda:").isdigit():
        index = int(name.removeprefix("cuda:"))
        if index >= visible_gpus:
            raise ValueError(f"device {device!r} does not exist: {visible_gpus} CUDA device(s) visible")
        indices = [index]
    else:
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    return [f"cuda:{index}" for index in indices for _ in range(workers_per_gpu)]


def visible_cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def threads_per_worker(devices: Sequence[str]) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, len(devices)))


class LocalPool(QueuedExecutor):
    kind = "worker pool"

    def __init__(
        self, devices: Sequence[str], threads: int | None = None, tf32: bool = False, cells_per_worker: int = 1
    ) -> None:
        if not devices:
            raise ValueError("a local pool needs at least one worker device")
        if cells_per_worker < 1:
            raise ValueError(f"cells_per_worker must be at least 1, got {cells_per_worker}")
        super().__init__()
        self._context = multiprocessing.get_context("spawn")
        self._threads = threads or threads_per_worker(devices)
        self._tf32 = tf32
        self._lanes = cells_per_worker
        self._slots = [_Slot(f"worker-{index}", device) for index, device in enumerate(devices)]
        self._wake_reader, self._wake_writer = self._context.Pipe(duplex=False)
        for slot in self._slots:
            self._spawn(slot)
        self._supervisor = threading.Thread(target=self._supervise, name="nasscore-pool", daemon=True)
        self._supervisor.start()

    @property
    def capacity(self) -> int:
        return len(self._slots) * self._lanes

    def alive(self) -> bool:
        return self.running() and all(s.process is not None and s.process.is_alive() for s in self._slots)

    def health(self) -> dict[str, Any]:
        with self._lock:
            return {
                "executor": "local",
                "supervisor": self._supervisor_state(),
                "workers": len(self._slots),
                "alive": sum(1 for s in self._slots if s.process is not None and s.process.is_alive()),
                "ready": sum(1 for s in self._slots if s.ready),
                "busy": sum(len(s.in_flight) for s in self._slots),
                "cells_per_worker": self._lanes,
                "queued": len(self._queue),
                "devices": [s.device for s in self._slots],
                "pids": [s.process.pid if s.process is not None else None for s in self._slots],
                "threads_per_worker": self._threads,
                "restarts": sum(s.restarts for s in self._slots),
            }

    def ready(self) -> bool:
        return self.alive() and all(s.ready for s in self._slots)

    def shutdown(self) -> None:
        if not self._close():
            return
        self._supervisor.join()
        for slot in self._slots:
            self._stop(slot)
        self._fail_queued("the worker pool shut down before running this task")

    def _notify(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_writer.send_bytes(b"!")

    def _spawn(self, slot: _Slot) -> None:
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(
            target=worker_main,
            args=(child_end, slot.name, slot.device, self._threads, os.getpid(), self._tf32, self._lanes),
            name=f"nasscore-{slot.name}",
            daemon=True,
        )
        process.start()
        child_end.close()
        slot.process, slot.connection, slot.ready = process, parent_end, False

    def _supervise(self) -> None:
        """Run the pool until shutdown. An unexpected error here leaves the slots' bookkeeping untrustworthy,
        so the pool breaks: it fails all its work and reports itself dead (/readyz turns red)."""
        try:
            while not self._closed:
                self._supervise_once()
        except Exception as error:
            log.exception("the worker pool's supervisor failed; failing its tasks and stopping its workers")
            self._break(f"the worker pool's supervisor failed ({type(error).__name__}: {error})")

    def _supervise_once(self) -> None:
        self._assign_tasks()
        signalled = wait(self._waitables(), timeout=SUPERVISOR_TICK_SECONDS)
        if self._wake_reader in signalled:
            while self._wake_reader.poll():
                self._wake_reader.recv_bytes()
        for slot in self._slots:
            if slot.connection is not None and slot.connection in signalled:
                self._receive(slot)
        for slot in self._slots:
            self._replace_if_dead(slot)

    def _break(self, failure: str) -> None:
        """Mark the pool broken, fail every task it holds with WorkerDied and stop its worker processes."""
        with self._lock:
            self._failure = failure
        for slot in self._slots:
            for _, future in slot.in_flight.values():
                fail_task(future, failure)
            slot.in_flight.clear()
        self._fail_queued(failure)
        for slot in self._slots:
            self._stop(slot)

    def _waitables(self) -> list[Any]:
        waitables: list[Any] = [self._wake_reader]
        for slot in self._slots:
            if slot.connection is not None:
                waitables += [slot.connection, slot.running_process().sentinel]
        return waitables

    def _assign_tasks(self) -> None:
        for slot in self._slots:
            while slot.ready and len(slot.in_flight) < self._lanes:
                with self._lock:
                    if not self._queue:
                        return
                    task, future = self._queue.popleft()
                if not future.set_running_or_notify_cancel():
                    continue
                slot.sent += 1
                slot.in_flight[slot.sent] = (task, future)
                with contextlib.suppress(OSError):  # the worker is dying; _replace_if_dead fails the task, restarts it
                    slot.pipe().send((slot.sent, task))

    def _receive(self, slot: _Slot) -> None:
        try:
            kind, *message = slot.pipe().recv()
        except (EOFError, OSError):
            return  # the process is gone; _replace_if_dead handles it
        if kind == "ready":
            slot.ready, slot.failed_starts = True, 0
            return
        number, payload = message
        if number not in slot.in_flight:
            raise RuntimeError(f"worker {slot.name} sent a {kind!r} result for task {number}, which it does not hold")
        _, future = slot.in_flight.pop(number)
        if kind == "ok":
            future.set_result(payload)
        else:
            future.set_exception(TaskError(payload))

    def _replace_if_dead(self, slot: _Slot) -> None:
        if slot.process is not None and slot.process.is_alive():
            return
        if slot.process is not None:
            self._bury(slot)
        if not self._closed and time.monotonic() >= slot.respawn_at:
            self._spawn(slot)
            slot.restarts += 1

    def _bury(self, slot: _Slot) -> None:
        """Fail the dead worker's tasks and schedule a restart (backing off if it dies while starting)."""
        exit_code = slot.running_process().exitcode
        for task, future in slot.in_flight.values():
            message = f"worker process {slot.name} on {slot.device} died (exit code {exit_code}) scoring {task.arch}"
            future.set_exception(WorkerDied(message))
        if not slot.ready:
            slot.failed_starts += 1
        delay = min(MAX_RESPAWN_DELAY_SECONDS, 2.0**slot.failed_starts - 1.0)
        slot.respawn_at = time.monotonic() + delay
        slot.pipe().close()
        slot.process, slot.connection, slot.ready = None, None, False
        slot.in_flight.clear()

    def _stop(self, slot: _Slot) -> None:
        if slot.process is None:
            return
        with contextlib.suppress(OSError):
            slot.pipe().send(None)
        slot.process.join(0.5 if slot.in_flight else STOP_GRACE_SECONDS)
        if slot.process.is_alive():
            slot.process.kill()
            slot.process.join()
        for _, future in slot.in_flight.values():
            fail_task(future, "the worker pool shut down while running this task")
        slot.in_flight.clear()
        slot.pipe().close()
        slot.process, slot.connection = None, None
