"""`nasscore presets`: the named votes (`--preset`) with their voters, rank-combining method and rationale."""

import argparse
import textwrap

from app.cli._common import format_table

DESCRIPTION_WIDTH = 100


def register(subparsers: argparse._SubParsersAction) -> None:
    subparsers.add_parser(
        "presets",
        help="list the vote presets (voters, method, why)",
        description="List the vote presets that `--preset` names on leaderboard and correlate: which proxies "
        "vote, how their ranks are combined, and why; the default is marked.",
    ).set_defaults(handler=_presets)


def _presets(args: argparse.Namespace) -> int:
    from scorers.presets import DEFAULT_PRESET, PRESETS  # imports torch (the scorers package)

    rows = [
        [f"{name} (default)" if name == DEFAULT_PRESET else name, preset.method, ", ".join(preset.proxies)]
        for name, preset in PRESETS.items()
    ]
    print(format_table(["preset", "method", "voters"], rows, left=("preset", "method", "voters")))
    for name, preset in PRESETS.items():
        print(f"\n{name}:")
        print(textwrap.fill(preset.description, DESCRIPTION_WIDTH, initial_indent="  ", subsequent_indent="  "))
    return 0
