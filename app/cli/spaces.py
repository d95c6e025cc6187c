"""`nasscore spaces SPACE`: list the architectures of a search space (all, a seeded sample, or one per class),
one per line, each exactly as `POST /v1/scores` accepts it as `arch`."""

import argparse
import random

from app.cli._common import fail


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "spaces",
        help="list the architectures of a search space",
        description="Print architectures of a search space, one per line, each in the form POST /v1/scores "
        "accepts as `arch`; an unknown space's error lists the known ones.",
    )
    parser.add_argument("space", help="search space name, e.g. nb201 or nats_sss")
    parser.add_argument(
        "--sample",
        type=int,
        metavar="N",
        help="N distinct architectures drawn with --seed, as POST /v1/batches draws them (default: all, where the "
        "space can be listed)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for --sample")
    parser.add_argument(
        "--canonical",
        action="store_true",
        help="one architecture per isomorphism class, the first in space order (spaces that can be listed)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from app.services.spaces import uploaded
    from search_spaces import SPACES

    if args.space not in SPACES:
        return fail(f"unknown search space {args.space!r}; known: {', '.join(SPACES)}")
    space = SPACES[args.space]
    if uploaded(space):
        return fail(
            f"{args.space} architectures are uploaded networks, not drawn or listed: upload a file with POST "
            f"/v1/architectures/onnx, or score one with `nasscore score FILE.onnx --space {args.space}`"
        )
    listed = space.enumerate()
    if args.canonical:
        if listed is None:
            return fail(f"--canonical needs a space that can be listed; {args.space} cannot")
        archs = list({space.canonical_key(arch): arch for arch in reversed(listed)}.values())[::-1]
        if args.sample is not None:
            if not 0 < args.sample <= len(archs):
                return fail(f"--sample must be between 1 and {len(archs)}, got {args.sample}")
            archs = random.Random(args.seed).sample(archs, args.sample)
    elif args.sample is not None:
        if args.sample < 1 or (space.size is not None and args.sample > space.size):
            most = f" and at most {space.size}" if space.size is not None else ""
            return fail(f"--sample must be at least 1{most}, got {args.sample}")
        archs = space.sample(args.sample, args.seed)
    elif listed is None:
        return fail(f"{args.space} is too large to list; use --sample N")
    else:
        archs = list(listed)
    print("\n".join(archs))
    return 0
