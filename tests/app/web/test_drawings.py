"""The geometry behind the dashboard's SVG: the NB201 cell drawing and the scatter plot's axes and points,
and the number formats every page uses."""

import math
from datetime import UTC, datetime

import pytest
from conftest import DEAD_EDGE_CELLS, README_CELL

from app.services.leaderboard import LeaderboardRow
from app.web.cells import NODE_RADIUS, draw_cell
from app.web.charts import nice_ticks, vote_rank_scatter
from app.web.templating import accuracy, breakable, duration, number, percent, rate, timestamp
from search_spaces.nb201 import cell as nb201


def _endpoints(path: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """Start and end of an `M x y Q cx cy x y` path."""
    numbers = [float(token) for token in path.split() if token not in ("M", "Q")]
    return (numbers[0], numbers[1]), (numbers[4], numbers[5])


@pytest.mark.parametrize("arch", [README_CELL, *DEAD_EDGE_CELLS])
def test_a_cell_is_drawn_with_every_edge_from_rim_to_rim_and_its_dead_edges_marked(arch: str) -> None:
    drawing = draw_cell("nb201", arch)
    assert drawing is not None
    assert [node.index for node in drawing.nodes] == [0, 1, 2, 3]
    centres = {node.index: (node.x, node.y) for node in drawing.nodes}
    ops = nb201.parse(arch).ops
    expected = [(target, source, op) for (target, source), op in zip(nb201.EDGES, ops, strict=True)]
    assert [(edge.target, edge.source, edge.op) for edge in drawing.edges] == expected
    assert [index for index, edge in enumerate(drawing.edges) if edge.live] == list(nb201.live_edges(arch))
    for edge in drawing.edges:
        start, end = _endpoints(edge.path)
        assert math.dist(start, centres[edge.source]) == pytest.approx(NODE_RADIUS, abs=0.1)
        assert math.dist(end, centres[edge.target]) == pytest.approx(NODE_RADIUS + 4, abs=0.1)
    labels = [(round(edge.label_x), round(edge.label_y)) for edge in drawing.edges]
    assert len(set(labels)) == 6  # no two labels on top of each other


def test_spaces_without_a_drawing_get_none() -> None:
    assert draw_cell("nats_sss", "8:16:24:32:40") is None


def _row(architecture_id: int, rank: int | None, observed: float | None) -> LeaderboardRow:
    return LeaderboardRow(architecture_id, f"cell-{architecture_id}", "key", 1, {}, None, None, rank, rank, observed)


def test_the_scatter_places_observed_classes_by_rank_and_accuracy_over_the_whole_ranking() -> None:
    rows = [_row(1, 1, 94.0), _row(2, 2, None), _row(3, 3, 80.0), _row(4, None, 90.0), _row(5, 40, 10.0)]
    scatter = vote_rank_scatter(rows)
    assert scatter is not None
    points = {point.architecture_id: point for point in scatter.points}
    assert sorted(points) == [1, 3, 5]  # unranked or unobserved rows are not drawn
    assert points[1].x == scatter.left and points[5].x == scatter.right  # rank 1 left, the last rank right
    assert points[1].y < points[3].y < points[5].y  # higher accuracy higher up
    assert all(scatter.top <= p.y <= scatter.bottom for p in scatter.points)
    assert [tick.label for tick in scatter.y_ticks] == ["0", "20", "40", "60", "80", "100"]
    assert vote_rank_scatter([_row(1, 1, None)]) is None


@pytest.mark.parametrize(
    ("low", "high", "ticks"),
    [(0, 100, [0, 20, 40, 60, 80, 100]), (81.3, 93.9, [80, 85, 90, 95]), (1, 6466, None)],
)
def test_ticks_are_round_and_cover_the_range(low: float, high: float, ticks: list[float] | None) -> None:
    values = nice_ticks(low, high)
    if ticks is not None:
        assert values == ticks
    assert values[0] <= low and values[-1] >= high
    assert 3 <= len(values) <= 12


def test_numbers_read_as_the_pages_show_them() -> None:
    assert [number(v) for v in (None, math.nan, 0.0, 30.1568, 1.0152e36, 0.00012)] == [
        "—", "—", "0", "30.16", "1.015e+36", "1.200e-04"
    ]  # fmt: skip
    assert (percent(0.62), percent(None), accuracy(93.3512), accuracy(None)) == ("62%", "—", "93.35%", "—")
    assert [duration(s) for s in (None, 42.4, 68, 7500)] == ["—", "42 s", "1 min 8 s", "2 h 5 min"]
    assert (rate(0.19), rate(3.25), rate(None)) == ("11.4/min", "3.2/s", "—")
    assert timestamp(datetime(2025, 1, 2, 3, 4, 5, 999, tzinfo=UTC)) == "2025-01-02 03:04:05"
    assert str(breakable("az_expressivity")) == "az_<wbr>expressivity"
    assert str(breakable("<b>_x")) == "&lt;b&gt;_<wbr>x"  # the parts stay escaped
