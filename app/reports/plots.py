"""Correlation plots: each proxy's (and the vote's) score rank against observed accuracy.

Drawn on a bare matplotlib Figure with the Agg canvas (no pyplot), so concurrent requests share no
global figure state and no display is needed.
"""

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.stats import rankdata

PANEL_SIZE_INCHES = (4.2, 3.6)
DPI = 100
MAX_COLUMNS = 3
_MEDIAN_BINS = 20


@dataclass(frozen=True)
class Panel:
    """One proxy or vote: its scores (raw or already ranked: only the order matters) and accuracies.

    `rho` is the Spearman correlation shown in the title, None when undefined.
    """

    name: str
    score: np.ndarray
    accuracy: np.ndarray
    rho: float | None
    higher_is_better: bool = True


def grid_shape(panel_count: int) -> tuple[int, int]:
    """(rows, columns) of the panel grid: 4 panels make a square, otherwise rows of up to 3."""
    if panel_count < 1:
        raise ValueError("a correlation plot needs at least one panel")
    columns = 2 if panel_count == 4 else min(panel_count, MAX_COLUMNS)
    return math.ceil(panel_count / columns), columns


def correlation_plot_png(panels: Sequence[Panel], point_label: str = "architecture") -> bytes:
    """A PNG with one scatter panel per entry: score percentile rank (x) against accuracy (y); the title
    says what one point is (`point_label`), since n depends on it."""
    rows, columns = grid_shape(len(panels))
    width, height = PANEL_SIZE_INCHES
    figure = Figure(figsize=(columns * width, rows * height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, sharey=True, squeeze=False).ravel()
    for axis, panel in zip(axes, panels, strict=False):
        _draw_panel(axis, panel)
    for axis in axes[len(panels) :]:
        axis.set_visible(False)
    for axis in axes[::columns]:
        axis.set_ylabel("observed accuracy (%)")
    figure.suptitle(
        f"one point per {point_label}; orange: median accuracy per {100 // _MEDIAN_BINS} % of ranks", fontsize=9
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _draw_panel(axis, panel: Panel) -> None:
    percentile, accuracy = _percentile_ranks(panel)
    axis.set_title(f"{panel.name}: {_rho_text(panel.rho)}  (n = {accuracy.size:,})", fontsize=11)
    axis.set_xlabel("score rank (percentile, best at right)")
    axis.set_xlim(0.0, 1.0)
    axis.grid(True, alpha=0.3)
    if accuracy.size == 0:
        axis.text(0.5, 0.5, "no observed accuracies", ha="center", va="center", transform=axis.transAxes)
        return
    axis.scatter(
        percentile,
        accuracy,
        s=6,
        alpha=_point_alpha(accuracy.size),
        color="tab:blue",
        edgecolors="none",
        rasterized=True,
    )
    centres, medians = _binned_medians(percentile, accuracy)
    axis.plot(centres, medians, color="tab:orange", linewidth=2)


def _percentile_ranks(panel: Panel) -> tuple[np.ndarray, np.ndarray]:
    """Score ranks as rank/N (1 = best, non-finite last) over the entries with a finite accuracy."""
    score, accuracy = np.asarray(panel.score, dtype=float), np.asarray(panel.accuracy, dtype=float)
    if score.shape != accuracy.shape or score.ndim != 1:
        raise ValueError(f"panel {panel.name!r}: score and accuracy must be 1-D of equal length")
    observed = np.isfinite(accuracy)
    oriented = score[observed] if panel.higher_is_better else -score[observed]
    oriented[~np.isfinite(oriented)] = -np.inf
    if oriented.size == 0:
        return oriented, accuracy[observed]
    return rankdata(oriented) / oriented.size, accuracy[observed]


def _binned_medians(percentile: np.ndarray, accuracy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median accuracy in equal-width rank bins: the trend a dense scatter hides."""
    edges = np.linspace(0.0, 1.0, _MEDIAN_BINS + 1)
    bins = np.clip(np.searchsorted(edges, percentile, side="left") - 1, 0, _MEDIAN_BINS - 1)
    filled = [b for b in range(_MEDIAN_BINS) if np.any(bins == b)]
    centres = np.array([(edges[b] + edges[b + 1]) / 2 for b in filled])
    medians = np.array([np.median(accuracy[bins == b]) for b in filled])
    return centres, medians


def _point_alpha(count: int) -> float:
    """Opaque for a handful of points, faint for thousands so that density shows."""
    return float(np.clip(30.0 / math.sqrt(count), 0.06, 0.8))


def _rho_text(rho: float | None) -> str:
    return "ρ undefined" if rho is None or not math.isfinite(rho) else f"ρ = {rho:+.3f}"
