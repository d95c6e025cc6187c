"""Seconds per cell the service achieves on a batch — with 1 and 2 CPU workers, with the work shared by
several API replicas on one database, or through Ray — and the time of the 15,625-row observation import.

Each run starts real `nasscore serve` processes (a fresh home each, the shared CIFAR-10 batch as the
operator's `cifar10.npz`, one database: a fresh SQLite file, or `--database-url`), waits until every worker
is warm, POSTs a seeded sample batch with the default configuration and proxies to the first replica, and
reads the batch's own timestamps: seconds per cell = (finished_at - started_at) / cells. Isomorphic cells in
the sample are computed once, so the figure is per requested cell; the number of distinct computations is
printed next to it.

    .venv/bin/python -m bench.service_throughput [--cells 200] [--workers 1 2] [--seed 0]
    .venv/bin/python -m bench.service_throughput --cells 100 --workers 1 --replicas 2 \
        --database-url postgresql+psycopg://USER@127.0.0.1:PORT/DB   # two API processes, one worker each
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared" / "data"
NASSCORE = str(Path(sys.executable).with_name("nasscore"))


@dataclass(frozen=True)
class Deployment:
    """What serves the batch: `replicas` API processes with `workers` workers each, on one database."""

    workers: int
    replicas: int = 1
    executor: str = "local"
    device: str = "cpu"
    workers_per_gpu: int = 1
    cells_per_worker: int = 1

    def describe(self) -> str:
        kind = "Ray CPU actor(s)" if self.executor == "ray" else "CPU worker(s)"
        replicas = f"{self.replicas} API processes × " if self.replicas > 1 else ""
        return f"{replicas}{self.workers} {kind}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    client: httpx.Client, path: str, done: Callable[[dict], bool], timeout: float, interval: float = 1.0
) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = client.get(path)
            if response.status_code == 200 and done(response.json()):
                return response.json()
        except httpx.TransportError:
            pass
        time.sleep(interval)
    raise TimeoutError(f"{path} did not get there within {timeout} s")


@contextmanager
def serve(deployment: Deployment, database_url: str, npz: Path, name: str) -> Iterator[tuple[httpx.Client, int]]:
    """One real `nasscore serve`, ready, with its own home (a short path: Ray keeps sockets and logs there) and
    its output in HOME/serve.log; yields a client and the server's PID."""
    home = Path(tempfile.mkdtemp(prefix=f"nasscore-{name}-", dir="/tmp"))
    (home / "data").mkdir()
    (home / "data" / "cifar10.npz").symlink_to(npz)
    port = free_port()
    env = os.environ | {
        "NASSCORE_HOME": str(home),
        "NASSCORE_DATABASE_URL": database_url,
        "NASSCORE_EXECUTOR": deployment.executor,
        "NASSCORE_WORKERS": str(deployment.workers),
        "NASSCORE_PORT": str(port),
        "NASSCORE_DEVICE": deployment.device,
        "NASSCORE_WORKERS_PER_GPU": str(deployment.workers_per_gpu),
        "NASSCORE_CELLS_PER_WORKER": str(deployment.cells_per_worker),
        "NASSCORE_LOG_LEVEL": "warning",
    }
    log = (home / "serve.log").open("wb")
    server = subprocess.Popen([NASSCORE, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            try:
                wait_for(client, "/readyz", lambda body: _warm(body, deployment), timeout=600)
            except TimeoutError as error:
                raise TimeoutError(f"{error}; the server's log: {home / 'serve.log'}") from None
            yield client, server.pid
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)


def _warm(readiness: dict, deployment: Deployment) -> bool:
    """Every worker started. On GPUs the local pool has --workers-per-gpu per device whatever --workers says,
    and it reports ready only once all of them are."""
    if readiness["status"] != "ready":
        return False
    return deployment.device != "cpu" or readiness["workers"]["ready"] == deployment.workers


def run_batch(deployment: Deployment, cells: int, seed: int, npz: Path, database_url: str | None = None) -> dict:
    """Score one sampled batch on `deployment`; its timing, size and the database it wrote to."""
    if database_url is None:
        database_url = f"sqlite:///{tempfile.mkdtemp(prefix='nasscore-bench-db-')}/nasscore.db"
    env = os.environ | {"NASSCORE_DATABASE_URL": database_url}
    subprocess.run([NASSCORE, "db", "upgrade"], env=env, check=True, capture_output=True)
    with ExitStack() as stack:
        clients = [
            stack.enter_context(serve(deployment, database_url, npz, f"{deployment.executor}-{index}"))[0]
            for index in range(deployment.replicas)
        ]
        created = clients[0].post("/v1/batches", json={"sample": {"n": cells, "seed": seed}, "dataset": "cifar10"})
        created.raise_for_status()
        url = created.json()["url"]
        batch = wait_for(clients[0], url, lambda b: b["status"] == "done", timeout=24 * 3600, interval=2)
    started, finished = (datetime.fromisoformat(batch[key]) for key in ("started_at", "finished_at"))
    seconds = (finished - started).total_seconds()
    return {
        "cells": batch["total"],
        "failed": batch["failed"],
        "seconds": seconds,
        "per_cell": seconds / batch["total"],
        "computed": distinct_computations(database_url),
        "database_url": database_url,
    }


def distinct_computations(database_url: str) -> int:
    """How many models were actually scored (isomorphic cells share one computation)."""
    from sqlalchemy import func, select

    from app.db import Database
    from app.db.models import Score

    database = Database(database_url)
    try:
        with database.read_session() as session:
            return session.execute(select(func.count(func.distinct(Score.computed_from_id)))).scalar_one()
    finally:
        database.dispose()


def report(deployment: Deployment, result: dict) -> None:
    print(
        f"{deployment.describe()}: {result['cells']} cells ({result['computed']} distinct models) in "
        f"{result['seconds']:.1f} s = {result['per_cell']:.3f} s/cell ({result['failed']} failed; "
        f"load average now {os.getloadavg()[0]:.2f})"
    )


def import_seconds(csv_path: Path) -> float:
    home = Path(tempfile.mkdtemp(prefix="nasscore-bench-import-"))
    env = os.environ | {"NASSCORE_HOME": str(home)}
    env.pop("NASSCORE_DATABASE_URL", None)
    subprocess.run([NASSCORE, "db", "upgrade"], env=env, check=True, capture_output=True)
    started = time.perf_counter()
    command = [NASSCORE, "observations", "import", str(csv_path), "--dataset", "cifar10"]
    options = ["--arch-col", "arch", "--acc-col", "cifar10_test_acc", "--index-col", "index"]
    subprocess.run(command + options, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="workers per API process")
    parser.add_argument("--replicas", type=int, default=1, help="API processes sharing the batch")
    parser.add_argument("--database-url", help="shared database (default: a fresh SQLite file per run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--npz", type=Path, default=SHARED / "cifar10" / "cifar10_train_3805.npz")
    parser.add_argument("--csv", type=Path, default=SHARED / "nb201" / "nb201_cifar10_test_acc.csv")
    parser.add_argument("--skip-import", action="store_true", help="skip the observation import timing")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}  load average before: {os.getloadavg()[0]:.2f}")
    if not args.skip_import:
        elapsed = import_seconds(args.csv)
        print(f"observation import ({args.csv.name}, whole CLI process incl. start-up): {elapsed:.1f} s")
    for workers in args.workers:
        deployment = Deployment(workers, args.replicas)
        report(deployment, run_batch(deployment, args.cells, args.seed, args.npz, args.database_url))


if __name__ == "__main__":
    main()
