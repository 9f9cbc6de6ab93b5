"""Figures without pyplot: graph steps run in threads, and pyplot's global figure list is
neither thread-safe nor freed unless closed. A bare ``Figure`` renders to PNG by itself."""

from __future__ import annotations

import io
from typing import Any

from matplotlib.figure import Figure


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="tight")


def png_bytes(figure: Any) -> bytes:
    """A figure (or PNG bytes already) as PNG bytes."""
    if isinstance(figure, bytes):
        return figure
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()
