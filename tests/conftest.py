"""Shared fixtures: a real throwaway PostgreSQL server, real SQLite files, the shared data files, the real
service running under uvicorn on a free local port, and populations written straight through the service
layer for tests that call the services in-process."""

import glob
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
CIFAR10_NPZ = SHARED_DIR / "data" / "cifar10" / "cifar10_train_3805.npz"
NB201_CSV = SHARED_DIR / "data" / "nb201" / "nb201_cifar10_test_acc.csv"
# A small but real NB201 network on synthetic data: keeps service tests about the service, not about FLOPs.
TINY_CONFIG = {"data": "synthetic", "batch_size": 8, "channels": 4, "cells_per_stage": 1}
READY_TIMEOUT_SECONDS = 180
NASSCORE = str(Path(sys.executable).with_name("nasscore"))
# The same sizes as `nasscore` flags: TINY_FLAGS for the dataset's own data, TINY_SYNTHETIC_FLAGS for synthetic data.
TINY_FLAGS = [
    "--batch-size",
    str(TINY_CONFIG["batch_size"]),
    "--channels",
    str(TINY_CONFIG["channels"]),
    "--cells-per-stage",
    str(TINY_CONFIG["cells_per_stage"]),
]
TINY_SYNTHETIC_FLAGS = ["--data", "synthetic", *TINY_FLAGS]

# NB201 cells used across the tests.
# The README's example cell: live convolutions, pooling and skips.
README_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
# Every edge `none`: the output ignores the input.
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
# Every edge a 3×3 convolution: the largest network of the space.
ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
# One of each operation, a dead edge included.
MIXED_CELL = "|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_3x3~0|none~1|skip_connect~2|"


# A cell of 3×3 convolutions and one skip: the NASLib key (2, 2, 0, 2, 2, 2).
BEST_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
# Every edge at a different position in NASLib's edge order than in NB201's: the NASLib key (1, 0, 3, 2, 4, 1).
SCRAMBLED_CELL = "|none~0|+|skip_connect~0|nor_conv_3x3~1|+|nor_conv_1x1~0|avg_pool_3x3~1|none~2|"
# Cells with dead edges, and the indices (in string order) of the edges that are live.
DEAD_EDGE_CELLS = {
    # Nodes 1 and 2 never reach node 3: only the skip 3<-0 is live.
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|none~2|": (3,),
    # Node 1 is always zero, so 2<-1 and 3<-1 are dead although they carry convolutions.
    "|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_3x3~2|": (1, 3, 5),
    # Node 2 is always zero: 3<-2 is dead; node 1 feeds node 3 through a convolution.
    "|avg_pool_3x3~0|+|none~0|none~1|+|nor_conv_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|": (0, 3, 4),
    # Node 3 receives nothing (every input is `none`): the cell outputs zeros.
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|": (),
    # Node 3 is fed only by always-zero nodes: nothing is live.
    "|none~0|+|none~0|nor_conv_3x3~1|+|none~0|nor_conv_3x3~1|nor_conv_3x3~2|": (),
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def nb201_slice(count: int, offset: int) -> list[str]:
    """Distinct cells no other test in the module uses (each test takes its own slice)."""
    from search_spaces import nb201

    return nb201.all_archs()[offset : offset + count]


def scored_layers(net: torch.nn.Module) -> list[torch.nn.Module]:
    """The layers whose weights the pruning saliencies score: convolutions and linear layers."""
    return [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]


def denormalise(batch: Any, dataset: str) -> Any:
    """A CalibrationBatch's inputs back as the uint8 images they were normalised from (N×3×H×W)."""
    from scorers.calibration import DATASETS

    spec = DATASETS[dataset]
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    return (batch.inputs * std + mean).mul(255).round().to(torch.uint8).numpy()


def index_of_rows(haystack: Any, needles: Any) -> list[int]:
    """For each image of `needles`, the index of the first equal image in `haystack` (numpy arrays)."""
    import numpy as np

    flat = haystack.reshape(len(haystack), -1)
    return [int(np.flatnonzero((flat == row).all(axis=1))[0]) for row in needles.reshape(len(needles), -1)]


def error_fields(response: httpx.Response) -> dict[str, str]:
    """An error response's messages by field; every error response has a `detail` too."""
    body = response.json()
    assert body["detail"], body
    return {error["field"]: error["message"] for error in body["errors"]}


def print_figures(request: pytest.FixtureRequest, text: str) -> None:
    """Print past pytest's output capture, so that a test's figures (fuzzing counts, fault-injection tallies)
    show in a plain `pytest -q` run and can be quoted."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n{text}")


def small_model(arch: str, seed: int = 0, channels: int = 8) -> torch.nn.Module:
    """A seeded NB201 network for CIFAR-10 with one cell per stage: small enough for exact proxy checks."""
    from search_spaces import nb201

    torch.manual_seed(seed)
    return nb201.build_model(arch, num_classes=10, channels=channels, cells_per_stage=1)


def tiny_model(arch: str, seed: int = 0) -> torch.nn.Module:
    """`small_model` with 4 channels, for the proxies that take many forward passes."""
    return small_model(arch, seed, channels=4)


def nasscore(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """The installed `nasscore` command, run as a user runs it."""
    return subprocess.run([NASSCORE, *args], env=env, capture_output=True, text=True, timeout=timeout)


def job_counts(database_url: str) -> dict[str, int]:
    """Batch items per status; none before the command has migrated the database (SQLite creates the file on
    its first connection, a moment before the tables exist)."""
    from sqlalchemy import func, inspect, select

    from app.db import Database
    from app.db.models import JobItem

    database = Database(database_url)
    try:
        if not inspect(database.engine).has_table(JobItem.__tablename__):
            return {}
        with database.read_session() as session:
            return dict(session.execute(select(JobItem.status, func.count()).group_by(JobItem.status)).all())
    finally:
        database.dispose()


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """For modules of tiny networks: extra intra-op threads only add synchronisation, which on a shared, busy
    CPU makes each small op many times slower. The previous setting is restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def synthetic_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """16 seeded synthetic CIFAR-10 images and labels: the inputs of the exact proxy checks."""
    from scorers.calibration import load_calibration_batch

    synthetic = load_calibration_batch("cifar10", "synthetic", batch_size=16, seed=0)
    return synthetic.inputs, synthetic.targets


def relative_error(ours: float, expected: float) -> float:
    return abs(ours - expected) / max(abs(expected), 1e-12)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postgres_bin_dir() -> Path | None:
    """The newest installed PostgreSQL server binaries (Debian layout first, then PATH)."""
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name or 0))
    for candidate in [Path(p) for p in reversed(debian)]:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl and shutil.which("initdb") else None


class PostgresServer:
    """A private PostgreSQL cluster in a temp dir on 127.0.0.1; initdb refuses root, so run as `postgres`."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="nasscore-pg-"))
        self.data_dir = self.root / "data"
        self.port = free_port()
        self.as_postgres_user = os.getuid() == 0
        if self.as_postgres_user:
            shutil.chown(self.root, user="postgres", group="postgres")

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.as_postgres_user:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        self._start_server()

    def _start_server(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -F -c max_connections=300"
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.root / "server.log"), "-o", options, "-w", "start")

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop the server as a crash would (`immediate`: every connection cut, no shutdown checkpoint, crash
        recovery at the next start), leave it down for `down_seconds`, and start it again on the same port
        and data: what a client sees of a database host restarting."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        time.sleep(down_seconds)
        self._start_server()

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self) -> str:
        """A fresh empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = f"nasscore_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found (run `make postgres-server` to install them)")
    server = PostgresServer(bin_dir)
    try:
        server.start()
    except subprocess.CalledProcessError as error:
        server.stop()
        pytest.fail(f"could not start the test PostgreSQL server: {error.stderr or error.stdout}")
    yield server
    server.stop()


def backend_url(request: pytest.FixtureRequest, home: Path) -> str:
    """An empty database for a fixture parametrised by backend: a real SQLite file under `home`, or a new
    database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{home / 'nasscore.db'}"
    return request.getfixturevalue("postgres_server").create_database()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend: a real SQLite file, then a real PostgreSQL database."""
    return backend_url(request, tmp_path)


def server_process_env(database_url: str, home: Path, lease_seconds: float) -> dict[str, str]:
    """The environment of a real `nasscore serve` subprocess: one worker, a fast poll, a short lease (so a
    killed server's items come back within the test) and its own free port and home."""
    return os.environ | {
        "NASSCORE_HOME": str(home),
        "NASSCORE_DATABASE_URL": database_url,
        "NASSCORE_PORT": str(free_port()),
        "NASSCORE_WORKERS": "1",
        "NASSCORE_POLL_SECONDS": "0.1",
        "NASSCORE_LEASE_SECONDS": str(lease_seconds),
        "NASSCORE_LOG_LEVEL": "warning",
    }


class ServerProcess:
    """`nasscore serve` as a real subprocess with its output in `log`, leading a process group of its own so
    that one signal can reach it and every worker process it spawned."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            [NASSCORE, "serve"], env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def group(self) -> set[int]:
        """Live processes of its group (zombies do not count)."""
        return {pid for pid, fields in process_stats() if int(fields[2]) == self.process.pid and fields[0] != "Z"}

    def kill_group(self) -> int:
        """SIGKILL to the whole group; returns how many processes it killed, once none is left."""
        members = self.group()
        if members:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=60)
        wait_until(lambda: not self.group(), 60, "every process of the killed group to go")
        self.log.close()
        return len(members)

    def stop(self) -> int:
        """SIGTERM (a graceful shutdown) unless it already exited; returns its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=120)
        self.log.close()
        return code

    def output(self) -> str:
        return Path(self.log.name).read_text()


def process_stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, the fields of /proc/PID/stat after the command name: state, ppid, pgrp, …) of live processes."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        yield int(stat.parent.name), fields


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'nasscore.db'}"


@pytest.fixture
def cifar10_npz() -> Path:
    if not CIFAR10_NPZ.exists():
        pytest.skip(f"shared CIFAR-10 batch not found at {CIFAR10_NPZ}")
    return CIFAR10_NPZ


@pytest.fixture
def nb201_csv() -> Path:
    if not NB201_CSV.exists():
        pytest.skip(f"shared NB201 accuracy table not found at {NB201_CSV}")
    return NB201_CSV


@pytest.fixture
def data_dir(tmp_path: Path, cifar10_npz: Path) -> Path:
    """An operator data directory exposing the shared CIFAR-10 batch as `cifar10.npz` (a symlink)."""
    directory = tmp_path / "data"
    directory.mkdir()
    (directory / "cifar10.npz").symlink_to(cifar10_npz)
    return directory


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll until `condition()` is truthy and return it; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def wait_ready(client: httpx.Client, timeout: float = READY_TIMEOUT_SECONDS) -> None:
    def ready() -> bool:
        try:
            return client.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, timeout, f"{client.base_url}/readyz", interval=0.2)


def wait_for_batch(client: httpx.Client, batch_id: int, timeout: float = 300) -> dict[str, Any]:
    """The batch's final state once it is done or cancelled."""

    def finished() -> dict[str, Any] | None:
        body = client.get(f"/v1/batches/{batch_id}").json()
        return body if body["status"] in ("done", "cancelled") else None

    return wait_until(finished, timeout, f"batch {batch_id} to finish", interval=0.2)


class LiveServer:
    """The real app under uvicorn in a background thread, on a free 127.0.0.1 port."""

    def __init__(self, settings: Any) -> None:
        import uvicorn

        from app.api.app import create_app

        self.settings = settings
        self.port = free_port()
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        wait_ready(self.client)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)
        self.client.close()


def service_settings(home: Path, database_url: str, **overrides: Any) -> Any:
    from app.db.migrations import upgrade
    from app.settings import Settings

    upgrade(database_url)
    values = {"home": home, "database_url": database_url, "workers": 1, "poll_seconds": 0.1, "sync_wait_seconds": 30}
    return Settings(**(values | overrides))


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def live_service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The real service on each backend (one server per test module and backend), with the shared
    CIFAR-10 batch as the operator's `cifar10.npz` when it is available."""
    home = tmp_path_factory.mktemp(f"service-{request.param}")
    data_dir = home / "data"
    data_dir.mkdir()
    if CIFAR10_NPZ.exists():
        (data_dir / "cifar10.npz").symlink_to(CIFAR10_NPZ)
    url = backend_url(request, home)
    limits = {"max_body_bytes": 256 * 1024, "max_batch_items": 200, "max_observations": 100}
    # The report tests keep populations apart by metric, with metrics of their own (`extra_metrics`).
    metrics = {"extra_metrics": ["synthetic_accuracy", "twins_accuracy", "fresh"]}
    with LiveServer(service_settings(home, url, data_dir=data_dir, **limits, **metrics)) as server:
        yield server


@dataclass(frozen=True)
class StoredClasses:
    """Isomorphism classes scored under one configuration: `keys[i]` is class i's canonical key and
    `cells[i]` its stored cells."""

    fingerprint: str
    keys: list[str]
    cells: list[list[str]]


def one_cell_per_class(count: int, seed: int, taken: Collection[str] = ()) -> list[str]:
    """`count` cells of NB201, no two isomorphic and none of a class in `taken`."""
    from search_spaces import nb201

    picks: dict[str, str] = {}
    for arch in random.Random(seed).sample(nb201.all_archs(), 4 * count):
        key = nb201.canonical_key(arch)
        if key not in taken:
            picks.setdefault(key, arch)
        if len(picks) == count:
            return list(picks.values())
    raise AssertionError(f"fewer than {count} classes drawn")


def record_class_scores(session: Any, space: Any, config_id: int, members: list[str], scores: dict[str, float]) -> str:
    """Store `scores` for one isomorphism class (`members`, its cells) as a worker records them; returns the
    class's canonical key."""
    from app.services.scores import record_scores
    from app.services.spaces import architectures_for_strings
    from scorers import ProxyResult

    rows = architectures_for_strings(session, space, members)
    record_scores(
        session,
        member_ids=[row.id for row in rows],
        computed_from_id=rows[0].id,
        config_id=config_id,
        outcomes={proxy: ProxyResult(value, 0.01) for proxy, value in scores.items()},
        device="cpu",
    )
    return str(rows[0].canonical_key)


def queue_job(
    database: Any,
    archs: list[str],
    *,
    kind: str = "batch",
    resume: bool = True,
    proxies: tuple[str, ...] = ("snip", "synflow"),
) -> tuple[int, bool, list[int]]:
    """A job over `archs` under a small synthetic configuration, created as the service creates one; returns
    (job id, whether it was created rather than resumed, the architectures' ids in order)."""
    from app.db.models import JobKind
    from app.services import jobs
    from app.services.calibration import CalibrationStore
    from app.services.configs import ConfigOptions, get_or_create_config, resolve_config
    from app.services.spaces import ensure_space, get_or_create_architectures

    with database.read_session() as session:
        options = ConfigOptions(data="synthetic", batch_size=4)
        resolved = resolve_config(session, CalibrationStore(), "cifar10", options)
    with database.session() as session:
        space = ensure_space(session, "nb201")
        architectures = get_or_create_architectures(session, space, archs)
        job, created = jobs.create_job(
            session,
            kind=JobKind(kind),
            space=space,
            config=get_or_create_config(session, resolved),
            proxies=proxies,
            architectures=architectures,
            resume=resume,
        )
        return job.id, created, [a.id for a in architectures]


def store_classes(database: Any, seed: int, cells: list[list[str]], values: list[dict[str, float]]) -> StoredClasses:
    """Scores written through the service layer, as a worker records them, under the synthetic configuration
    of `seed`: every cell of class i gets `values[i]` (a non-finite value is stored as a null score)."""
    from app.services.calibration import CalibrationStore
    from app.services.configs import ConfigOptions, get_or_create_config, resolve_config
    from app.services.spaces import ensure_space

    with database.session() as session:
        options = ConfigOptions(data="synthetic", seed=seed)
        resolved = resolve_config(session, CalibrationStore(), "cifar10", options)
        config = get_or_create_config(session, resolved)
        space = ensure_space(session, "nb201")
        keys = [
            record_class_scores(session, space, config.id, members, scores)
            for members, scores in zip(cells, values, strict=True)
        ]
    return StoredClasses(resolved.fingerprint, keys, cells)


@pytest.fixture(scope="module")
def sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A migrated SQLite file, open as the service opens it, for tests that call services in-process."""
    from app.db import Database
    from app.db.migrations import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('in-process') / 'nasscore.db'}"
    upgrade(url)
    database = Database(url)
    yield database
    database.dispose()
