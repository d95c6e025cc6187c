"""Seconds per cell the service achieves on a batch, with 1 and 2 CPU workers, and the time of the
15,625-row observation import.

For each worker count it starts a real `nasscore serve` (fresh SQLite home, the shared CIFAR-10 batch as
the operator's `cifar10.npz`), waits until the workers are warm, POSTs a seeded sample batch with the
default configuration (batch 64, C=16, N=5, SNIP + GraSP + SynFlow), and reads the batch's own timestamps:
seconds per cell = (finished_at - started_at) / cells. Isomorphic cells in the sample are computed once,
so the figure is per requested cell; the number of distinct computations is printed next to it.

    .venv/bin/python bench/service_throughput.py [--cells 200] [--workers 1 2] [--seed 0]
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared" / "data"
NASSCORE = str(Path(sys.executable).with_name("nasscore"))


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


def run_batch(workers: int, cells: int, seed: int, npz: Path) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"nasscore-bench-{workers}w-"))
    (home / "data").mkdir()
    (home / "data" / "cifar10.npz").symlink_to(npz)
    port = free_port()
    env = os.environ | {
        "NASSCORE_HOME": str(home),
        "NASSCORE_WORKERS": str(workers),
        "NASSCORE_PORT": str(port),
        "NASSCORE_DEVICE": "cpu",
        "NASSCORE_LOG_LEVEL": "warning",
    }
    env.pop("NASSCORE_DATABASE_URL", None)
    subprocess.run([NASSCORE, "db", "upgrade"], env=env, check=True, capture_output=True)
    server = subprocess.Popen([NASSCORE, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            wait_for(client, "/readyz", lambda body: body["status"] == "ready", timeout=600)
            created = client.post("/v1/batches", json={"sample": {"n": cells, "seed": seed}, "dataset": "cifar10"})
            created.raise_for_status()
            url = created.json()["url"]
            batch = wait_for(client, url, lambda b: b["status"] == "done", timeout=24 * 3600, interval=2)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)
    started, finished = (datetime.fromisoformat(batch[key]) for key in ("started_at", "finished_at"))
    seconds = (finished - started).total_seconds()
    return {
        "workers": workers,
        "cells": batch["total"],
        "failed": batch["failed"],
        "seconds": seconds,
        "per_cell": seconds / batch["total"],
        "computed": distinct_computations(home),
    }


def distinct_computations(home: Path) -> int:
    """How many models were actually scored (isomorphic cells share one computation)."""
    from sqlalchemy import func, select

    from app.db import Database
    from app.db.models import Score
    from app.settings import Settings

    database = Database(Settings(home=home).resolved_database_url)
    try:
        with database.read_session() as session:
            return session.execute(select(func.count(func.distinct(Score.computed_from_id)))).scalar_one()
    finally:
        database.dispose()


def import_seconds(csv_path: Path) -> float:
    home = Path(tempfile.mkdtemp(prefix="nasscore-bench-import-"))
    env = os.environ | {"NASSCORE_HOME": str(home)}
    env.pop("NASSCORE_DATABASE_URL", None)
    subprocess.run([NASSCORE, "db", "upgrade"], env=env, check=True, capture_output=True)
    started = time.perf_counter()
    subprocess.run(
        [
            NASSCORE,
            "observations",
            "import",
            str(csv_path),
            "--dataset",
            "cifar10",
            "--arch-col",
            "arch",
            "--acc-col",
            "cifar10_test_acc",
            "--index-col",
            "index",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--npz", type=Path, default=SHARED / "cifar10" / "cifar10_train_3805.npz")
    parser.add_argument("--csv", type=Path, default=SHARED / "nb201" / "nb201_cifar10_test_acc.csv")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}  load average before: {os.getloadavg()[0]:.2f}")
    elapsed = import_seconds(args.csv)
    print(f"observation import ({args.csv.name}, whole CLI process incl. start-up): {elapsed:.1f} s")
    for workers in args.workers:
        result = run_batch(workers, args.cells, args.seed, args.npz)
        print(
            f"{result['workers']} CPU worker(s): {result['cells']} cells ({result['computed']} distinct models) in "
            f"{result['seconds']:.1f} s = {result['per_cell']:.3f} s/cell ({result['failed']} failed; "
            f"load average now {os.getloadavg()[0]:.2f})"
        )


if __name__ == "__main__":
    main()
