"""Every `nasscore` subcommand behaves alike: one list syntax, defaults in every `--help`, one error prefix,
the `proxies` and `presets` listings, and a local batch that stops cleanly and resumes on SIGINT (even when
started with SIGINT ignored, as a background job is) and on SIGTERM. Real subprocesses wherever a user
would see the difference."""

import argparse
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    NASSCORE,
    README_CELL,
    REPO_ROOT,
    TINY_SYNTHETIC_FLAGS,
    job_counts,
    nasscore,
    wait_until,
)

from app.cli import build_parser
from app.cli._common import NameList
from scorers import list_proxies
from scorers.presets import DEFAULT_PRESET, PRESETS

# The positional arguments each command with --proxies needs before it can parse.
PROXIES_COMMANDS = {"batch": ["nb201", "--all"], "score": [README_CELL], "leaderboard": [], "correlate": []}
MEASURED_COSTS = REPO_ROOT / "docs" / "correlation_nb201_cifar10_n1000_seed1.md"  # measured on a quiet machine


def _subcommands(
    parser: argparse.ArgumentParser, path: str = "nasscore"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the command line, nested ones (`db upgrade`) included, with its command path."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from _subcommands(subparser, f"{path} {name}")


ALL_PARSERS = dict(_subcommands(build_parser()))


def test_every_list_valued_flag_reads_the_one_list_syntax() -> None:
    for path, parser in ALL_PARSERS.items():
        for action in parser._actions:
            if action.nargs in ("+", "*") and action.option_strings:
                assert isinstance(action, NameList), f"{path} {action.option_strings[0]} is not a NameList"


def test_the_commands_with_proxies_are_the_ones_checked_below() -> None:
    with_proxies = {
        path.removeprefix("nasscore ")
        for path, parser in ALL_PARSERS.items()
        if "--proxies" in parser._option_string_actions
    }
    assert with_proxies == set(PROXIES_COMMANDS)


@pytest.mark.parametrize("command", sorted(PROXIES_COMMANDS))
def test_comma_and_space_separated_proxies_parse_alike(command: str) -> None:
    def proxies(*flag: str) -> list[str]:
        return build_parser().parse_args([command, *PROXIES_COMMANDS[command], *flag]).proxies

    expected = ["snip", "grasp", "synflow"]
    assert proxies("--proxies", "snip,grasp,synflow") == expected
    assert proxies("--proxies", "snip", "grasp", "synflow") == expected
    assert proxies("--proxies", "snip,grasp", "synflow") == expected
    assert proxies("--proxies", "snip", "--proxies", "grasp,synflow") == expected


def _option_help(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each option's entry exactly as `--help` prints it (whitespace-normalised), keyed by its first flag."""
    entries: dict[str, str] = {}
    current = None
    for line in parser.format_help().splitlines():
        if line.startswith("  -"):
            current = line.split()[0].rstrip(",")
            entries[current] = line
        elif line.startswith("   ") and current:
            entries[current] += line
        else:
            current = None
    return {flag: " ".join(text.split()) for flag, text in entries.items()}


def _needs_a_shown_default(parser: argparse.ArgumentParser, action: argparse.Action) -> bool:
    """Options a user may leave out: not --help, not on/off switches, not required (alone or in a group)."""
    required_groups = [group for group in parser._mutually_exclusive_groups if group.required]
    in_required_group = any(action in group._group_actions for group in required_groups)
    return bool(action.option_strings) and action.nargs != 0 and not action.required and not in_required_group


@pytest.mark.parametrize("path", sorted(ALL_PARSERS))
def test_every_option_shows_its_default_in_help(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    parser = ALL_PARSERS[path]
    shown = _option_help(parser)
    for action in parser._actions:
        if not _needs_a_shown_default(parser, action):
            continue
        entry = shown[action.option_strings[0]]
        if action.default is None:
            assert "default" in entry, f"`{path} --help` does not say what leaving out {entry!r} means"
        else:
            assert f"default: {action.default}" in entry, f"`{path} --help` hides the default of {entry!r}"


def test_help_shows_defaults_as_users_see_it() -> None:
    result = nasscore("batch", "--help")
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    assert "calibration batch size (default: 64)" in help_text
    assert "(default: random)" in help_text and "(default: cifar10)" in help_text


def test_help_does_not_import_torch() -> None:
    check = (
        "import sys\nfrom app.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'nasscore --help imported torch'"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr


def test_proxies_lists_every_registered_proxy() -> None:
    result = nasscore("proxies")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    for info in list_proxies():
        row = rows[info.name]
        assert ("higher is better" if info.higher_is_better else "lower is better") in row
        assert info.paper in row
        cost = "-" if info.typical_cpu_seconds is None else f"{info.typical_cpu_seconds:.3f}"
        assert f"  {cost}  " in row
    assert "bench/correlation.py" in result.stdout and "1 CPU thread" in result.stdout


def _measured_seconds_per_cell() -> dict[str, float]:
    """The `s / cell` column of the proxies in the committed bench/correlation.py report."""
    measured: dict[str, float] = {}
    column = None
    for line in MEASURED_COSTS.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if column is None and "s / cell" in cells:
            column = cells.index("s / cell")
        elif column is not None and len(cells) > column and cells[1] == "proxy":
            measured[cells[0]] = float(cells[column])
    assert measured, f"no proxy rows with an 's / cell' column in {MEASURED_COSTS}"
    return measured


def test_typical_cpu_seconds_are_the_measured_ones() -> None:
    measured = _measured_seconds_per_cell()
    for info in list_proxies():
        if info.typical_cpu_seconds is None:
            assert measured[info.name] < 0.0005, f"{info.name} was measured: fill in its typical_cpu_seconds"
        else:
            assert info.typical_cpu_seconds == pytest.approx(measured[info.name], abs=0.005), info.name


def test_presets_lists_every_preset() -> None:
    result = nasscore("presets")
    assert result.returncode == 0, result.stderr
    assert set(PRESETS) == {"mission", "azn", "best"}
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    for name, preset in PRESETS.items():
        assert preset.method in rows[name] and ", ".join(preset.proxies) in rows[name]
        assert " ".join(preset.description.split()[:6]) in " ".join(result.stdout.split())
    assert f"{DEFAULT_PRESET} (default)" in rows[DEFAULT_PRESET]


@pytest.mark.parametrize(
    "args",
    [
        ["spaces", "nope"],
        ["spaces", "nb201", "--sample", "0"],
        ["score", "|bogus~0|"],
        ["score", README_CELL, "--space", "nope"],
        ["batch", "nb201"],
        ["leaderboard", "--preset", "best", "--proxies", "snip"],
        ["nosuch"],
    ],
)
def test_every_error_has_the_one_prefix(args: list[str], tmp_path: Path) -> None:
    result = nasscore(*args, env=os.environ | {"NASSCORE_HOME": str(tmp_path)}, timeout=120)
    assert result.returncode in (1, 2)
    assert re.search(r"^nasscore: error: \S", result.stderr, re.MULTILINE), result.stderr
    assert "Traceback" not in result.stderr and not re.search(r"^error:", result.stderr, re.MULTILINE)


def _ignore_sigint() -> None:
    """What a non-interactive shell does for a background job (`cmd &`): the child starts with SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(("stop", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_local_batch_stops_cleanly_and_resumes(
    stop: signal.Signals, exit_code: int, sqlite_url: str, tmp_path: Path
) -> None:
    env = os.environ | {
        "NASSCORE_HOME": str(tmp_path / "home"),
        "NASSCORE_DATABASE_URL": sqlite_url,
        "NASSCORE_WORKERS": "1",
    }
    command = [
        NASSCORE,
        "batch",
        "nb201",
        "--sample",
        "8",
        "--seed",
        "4",
        "--proxies",
        "snip,synflow",
        *TINY_SYNTHETIC_FLAGS,
    ]
    running = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_ignore_sigint
    )

    def progressed() -> bool:
        assert running.poll() is None, running.communicate()
        return Path(sqlite_url.removeprefix("sqlite:///")).exists() and job_counts(sqlite_url).get("done", 0) >= 2

    wait_until(progressed, 300, "the local batch to make progress")
    running.send_signal(stop)
    output, errors = running.communicate(timeout=120)
    assert running.returncode == exit_code, errors
    assert "batch 1 (new)" in output and "batch 1 is saved" in output and "again to resume" in output
    assert "Traceback" not in errors
    counts = job_counts(sqlite_url)
    assert counts.get("running", 0) == 0 and counts.get("pending", 0) > 0, "a clean stop hands its items back"

    resumed = nasscore(*command[1:], env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "batch 1 (resumed)" in resumed.stdout and "done: 8 scored, 0 failed" in resumed.stdout
