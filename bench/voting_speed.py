"""How fast rank voting and correlation reports run at service scale.

The issue asks for a vote over 100,000 architectures x 10 proxies in well under a second; the
pairwise majority vote is O(N²) and is timed at the full NAS-Bench-201 size (15,625) instead, and
a correlation report (with its 1,000-resample bootstrap) at the same size.

    .venv/bin/python -m bench.voting_speed [--repeats 5]
"""

import argparse
import time
from collections.abc import Callable

import numpy as np

from scorers.evaluation import correlation_report
from scorers.voting import vote

NB201_SIZE = 15_625


def best_of(repeats: int, run: Callable[[], object]) -> float:
    """Fastest of `repeats` runs in seconds: the least disturbed by other work on a shared machine."""
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        timings.append(time.perf_counter() - start)
    return min(timings)


def random_population(count: int, proxies: int, seed: int) -> tuple[np.ndarray, list[str], dict[str, bool]]:
    """Scores with ties and a few NaNs, the way real proxy columns look, in mixed directions."""
    rng = np.random.default_rng(seed)
    scores = np.round(rng.lognormal(size=(count, proxies)), 3)
    scores[rng.random(scores.shape) < 0.001] = np.nan
    names = [f"proxy{index}" for index in range(proxies)]
    return scores, names, {name: index % 3 != 1 for index, name in enumerate(names)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    scores, names, directions = random_population(100_000, 10, seed=0)
    for method in ("mean_rank", "log_rank"):
        seconds = best_of(args.repeats, lambda method=method: vote(scores, directions, method, names=names))
        print(f"vote {method:<9} 100,000 x 10 proxies: {seconds * 1e3:8.1f} ms")

    scores, names, directions = random_population(NB201_SIZE, 3, seed=1)
    seconds = best_of(args.repeats, lambda: vote(scores, directions, "majority", names=names))
    print(f"vote majority  {NB201_SIZE:,} x 3 proxies:  {seconds * 1e3:8.1f} ms")

    rng = np.random.default_rng(2)
    accuracy = rng.normal(85.0, 5.0, NB201_SIZE)
    score = accuracy + rng.normal(0.0, 5.0, NB201_SIZE)
    seconds = best_of(args.repeats, lambda: correlation_report(score, accuracy, bootstrap=1000))
    print(f"correlation_report {NB201_SIZE:,} archs, 1,000 bootstrap: {seconds * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
