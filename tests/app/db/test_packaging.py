"""An installed wheel is self-sufficient for its schema: `nasscore db upgrade` finds the migration scripts
inside the package, with no source tree and no alembic.ini around."""

import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
from pathlib import Path

from conftest import REPO_ROOT

from app.db.migrations import head_revision

PROJECT_FILES = ("pyproject.toml", "README.md", "alembic", "app", "scorers", "search_spaces")
COMMAND_TIMEOUT_SECONDS = 300


def _run(command: list[str], **options: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS, **options)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _build_wheel(work: Path) -> Path:
    """The project's wheel, built offline from a copy of its files (the build leaves nothing in the repo)."""
    source = work / "source"
    for name in PROJECT_FILES:
        origin = REPO_ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            source.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, source / name)
    dist = work / "dist"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    _run([*pip_wheel, "--wheel-dir", str(dist), str(source)])
    [wheel] = dist.glob("nasscore-*.whl")
    return wheel


def _install_into_fresh_venv(wheel: Path, venv: Path) -> None:
    """A venv of its own holding only nasscore (no pip of its own either: the running pip installs into it)."""
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--no-deps",
            "--no-index",
            str(wheel),
        ]
    )


def _dependencies_only_environment() -> dict[str, str]:
    """The installed dependencies (torch, SQLAlchemy, Alembic, …) come from this test's environment through
    PYTHONPATH; nasscore itself must come from the wheel (.pth files, the editable install's among them, are
    not read from PYTHONPATH entries)."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("NASSCORE_", "PYTHON"))}
    site_packages = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    return environment | {"PYTHONPATH": os.pathsep.join(site_packages)}


def test_an_installed_wheel_upgrades_a_database_to_head(tmp_path: Path) -> None:
    venv, home, outside_the_repo = tmp_path / "venv", tmp_path / "home", tmp_path / "elsewhere"
    _install_into_fresh_venv(_build_wheel(tmp_path), venv)
    outside_the_repo.mkdir()
    run_there = {"cwd": outside_the_repo, "env": _dependencies_only_environment()}
    located = _run([str(venv / "bin" / "python"), "-c", "import app.db; print(app.db.__file__)"], **run_there)
    assert Path(located.stdout.strip()).is_relative_to(venv), "nasscore must be imported from the wheel"

    upgraded = _run([str(venv / "bin" / "nasscore"), "db", "upgrade", "--home", str(home)], **run_there)
    assert "upgraded to head" in upgraded.stdout
    with sqlite3.connect(home / "nasscore.db") as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]
