"""Small line and scatter plots as PNG, drawn with PIL (no plotting library in the runtime).

    plot_panels([Panel("PSNR", [Series("model", [(1, 30.1), (2, 28.4)])], xlabel="step")],
                "psnr.png")

One panel per figure, side by side (or in `columns`); each panel scales to its own data and
writes its range under the box, so a reader sees the numbers, not only the shapes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Matplotlib's tab10: distinct colours for up to ten series.
PALETTE = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)


@dataclass
class Series:
    """points: (x, y) pairs; kind: "line", "dots" or "both"; colour: RGB (None: the palette)."""

    label: str
    points: Sequence[tuple[float, float]]
    kind: str = "line"
    colour: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("line", "dots", "both"):
            raise ValueError(f"kind must be 'line', 'dots' or 'both', got {self.kind!r}")


@dataclass
class Panel:
    """One plot box: its series share the axes; log axes drop points <= 0."""

    title: str
    series: list[Series] = field(default_factory=list)
    xlabel: str = ""
    ylabel: str = ""
    log_x: bool = False
    log_y: bool = False


def _axis(values: list[float], log: bool) -> tuple[float, float]:
    """(lo, hi) of the transformed values, widened when they are all equal."""
    lo, hi = min(values), max(values)
    if hi <= lo:
        pad = 1.0 if log else max(abs(lo) * 0.1, 1e-9)
        lo, hi = lo - pad, hi + pad
    return lo, hi


def _draw_panel(draw, panel: Panel, box: tuple[int, int, int, int]) -> None:
    x0, y0, x1, y1 = box
    draw.rectangle([x0, y0, x1, y1], outline="black")
    draw.text((x0 + 4, y0 - 14), panel.title, fill="black")

    def tx(v: float) -> float:
        return math.log10(v) if panel.log_x else v

    def ty(v: float) -> float:
        return math.log10(v) if panel.log_y else v

    def keep(p: tuple[float, float]) -> bool:
        x, y = float(p[0]), float(p[1])
        if not (math.isfinite(x) and math.isfinite(y)):
            return False
        return (x > 0 or not panel.log_x) and (y > 0 or not panel.log_y)

    series = [
        (s, [(float(x), float(y)) for x, y in s.points if keep((x, y))]) for s in panel.series
    ]
    points = [p for _, pts in series for p in pts]
    if not points:
        draw.text((x0 + 4, y0 + 4), "no data", fill="black")
        return
    xlo, xhi = _axis([tx(x) for x, _ in points], panel.log_x)
    ylo, yhi = _axis([ty(y) for _, y in points], panel.log_y)

    def px(p: tuple[float, float]) -> tuple[float, float]:
        fx = (tx(p[0]) - xlo) / (xhi - xlo)
        fy = (ty(p[1]) - ylo) / (yhi - ylo)
        return (x0 + 6 + fx * (x1 - x0 - 12), y1 - 6 - fy * (y1 - y0 - 12))

    def shown(v: float, log: bool) -> str:
        return f"{10**v:.3g}" if log else f"{v:.3g}"

    xs = f"{panel.xlabel} {shown(xlo, panel.log_x)}..{shown(xhi, panel.log_x)}"
    ys = f"{panel.ylabel} {shown(ylo, panel.log_y)}..{shown(yhi, panel.log_y)}"
    scale = " (log)" if panel.log_x or panel.log_y else ""
    draw.text((x0, y1 + 4), f"x: {xs.strip()}   y: {ys.strip()}{scale}", fill="black")
    for i, (s, pts) in enumerate(series):
        colour = s.colour or PALETTE[i % len(PALETTE)]
        xy = [px(p) for p in pts]
        if s.kind in ("line", "both") and len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        if s.kind in ("dots", "both") or len(xy) == 1:
            for x, y in xy:
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        draw.text((x0 + 8, y0 + 4 + 12 * i), s.label, fill=colour)


def plot_panels(
    panels: Sequence[Panel],
    png_path: str | Path,
    size: tuple[int, int] = (900, 300),
    columns: int | None = None,
) -> Path:
    """Draw the panels in a grid of `columns` (default: all in one row) into png_path."""
    from PIL import Image, ImageDraw

    if not panels:
        raise ValueError("nothing to plot: no panels")
    columns = max(1, min(columns or len(panels), len(panels)))
    rows = math.ceil(len(panels) / columns)
    width, height = size
    img = Image.new("RGB", (width, height * rows), "white")
    draw = ImageDraw.Draw(img)
    cell = width // columns
    for i, panel in enumerate(panels):
        r, c = divmod(i, columns)
        box = (c * cell + 10, r * height + 22, (c + 1) * cell - 10, (r + 1) * height - 22)
        _draw_panel(draw, panel, box)
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    img.save(png_path)
    return png_path
