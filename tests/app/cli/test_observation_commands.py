"""`nasscore observations import` and `delete` on a local database (a real SQLite file): a source imported
with its benchmark indices is deleted in one command, the others stay."""

from pathlib import Path

import pytest
from conftest import nb201_slice
from sqlalchemy import select

from app.cli import main as nasscore_main
from app.db import Database
from app.db.migrations import upgrade
from app.db.models import Observation

CELLS = nb201_slice(3, offset=4000)


def _table(path: Path, accuracy: float) -> Path:
    rows = [f"{4000 + i},{cell},{accuracy + i}" for i, cell in enumerate(CELLS)]
    path.write_text("\n".join(["index,arch,acc", *rows]) + "\n")
    return path


def test_delete_removes_one_source(sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    upgrade(sqlite_url)
    where = ["--database-url", sqlite_url]
    for name, accuracy in (("bench.csv", 90.0), ("mistake.csv", 1.0)):
        table = _table(tmp_path / name, accuracy)
        flags = ["--dataset", "cifar10", "--acc-col", "acc", "--index-col", "index", *where]
        assert nasscore_main(["observations", "import", str(table), *flags]) == 0
    capsys.readouterr()

    assert nasscore_main(["observations", "delete", "--source", "mistake.csv", *where]) == 0
    assert "deleted 3 observations" in capsys.readouterr().out
    database = Database(sqlite_url)
    try:
        with database.read_session() as session:
            left = session.execute(select(Observation.source, Observation.accuracy, Observation.posted_by)).all()
    finally:
        database.dispose()
    assert sorted(left) == [("bench.csv", 90.0, None), ("bench.csv", 91.0, None), ("bench.csv", 92.0, None)]

    assert nasscore_main(["observations", "delete", "--source", "mistake.csv", *where]) == 1
    assert "source: no observations from source 'mistake.csv'" in capsys.readouterr().err


def test_import_refuses_a_wrong_benchmark_index(sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    upgrade(sqlite_url)
    table = _table(tmp_path / "shifted.csv", 50.0)
    lines = table.read_text().splitlines()
    _, rest = lines[2].split(",", 1)
    lines[2] = f"{lines[1].split(',')[0]},{rest}"  # row 3 claims row 2's index
    table.write_text("\n".join(lines) + "\n")
    flags = ["--dataset", "cifar10", "--acc-col", "acc", "--index-col", "index", "--database-url", sqlite_url]
    assert nasscore_main(["observations", "import", str(table), *flags]) == 1
    assert "shifted.csv:3.benchmark_index: index 4000 is given to" in capsys.readouterr().err
