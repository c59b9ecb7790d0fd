"""Shared plumbing for the report figures: the result type, figure creation and saving, colours.

Figures are built on :class:`matplotlib.figure.Figure` directly, never through ``pyplot``: they are
not registered in pyplot's global figure manager, so nothing stays open after saving and no display
backend is touched (works whatever ``MPLBACKEND`` says). ``save`` still clears the figure so its
artists are freed at once.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100  # readable at 100% zoom: an 8x5 in figure is 800x500 px
SIZE = (8.0, 5.0)
WIDE = (12.0, 5.0)


@dataclass(frozen=True)
class FigureInfo:
    """One written figure: ``section`` groups figures in the HTML page."""

    name: str  # file name, e.g. "position_mse.png"
    path: Path
    title: str
    section: str


@dataclass
class PlotResult:
    """What :func:`make_plots` wrote, and a note for every figure or section it skipped."""

    figures: list[FigureInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        """Written PNG paths, in drawing order."""
        return [f.path for f in self.figures]

    def extend(self, other: PlotResult) -> None:
        """Append another result's figures and notes."""
        self.figures.extend(other.figures)
        self.notes.extend(other.notes)


def new_figure(size: tuple[float, float] = SIZE, ncols: int = 1, nrows: int = 1, *,
               sharey: bool = False) -> tuple[Figure, np.ndarray]:
    """A pyplot-free figure and its ``(nrows, ncols)`` array of axes, like ``plt.subplots``."""
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey)
    return fig, axes


def save(fig: Figure, out_dir: Path, name: str, title: str, section: str, result: PlotResult) -> None:
    """Write ``fig`` as ``out_dir/name`` (PNG at :data:`DPI`), record it, and free the figure.

    The PNG is rendered into memory, then written atomically (``sae_checks.io``): a full disk leaves the
    previous figure whole and raises ``OutputError`` naming the file."""
    from sae_checks.io import atomic_write_bytes

    path = out_dir / name
    fig.suptitle(title)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, dpi=DPI, format="png")
    finally:
        fig.clear()
    atomic_write_bytes(path, buf.getvalue())
    result.figures.append(FigureInfo(name, path, title, section))


def layer_colors(layers: list[str]) -> dict[str, tuple[float, float, float, float]]:
    """One colour per layer from viridis, early layers dark, late layers light."""
    cmap = matplotlib.colormaps["viridis"]
    n = max(len(layers) - 1, 1)
    return {layer: cmap(0.9 * i / n) for i, layer in enumerate(layers)}


def safe_name(text: str) -> str:
    """``text`` reduced to characters safe in a file name."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(text)) or "x"
