"""Seconds per cell of one batch scored through Ray (a local Ray instance with N CPU actors) next to the local
pool (N worker processes), on the same machine, configuration and cells.

For each executor it starts a real `nasscore serve --executor local|ray --workers N` (fresh SQLite home, the
shared CIFAR-10 batch as the operator's `cifar10.npz`), waits until every worker or actor is warm, POSTs a
seeded sample batch with the default configuration and proxies, and reads the batch's own timestamps:
seconds per cell = (finished_at - started_at) / cells. Isomorphic cells in the sample are computed once, so
the figure is per requested cell; the number of distinct computations is printed next to it, and whether
both executors stored the same values.

    .venv/bin/python -m bench.ray_throughput [--cells 100] [--workers 2] [--seed 0]
"""

import argparse
import os
import signal
import subprocess
import tempfile
from datetime import datetime
from pathlib import Path

import httpx

from bench.service_throughput import NASSCORE, SHARED, distinct_computations, free_port, wait_for


def run_batch(executor: str, workers: int, cells: int, seed: int, npz: Path) -> dict:
    # A short home: a local Ray instance keeps its sockets and logs under HOME/ray.
    home = Path(tempfile.mkdtemp(prefix=f"nasscore-{executor}-", dir="/tmp"))
    (home / "data").mkdir()
    (home / "data" / "cifar10.npz").symlink_to(npz)
    port = free_port()
    env = os.environ | {
        "NASSCORE_HOME": str(home),
        "NASSCORE_EXECUTOR": executor,
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
            wait_for(client, "/readyz", lambda body: body["workers"]["ready"] == workers, timeout=600)
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
        "cells": batch["total"],
        "failed": batch["failed"],
        "seconds": seconds,
        "per_cell": seconds / batch["total"],
        "computed": distinct_computations(home),
        "values": stored_values(home),
    }


def stored_values(home: Path) -> dict[tuple[str, str], float | None]:
    from sqlalchemy import select

    from app.db import Database
    from app.db.models import Architecture, Score
    from app.settings import Settings

    database = Database(Settings(home=home).resolved_database_url)
    try:
        with database.read_session() as session:
            query = select(Architecture.arch, Score.proxy, Score.value).join(
                Architecture, Architecture.id == Score.architecture_id
            )
            return {(arch, proxy): value for arch, proxy, value in session.execute(query)}
    finally:
        database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--npz", type=Path, default=SHARED / "cifar10" / "cifar10_train_3805.npz")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}  load average before: {os.getloadavg()[0]:.2f}")
    results = {}
    for executor, label in (("local", "local pool, worker processes"), ("ray", "Ray, CPU actors")):
        result = results[executor] = run_batch(executor, args.workers, args.cells, args.seed, args.npz)
        print(
            f"{label} ({args.workers}): {result['cells']} cells ({result['computed']} distinct models) in "
            f"{result['seconds']:.1f} s = {result['per_cell']:.3f} s/cell ({result['failed']} failed; "
            f"load average now {os.getloadavg()[0]:.2f})"
        )
    same = results["local"]["values"] == results["ray"]["values"]
    print(f"the same {len(results['ray']['values'])} stored values from both executors: {same}")


if __name__ == "__main__":
    main()
