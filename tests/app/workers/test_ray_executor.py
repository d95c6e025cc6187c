"""The Ray executor on a real local Ray instance (127.0.0.1, 2 CPUs, a small object store), started once for
the module by the service's executor, as `nasscore serve --executor ray` starts it: a batch scored through
the service on two Ray actors equals, bit for bit, the same batch scored by the local pool; the calibration
batch (the real CIFAR-10 images shipped with nasscore) reaches the actors through the object store; an actor
whose process is killed mid-batch fails only its task, which is retried on an actor, and is replaced, and
the batch ends with exactly one score per (architecture, configuration, proxy); a cancelled batch hands out
nothing more. Also: the plan of actors for CPU and GPU clusters, the start-up error without the `ray`
package, and (with CUDA only) actors sharing a GPU."""

import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from conftest import (
    README_CELL,
    TINY_CONFIG,
    LiveServer,
    ServerProcess,
    free_port,
    nasscore,
    one_cell_per_class,
    service_settings,
    wait_for_batch,
    wait_ready,
    wait_until,
)
from sqlalchemy import func, select

from app.db import Database
from app.db.models import Architecture, ItemStatus, JobItem, Score
from app.runtime import make_executor
from app.settings import Settings
from app.workers.ray_executor import ActorPlan, RayUnavailable, plan_actors
from scorers import DEFAULT_PROXIES

# The tiny network of TINY_CONFIG, on the dataset's real images (the set shipped with nasscore): a task then
# carries a real calibration batch, which travels through Ray's object store.
REAL_TINY_CONFIG = {key: value for key, value in TINY_CONFIG.items() if key != "data"}
BATCH_SIZE = 24
# One cell per isomorphism class, none shared between the tests: every item is computed, none is a twin.
CELLS = one_cell_per_class(3 * BATCH_SIZE, seed=31)
STOP_SETTLE_SECONDS = 1.0


@pytest.fixture(scope="module")
def ray_server() -> Iterator[LiveServer]:
    """The service with `executor="ray"` and no cluster address: its executor starts the module's one local
    Ray instance (2 CPU actors of 1 CPU each, so 2 CPUs), under a home short enough for Ray's socket paths."""
    home = Path(tempfile.mkdtemp(prefix="nasscore-ray-"))
    settings = service_settings(home, f"sqlite:///{home / 'nasscore.db'}", executor="ray", device="cpu", workers=2)
    try:
        with LiveServer(settings) as server:
            wait_until(lambda: _workers(server)["ready"] == 2, 120, "both Ray actors to start")
            yield server
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _workers(server: LiveServer) -> dict[str, Any]:
    return server.client.get("/readyz").json()["workers"]


def _scores(url: str) -> dict[tuple[str, str], tuple[float | None, str]]:
    """(arch, proxy) -> (value, device) of every score stored."""
    database = Database(url)
    try:
        with database.read_session() as session:
            rows = session.execute(
                select(Architecture.arch, Score.proxy, Score.value, Score.device).join(
                    Architecture, Architecture.id == Score.architecture_id
                )
            ).all()
    finally:
        database.dispose()
    return {(arch, proxy): (value, device) for arch, proxy, value, device in rows}


def _score_batch(server: LiveServer, archs: list[str]) -> dict[str, Any]:
    created = server.client.post("/v1/batches", json={"archs": archs, "config": REAL_TINY_CONFIG})
    assert created.status_code == 202, created.text
    return wait_for_batch(server.client, created.json()["id"], timeout=300)


def test_a_batch_on_ray_actors_equals_the_local_pools_bit_for_bit(ray_server: LiveServer, tmp_path: Path) -> None:
    archs = CELLS[:BATCH_SIZE]
    on_ray = _score_batch(ray_server, archs)
    local_url = f"sqlite:///{tmp_path / 'nasscore.db'}"
    with LiveServer(service_settings(tmp_path, local_url, device="cpu", workers=2)) as local:
        assert _workers(local)["executor"] == "local"
        on_local = _score_batch(local, archs)

    assert (on_ray["status"], on_ray["done"], on_ray["failed"]) == ("done", BATCH_SIZE, 0), on_ray
    assert (on_local["status"], on_local["done"], on_local["failed"]) == ("done", BATCH_SIZE, 0), on_local
    assert on_ray["links"] == on_local["links"], "the same configuration (the same calibration digest)"
    ray_scores = _scores(ray_server.settings.resolved_database_url)
    local_scores = _scores(local_url)
    assert len(ray_scores) == len(local_scores) >= BATCH_SIZE * 2
    assert ray_scores == local_scores, "every value equal to the last bit, every one computed on the CPU"
    assert {device for _, device in ray_scores.values()} == {"cpu"}
    health = _workers(ray_server)
    assert (health["executor"], health["workers"], health["restarts"]) == ("ray", 2, 0), health
    assert health["instance"] == "local" and health["address"].startswith("127.0.0.1:"), "started here, on loopback"
    assert {actor["node"] for actor in health["actors"]} == {"127.0.0.1"}
    assert (ray_server.settings.home / "ray" / "session_latest" / "logs").is_dir(), "Ray's logs under the home"


def test_an_actor_killed_mid_batch_loses_and_duplicates_nothing(ray_server: LiveServer) -> None:
    created = ray_server.client.post(
        "/v1/batches", json={"archs": CELLS[BATCH_SIZE : 2 * BATCH_SIZE], "config": REAL_TINY_CONFIG}
    )
    assert created.status_code == 202, created.text
    batch_id = created.json()["id"]
    wait_until(lambda: ray_server.client.get(f"/v1/batches/{batch_id}").json()["done"] >= 2, 120, "2 items done")
    victim = _stop_a_busy_actor(ray_server)
    os.kill(victim, signal.SIGKILL)

    final = wait_for_batch(ray_server.client, batch_id, timeout=300)
    assert (final["status"], final["done"], final["failed"], final["pending"], final["running"]) == (
        "done",
        BATCH_SIZE,
        0,
        0,
        0,
    ), final
    database = Database(ray_server.settings.resolved_database_url)
    try:
        with database.read_session() as session:
            attempts = sorted(session.scalars(select(JobItem.attempts).where(JobItem.job_id == batch_id)))
            duplicates = session.execute(
                select(Score.architecture_id, Score.config_id, Score.proxy)
                .group_by(Score.architecture_id, Score.config_id, Score.proxy)
                .having(func.count() > 1)
            ).all()
            per_item = list(
                session.scalars(
                    select(func.count(Score.id))
                    .join(JobItem, JobItem.architecture_id == Score.architecture_id)
                    .where(JobItem.job_id == batch_id)
                    .group_by(JobItem.id)
                )
            )
            unfinished = session.scalar(
                select(func.count(JobItem.id)).where(JobItem.status.in_([ItemStatus.PENDING, ItemStatus.RUNNING]))
            )
    finally:
        database.dispose()
    assert unfinished == 0
    assert duplicates == []
    assert per_item == [len(DEFAULT_PROXIES)] * BATCH_SIZE, "every cell has the default proxies, once"
    assert attempts[-1] == 2 and attempts[-2] == 1, f"the killed actor's item, and it alone, ran twice: {attempts}"

    health = wait_until(lambda: (h := _workers(ray_server))["ready"] == 2 and h, 120, "the replacement actor")
    assert (health["restarts"], health["busy"], health["queued"]) == (1, 0, 0), health
    assert victim not in {actor["pid"] for actor in health["actors"]}
    assert not Path(f"/proc/{victim}").exists() or _is_zombie(victim), "the killed actor's process is gone"


def test_cancelling_a_batch_stops_its_outstanding_work(ray_server: LiveServer) -> None:
    """Cancelling leaves the items the actors are running to finish (and be recorded); no other item of the
    batch is handed out, and the executor ends idle."""
    created = ray_server.client.post("/v1/batches", json={"archs": CELLS[2 * BATCH_SIZE :], "config": REAL_TINY_CONFIG})
    assert created.status_code == 202, created.text
    batch_id = created.json()["id"]
    wait_until(lambda: ray_server.client.get(f"/v1/batches/{batch_id}").json()["done"] >= 2, 120, "2 items done")
    cancelled = ray_server.client.delete(f"/v1/batches/{batch_id}")
    assert cancelled.status_code == 200, cancelled.text
    at_cancel = cancelled.json()

    def settled() -> dict[str, Any] | None:
        body = ray_server.client.get(f"/v1/batches/{batch_id}").json()
        return body if body["running"] == 0 else None

    final = wait_until(settled, 120, "the running items to finish")
    assert final["status"] == "cancelled" and final["pending"] == 0, final
    assert final["done"] + final["failed"] + final["cancelled"] == BATCH_SIZE, final
    assert final["done"] <= at_cancel["done"] + at_cancel["running"] < BATCH_SIZE, (at_cancel, final)
    health = wait_until(lambda: (h := _workers(ray_server))["busy"] == 0 and h, 120, "the actors to be idle")
    assert health["queued"] == 0, health


def test_an_executor_whose_actors_wait_for_the_clusters_cpus_is_ready_and_leaves_the_instance(
    ray_server: LiveServer, tmp_path: Path
) -> None:
    """A second executor on the same instance, as another API replica on a shared cluster: the first one's
    actors hold both CPUs, so its own wait to be placed. It is ready all the same (the replicas share one
    queue), takes no task meanwhile (capacity 0), and its shutdown leaves the instance and the first running."""
    import ray

    from app.workers.ray_executor import RayExecutor

    assert ray.available_resources().get("CPU", 0) == 0, "the first server's two actors hold the instance's CPUs"
    restarts = _workers(ray_server)["restarts"]
    second = RayExecutor(address=None, device="cpu", workers=2, workers_per_gpu=1, cpus_per_actor=1.0, home=tmp_path)
    try:
        health = second.health()
        assert (health["instance"], health["starting"], health["ready"]) == ("existing", 2, 0), health
        assert second.ready() and second.capacity == 0
    finally:
        second.shutdown()
    first = _workers(ray_server)
    assert (first["ready"], first["restarts"]) == (2, restarts), first
    scored = ray_server.client.post("/v1/scores", json={"arch": README_CELL, "config": REAL_TINY_CONFIG})
    assert scored.status_code == 200, scored.text


def _stop_a_busy_actor(server: LiveServer) -> int:
    """SIGSTOP an actor that is running a task and return its pid. A stopped process sends nothing, so once
    the executor still shows it busy after the stop, its task is certain to be held when it is killed."""

    def stopped_while_busy() -> int | None:
        busy = [actor["pid"] for actor in _workers(server)["actors"] if actor["busy"]]
        if not busy:
            return None
        os.kill(busy[0], signal.SIGSTOP)
        time.sleep(STOP_SETTLE_SECONDS)  # a result sent just before the stop is taken in meanwhile
        still = {actor["pid"]: actor["busy"] for actor in _workers(server)["actors"]}
        if still.get(busy[0]):
            return busy[0]
        os.kill(busy[0], signal.SIGCONT)
        return None

    return wait_until(stopped_while_busy, 120, "an actor busy with a task", interval=0.05)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.parametrize(
    ("device", "workers", "workers_per_gpu", "gpus", "plan"),
    [
        ("auto", 3, 2, 0, ActorPlan(3, 1.0, 0.0, "cpu")),
        ("cpu", 3, 2, 4, ActorPlan(3, 1.0, 0.0, "cpu")),
        ("auto", 3, 1, 2, ActorPlan(2, 1.0, 1.0, "cuda:0")),
        ("cuda", 1, 4, 2, ActorPlan(8, 1.0, 0.25, "cuda:0")),
    ],
)
def test_actors_are_planned_per_gpu_share_or_per_cpu_worker(
    device: str, workers: int, workers_per_gpu: int, gpus: int, plan: ActorPlan
) -> None:
    assert plan_actors(device, workers, workers_per_gpu, 1.0, gpus) == plan


@pytest.mark.parametrize(("share", "actors"), [(1, 2), (3, 6), (8, 8)])
def test_a_replica_given_a_gpu_share_plans_actors_for_that_share_only(share: int, actors: int) -> None:
    """Two replicas on a 4-GPU cluster with `--ray-gpus 2` each: neither waits for the other's GPUs; a share
    larger than the cluster is capped at the cluster."""
    assert plan_actors("auto", 1, 2, 1.0, 4, gpu_share=share) == ActorPlan(actors, 1.0, 0.5, "cuda:0")


@pytest.mark.parametrize(
    ("device", "gpus", "message"),
    [
        ("cuda", 0, "the Ray cluster has no GPUs"),
        ("cuda:1", 2, "Ray assigns each actor its GPU"),
        ("tpu", 1, "unknown"),
    ],
)
def test_a_device_ray_cannot_honour_is_refused_by_name(device: str, gpus: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_actors(device, 1, 1, 1.0, gpus)


def test_without_the_ray_package_the_executor_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` finds on a host without the package
    with pytest.raises(RayUnavailable, match=r"pip install 'nasscore\[ray\]'"):
        make_executor(Settings(executor="ray"))


def test_serve_takes_the_executor_and_the_ray_address_as_flags() -> None:
    usage = nasscore("serve", "--help").stdout
    assert "--executor {local,ray}" in usage and "--ray-address" in usage and "--ray-cpus-per-actor" in usage
    assert "--ray-gpus" in usage


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_two_actors_share_each_gpu_and_score_on_it(tmp_path: Path) -> None:
    """`nasscore serve --executor ray --workers-per-gpu 2` as its own process (a Ray instance of its own, with
    the host's GPUs): two actors of half a GPU each per device, and a cell scored on CUDA."""
    home = Path(tempfile.mkdtemp(prefix="nasscore-ray-gpu-"))
    port = free_port()
    env = os.environ | {
        "NASSCORE_HOME": str(home),
        "NASSCORE_PORT": str(port),
        "NASSCORE_EXECUTOR": "ray",
        "NASSCORE_DEVICE": "cuda",
        "NASSCORE_WORKERS_PER_GPU": "2",
    }
    server = ServerProcess(env, tmp_path / "serve.log")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            wait_ready(client)
            actors = 2 * torch.cuda.device_count()
            health = wait_until(
                lambda: (h := client.get("/readyz").json()["workers"])["ready"] == actors and h, 300, "GPU actors"
            )
            assert (health["gpus_per_actor"], set(health["devices"])) == (0.5, {"cuda:0"}), health
            assert all(len(actor["gpus"]) == 1 for actor in health["actors"]), "Ray gave each actor one GPU"
            scored = client.post("/v1/scores", json={"arch": README_CELL, "config": TINY_CONFIG})
            assert scored.status_code == 200, scored.text
            assert {score["device"] for score in scored.json()["scores"].values()} == {"cuda:0"}
    finally:
        assert server.stop() in (0, -signal.SIGTERM), server.output()
        shutil.rmtree(home, ignore_errors=True)
