"""Figures for the book: plotly figures built from results that were already computed.

Importing this module makes plotly figures display as self-contained HTML (plotly.js embedded once per
notebook, no CDN, no require.js), which Jupyter Book renders offline; figure functions never compute.
"""
from __future__ import annotations

import base64
import io

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.io.base_renderers import NotebookRenderer

FIGURE_CONFIG = {"displaylogo": False, "responsive": True}


class OfflineHtmlRenderer(NotebookRenderer):
    """The 'notebook' renderer without its MathJax-from-CDN script.

    On first use it displays plotly.js itself (inline, ~4.6 MB) once; each figure is then a <div> plus a
    `Plotly.newPlot` call, which works in the static HTML that Jupyter Book builds, with no network.
    """

    def to_mimebundle(self, fig_dict):
        html = pio.to_html(fig_dict, config=self.config, include_plotlyjs=False, include_mathjax=False,
                           full_html=False, default_width="100%", default_height=450, validate=False)
        return {"text/html": html}


def use_offline_html() -> None:
    """Display every plotly figure as offline HTML only.

    Not combined with plotly's JSON mime type: myst-nb warns on every output type it cannot render, which
    fails the strict book build.
    """
    if "book" not in pio.renderers:
        pio.renderers["book"] = OfflineHtmlRenderer(config=FIGURE_CONFIG)
    pio.renderers.default = "book"


def to_uint8(images) -> np.ndarray:
    """(n, H, W, 3) uint8 from images as a torch tensor or array, (n, 3, H, W) in [-1, 1] or already uint8."""
    array = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    if array.ndim == 3:
        array = array[None]
    if array.dtype == np.uint8:
        return array if array.shape[-1] == 3 else array.transpose(0, 2, 3, 1)
    if array.shape[1] == 3:
        array = array.transpose(0, 2, 3, 1)
    return np.round((np.clip(array, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def tile(images: np.ndarray, nrow: int = 8, pad: int = 2, fill: int = 255) -> np.ndarray:
    """One (H', W', 3) uint8 mosaic of (n, H, W, 3) uint8 images, `nrow` images per row."""
    n, h, w, _ = images.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), fill, dtype=np.uint8)
    for k, image in enumerate(images):
        top, left = pad + (k // cols) * (h + pad), pad + (k % cols) * (w + pad)
        canvas[top:top + h, left:left + w] = image
    return canvas


def png_data_uri(image: np.ndarray) -> str:
    """A (H, W, 3) uint8 array as a PNG data URI (compact, and lossless)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def image_grid(images, nrow: int = 8, *, title: str = "", scale: float | None = None, pad: int = 2,
               max_width: int = 640) -> go.Figure:
    """A grid of images (see `to_uint8` for accepted inputs) as one plotly image, `nrow` per row.

    `scale` is display pixels per image pixel; by default about 120 display pixels per image, shrunk so the
    figure fits in `max_width` pixels (the width of a book page).
    """
    images = to_uint8(images)
    mosaic = tile(images, nrow=nrow, pad=pad)
    height, width = mosaic.shape[:2]
    if scale is None:
        scale = min(max(1.0, 120 / images.shape[1]), (max_width - 20) / width)
    fig = go.Figure(go.Image(source=png_data_uri(mosaic), hoverinfo="skip"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    top = 40 if title else 10
    fig.update_layout(title=title or None, width=int(width * scale) + 20, height=int(height * scale) + top + 10,
                      margin=dict(l=10, r=10, t=top, b=10))
    return fig


def bar_chart(values, labels, *, title: str = "", ylabel: str = "", precision: int = 3) -> go.Figure:
    """Bars of `values` (one per label), each annotated with its value."""
    values = [float(v) for v in values]
    labels = [str(label) for label in labels]
    fig = go.Figure(go.Bar(x=labels, y=values, text=[f"{v:.{precision}f}" for v in values],
                           textposition="outside", cliponaxis=False))
    fig.update_layout(title=title or None, yaxis_title=ylabel, height=360, margin=dict(l=60, r=20, t=50, b=40))
    return fig


def line_chart(x, series: dict, *, log_x: bool = False, log_y: bool = False, title: str = "", xlabel: str = "",
               ylabel: str = "") -> go.Figure:
    """One line with markers per entry of `series` {name: y values}, all against the same `x`."""
    x = [float(v) for v in x]
    fig = go.Figure([go.Scatter(x=x, y=[float(v) for v in y], mode="lines+markers", name=str(name))
                     for name, y in series.items()])
    fig.update_layout(title=title or None, xaxis_title=xlabel, yaxis_title=ylabel, height=400,
                      margin=dict(l=60, r=20, t=50, b=50), showlegend=len(series) > 1)
    fig.update_xaxes(type="log" if log_x else "linear")
    fig.update_yaxes(type="log" if log_y else "linear")
    return fig


def markdown_table(columns: dict, *, precision: int = 4):
    """An IPython Markdown table of equal-length columns {header: values}; floats get `precision` decimals."""
    from IPython.display import Markdown

    def cell(value):
        return f"{value:.{precision}f}" if isinstance(value, (float, np.floating)) else str(value)

    headers = list(columns)
    rows = zip(*(columns[h] for h in headers))
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return Markdown("\n".join(lines))


use_offline_html()
