"""Helpers shared by the subcommands, so every command behaves alike: Settings fields as command-line flags
(so `--help` documents every NASSCORE_* variable), one list syntax, defaults shown in every `--help`, one
error prefix, explicit stop signals, aligned tables, and one HTTP client for `--server URL`."""

import argparse
import functools
import signal
import sys
import typing
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from app.settings import Settings

if TYPE_CHECKING:  # imported where used at run time, to keep `nasscore --help` light
    from app.client import Client

EXIT_INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a command stopped by Ctrl-C
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
DEFAULT_LABELS = {"database_url": "a SQLite file (WAL mode) under HOME", "data_dir": "HOME/data"}

API_KEY_VARIABLE = "NASSCORE_API_KEY"  # read by app.client when no key is given

Handler = Callable[[argparse.Namespace], int]


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Ends an option's help with `(default: X)` unless the help already says what its default is, so every
    subcommand's `--help` tells what leaving a flag out means without repeating the values by hand."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if not shows_default(action) or "default" in (action.help or ""):
            return action.help
        label = default_label(action.default).replace("%", "%%")  # help strings are %-formatted later
        return f"{action.help or ''} (default: {label})".strip()


def shows_default(action: argparse.Action) -> bool:
    """Whether an option has a value worth printing as its default (not None, not a store_true's False)."""
    return bool(action.option_strings) and action.nargs != 0 and action.default not in (None, argparse.SUPPRESS)


def default_label(value: Any) -> str:
    """A default as a user would type it: lists comma-separated, like NameList reads them."""
    return ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


class CommandParser(argparse.ArgumentParser):
    """The parser of `nasscore` and, through add_subparsers, of every subcommand: defaults in `--help`, and
    usage errors with the same `nasscore: error:` prefix as every other error."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> typing.NoReturn:
        self.print_usage(sys.stderr)
        self.exit(fail(message, 2))


def add_settings_arguments(parser: argparse.ArgumentParser, names: typing.Iterable[str] | None = None) -> None:
    """One `--flag` per Settings field (or per name in `names`); unset flags fall back to NASSCORE_* / defaults."""
    group = parser.add_argument_group("settings (flag > NASSCORE_* environment variable > default)")
    for name in names or Settings.model_fields:
        field = Settings.model_fields[name]
        flag, variable = f"--{name.replace('_', '-')}", f"NASSCORE_{name.upper()}"
        default = DEFAULT_LABELS.get(name) or default_label(field.get_default(call_default_factory=True)) or "none"
        if field.annotation is bool:  # a switch: present means true, absent leaves the variable or default
            help_text = f"{field.description} [env {variable}=true; default: {'on' if field.default else 'off'}]"
            group.add_argument(flag, dest=name, action="store_true", default=None, help=help_text)
        elif typing.get_origin(field.annotation) is list:
            help_text = f"{field.description} [env {variable} as a JSON list; default: {default}]"
            metavar = name.upper().removesuffix("S")  # one of the values: --cors-origins CORS_ORIGIN [...]
            group.add_argument(flag, dest=name, action=NameList, metavar=metavar, help=help_text)
        else:
            kind, choices = _argument_type(field.annotation)
            group.add_argument(
                flag,
                dest=name,
                type=kind,
                choices=choices,
                default=None,
                metavar=None if choices else name.upper(),
                help=f"{field.description} [env {variable}; default: {default}]",
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


def server_client(server: str, timeout: float) -> "Client":
    """The client of every `--server URL` mode (app.client, so the CLI and Python users share one HTTP code
    path): it sends $NASSCORE_API_KEY when set, and its warning about sending that key unencrypted to
    another machine is printed with the CLI's prefix."""
    from app.client import Client, PlainHttpKeyWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PlainHttpKeyWarning)
        client = Client(server, timeout=timeout)
    for warning in caught:
        print(f"nasscore: warning: {warning.message}", file=sys.stderr)
    return client


def fail(message: str, code: int = 1) -> int:
    """Print a client error with the one prefix every command uses, and return the exit status."""
    print(f"nasscore: error: {message}", file=sys.stderr)
    return code


def interrupted() -> int:
    """Report a Ctrl-C that reached the top of a command, without a traceback."""
    print("\nnasscore: interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


def stops_cleanly(handler: Handler) -> Handler:
    """Make SIGINT and SIGTERM both raise KeyboardInterrupt in `handler`, whatever the shell set up.

    A background job or `nohup` starts us with SIGINT ignored, and service managers stop us with SIGTERM,
    yet a long command must still stop by its own KeyboardInterrupt path (save, say how to resume). Only
    the first signal raises, so a second Ctrl-C cannot cut that clean-up short. The exit status of a
    stopped command is 128 + the signal's number, as a shell reports it.
    """

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        received: list[int] = []
        previous = {number: signal.signal(number, _raise_once(received)) for number in STOP_SIGNALS}
        try:
            code = handler(args)
        except KeyboardInterrupt:
            code = interrupted()
        finally:
            for number, action in previous.items():
                signal.signal(number, action)
        return 128 + received[0] if received and code == EXIT_INTERRUPTED else code

    return run


def _raise_once(received: list[int]) -> Callable[[int, FrameType | None], None]:
    def on_signal(number: int, frame: FrameType | None) -> None:
        received.append(number)
        if len(received) == 1:
            raise KeyboardInterrupt

    return on_signal


class NameList(argparse.Action):
    """One list syntax for every command: `--proxies snip,grasp,synflow`, `--proxies snip grasp synflow`
    or a mix of both; repeated flags accumulate."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs="+", **kwargs)

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option: str | None = None) -> None:
        names = [name.strip() for value in values for name in str(value).split(",") if name.strip()]
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []), *names])


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: Sequence[str] = ()) -> str:
    """Columns padded to their widest cell: right-aligned numbers, left-aligned columns named in `left`."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        padded = (
            cell.ljust(width) if header in left else cell.rjust(width)
            for cell, width, header in zip(cells, widths, headers, strict=False)
        )
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), line(["-" * width for width in widths]), *(line(row) for row in rows)])


def number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)
