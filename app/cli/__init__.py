"""The `nasscore` command. Each module in this package adds one subcommand via `register(subparsers)`,
so adding a command is one new file; heavy imports (torch, the database) stay inside the handlers to
keep `nasscore --help` instant."""

import importlib
import os
import pkgutil
import signal
import sys

from app.cli._common import CommandParser, interrupted


def build_parser() -> CommandParser:
    """The root parser; add_subparsers makes every subcommand's parser a CommandParser too."""
    parser = CommandParser(prog="nasscore", description="Training-free NAS scoring.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return interrupted()
    except BrokenPipeError:
        return _reader_went_away()


def _reader_went_away() -> int:
    """`nasscore spaces nb201 | head`: stop quietly, as a command killed by SIGPIPE would, instead of a
    traceback (stdout goes to /dev/null so the interpreter's final flush cannot fail again)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
