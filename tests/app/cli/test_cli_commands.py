"""The `nasscore` command as a user runs it (real subprocesses): settings in `serve --help`, migrations,
the import of the shared 15,625-row NB201 accuracy table, and `batch` locally (interrupted with Ctrl-C and
resumed) and against a running server."""

import csv
import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import (
    NASSCORE,
    TINY_SYNTHETIC_FLAGS,
    LiveServer,
    job_counts,
    nasscore,
    service_settings,
    wait_until,
)
from sqlalchemy import func, select

from app.db import Database
from app.db.migrations import current_revision, head_revision
from app.db.models import Architecture, Job, JobItem, Observation, Score
from app.settings import Settings
from scorers import DEFAULT_PROXIES


def _env(database_url: str, tmp_path: Path) -> dict[str, str]:
    home = str(tmp_path / "home")
    return os.environ | {"NASSCORE_HOME": home, "NASSCORE_DATABASE_URL": database_url, "NASSCORE_WORKERS": "1"}


def test_serve_help_documents_every_setting() -> None:
    result = nasscore("serve", "--help")
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    for name in Settings.model_fields:
        assert f"--{name.replace('_', '-')}" in help_text
        assert f"NASSCORE_{name.upper()}" in help_text


def test_db_upgrade_creates_the_embedded_sqlite_database(tmp_path: Path) -> None:
    env = os.environ | {"NASSCORE_HOME": str(tmp_path / "fresh")}
    env.pop("NASSCORE_DATABASE_URL", None)
    assert nasscore("db", "upgrade", env=env).returncode == 0
    database = Database(Settings(home=tmp_path / "fresh").resolved_database_url)
    try:
        assert (tmp_path / "fresh" / "nasscore.db").exists()
        assert current_revision(database.engine) == head_revision()
    finally:
        database.dispose()
    assert head_revision() in nasscore("db", "current", env=env).stdout


@pytest.mark.postgres
def test_serve_refuses_a_postgresql_database_without_migrations(postgres_server, tmp_path: Path) -> None:
    url = postgres_server.create_database()
    result = nasscore("serve", "--home", str(tmp_path), "--database-url", url, "--port", "0", timeout=120)
    assert result.returncode == 1 and "nasscore db upgrade" in result.stderr


def test_observations_import_of_the_shared_nb201_table(database_url: str, tmp_path: Path, nb201_csv: Path) -> None:
    env = _env(database_url, tmp_path)
    assert nasscore("db", "upgrade", env=env).returncode == 0
    args = [
        "observations",
        "import",
        str(nb201_csv),
        "--dataset",
        "cifar10",
        "--arch-col",
        "arch",
        "--acc-col",
        "cifar10_test_acc",
        "--index-col",
        "index",
    ]
    first = nasscore(*args, env=env)
    assert first.returncode == 0, first.stderr
    assert "imported 15625 observations" in first.stdout
    assert nasscore(*args, env=env).returncode == 0
    with nb201_csv.open() as stream:
        table = {row["arch"]: (int(row["index"]), float(row["cifar10_test_acc"])) for row in csv.DictReader(stream)}
    database = Database(database_url)
    try:
        with database.read_session() as session:
            assert session.execute(select(func.count()).select_from(Observation)).scalar_one() == 15625
            stored = session.execute(
                select(Architecture.arch, Architecture.benchmark_index, Observation.accuracy, Observation.source)
                .join(Observation, Observation.architecture_id == Architecture.id)
                .where(Observation.dataset == "cifar10", Observation.metric == "test_accuracy")
            ).all()
    finally:
        database.dispose()
    assert {arch: (index, accuracy) for arch, index, accuracy, _ in stored} == table
    assert {source for *_, source in stored} == {nb201_csv.name}


def test_observations_import_errors_name_the_problem(sqlite_url: str, tmp_path: Path) -> None:
    env = _env(sqlite_url, tmp_path)
    nasscore("db", "upgrade", env=env)
    table = tmp_path / "acc.csv"
    table.write_text("arch,acc\n|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,12.5\n|nope~0|,50\n")
    import_table = ["observations", "import", str(table), "--dataset", "cifar10"]
    missing_column = nasscore(*import_table, "--acc-col", "accuracy", env=env)
    assert missing_column.returncode == 1 and "accuracy" in missing_column.stderr
    bad_arch = nasscore(*import_table, "--acc-col", "acc", env=env)
    assert bad_arch.returncode == 1 and "acc.csv:3" in bad_arch.stderr and "nope" in bad_arch.stderr
    table.write_text("arch,acc\n|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,high\n")
    not_a_number = nasscore(*import_table, "--acc-col", "acc", env=env)
    assert not_a_number.returncode == 1 and "acc.csv:2" in not_a_number.stderr


def test_local_batch_survives_ctrl_c_and_resumes(sqlite_url: str, tmp_path: Path) -> None:
    env = _env(sqlite_url, tmp_path)
    command = [NASSCORE, "batch", "nb201", "--sample", "12", "--seed", "9", *TINY_SYNTHETIC_FLAGS]
    interrupted = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def progressed() -> bool:
        assert interrupted.poll() is None, interrupted.communicate()
        return Path(sqlite_url.removeprefix("sqlite:///")).exists() and job_counts(sqlite_url).get("done", 0) >= 3

    wait_until(progressed, 300, "the local batch to make progress")
    interrupted.send_signal(signal.SIGINT)
    output, errors = interrupted.communicate(timeout=120)
    assert interrupted.returncode == 130, errors
    assert "resume" in output and "batch 1 (new)" in output
    counts = job_counts(sqlite_url)
    assert counts.get("running", 0) == 0 and counts.get("pending", 0) > 0, "a clean stop hands its items back"

    resumed = nasscore(*command[1:], env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "batch 1 (resumed)" in resumed.stdout and "done: 12 scored, 0 failed" in resumed.stdout
    assert "cell" in resumed.stderr, "the progress bar is drawn on stderr"
    database = Database(sqlite_url)
    try:
        with database.read_session() as session:
            assert session.execute(select(func.count()).select_from(Job)).scalar_one() == 1
            per_arch = (
                session.execute(
                    select(func.count(Score.id))
                    .join(JobItem, JobItem.architecture_id == Score.architecture_id)
                    .group_by(Score.architecture_id)
                )
                .scalars()
                .all()
            )
    finally:
        database.dispose()
    assert per_arch == [len(DEFAULT_PROXIES)] * 12


def test_batch_against_a_running_server(sqlite_url: str, tmp_path: Path) -> None:
    archs = tmp_path / "archs.txt"
    archs.write_text(
        "# three cells\n"
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|\n\n"
        "|nor_conv_1x1~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|\n"
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|nor_conv_1x1~1|skip_connect~2|\n"
    )
    with LiveServer(service_settings(tmp_path / "server", sqlite_url)) as server:
        url = f"http://127.0.0.1:{server.port}"
        result = nasscore("batch", "nb201", "--file", str(archs), "--server", url, *TINY_SYNTHETIC_FLAGS)
        assert result.returncode == 0, result.stderr
        assert "done: 3 scored, 0 failed" in result.stdout
        again = nasscore("batch", "nb201", "--file", str(archs), "--server", url, *TINY_SYNTHETIC_FLAGS)
        assert again.returncode == 0 and "done: 3 scored" in again.stdout
        path_data = nasscore("batch", "nb201", "--file", str(archs), "--server", url, "--data", str(tmp_path))
        assert path_data.returncode == 1 and "--data" in path_data.stderr
        archs.write_text("|nor_conv_3x3~0|+|bogus~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|\n")
        bad = nasscore("batch", "nb201", "--file", str(archs), "--server", url, *TINY_SYNTHETIC_FLAGS)
        assert bad.returncode == 1 and "archs.txt:1" in bad.stderr and "bogus" in bad.stderr


def test_local_batch_reports_missing_real_data(sqlite_url: str, tmp_path: Path) -> None:
    env = _env(sqlite_url, tmp_path)
    result = nasscore("batch", "nb201", "--sample", "2", "--dataset", "cifar100", env=env)
    assert result.returncode == 1 and "nasscore data add cifar100" in result.stderr and "synthetic" in result.stderr
    missing_path = nasscore("batch", "nb201", "--sample", "2", "--data", str(tmp_path / "absent.npz"), env=env)
    assert missing_path.returncode == 1 and "absent.npz" in missing_path.stderr


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--sample", "0"], "--sample"),
        (["--sample", "3", "--batch-size", "0"], "--batch-size"),
        (["--sample", "2", "--proxies", "nope"], "--proxies"),
    ],
)
def test_bad_batch_arguments(sqlite_url: str, tmp_path: Path, flags: list[str], named: str) -> None:
    result = nasscore("batch", "nb201", *flags, "--data", "synthetic", env=_env(sqlite_url, tmp_path))
    assert result.returncode == 1 and named in result.stderr
