"""API latency at scale over real HTTP, on SQLite and PostgreSQL: GET /v1/leaderboard and a cached POST /v1/scores.

The database holds `--architectures` architectures of `--space` (default: 100,000 sampled DARTS cells; NB201
has only 15,625), each with seeded synthetic snip, grasp and synflow scores under each of `--configs`
configurations — the synthetic-data configurations that a POST with `config.seed` 0, 1, ... resolves to — and
a synthetic observed accuracy (the benchmark's, for NB201), all written straight to the database. The real
app is served by uvicorn, and every request goes to the first configuration, `config` named explicitly:
- each leaderboard query shape `--requests` times. The first request of a shape after a write loads the
  population (the "cold" column); later ones hit the cache, and the p95 target (100 ms) is about those. One
  row times the first request after one more score is written;
- POST /v1/scores for stored architectures (a new one each request): every score is stored, so it answers at
  once with the vote's standing among the stored classes. Target: p95 under 20 ms.

    .venv/bin/python -m bench.leaderboard_latency [--space darts] [--architectures 100000] [--configs 3]
        [--requests 200] [--backends sqlite postgresql] [--postgres-url URL]

Without --postgres-url, a throwaway PostgreSQL cluster is started with the tests' helper.
"""

import argparse
import csv
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from conftest import NB201_CSV, LiveServer, PostgresServer, _postgres_bin_dir, service_settings  # noqa: E402

from app.db import Database  # noqa: E402
from app.db.models import Score  # noqa: E402
from app.services.configs import ConfigOptions, get_or_create_config, resolve_config  # noqa: E402
from app.services.observations import ObservationInput, record_observations  # noqa: E402
from app.services.scores import insert_scores  # noqa: E402
from app.services.spaces import ensure_space, get_or_create_architectures, sample_architectures  # noqa: E402
from scorers.voting import MAJORITY_MAX_ARCHITECTURES  # noqa: E402

PROXIES = ("snip", "grasp", "synflow")
TARGET_LEADERBOARD_P95_MS = 100.0
TARGET_POST_P95_MS = 20.0
WRITE_CHUNK = 20_000
# Small enough that the largest DARTS network passes the server's default model-memory budget with GraSP.
BATCH_SIZE = 16
UNLIMITED_WRITES = 1_000_000
SHAPES: dict[str, dict[str, object]] = {
    "vote mean_rank, 100 rows": {},
    "vote log_rank, 100 rows": {"method": "log_rank"},
    "vote majority, 100 rows": {"method": "majority"},
    "rank_by synflow, deep offset": {"rank_by": "synflow", "offset": -1},  # -1: the population's last page
    "vote mean_rank, 1000 rows": {"limit": 1000},
}
Timings = list[tuple[str, float, np.ndarray]]


@dataclass(frozen=True)
class Population:
    space: str
    archs: list[str]
    fingerprints: list[str]  # one per configuration; requests go to the first

    def leaderboard_params(self, shape: dict[str, object]) -> dict[str, object]:
        params = {
            "space": self.space,
            "dataset": "cifar10",
            "config": self.fingerprints[0],
        }
        params |= shape
        if params.get("offset") == -1:
            params["offset"] = max(0, len(self.archs) - 100)
        return params


def synthetic_options(seed: int) -> ConfigOptions:
    """What a POST with `config` `{"data": "synthetic", "seed": seed, "batch_size": BATCH_SIZE}` asks for."""
    return ConfigOptions(batch_size=BATCH_SIZE, data="synthetic", seed=seed)


def populate(database_url: str, space_name: str, count: int, configs: int) -> Population:
    """`count` architectures, each scored under `configs` configurations, plus one observation each."""
    archs = sample_architectures(space_name, count, seed=0, field="--architectures")
    rng = np.random.default_rng(0)
    database = Database(database_url)
    try:
        with database.session() as session:
            space = ensure_space(session, space_name)
            ids = []
            for start in range(0, len(archs), WRITE_CHUNK):
                chunk = archs[start : start + WRITE_CHUNK]
                ids += [a.id for a in get_or_create_architectures(session, space, chunk)]
            fingerprints = []
            for seed in range(configs):
                resolved = resolve_config(session, None, "cifar10", synthetic_options(seed), space=space_name)  # type: ignore[arg-type]  # synthetic data needs no store
                config = get_or_create_config(session, resolved)
                fingerprints.append(resolved.fingerprint)
                for start in range(0, len(ids), WRITE_CHUNK):
                    rows = [
                        {
                            "architecture_id": architecture_id,
                            "config_id": config.id,
                            "proxy": proxy,
                            "value": float(value),
                            "seconds": 0.01,
                            "device": "cpu",
                            "error": None,
                            "computed_from_id": architecture_id,
                        }
                        for architecture_id, values in zip(
                            ids[start : start + WRITE_CHUNK],
                            rng.lognormal(size=(WRITE_CHUNK, len(PROXIES))),
                            strict=False,
                        )
                        for proxy, value in zip(PROXIES, values, strict=True)
                    ]
                    insert_scores(session, config.id, rows)
            observations = _observations(space_name, archs, rng)
            record_observations(session, space_name, observations, [""] * len(observations))
    finally:
        database.dispose()
    return Population(space_name, archs, fingerprints)


def _observations(space: str, archs: list[str], rng: np.random.Generator) -> list[ObservationInput]:
    if space == "nb201" and NB201_CSV.exists():
        with NB201_CSV.open() as stream:
            accuracy = {row["arch"]: float(row["cifar10_test_acc"]) for row in csv.DictReader(stream)}
        return [ObservationInput(arch, "cifar10", accuracy[arch]) for arch in archs if arch in accuracy]
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
            architecture_id = session.execute(
                select(func.min(Score.architecture_id)).where(Score.config_id == config_id)
            ).scalar_one()
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
            insert_scores(session, config_id, [row])
    finally:
        database.dispose()


def timed_get(server: LiveServer, params: dict[str, object]) -> float:
    started = time.perf_counter()
    response = server.client.get("/v1/leaderboard", params=params)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{params}: {response.status_code} {response.text}")
    return elapsed


def timed_post(server: LiveServer, space: str, arch: str) -> float:
    body = {
        "space": space,
        "arch": arch,
        "proxies": list(PROXIES),
        "config": {"data": "synthetic", "seed": 0, "batch_size": BATCH_SIZE},
        "vote": {"proxies": list(PROXIES)},
    }
    started = time.perf_counter()
    response = server.client.post("/v1/scores", json=body)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200 or not response.json()["cached"]:
        raise RuntimeError(f"POST /v1/scores {arch}: {response.status_code} {response.text[:300]}")
    return elapsed


def measure(backend: str, database_url: str, home: Path, args: argparse.Namespace) -> Timings:
    from app.db.migrations import upgrade

    upgrade(database_url)
    started = time.perf_counter()
    population = populate(database_url, args.space, args.architectures, args.configs)
    print(
        f"[{backend}] wrote {len(population.archs):,} {args.space} architectures x {args.configs} configurations x "
        f"{len(PROXIES)} scores and the observations in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    results: Timings = []
    requests = args.requests
    # The POSTs are writes: lift the per-client write rate so that the limiter does not answer them.
    settings = service_settings(home, database_url, data_dir=home / "data", writes_per_minute=UNLIMITED_WRITES)
    with LiveServer(settings) as server:
        for name, shape in SHAPES.items():
            if shape.get("method") == "majority" and len(population.archs) > MAJORITY_MAX_ARCHITECTURES:
                print(f"[{backend}] skipped {name}: majority takes {MAJORITY_MAX_ARCHITECTURES:,} at most")
                continue
            params = population.leaderboard_params(shape)
            cold = timed_get(server, params)
            warm = np.array([timed_get(server, params) for _ in range(requests)])
            results.append((name, cold, warm))
        add_one_score(database_url, population.fingerprints[0])
        params = population.leaderboard_params({})
        after_write = timed_get(server, params)
        warm = np.array([timed_get(server, params) for _ in range(requests)])
        results.append(("first request after a write", after_write, warm))
        picks = np.random.default_rng(1).choice(len(population.archs), size=requests + 1, replace=False)
        cold = timed_post(server, args.space, population.archs[picks[0]])
        warm = np.array([timed_post(server, args.space, population.archs[i]) for i in picks[1:]])
        results.append(("POST /v1/scores, cached", cold, warm))
    return results


def report(backend: str, results: Timings) -> None:
    print(f"\n{backend}: {len(results[0][2])} warm requests per shape, milliseconds")
    print(f"{'query':<32}{'cold':>9}{'p50':>8}{'p95':>8}{'max':>8}")
    for name, cold, warm in results:
        p50, p95 = np.percentile(warm, [50, 95])
        target = TARGET_POST_P95_MS if name.startswith("POST") else TARGET_LEADERBOARD_P95_MS
        flag = "" if p95 < target else "  (over target)"
        print(f"{name:<32}{cold:>9.1f}{p50:>8.1f}{p95:>8.1f}{warm.max():>8.1f}{flag}")


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
    parser.add_argument("--space", default="darts", help="search space of the stored architectures")
    parser.add_argument("--architectures", type=int, default=100_000, help="how many to store")
    parser.add_argument("--configs", type=int, default=3, help="configurations each is scored under")
    parser.add_argument("--requests", type=int, default=200, help="warm requests per query shape")
    parser.add_argument("--backends", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"])
    parser.add_argument("--postgres-url", help="an empty PostgreSQL database (default: a throwaway cluster)")
    args = parser.parse_args()
    for backend in args.backends:
        with tempfile.TemporaryDirectory(prefix=f"leaderboard-bench-{backend}-") as directory:
            home = Path(directory)
            (home / "data").mkdir()
            if backend == "sqlite":
                report(backend, measure(backend, f"sqlite:///{home / 'nasscore.db'}", home, args))
                continue
            with postgres_url(args.postgres_url) as url:
                report(backend, measure(backend, url, home, args))
    print(
        f"\ntargets at {args.architectures:,} architectures: leaderboard p95 under {TARGET_LEADERBOARD_P95_MS:.0f} ms, "
        f"cached POST p95 under {TARGET_POST_P95_MS:.0f} ms (warm requests)",
        flush=True,
    )


if __name__ == "__main__":
    main()
