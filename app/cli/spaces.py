"""`nasscore spaces nb201`: list the cells of a search space (all, a seeded sample, or one per class)."""

import argparse
import random

from app.cli._common import fail


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("spaces", help="list the architectures of a search space")
    parser.add_argument("space", help="search space name, e.g. nb201")
    parser.add_argument("--sample", type=int, metavar="N", help="a seeded random sample of N cells (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed for --sample")
    parser.add_argument(
        "--canonical", action="store_true", help="one cell per isomorphism class (the first in space order)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from search_spaces import SPACES

    if args.space not in SPACES:
        return fail(f"unknown search space {args.space!r}; known: {', '.join(SPACES)}")
    space = SPACES[args.space]
    archs = space.all_archs()
    if args.canonical:
        archs = list({space.canonical_key(arch): arch for arch in reversed(archs)}.values())[::-1]
    if args.sample is not None:
        if not 0 < args.sample <= len(archs):
            return fail(f"--sample must be between 1 and {len(archs)}, got {args.sample}")
        archs = random.Random(args.seed).sample(archs, args.sample)
    print("\n".join(archs))
    return 0
