"""The correlation plot: grid shape, PNG size, proxy directions and degenerate panels."""

import io

import numpy as np
import pytest
from conftest import PNG_MAGIC
from matplotlib import image as mpimg

from app.reports.plots import (
    DPI,
    PANEL_SIZE_INCHES,
    Panel,
    correlation_plot_png,
    grid_shape,
)


def _decode_png(png: bytes) -> np.ndarray:
    assert png.startswith(PNG_MAGIC)
    return mpimg.imread(io.BytesIO(png), format="png")


def _expected_pixels(panel_count: int) -> tuple[int, int]:
    rows, columns = grid_shape(panel_count)
    return round(rows * PANEL_SIZE_INCHES[1] * DPI), round(columns * PANEL_SIZE_INCHES[0] * DPI)


@pytest.mark.parametrize(("count", "shape"), [(1, (1, 1)), (3, (1, 3)), (4, (2, 2)), (5, (2, 3)), (7, (3, 3))])
def test_grid_shape(count, shape):
    assert grid_shape(count) == shape


@pytest.mark.parametrize("panel_count", [1, 4])
def test_correlation_plot_is_a_valid_png_of_the_expected_size(panel_count):
    rng = np.random.default_rng(0)
    accuracy = rng.uniform(80.0, 94.0, 500)
    panels = [
        Panel(f"proxy{index}", accuracy + rng.normal(0.0, 3.0 * (index + 1), 500), accuracy, 0.5)
        for index in range(panel_count)
    ]
    pixels = _decode_png(correlation_plot_png(panels))
    assert pixels.shape[:2] == _expected_pixels(panel_count)
    assert pixels.shape[2] in (3, 4)
    assert pixels[..., :3].std() > 0.05  # something was drawn, not a blank canvas


def test_plot_draws_in_each_proxy_direction_and_survives_degenerate_panels():
    # A perfect lower-is-better score must put the best accuracy at the right edge, exactly like
    # the same score negated and declared higher-is-better: both PNGs are pixel-identical.
    accuracy = np.linspace(60.0, 94.0, 200)
    lower = correlation_plot_png([Panel("grasp", -accuracy, accuracy, 1.0, higher_is_better=False)])
    higher = correlation_plot_png([Panel("grasp", accuracy, accuracy, 1.0, higher_is_better=True)])
    np.testing.assert_array_equal(_decode_png(lower), _decode_png(higher))
    reversed_order = correlation_plot_png([Panel("grasp", accuracy, accuracy, 1.0, higher_is_better=False)])
    assert not np.array_equal(_decode_png(reversed_order), _decode_png(higher))
    degenerate = [
        Panel("empty", np.array([]), np.array([]), None),
        Panel("unobserved", np.ones(5), np.full(5, np.nan), None),
        Panel("nan scores", np.full(5, np.nan), np.arange(5.0), float("nan")),
    ]
    assert _decode_png(correlation_plot_png(degenerate)).shape[:2] == _expected_pixels(3)


def test_plot_rejects_no_panels_and_mismatched_lengths():
    with pytest.raises(ValueError, match="at least one panel"):
        correlation_plot_png([])
    with pytest.raises(ValueError, match="snip"):
        correlation_plot_png([Panel("snip", np.ones(3), np.ones(4), None)])
