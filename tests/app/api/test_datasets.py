"""Calibration data as content-addressed sets in the database: the first run scores real images, the same
bytes are the same configuration whatever the file is called, a CLI batch and a server on one database
share the queue, and configurations made before batches were stored are kept and can be revived."""

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import (
    NASSCORE,
    README_CELL,
    TINY_CONFIG,
    TINY_FLAGS,
    LiveServer,
    free_port,
    nasscore,
    service_settings,
    wait_ready,
    wait_until,
)
from sqlalchemy import JSON, column, func, insert, select, table

from app.db import Database
from app.db.migrations import upgrade
from app.db.models import (
    Architecture,
    CalibrationSet,
    JobItem,
    Score,
    ScoringConfig,
    SearchSpace,
    UtcDateTime,
    utcnow,
)
from scorers.calibration import builtin_image_set, read_image_set


def _env(home: Path, database_url: str | None = None) -> dict[str, str]:
    env = os.environ | {"NASSCORE_HOME": str(home), "NASSCORE_WORKERS": "1"}
    return env | ({"NASSCORE_DATABASE_URL": database_url} if database_url else {})


def test_first_run_scores_the_readme_cell_on_real_images(tmp_path: Path) -> None:
    """The quick start: `nasscore serve` on a fresh home, then the README's plain POST."""
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as stream:
        server = subprocess.Popen(
            [NASSCORE, "serve", "--port", str(port), "--sync-wait-seconds", "120"],
            env=_env(tmp_path / "home"),
            stdout=stream,
            stderr=stream,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            wait_ready(client)
            ready = client.get("/readyz").json()
            assert "1000 real images" in ready["data"]["cifar10"] and ready["data"]["cifar100"] == "synthetic only"
            assert ready["database_url"].startswith("sqlite:///")
            response = client.post("/v1/scores", params={"wait": 60}, json={"arch": README_CELL})
            assert response.status_code == 200, response.text
            body = response.json()
            datasets = {d["dataset"]: d for d in client.get("/v1/datasets").json()}
    finally:
        server.terminate()
        server.wait(timeout=60)
    expected = builtin_image_set("cifar10").select(64, "random", 0)
    assert body["configuration"]["calibration_digest"] == expected.digest
    assert all(score["error"] is None for score in body["scores"].values())
    assert datasets["cifar10"]["builtin"] and datasets["cifar10"]["images"] == 1000
    assert not datasets["cifar100"]["real_data"] and "nasscore data add cifar100" in datasets["cifar100"]["add_command"]
    text = log.read_text()
    assert "data: cifar10 = 1000 real images" in text and "database: sqlite:///" in text and "workers:" in text


def test_a_dataset_without_real_data_names_the_command_that_adds_it(live_service: LiveServer) -> None:
    response = live_service.client.post("/v1/scores", json={"arch": README_CELL, "dataset": "cifar100"})
    assert response.status_code == 400
    assert "nasscore data add cifar100 PATH" in response.text and "nasscore data download cifar100" in response.text


def test_the_same_images_under_another_name_are_the_same_data(tmp_path: Path, cifar10_npz: Path) -> None:
    env = _env(tmp_path / "home")
    renamed = tmp_path / "my_copy.npz"
    shutil.copyfile(cifar10_npz, renamed)
    first = nasscore("data", "add", "cifar10", str(cifar10_npz), env=env)
    second = nasscore("data", "add", "cifar10", str(renamed), env=env)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    digest = read_image_set("cifar10", cifar10_npz).digest
    assert f"sha256:{digest}" in first.stdout and f"sha256:{digest}" in second.stdout
    listing = nasscore("data", "list", env=env)
    assert listing.returncode == 0 and "3805" in listing.stdout and digest[:12] in listing.stdout
    database = Database(f"sqlite:///{tmp_path / 'home' / 'nasscore.db'}")
    try:
        with database.read_session() as session:
            pools = session.execute(select(CalibrationSet.digest).where(CalibrationSet.role == "pool")).scalars()
            assert sorted(pools) == sorted([digest, builtin_image_set("cifar10").digest])
    finally:
        database.dispose()
    refused = nasscore("data", "add", "cifar10", str(tmp_path / "absent.npz"), env=env)
    assert refused.returncode == 1 and "absent.npz" in refused.stderr


def test_cli_batch_and_server_share_one_queue(database_url: str, tmp_path: Path, cifar10_npz: Path) -> None:
    """The CLI stores the batch drawn from its own file; the server's workers can score the CLI's items
    although they never see that file. Every item is done once, none fails."""
    settings = service_settings(tmp_path / "server", database_url, data_dir=tmp_path / "no-data")
    with LiveServer(settings):
        result = nasscore(
            "batch",
            "nb201",
            "--sample",
            "8",
            "--seed",
            "3",
            "--data",
            str(cifar10_npz),
            "--proxies",
            "snip,synflow",
            *TINY_FLAGS,
            env=_env(tmp_path / "cli", database_url),
        )
        assert result.returncode == 0, result.stderr
        assert "done: 8 scored, 0 failed" in result.stdout
    database = Database(database_url)
    try:
        with database.read_session() as session:
            statuses = session.execute(select(JobItem.status, func.count()).group_by(JobItem.status)).all()
            assert dict(statuses) == {"done": 8}
            config = session.execute(select(ScoringConfig)).scalar_one()
            expected = read_image_set("cifar10", cifar10_npz).select(TINY_CONFIG["batch_size"], "random", 0)
            assert config.calibration_digest == expected.digest
            devices = session.execute(select(Score.device, Score.torch_version).distinct()).all()
            assert [device for device, _ in devices] == ["cpu"] and all(version for _, version in devices)
    finally:
        database.dispose()


V1_CONFIG_COLUMNS = (
    "fingerprint",
    "dataset",
    "data_source",
    "batch_size",
    "sampling",
    "seed",
    "init",
    "proxy_version",
    "model_params",
    "created_at",
)
V1_SCORE_COLUMNS = (
    "architecture_id",
    "config_id",
    "proxy",
    "value",
    "seconds",
    "device",
    "computed_from_id",
    "created_at",
)


def _table(name: str, *columns: str) -> Any:
    """A table as revision 0001 created it (the ORM describes the newest schema)."""
    types = {"model_params": JSON(), "created_at": UtcDateTime()}
    return table(name, *(column(c, types.get(c)) for c in columns), column("id"))


def _legacy_database(url: str, data_source: str) -> None:
    """A database as the previous release left it: a real-data configuration named by its file, one score."""
    upgrade(url, "0001")
    database = Database(url)
    try:
        with database.session() as session:
            space_id = session.execute(
                insert(SearchSpace).values(name="nb201", created_at=utcnow())
            ).inserted_primary_key[0]
            arch_id = session.execute(
                insert(Architecture).values(space_id=space_id, arch=README_CELL, canonical_key="k")
            ).inserted_primary_key[0]
            configs = _table("scoring_configs", *V1_CONFIG_COLUMNS)
            config_id = session.execute(
                insert(configs)
                .values(
                    fingerprint="0" * 64,
                    dataset="cifar10",
                    data_source=data_source,
                    batch_size=8,
                    sampling="random",
                    seed=0,
                    init="default",
                    proxy_version="1",
                    model_params={"num_classes": 10},
                    created_at=utcnow(),
                )
                .returning(configs.c.id)
            ).scalar_one()
            session.execute(
                insert(_table("scores", *V1_SCORE_COLUMNS)).values(
                    architecture_id=arch_id,
                    config_id=config_id,
                    proxy="snip",
                    value=1.5,
                    seconds=0.1,
                    device="cpu",
                    computed_from_id=arch_id,
                    created_at=utcnow(),
                )
            )
    finally:
        database.dispose()


def test_legacy_configurations_are_kept_and_revived_by_adding_their_file(
    database_url: str, tmp_path: Path, cifar10_npz: Path
) -> None:
    origin = read_image_set("cifar10", cifar10_npz).origin  # "npz:<name>:sha256-<file digest>", the old naming
    _legacy_database(database_url, f"{origin}|cifar10|random|seed=0|n=8")
    upgrade(database_url)
    database = Database(database_url)
    try:
        with database.read_session() as session:
            config = session.execute(select(ScoringConfig)).scalar_one()
            assert (config.calibration_kind, config.calibration_digest) == ("legacy", None)
            assert session.execute(select(Score.value)).scalar_one() == 1.5
        added = nasscore("data", "add", "cifar10", str(cifar10_npz), env=_env(tmp_path, database_url))
        assert added.returncode == 0, added.stderr
        with database.read_session() as session:
            revived = session.execute(select(ScoringConfig)).scalar_one()
            expected = read_image_set("cifar10", cifar10_npz).select(8, "random", 0)
            assert (revived.calibration_kind, revived.calibration_digest) == ("stored", expected.digest)
            assert revived.data_source.startswith(f"sha256:{expected.digest[:12]}|cifar10|random|seed=0|n=8")
            assert session.execute(select(Score.value)).scalar_one() == 1.5
            stored = session.execute(select(CalibrationSet.digest).where(CalibrationSet.role == "batch")).scalars()
            assert expected.digest in list(stored)
    finally:
        database.dispose()


def test_a_legacy_configuration_fails_its_items_with_the_fix(sqlite_url: str, tmp_path: Path) -> None:
    _legacy_database(sqlite_url, "npz:gone.npz:sha256-000000000000|cifar10|random|seed=0|n=8")
    upgrade(sqlite_url)
    database = Database(sqlite_url)
    try:
        with database.session() as session:
            from app.db.models import JobKind
            from app.services import jobs

            space = session.execute(select(SearchSpace)).scalar_one()
            jobs.create_job(
                session,
                kind=JobKind.BATCH,
                space=space,
                config=session.execute(select(ScoringConfig)).scalar_one(),
                proxies=("synflow",),
                architectures=session.execute(select(Architecture)).scalars().all(),
            )
    finally:
        database.dispose()
    with LiveServer(service_settings(tmp_path, sqlite_url, data_dir=tmp_path / "none")) as server:
        batch = server.client.get("/v1/batches/1")
        final = wait_until(
            lambda: (body := server.client.get("/v1/batches/1").json())["status"] == "done" and body, 60, "the batch"
        )
    assert batch.status_code == 200
    assert final["failed"] == 1 and "nasscore data add cifar10 PATH" in final["errors"][0]["error"]


@pytest.mark.parametrize("name", ["cifar10.npz", "cifar10_train_3805.npz"])
def test_the_data_directory_finds_files_by_dataset_prefix(tmp_path: Path, cifar10_npz: Path, name: str) -> None:
    from app.services.calibration import data_directory_files

    (tmp_path / name).symlink_to(cifar10_npz)
    (tmp_path / "cifar100_other.npz").write_bytes(b"")
    found = data_directory_files(tmp_path)
    assert found["cifar10"] == tmp_path / name and found["cifar100"] == tmp_path / "cifar100_other.npz"
