"""Drawings of architectures as SVG graphs, computed here as coordinates and rendered by a template.

A NAS-Bench-201 cell is a DAG on 4 nodes whose 6 edges each carry one operation. The nodes sit on a line
in topological order; an edge between neighbours is straight, the two edges that skip one node arc above
(2<-0) and below (3<-1), and 3<-0 arcs high above, so no two edges or labels cross. Edges that cannot
change the output (a `none`, or one off every path from input to output) are drawn dashed and faded, since
the service skips them and they explain why isomorphic cells share one score. Spaces without a drawing
are shown as their normalised text."""

import math
from dataclasses import dataclass

from search_spaces.nb201 import cell as nb201

NODE_RADIUS = 22
NODE_SPACING = 170
MARGIN_X = 60
BASELINE_Y = 150
WIDTH = 2 * MARGIN_X + 3 * NODE_SPACING
HEIGHT = 250
# How far each edge's Bézier control point lies from the baseline: (target, source) -> offset (negative = up).
CONTROL_OFFSETS = {(1, 0): 0, (2, 1): 0, (3, 2): 0, (2, 0): -110, (3, 1): 110, (3, 0): -200}
OP_LABELS = {
    "none": "none",
    "skip_connect": "skip",
    "nor_conv_1x1": "conv 1×1",
    "nor_conv_3x3": "conv 3×3",
    "avg_pool_3x3": "avg pool 3×3",
}
NODE_LABELS = {nb201.INPUT_NODE: "input", nb201.OUTPUT_NODE: "output"}


@dataclass(frozen=True)
class DrawnNode:
    index: int
    x: float
    y: float
    caption: str


@dataclass(frozen=True)
class DrawnEdge:
    source: int
    target: int
    op: str
    label: str
    path: str
    label_x: float
    label_y: float
    live: bool


@dataclass(frozen=True)
class CellDrawing:
    width: int
    height: int
    node_radius: int
    nodes: list[DrawnNode]
    edges: list[DrawnEdge]


def draw_cell(space: str, arch: str) -> CellDrawing | None:
    """The drawing of a stored architecture, or None for a space that has none."""
    if space != "nb201":
        return None
    cell = nb201.parse(arch)
    live = set(nb201.live_edges(cell))
    nodes = [
        DrawnNode(index, MARGIN_X + index * NODE_SPACING, BASELINE_Y, NODE_LABELS.get(index, ""))
        for index in range(nb201.OUTPUT_NODE + 1)
    ]
    edges = [
        _edge(nodes[source], nodes[target], op, CONTROL_OFFSETS[(target, source)], index in live)
        for index, ((target, source), op) in enumerate(zip(nb201.EDGES, cell.ops, strict=True))
    ]
    return CellDrawing(WIDTH, HEIGHT, NODE_RADIUS, nodes, edges)


def _edge(source: DrawnNode, target: DrawnNode, op: str, offset: float, live: bool) -> DrawnEdge:
    """A quadratic Bézier from the rim of `source` to the rim of `target`, bending by `offset`, with the
    label at the curve's midpoint: above a straight edge or an upper arc, below a lower arc."""
    control = ((source.x + target.x) / 2, BASELINE_Y + offset)
    start = _towards((source.x, source.y), control, NODE_RADIUS)
    end = _towards((target.x, target.y), control, NODE_RADIUS + 4)  # room for the arrowhead
    mid_x = (start[0] + 2 * control[0] + end[0]) / 4
    mid_y = (start[1] + 2 * control[1] + end[1]) / 4
    label_y = mid_y + 18 if offset > 0 else mid_y - 8
    path = f"M {start[0]:.1f} {start[1]:.1f} Q {control[0]:.1f} {control[1]:.1f} {end[0]:.1f} {end[1]:.1f}"
    return DrawnEdge(source.index, target.index, op, OP_LABELS[op], path, mid_x, label_y, live)


def _towards(point: tuple[float, float], aim: tuple[float, float], distance: float) -> tuple[float, float]:
    dx, dy = aim[0] - point[0], aim[1] - point[1]
    length = math.hypot(dx, dy)
    return point[0] + distance * dx / length, point[1] + distance * dy / length
