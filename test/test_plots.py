"""The PIL plotter behind every PNG figure (losses, replay reports, benchmarks, tuning)."""

import numpy as np
import pytest
from PIL import Image

from wm_ros.eval.plots import Panel, Series, plot_panels


def test_panels_are_drawn_in_a_grid_with_their_series(tmp_path):
    panels = [
        Panel("a", [Series("up", [(1, 1), (2, 4), (3, 9)], "both", (255, 0, 0))]),
        Panel("b", [Series("log", [(1, 10), (10, 1000), (0, 5)])], log_x=True, log_y=True),
        Panel("empty", []),
    ]
    png = plot_panels(panels, tmp_path / "sub" / "p.png", size=(600, 200), columns=2)
    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.shape == (400, 600, 3)  # 2 rows of 200 px
    red = (img[..., 0] == 255) & (img[..., 1] == 0) & (img[..., 2] == 0)
    assert red[:200, :300].sum() > 50  # the red series lies in the first cell
    assert red[:, 300:].sum() == 0


def test_bad_input_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no panels"):
        plot_panels([], tmp_path / "p.png")
    with pytest.raises(ValueError, match="kind"):
        Series("x", [(0, 0)], kind="bars")
