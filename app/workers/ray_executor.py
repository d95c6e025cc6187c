"""The Ray executor: long-lived actors on a Ray cluster, each running the local pool's worker state (device
and threads pinned, torch and the proxies loaded, calibration batches kept decoded by key), so a cell scores
the same wherever it runs. One actor per GPU share (`num_gpus=1/workers_per_gpu`) when the cluster has GPUs,
else `workers` CPU actors of `cpus_per_actor` each.

Calibration bytes travel through Ray's object store: each batch is `ray.put` once per key on the API node
and a task carries only its reference, fetched by an actor the first time it meets that key, so worker nodes
need no data directory. An actor that dies (killed, out of memory, its node lost) fails only the task it
held (WorkerDied: the dispatcher hands the item back, and it is retried on another actor) and is replaced;
Ray itself never retries a task, so nothing is scored twice behind the dispatcher's back.

Ray is optional (`pip install 'nasscore[ray]'`) and imported only here, inside the functions that need it:
a local instance must set Ray's environment before the first import."""

import contextlib
import dataclasses
import importlib.util
import logging
import math
import os
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.workers.base import (
    CalibrationInput,
    QueuedExecutor,
    ScoringTask,
    TaskError,
    TaskResult,
    fail_task,
    settle_error,
)

if TYPE_CHECKING:
    from scorers.calibration import CalibrationBatch

log = logging.getLogger("nasscore.ray")

INSTALL_HINT = "pip install 'nasscore[ray]'"
# Calibration batches (~200 KB each) are all the executor puts in the object store: a small one will do.
LOCAL_OBJECT_STORE_BYTES = 128 * 1024 * 1024
# Batches kept in the object store by key; an older one is put again should a task need it.
STORED_CALIBRATION_BATCHES = 8
SUPERVISOR_TICK_SECONDS = 1.0
MAX_RELAUNCH_DELAY_SECONDS = 30.0
# Ray puts its sockets under its temp dir, and a Unix socket path has at most 107 bytes: a longer nasscore
# home leaves Ray its default (/tmp/ray).
MAX_TEMP_DIR_CHARS = 40

STARTING, READY, LOST = "starting", "ready", "lost"


class RayUnavailable(RuntimeError):
    """`--executor ray` on a host without the `ray` package."""


def require_ray() -> None:
    if importlib.util.find_spec("ray") is None:
        raise RayUnavailable(f"--executor ray needs the `ray` package on this host: {INSTALL_HINT}")


def start_local_ray(num_cpus: int, num_gpus: int | None = None, temp_dir: Path | None = None) -> None:
    """Start a single-machine Ray instance for this process: `num_cpus` CPUs, a small object store, no
    dashboard and no usage reporting. It listens on loopback only (Ray would otherwise announce the host's
    address, opening it to the network); a cluster of several machines is started with `ray start` and
    reached with --ray-address."""
    if "ray" in sys.modules:
        log.warning("Ray was imported before its local instance started: it announces this host's address")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    _quiet_stop()
    # Read by Ray once, when it is first imported: its node address becomes 127.0.0.1.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    ray.init(
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        object_store_memory=LOCAL_OBJECT_STORE_BYTES,
        include_dashboard=False,
        log_to_driver=False,
        _temp_dir=str(temp_dir) if temp_dir is not None else None,
    )
    logs = Path(temp_dir if temp_dir is not None else tempfile.gettempdir() + "/ray") / "session_latest" / "logs"
    log.info("a local Ray instance on 127.0.0.1 with %d CPU(s); its logs: %s", num_cpus, logs)


def _quiet_stop() -> None:
    """Keep Ray's crash handler out of this process: it takes the SIGTERM that stops the service gracefully
    for a crash and prints a stack dump at every shutdown."""
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")


def _connected_to_ray() -> bool:
    """Whether this process already joined a Ray instance, asked without importing Ray (see start_local_ray)."""
    ray = sys.modules.get("ray")
    return ray is not None and bool(ray.is_initialized())


def local_temp_dir(home: Path) -> Path | None:
    """Where a local instance keeps its logs and sockets: HOME/ray, unless that path is too long for them."""
    path = home.resolve() / "ray"
    return path if len(str(path)) <= MAX_TEMP_DIR_CHARS else None


@dataclass(frozen=True)
class ActorPlan:
    """How many scoring actors to run, what each reserves, and the device it scores on."""

    count: int
    cpus: float
    gpus: float
    device: str


def plan_actors(
    device: str,
    workers: int,
    workers_per_gpu: int,
    cpus_per_actor: float,
    cluster_gpus: int,
    gpu_share: int | None = None,
) -> ActorPlan:
    """`workers_per_gpu` actors per GPU of the cluster, or of this replica's `gpu_share` of it (for auto and
    cuda; Ray gives each its own GPU, which it sees as cuda:0), or `workers` CPU actors (cpu, or auto on a
    cluster without GPUs)."""
    name = device.strip().lower()
    if name == "cpu" or (name == "auto" and cluster_gpus == 0):
        return ActorPlan(workers, cpus_per_actor, 0.0, "cpu")
    if name == "cuda" and cluster_gpus == 0:
        raise ValueError(f"device {device!r} requested but the Ray cluster has no GPUs; use auto or cpu")
    if name.startswith("cuda:"):
        raise ValueError(f"device {device!r}: Ray assigns each actor its GPU; use auto, cuda or cpu")
    if name not in ("auto", "cuda"):
        raise ValueError(f"unknown device {device!r}; use auto, cpu or cuda")
    gpus = cluster_gpus if gpu_share is None else min(gpu_share, cluster_gpus)
    return ActorPlan(gpus * workers_per_gpu, cpus_per_actor, 1.0 / workers_per_gpu, "cuda:0")


@dataclass(frozen=True)
class StoredCalibration(CalibrationInput):
    """A real calibration batch left in Ray's object store: the task carries the reference, and the actor
    fetches the bytes only when it does not hold the batch decoded already."""

    ref: Any = field(default=None, repr=False, compare=False)

    def load(self) -> "CalibrationBatch":
        import ray

        stored: CalibrationInput = ray.get(self.ref)
        return stored.load()


class ScoringActor:
    """One Ray actor: the local pool's worker state behind `run`. `watch` never returns: its reference fails
    the moment the actor dies, so a death is noticed even while the actor is idle."""

    def __init__(self, name: str, device: str, threads: int, tf32: bool = False) -> None:
        from app.workers.process import DEFAULT_OMP_WAIT_POLICY

        os.environ.setdefault("OMP_WAIT_POLICY", DEFAULT_OMP_WAIT_POLICY)  # read once, when torch loads below
        import app.workers.scoring  # noqa: F401  (torch, the proxies and the search spaces, loaded before `describe`)
        from app.workers.process import WorkerState

        self._state = WorkerState(name, device, threads, tf32)

    def describe(self) -> dict[str, Any]:
        import ray

        return {"node": ray.util.get_node_ip_address(), "pid": os.getpid(), "gpus": list(map(str, ray.get_gpu_ids()))}

    def run(self, task: ScoringTask) -> TaskResult:
        return self._state.run(task)

    def watch(self) -> None:
        threading.Event().wait()


@dataclass
class _Actor:
    name: str
    handle: Any = None
    state: str = STARTING
    generation: int = 0  # bumped at each launch: callbacks of a replaced actor change nothing
    info: dict[str, Any] = field(default_factory=dict)  # node, pid, gpus, once it has started
    current: tuple[str, "Future[TaskResult]"] | None = None  # (arch, future) of the task it runs
    failed_starts: int = 0
    relaunch_at: float = 0.0
    restarts: int = 0


class RayExecutor(QueuedExecutor):
    kind = "Ray executor"

    def __init__(
        self,
        *,
        address: str | None,
        device: str,
        workers: int,
        workers_per_gpu: int,
        cpus_per_actor: float,
        home: Path,
        gpu_share: int | None = None,
        tf32: bool = False,
    ) -> None:
        """Connect to the cluster at `address`, or start a local instance sized for the actors (or use the
        Ray instance this process is already connected to), and launch the actors."""
        require_ray()
        super().__init__()
        self._started_ray = not _connected_to_ray()
        self._started_local = self._started_ray and address is None
        if self._started_local:
            from app.workers.local import visible_cuda_devices

            gpus = visible_cuda_devices()
            plan = plan_actors(device, workers, workers_per_gpu, cpus_per_actor, gpus, gpu_share)
            start_local_ray(max(1, math.ceil(plan.count * plan.cpus)), gpus, local_temp_dir(home))
        import ray

        if self._started_ray and address is not None:
            _quiet_stop()
            ray.init(address=address, log_to_driver=False)
        try:
            cluster_gpus = int(ray.cluster_resources().get("GPU", 0))
            self._plan = plan_actors(device, workers, workers_per_gpu, cpus_per_actor, cluster_gpus, gpu_share)
        except Exception:
            self._disconnect()
            raise
        self._address = ray.get_runtime_context().gcs_address
        self._threads = max(1, int(self._plan.cpus))
        self._tf32 = tf32
        self._actor_class = ray.remote(ScoringActor)
        self._actors = [_Actor(f"ray-actor-{index}") for index in range(self._plan.count)]
        self._stored: OrderedDict[str, StoredCalibration] = OrderedDict()
        self._wake = threading.Event()
        for actor in self._actors:
            self._launch(actor)
        self._supervisor = threading.Thread(target=self._supervise, name="nasscore-ray", daemon=True)
        self._supervisor.start()

    @property
    def capacity(self) -> int:
        """Actors that can take a task now; one being (re)started does not count."""
        with self._lock:
            return sum(1 for actor in self._actors if actor.state == READY)

    def alive(self) -> bool:
        """Running, with an actor up or starting for every planned one."""
        with self._lock:
            lost = any(actor.state == LOST for actor in self._actors)
        return self.running() and not lost

    def ready(self) -> bool:
        """On its own local instance: running with at least one actor warm. On a shared cluster: running.
        There, actors may wait for resources that another API replica's actors hold (a replica without
        `--ray-gpus` plans actors for every GPU of the cluster), or for a node being added; the replicas share
        one queue, so every one of them takes requests meanwhile, and its health lists its actors' states."""
        return self.running() and (self.capacity > 0 or not self._started_local)

    def health(self) -> dict[str, Any]:
        with self._lock:
            return {
                "executor": "ray",
                "address": self._address,
                "instance": "local" if self._started_local else "cluster" if self._started_ray else "existing",
                "supervisor": self._supervisor_state(),
                "workers": len(self._actors),
                "ready": sum(1 for actor in self._actors if actor.state == READY),
                "starting": sum(1 for actor in self._actors if actor.state == STARTING),
                "busy": sum(1 for actor in self._actors if actor.current is not None),
                "queued": len(self._queue),
                "devices": [self._plan.device] * len(self._actors),
                "cpus_per_actor": self._plan.cpus,
                "gpus_per_actor": self._plan.gpus,
                "restarts": sum(actor.restarts for actor in self._actors),
                "actors": [
                    {
                        "name": actor.name,
                        "state": actor.state,
                        "busy": actor.current is not None,
                        "node": actor.info.get("node"),
                        "pid": actor.info.get("pid"),
                        "gpus": actor.info.get("gpus", []),
                        "restarts": actor.restarts,
                    }
                    for actor in self._actors
                ],
            }

    def shutdown(self) -> None:
        """Kill the actors (their running tasks fail with WorkerDied), and stop the local Ray instance or
        leave the cluster if this executor started or joined it."""
        import ray

        if not self._close():
            return
        self._supervisor.join()
        self._stop_actors("the Ray executor shut down while running this task")
        self._fail_queued("the Ray executor shut down before running this task")
        with self._lock:
            self._stored.clear()
        if self._started_ray:
            ray.shutdown()

    def _disconnect(self) -> None:
        import ray

        if self._started_ray:
            ray.shutdown()

    def _notify(self) -> None:
        self._wake.set()

    def _prepare(self, task: ScoringTask) -> ScoringTask:
        return dataclasses.replace(task, calibration=self._store(task.calibration))

    def _store(self, calibration: CalibrationInput) -> CalibrationInput:
        """The batch with its bytes in the object store (put once per key); a synthetic recipe as it is."""
        import ray

        if calibration.images is None:
            return calibration
        with self._lock:
            stored = self._stored.get(calibration.key)
        if stored is None:
            recipe = {f.name: getattr(calibration, f.name) for f in dataclasses.fields(CalibrationInput)}
            stored = StoredCalibration(**(recipe | {"images": None, "labels": None}), ref=ray.put(calibration))
        with self._lock:
            self._stored[calibration.key] = stored
            self._stored.move_to_end(calibration.key)
            while len(self._stored) > STORED_CALIBRATION_BATCHES:
                self._stored.popitem(last=False)
        return stored

    def _launch(self, actor: _Actor) -> None:
        """Start (or replace) the actor; a task the old one still held fails with WorkerDied."""
        import ray

        handle: Any = self._actor_class.options(
            num_cpus=self._plan.cpus,
            num_gpus=self._plan.gpus,
            max_restarts=0,  # replaced by _launch instead, so a death is always seen and counted
            max_task_retries=0,  # a task is retried by the dispatcher, never by Ray behind its back
            max_concurrency=2,  # `run` and the `watch` that outlives it
        ).remote(actor.name, self._plan.device, self._threads, self._tf32)
        with self._lock:
            old, held = actor.handle, actor.current
            if old is not None:
                actor.restarts += 1
            actor.generation += 1
            actor.handle, actor.state, actor.info, actor.current = handle, STARTING, {}, None
            generation = actor.generation
        if held is not None:
            fail_task(held[1], f"Ray actor {actor.name} was replaced while scoring {held[0]}")
        if old is not None:
            with contextlib.suppress(Exception):
                ray.kill(old, no_restart=True)
        handle.describe.remote().future().add_done_callback(partial(self._on_started, actor, generation))
        handle.watch.remote().future().add_done_callback(partial(self._on_lost, actor, generation))

    # Callbacks run on Ray's threads: they only update the bookkeeping, settle futures and wake the
    # supervisor, which does everything that calls Ray.

    def _on_started(self, actor: _Actor, generation: int, started: "Future[dict[str, Any]]") -> None:
        if started.exception() is not None:
            self._on_lost(actor, generation, started)
            return
        with self._lock:
            if actor.generation == generation and actor.state == STARTING:
                actor.state, actor.info, actor.failed_starts = READY, started.result(), 0
        self._wake.set()

    def _on_lost(self, actor: _Actor, generation: int, watched: "Future[Any]") -> None:
        with self._lock:
            if actor.generation == generation:
                self._mark_lost(actor, watched.exception())
        self._wake.set()

    def _mark_lost(self, actor: _Actor, error: BaseException | None) -> None:
        """The actor is gone: schedule its replacement, backing off when it dies while starting."""
        if actor.state == LOST or self._closed:
            return
        if actor.state == STARTING:
            actor.failed_starts += 1
        actor.state = LOST
        actor.relaunch_at = time.monotonic() + min(MAX_RELAUNCH_DELAY_SECONDS, 2.0**actor.failed_starts - 1.0)
        log.warning("Ray actor %s (%s) is gone: %s", actor.name, _where(actor), _reason(error))

    def _on_result(self, actor: _Actor, generation: int, arch: str, future: "Future[TaskResult]", done: Future) -> None:
        from ray.exceptions import RayTaskError

        error = done.exception()
        with self._lock:
            if actor.generation == generation and actor.current is not None and actor.current[1] is future:
                actor.current = None
                if error is not None and not isinstance(error, RayTaskError):
                    self._mark_lost(actor, error)
            where = _where(actor)
        if error is None:
            with contextlib.suppress(InvalidStateError):  # shutdown or a replacement failed it meanwhile
                future.set_result(done.result())
        elif isinstance(error, RayTaskError):
            settle_error(future, TaskError(f"{type(error.cause).__name__}: {error.cause}"))
        else:
            fail_task(future, f"Ray actor {actor.name} ({where}) died scoring {arch}: {_reason(error)}")
        self._wake.set()

    def _supervise(self) -> None:
        """Replace lost actors and hand queued tasks to free ones until shutdown. An unexpected error here
        leaves the bookkeeping untrustworthy, so the executor breaks: it fails all its work and reports itself
        dead (/readyz turns red), as the local pool does."""
        try:
            while not self._closed:
                self._wake.wait(SUPERVISOR_TICK_SECONDS)
                self._wake.clear()
                if self._closed:
                    return
                now = time.monotonic()
                for actor in self._actors:
                    if actor.state == LOST and now >= actor.relaunch_at:
                        self._launch(actor)
                self._assign_tasks()
        except Exception as error:
            log.exception("the Ray executor's supervisor failed; failing its tasks and killing its actors")
            failure = f"the Ray executor's supervisor failed ({type(error).__name__}: {error})"
            with self._lock:
                self._failure = failure
            self._stop_actors(failure)
            self._fail_queued(failure)

    def _assign_tasks(self) -> None:
        """Send queued tasks to ready actors without one, one task per actor at a time."""
        while True:
            with self._lock:
                actor = next((a for a in self._actors if a.state == READY and a.current is None), None)
                if actor is None or not self._queue or self._closed:
                    return
                task, future = self._queue.popleft()
                if not future.set_running_or_notify_cancel():
                    continue
                actor.current = (task.arch, future)
                handle, generation = actor.handle, actor.generation
            on_result = partial(self._on_result, actor, generation, task.arch, future)
            handle.run.remote(task).future().add_done_callback(on_result)

    def _stop_actors(self, reason: str) -> None:
        import ray

        with self._lock:
            held = [actor.current for actor in self._actors if actor.current is not None]
            handles = [actor.handle for actor in self._actors if actor.handle is not None]
            for actor in self._actors:
                actor.current, actor.handle, actor.state = None, None, LOST
        for _, future in held:
            fail_task(future, reason)
        for handle in handles:
            with contextlib.suppress(Exception):
                ray.kill(handle, no_restart=True)


def _where(actor: _Actor) -> str:
    if not actor.info:
        return "not started"
    return f"pid {actor.info['pid']} on {actor.info['node']}"


def _reason(error: BaseException | None) -> str:
    """The error's type and first line: a Ray error's full text repeats the actor's whole description."""
    if error is None:
        return "unknown"
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
