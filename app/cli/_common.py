"""Helpers shared by the subcommands: Settings fields as command-line flags (so `--help` documents every
NASSCORE_* variable) and a uniform way to report a client error and exit."""

import argparse
import sys
import typing
from pathlib import Path
from typing import Any

from app.settings import Settings

EXIT_INTERRUPTED = 130
DEFAULT_LABELS = {"database_url": "a SQLite file (WAL mode) under HOME", "data_dir": "HOME/data"}


def add_settings_arguments(parser: argparse.ArgumentParser, names: typing.Iterable[str] | None = None) -> None:
    """One `--flag` per Settings field (or per name in `names`); unset flags fall back to NASSCORE_* / defaults."""
    group = parser.add_argument_group("settings (flag > NASSCORE_* environment variable > default)")
    for name in names or Settings.model_fields:
        field = Settings.model_fields[name]
        kind, choices = _argument_type(field.annotation)
        default = DEFAULT_LABELS.get(name, field.default)
        group.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=kind,
            choices=choices,
            default=None,
            metavar=None if choices else name.upper(),
            help=f"{field.description} [env NASSCORE_{name.upper()}; default: {default}]",
        )


def _argument_type(annotation: Any) -> tuple[Any, list[str] | None]:
    if typing.get_origin(annotation) is typing.Literal:
        return str, list(typing.get_args(annotation))
    options = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    kind = options[0]
    return (Path if kind is Path else kind), None


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {name: getattr(args, name) for name in Settings.model_fields if getattr(args, name, None) is not None}
    return Settings(**overrides)


def fail(message: str, code: int = 1) -> int:
    print(f"nasscore: error: {message}", file=sys.stderr)
    return code
