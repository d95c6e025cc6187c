"""Latency of GET /v1/leaderboard at 15,625 architectures over real HTTP, on SQLite and PostgreSQL.

Every NAS-Bench-201 cell gets seeded synthetic snip, grasp and synflow scores under one configuration
(written straight to the database), the shared NAS-Bench-201 accuracies are imported when present, the
real app is served by uvicorn, and each query shape is requested N times. The first request of a shape
after a write loads the population (the "cold" column); later ones hit the cache, and the p95 target
(100 ms) is about those. A final row times the first request after one more score is written.

    .venv/bin/python -m bench.leaderboard_latency [--requests 200] [--backends sqlite postgresql]
                                                  [--postgres-url URL]

Without --postgres-url, a throwaway PostgreSQL cluster is started with the tests' helper.
"""

import argparse
import csv
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from conftest import NB201_CSV, LiveServer, PostgresServer, _postgres_bin_dir, service_settings  # noqa: E402

from app.db import Database  # noqa: E402
from app.db.models import Score  # noqa: E402
from app.db.upsert import insert_ignore  # noqa: E402
from app.services.configs import PROXY_IMPLEMENTATION_VERSION, ResolvedConfig, get_or_create_config  # noqa: E402
from app.services.observations import ObservationInput, record_observations  # noqa: E402
from app.services.spaces import all_architectures, seed_space  # noqa: E402

PROXIES = ("snip", "grasp", "synflow")
TARGET_P95_MS = 100.0
SHAPES: dict[str, dict[str, object]] = {
    "vote mean_rank, 100 rows": {},
    "vote log_rank, 100 rows": {"method": "log_rank"},
    "vote majority, 100 rows": {"method": "majority"},
    "rank_by synflow, offset 15000": {"rank_by": "synflow", "offset": 15_000},
    "vote mean_rank, 1000 rows": {"limit": 1000},
}


def populate(database_url: str, seed: int) -> str:
    """Scores for every cell under one synthetic configuration, plus observations; returns the fingerprint."""
    config = ResolvedConfig(
        dataset="cifar10",
        data_source="synthetic:leaderboard-bench",
        batch_size=1,
        sampling="random",
        seed=seed,
        init="default",
        proxy_version=PROXY_IMPLEMENTATION_VERSION,
        model_params={},
    )
    database = Database(database_url)
    try:
        with database.session() as session:
            architectures = all_architectures(session, seed_space(session, "nb201"))
            stored = get_or_create_config(session, config)
            rng = np.random.default_rng(seed)
            rows = [
                {
                    "architecture_id": a.id,
                    "config_id": stored.id,
                    "proxy": proxy,
                    "value": float(rng.lognormal()),
                    "seconds": 0.01,
                    "device": "cpu",
                    "error": None,
                    "computed_from_id": a.id,
                }
                for a in architectures
                for proxy in PROXIES
            ]
            insert_ignore(session, Score.__table__, rows, unique=["architecture_id", "config_id", "proxy"])
            observations = _observations([a.arch for a in architectures], rng)
            record_observations(session, "nb201", observations, [""] * len(observations))
    finally:
        database.dispose()
    return config.fingerprint


def _observations(archs: list[str], rng: np.random.Generator) -> list[ObservationInput]:
    if NB201_CSV.exists():
        with NB201_CSV.open() as stream:
            table = list(csv.DictReader(stream))
        return [ObservationInput(row["arch"], "cifar10", float(row["cifar10_test_acc"])) for row in table]
    return [ObservationInput(arch, "cifar10", float(rng.uniform(10, 95))) for arch in archs]


def add_one_score(database_url: str, fingerprint: str) -> None:
    """One more score row under the configuration, which invalidates the cached population."""
    from sqlalchemy import func, select

    from app.db.models import ScoringConfig

    database = Database(database_url)
    try:
        with database.session() as session:
            config_id = session.execute(
                select(ScoringConfig.id).where(ScoringConfig.fingerprint == fingerprint)
            ).scalar_one()
            architecture_id = session.execute(select(func.min(Score.architecture_id))).scalar_one()
            row = {
                "architecture_id": architecture_id,
                "config_id": config_id,
                "proxy": "params",
                "value": 1.0,
                "seconds": 0.0,
                "device": "cpu",
                "error": None,
                "computed_from_id": architecture_id,
            }
            insert_ignore(session, Score.__table__, [row], unique=["architecture_id", "config_id", "proxy"])
    finally:
        database.dispose()


def timed_get(server: LiveServer, params: dict[str, object]) -> float:
    started = time.perf_counter()
    response = server.client.get("/v1/leaderboard", params=params)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{params}: {response.status_code} {response.text}")
    return elapsed


def measure(backend: str, database_url: str, home: Path, requests: int) -> list[tuple[str, float, np.ndarray]]:
    from app.db.migrations import upgrade

    upgrade(database_url)
    started = time.perf_counter()
    fingerprint = populate(database_url, seed=0)
    print(
        f"[{backend}] wrote 15,625 x {len(PROXIES)} scores and the observations in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    results = []
    with LiveServer(service_settings(home, database_url, data_dir=home / "data")) as server:
        for name, params in SHAPES.items():
            cold = timed_get(server, params)
            warm = np.array([timed_get(server, params) for _ in range(requests)])
            results.append((name, cold, warm))
        add_one_score(database_url, fingerprint)
        after_write = timed_get(server, {})
        warm = np.array([timed_get(server, {}) for _ in range(requests)])
        results.append(("first request after a write", after_write, warm))
    return results


def report(backend: str, results: list[tuple[str, float, np.ndarray]]) -> None:
    print(f"\n{backend}: {len(results[0][2])} warm requests per shape, milliseconds")
    print(f"{'query':<32}{'cold':>9}{'p50':>8}{'p95':>8}{'max':>8}")
    for name, cold, warm in results:
        p50, p95 = np.percentile(warm, [50, 95])
        flag = "" if p95 < TARGET_P95_MS else "  (over target)"
        print(f"{name:<32}{cold:>9.1f}{p50:>8.1f}{p95:>8.1f}{warm.max():>8.1f}{flag}")
    every = np.concatenate([warm for _, _, warm in results])
    print(
        f"{'all warm requests':<32}{'':>9}{np.percentile(every, 50):>8.1f}{np.percentile(every, 95):>8.1f}"
        f"{every.max():>8.1f}"
    )


@contextmanager
def postgres_url(given: str | None) -> Iterator[str]:
    if given:
        yield given
        return
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        raise SystemExit("no PostgreSQL server binaries found; pass --postgres-url or run `make postgres-server`")
    server = PostgresServer(bin_dir)
    server.start()
    try:
        yield server.create_database()
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="warm requests per query shape")
    parser.add_argument("--backends", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"])
    parser.add_argument("--postgres-url", help="an empty PostgreSQL database (default: a throwaway cluster)")
    args = parser.parse_args()
    for backend in args.backends:
        with tempfile.TemporaryDirectory(prefix=f"leaderboard-bench-{backend}-") as directory:
            home = Path(directory)
            (home / "data").mkdir()
            if backend == "sqlite":
                report(backend, measure(backend, f"sqlite:///{home / 'nasscore.db'}", home, args.requests))
                continue
            with postgres_url(args.postgres_url) as url:
                report(backend, measure(backend, url, home, args.requests))
    print(f"\ntarget: p95 under {TARGET_P95_MS:.0f} ms for warm requests at 15,625 architectures", flush=True)


if __name__ == "__main__":
    main()
