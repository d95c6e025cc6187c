"""`nasscore proxies`: the registered zero-cost proxies, their ranking direction, paper and what one costs,
so a user can choose `--proxies` without reading the source."""

import argparse

from app.cli._common import format_table, number

COST_NOTE = (
    "s/cell: typical CPU seconds per cell, measured with bench/correlation.py (NB201 CIFAR-10, batch 64, "
    "1 CPU thread); - = not measured"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    subparsers.add_parser(
        "proxies",
        help="list the zero-cost proxies (direction, cost, paper)",
        description="List every registered zero-cost proxy: the direction it ranks in, its typical CPU cost per "
        "cell and the paper it comes from.",
    ).set_defaults(handler=_proxies)


def _proxies(args: argparse.Namespace) -> int:
    from scorers import list_proxies  # torch: imported here, so `nasscore --help` stays instant

    rows = [
        [
            info.name,
            "higher is better" if info.higher_is_better else "lower is better",
            number(info.typical_cpu_seconds, ".3f"),
            info.paper,
        ]
        for info in list_proxies()
    ]
    print(format_table(["proxy", "direction", "s/cell", "paper"], rows, left=("proxy", "direction", "paper")))
    print(f"\n{COST_NOTE}")
    return 0
