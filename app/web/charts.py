"""The correlation page's scatter plot as SVG coordinates: each observed isomorphism class at its vote rank
(the leaderboard's `vote_rank`, 1 = best, left) against its observed accuracy. Drawn on the server from
the same leaderboard rows the table pages through, so a point is a class of the leaderboard and links to
its architecture; the browser only paints it, no plotting script is shipped."""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from app.services.leaderboard import LeaderboardRow

WIDTH = 1200
HEIGHT = 460
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 16, 52
TICKS = 6


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    architecture_id: int
    arch: str
    vote_rank: int
    accuracy: float


@dataclass(frozen=True)
class Scatter:
    width: int
    height: int
    left: float
    top: float
    right: float
    bottom: float
    radius: float
    points: list[Point]
    x_ticks: list[Tick]
    y_ticks: list[Tick]


def vote_rank_scatter(rows: Sequence[LeaderboardRow]) -> Scatter | None:
    """The rows with both a vote rank and an accuracy as points, over the ranks of every row (so the plot
    shows where the observed classes sit in the whole ranking); None when no row has both."""
    observed = [
        (row, row.vote_rank, row.accuracy) for row in rows if row.vote_rank is not None and row.accuracy is not None
    ]
    if not observed:
        return None
    top_rank = max(row.vote_rank for row in rows if row.vote_rank is not None)
    accuracies = [accuracy for _, _, accuracy in observed]
    x_values = nice_ticks(1, top_rank)
    y_values = nice_ticks(min(accuracies), max(accuracies))
    x_low, x_high = 1.0, max(float(top_rank), 2.0)
    y_low, y_high = y_values[0], y_values[-1]
    right, bottom = WIDTH - RIGHT, HEIGHT - BOTTOM

    def x_of(rank: float) -> float:
        return LEFT + (rank - x_low) / (x_high - x_low) * (right - LEFT)

    def y_of(accuracy: float) -> float:
        return bottom - (accuracy - y_low) / (y_high - y_low) * (bottom - TOP)

    points = [Point(x_of(rank), y_of(acc), row.architecture_id, row.arch, rank, acc) for row, rank, acc in observed]
    return Scatter(
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        top=TOP,
        right=right,
        bottom=bottom,
        radius=4.0 if len(points) < 200 else 2.5 if len(points) < 2000 else 1.6,
        points=points,
        x_ticks=[Tick(x_of(value), f"{value:g}") for value in x_values if x_low <= value <= x_high],
        y_ticks=[Tick(y_of(value), f"{value:g}") for value in y_values],
    )


def nice_ticks(low: float, high: float, count: int = TICKS) -> list[float]:
    """About `count` round tick values (steps of 1, 2 or 5 times a power of ten) covering [low, high]."""
    if high <= low:
        low, high = low - 1, high + 1
    raw_step = (high - low) / (count - 1)
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw_step)
    first = math.floor(low / step) * step
    last = math.ceil(high / step) * step
    return [round(first + i * step, 10) for i in range(round((last - first) / step) + 1)]
