"""Seconds per cell of one batch scored through Ray (a local Ray instance with N CPU actors) next to the local
pool (N worker processes), on the same machine, configuration and cells, and whether both stored the same
values. The runs themselves are bench.service_throughput's (real `nasscore serve`, a sampled batch, the
batch's own timestamps).

    .venv/bin/python -m bench.ray_throughput [--cells 100] [--workers 2] [--seed 0]
"""

import argparse
import os
from pathlib import Path

from bench.service_throughput import SHARED, Deployment, report, run_batch


def stored_values(database_url: str) -> dict[tuple[str, str], float | None]:
    from sqlalchemy import select

    from app.db import Database
    from app.db.models import Architecture, Score

    database = Database(database_url)
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
    values = {}
    for executor in ("local", "ray"):
        deployment = Deployment(args.workers, executor=executor)
        result = run_batch(deployment, args.cells, args.seed, args.npz)
        report(deployment, result)
        values[executor] = stored_values(result["database_url"])
    same = values["local"] == values["ray"]
    print(f"the same {len(values['ray'])} stored values from both executors: {same}")


if __name__ == "__main__":
    main()
