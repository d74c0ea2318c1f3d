"""Figures for the book: plotly figures built from results that were already computed.

Importing this module makes plotly figures display as offline HTML (plotly.js embedded once per notebook, no
CDN, no require.js) plus plotly's own JSON mime type for Jupyter; the book runner drops the plotly.js copy
and the book serves one shared copy instead (`helpers.book`, book/_ext/plotly_static.py). Figures size to
their container (no fixed widths: they fit a phone). Figure functions never compute.

Every figure a notebook displays is numbered in order, "Figure 1.", "Figure 2.", ...: its title becomes a caption
under it, as HTML text that wraps on a narrow screen (`caption`). Images (`image_grid`, `montage`) are HTML grids
of PNGs (`ImageFigure`) that scale with the page and put their row labels above each row on a phone.
"""
from __future__ import annotations

import base64
import html as _html
import io
import itertools

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.io.base_renderers import NotebookRenderer, PlotlyRenderer

FIGURE_CONFIG = {"displaylogo": False, "responsive": True}
JSON_MIME = "application/vnd.plotly.v1+json"


class OfflineHtmlRenderer(NotebookRenderer):
    """The 'notebook' renderer without its MathJax-from-CDN script, and with plotly's JSON mime type too.

    On first use it displays plotly.js itself (inline, ~4.6 MB) once; each figure is then a <div> plus a
    `Plotly.newPlot` call (text/html), which the book shows with its shared plotly.js, with no network.
    JupyterLab and Notebook 7 draw the JSON copy with the renderer that ships in the plotly package, so an
    executed notebook downloaded from the book shows its figures in Jupyter. Animations never auto-play.
    """

    def to_mimebundle(self, fig_dict):
        layout = dict(fig_dict.get("layout") or {})
        title = layout.get("title") or {}
        text = caption(title.get("text") if isinstance(title, dict) else str(title))
        # The HTML copy shows the title as a caption under the figure (it wraps on a phone, a plotly title is
        # clipped); the plotly JSON copy for Jupyter keeps it as the title, numbered the same way.
        margin = dict(layout.get("margin") or {})
        if title and "t" in margin:
            margin["t"] = max(margin["t"] - 30, 30 if layout.get("annotations") else 10)
        # A legend on the right squeezes the plot to a sliver on a phone: it goes above the plot instead,
        # in rows that wrap, where the title was, and above panel titles if there are any (figures that
        # place their legend keep it).
        legend = dict(layout.get("legend") or {})
        if "x" not in legend and "y" not in legend:
            above = 1.16 if layout.get("annotations") else 1.02
            legend.update(orientation="h", x=0, xanchor="left", y=above, yanchor="bottom")
        layout = {**layout, "legend": legend}
        bare = {**fig_dict, "layout": {**layout, "title": {"text": ""}, "margin": margin}}
        plot = pio.to_html(bare, config=self.config, include_plotlyjs=False, include_mathjax=False,
                           full_html=False, default_width="100%", default_height=450, validate=False,
                           auto_play=False)
        titled = {**fig_dict, "layout": {**layout, "title": {**(title if isinstance(title, dict) else {}),
                                                             "text": text}}}
        return {"text/html": _figure_html(plot, text), **PlotlyRenderer(config=self.config).to_mimebundle(titled)}


_numbers = itertools.count(1)


def caption(title: str | None = "") -> str:
    """The next figure's caption, "Figure N. title" (or "Figure N."), N counting the figures this kernel has
    displayed: a notebook run from the top numbers its figures 1, 2, ... in the order of the page."""
    n = next(_numbers)
    return f"Figure {n}. {title}" if title else f"Figure {n}."


def wrap(text, width: int = 18) -> str:
    """A panel title broken into lines of about `width` characters (plotly's <br>), so that the titles of
    panels side by side do not run into each other on a narrow screen."""
    import textwrap

    return "<br>".join(textwrap.wrap(str(text), width)) or str(text)


def _figure_html(body: str, text: str) -> str:
    """`body` (a figure's HTML) in a <figure> with `text` as its caption below."""
    return (f'<figure class="gg-figure" style="margin:0 0 1.2em">{body}'
            f'<figcaption style="font-size:0.9em;color:#444;margin-top:0.3em">{_html.escape(text)}</figcaption>'
            '</figure>')


def use_offline_html() -> None:
    """Display every plotly figure as offline HTML (for the book) and as plotly JSON (for Jupyter).

    The book's build ignores the JSON copy (`suppress_warnings: mystnb.unknown_mime_type` in _config.yml).
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


def outline(images, mask, *, color=(255, 48, 48)) -> np.ndarray:
    """uint8 images (..., H, W, 3) with the edge of a region drawn in `color`, from images (..., 3, H, W) in
    [-1, 1] (or uint8 (..., H, W, 3)) and a mask (h, w) in [0, 1]: the mask is resized to H × W by area and
    pixels at least half inside are in; the edge is the inside pixels next to an outside one (or the border)."""
    from .distances import resize_mask

    array = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    lead = array.shape[:-3]
    flat = to_uint8(array.reshape(-1, *array.shape[-3:]))
    h, w = flat.shape[1:3]
    inside = np.pad(resize_mask(mask, (h, w)).numpy() >= 0.5, 1, constant_values=False)
    core = inside[1:-1, 1:-1]
    edge = core & ~(inside[:-2, 1:-1] & inside[2:, 1:-1] & inside[1:-1, :-2] & inside[1:-1, 2:])
    flat = flat.copy()
    flat[:, edge] = np.asarray(color, dtype=np.uint8)
    return flat.reshape(*lead, h, w, 3)


def png_data_uri(image: np.ndarray) -> str:
    """A (H, W, 3) uint8 array as a PNG data URI (compact, and lossless)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# Image figures are HTML: a CSS grid of one PNG per image, which scales with the page. On a screen narrower than
# GRID_NARROW px, a montage's row labels move above their row, so that the images take the whole width, and its
# column labels take a smaller font, so that a word such as "eigenbasis" fits a sixth of a phone's text column
# whole (55 px at a 390 px screen).
GRID_NARROW = 560
_GRID_STYLE = f"""<style>
@media (max-width: {GRID_NARROW}px) {{
  .gg-grid.gg-labelled {{ grid-template-columns: repeat(var(--cols), minmax(0, 1fr)) !important; }}
  .gg-grid.gg-labelled > .gg-row {{ grid-column: 1 / -1; text-align: left !important; padding: 4px 0 0 !important; }}
  .gg-grid.gg-labelled > .gg-corner {{ display: none; }}
  .gg-grid > .gg-col {{ font-size: 9px !important; padding: 0 2px 2px !important; }}
}}
</style>"""
_LABEL = "font-size:12px;line-height:1.2;color:#333;overflow-wrap:anywhere"
# Column labels keep a gutter between neighbours (so that long ones never run together), break at spaces first
# (a word only when it cannot fit its column), and sit on the images below them.
_COLUMN = f"{_LABEL};hyphens:auto;text-align:center;align-self:end;padding:0 4px 2px"


class ImageFigure:
    """Rows of images as an HTML grid, with optional row and column labels and a numbered caption (`caption`).

    rows : rows of (H, W, 3) uint8 images; `wrap` lets a grid without labels wrap onto more rows on a narrow
    screen (samples), instead of keeping its columns (a montage, whose columns mean something). `size` is the
    largest width, in CSS px, an image is shown at. Displays in Jupyter and the book (`show()` in a loop).
    """

    def __init__(self, rows, row_labels=(), col_labels=(), *, title: str = "", size: int = 96, wrap: bool = False):
        self.rows = [list(row) for row in rows]
        self.row_labels, self.col_labels = [str(x) for x in row_labels], [str(x) for x in col_labels]
        self.title, self.size, self.wrap = title, size, wrap
        self.cols = max((len(row) for row in self.rows), default=0)
        self._caption = None

    @property
    def caption(self) -> str:
        if self._caption is None:  # numbered when first shown, and kept if shown again
            self._caption = caption(self.title)
        return self._caption

    def _repr_html_(self) -> str:
        labelled = bool(self.row_labels)
        if self.wrap:
            columns = f"repeat(auto-fit, minmax(min({min(self.size, 64)}px, 100%), 1fr))"
        else:
            columns = ("fit-content(9em) " if labelled else "") + "repeat(var(--cols), minmax(0, 1fr))"
        width = self.cols * (self.size + 2) + (150 if labelled else 0)
        cells = []
        if self.col_labels:
            cells += ['<div class="gg-corner"></div>'] if labelled else []
            cells += [f'<div class="gg-col" lang="en" style="{_COLUMN}">{_html.escape(label)}</div>'
                      for label in self.col_labels]
        for r, row in enumerate(self.rows):
            if labelled:
                label = self.row_labels[r] if r < len(self.row_labels) else ""
                cells.append(f'<div class="gg-row" style="{_LABEL};text-align:right;padding-right:6px">'
                             f'{_html.escape(label)}</div>')
            cells += [f'<img src="{png_data_uri(image)}" alt="" width="{image.shape[1]}" height="{image.shape[0]}" '
                      'style="width:100%;height:auto;display:block;margin:0">' for image in row]
        grid = (f'<div class="gg-grid{" gg-labelled" if labelled else ""}" style="--cols:{self.cols};display:grid;'
                f'grid-template-columns:{columns};gap:2px;align-items:center;max-width:{width}px">'
                + "".join(cells) + "</div>")
        return (_GRID_STYLE if labelled or self.col_labels else "") + _figure_html(grid, self.caption)

    def show(self) -> None:
        from IPython.display import display

        display(self)


def image_grid(images, nrow: int = 8, *, title: str = "", size: int | None = None) -> ImageFigure:
    """Images (see `to_uint8` for accepted inputs) as a grid of `nrow` per row, wrapping onto more rows on a narrow
    screen; each shown at most `size` CSS px wide (default: about 120 px, at least the image's own width)."""
    images = to_uint8(images)
    rows = [images[i:i + nrow] for i in range(0, len(images), nrow)]
    return ImageFigure(rows, title=title, size=size or max(120, images.shape[2]), wrap=True)


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
    """An IPython Markdown table of equal-length columns {header: values}; floats get `precision` decimals,
    or scientific notation below 1e-3 (as the book's prose, book/CONVENTIONS.md)."""
    from IPython.display import Markdown

    def cell(value):
        if not isinstance(value, (float, np.floating)):
            return str(value)
        return f"{value:.2e}" if value != 0 and abs(value) < 1e-3 else f"{value:.{precision}f}"

    headers = list(columns)
    rows = zip(*(columns[h] for h in headers))
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return Markdown("\n".join(lines))



# --- interactive figures for the static book


def image_slider(images, labels, *, title: str = "", prefix: str = "", scale: float | None = None,
                 max_width: int = 720, start: int | None = None, row_labels=()) -> go.Figure:
    """One image at a time with a slider over `images` (plotly frames: interactive with no kernel).

    images : (n, 3, H, W) in [-1, 1] (or anything `to_uint8` takes), or (rows, n, ...) shown as one
    strip per frame (e.g. several eigen-axes, each at step k), each row named by `row_labels` at its left.
    labels : one per slider position. start : the position shown first (default the middle one: step 0 of a
    symmetric walk). The slider never plays by itself, and spans the page width.
    """
    pad = 2
    if images.ndim == 5:  # (rows, n, 3, H, W): frame k stacks every row's k-th image
        mosaics = [tile(to_uint8(images[:, k]), nrow=1, pad=pad) for k in range(images.shape[1])]
        h = images.shape[-2]
    else:
        mosaics, row_labels = list(to_uint8(images)), ()
        h = mosaics[0].shape[0]
    height, width = mosaics[0].shape[:2]
    if scale is None:
        scale = min(max(1.0, 96 / h), (max_width - 20) / width)
    uris = [png_data_uri(m) for m in mosaics]
    labels = [str(label) for label in labels]
    if len(labels) != len(uris):
        raise ValueError(f"image_slider: {len(labels)} labels for {len(uris)} images")
    start = len(uris) // 2 if start is None else start
    if not 0 <= start < len(uris):
        raise ValueError(f"image_slider: start {start} outside 0..{len(uris) - 1}")
    frames = [go.Frame(data=[go.Image(source=uri, hoverinfo="skip")], name=label) for uri, label in zip(uris, labels)]
    fig = go.Figure(data=[go.Image(source=uris[start], hoverinfo="skip")], frames=frames)
    steps = [dict(method="animate", label=label, args=[[label], dict(mode="immediate", frame=dict(duration=0, redraw=True),
                                                                  transition=dict(duration=0))])
             for label in labels]
    # Row labels sit on the image's own axis, left of the image (plotly hides annotations outside an axis range).
    left = int(np.ceil(110 / scale)) if len(row_labels) else 0
    fig.update_layout(annotations=[dict(x=-4, y=pad + r * (h + pad) + h / 2, xref="x", yref="y", text=str(label),
                                        xanchor="right", yanchor="middle", showarrow=False, font=dict(size=12))
                                   for r, label in enumerate(row_labels)])
    # A transparent plot area: the row labels' margin is part of it, and would show as a grey-blue box.
    fig.update_layout(plot_bgcolor="rgba(0,0,0,0)")
    fig.update_layout(title=title or None, autosize=True, height=int(height * scale) + 150,
                      margin=dict(l=10, r=10, t=50 if title else 10, b=90),
                      sliders=[dict(active=start, steps=steps, currentvalue=dict(prefix=prefix), pad=dict(t=20),
                                    x=0, len=1, xanchor="left")])
    fig.update_xaxes(visible=False, range=[-left - 0.5, width - 0.5])
    fig.update_yaxes(visible=False, range=[height - 0.5, -0.5])
    return fig


# --- axes figures


def montage(images, row_labels=(), col_labels=(), *, title: str = "", size: int | None = None, **_) -> ImageFigure:
    """A table of images (rows, cols, 3, H, W) in [-1, 1] (or uint8 (rows, cols, H, W, 3)) with `row_labels` left
    of each row and `col_labels` above each column (e.g. ranks and steps of walks); each image is shown at most
    `size` CSS px wide (default about 96 px, at least its own width), smaller to fit the page. On a phone the row
    labels move above their rows. (Older keywords such as `pad` and `label_width` are accepted and unused.)"""
    rows, cols = images.shape[:2]
    tiles = to_uint8(images.reshape(rows * cols, *images.shape[2:]))
    return ImageFigure(tiles.reshape(rows, cols, *tiles.shape[1:]), row_labels, col_labels, title=title,
                       size=size or max(96, tiles.shape[2]))


def heatmap(matrices, x_labels, y_labels, *, title: str = "", colorscale: str = "Blues", zmin: float = 0.0,
            zmax: float = 1.0, xlabel: str = "", ylabel: str = "", colorbar_title: str = "") -> go.Figure:
    """One heatmap of a (rows, cols) matrix, or several from {panel title: matrix} on one colour scale: side by
    side for two, stacked for more (so that each keeps a readable width on a phone).

    Row 0 is drawn at the top, labelled by `y_labels`; columns by `x_labels`. The axis titles are written once
    (the x title under the bottom row of panels, the y title left of the first column).
    """
    from plotly.subplots import make_subplots

    panels = matrices if isinstance(matrices, dict) else {"": matrices}
    stacked = len(panels) > 2
    rows, cols = (len(panels), 1) if stacked else (1, len(panels))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[str(t) if stacked else wrap(t) for t in panels],
                        horizontal_spacing=0.06,
                        vertical_spacing=min(0.3 / rows, 0.12), shared_yaxes=not stacked, shared_xaxes=stacked)
    for i, matrix in enumerate(panels.values()):
        z = np.asarray(matrix.detach().cpu() if hasattr(matrix, "detach") else matrix, dtype=float)
        row, col = (i + 1, 1) if stacked else (1, i + 1)
        fig.add_trace(go.Heatmap(z=z, x=[str(x) for x in x_labels], y=[str(y) for y in y_labels],
                                 colorscale=colorscale, zmin=zmin, zmax=zmax, showscale=i == 0,
                                 colorbar=dict(title=colorbar_title) if colorbar_title else None,
                                 hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>"), row=row, col=col)
        fig.update_xaxes(type="category", row=row, col=col)
    fig.update_xaxes(title_text=xlabel, row=rows, col=(cols + 1) // 2 if cols % 2 else 1)
    # Below the tick labels, which plotly turns upright when a narrow screen crowds them (about 7 px a character).
    below = max(38, 14 + 7 * max((len(str(x)) for x in x_labels), default=0))
    if cols == 2 and xlabel:  # two panels: one title centred under both, not one under each
        fig.update_xaxes(title_text="", row=1, col=1)
        fig.add_annotation(text=xlabel, x=0.5, y=0, xref="paper", yref="paper", yshift=-below, showarrow=False,
                           xanchor="center", yanchor="top", font=dict(size=14))
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_yaxes(title_text=ylabel, row=(rows + 1) // 2 if stacked else 1, col=1)
    panel = max(220, 22 * len(y_labels) + 60) if stacked else max(320, 22 * len(y_labels) + 140)
    fig.update_layout(title=title or None, height=panel * rows + (100 if stacked else 0),
                      margin=dict(l=60, r=20, t=70, b=below + 22 if cols == 2 else 50))
    return fig


def line_panels(panels: dict, *, title: str = "", xlabel: str = "", ylabel: str = "", log_y: bool = False) -> go.Figure:
    """Line charts {panel title: (x, {name: y})} side by side, two to a row for more than two panels (four side by
    side ran their titles together on a phone); a name has one colour and one legend entry."""
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    cols = 2 if len(panels) > 2 else max(1, len(panels))
    rows = -(-len(panels) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[wrap(t, 18 if rows == 1 else 10) for t in panels],
                        horizontal_spacing=0.08, vertical_spacing=0.3 / rows if rows > 1 else 0.3)
    colours: dict = {}
    palette = qualitative.Plotly
    for i, (x, series) in enumerate(panels.values()):
        row, col = i // cols + 1, i % cols + 1
        for name, y in series.items():
            first = name not in colours
            colour = colours.setdefault(name, palette[len(colours) % len(palette)])
            fig.add_trace(go.Scatter(x=[float(v) for v in x], y=[float(v) for v in y], mode="lines+markers",
                                     name=str(name), legendgroup=str(name), showlegend=first,
                                     line=dict(color=colour), marker=dict(size=5)), row=row, col=col)
        if row == rows or i + cols >= len(panels):  # the x title under the lowest panel of each column
            fig.update_xaxes(title_text=xlabel, row=row, col=col)
        if col == 1:
            fig.update_yaxes(title_text=ylabel, row=row, col=1)
    fig.update_yaxes(type="log" if log_y else "linear")
    fig.update_layout(title=title or None, height=400 if rows == 1 else 330 * rows + 110,
                      margin=dict(l=60, r=20, t=70, b=50 if rows == 1 else 110))
    if rows > 1:  # the legend under the panels, so that they keep the page's width on a phone
        fig.update_layout(legend=dict(orientation="h", x=0, xanchor="left", y=-0.1, yanchor="top"))
    return fig


def grouped_bar_chart(groups: dict, labels, *, title: str = "", ylabel: str = "", hlines: dict | None = None,
                      precision: int = 2) -> go.Figure:
    """Bars {series name: values, one per label} side by side per label; `hlines` {name: y} as dashed lines."""
    labels = [str(label) for label in labels]
    fig = go.Figure([go.Bar(x=labels, y=[float(v) for v in values], name=str(name),
                            text=[f"{float(v):.{precision}f}" for v in values], textposition="outside",
                            cliponaxis=False) for name, values in groups.items()])
    for name, y in (hlines or {}).items():
        fig.add_hline(y=float(y), line_dash="dash", line_color="gray", annotation_text=str(name),
                      annotation_position="top left")
    fig.update_layout(title=title or None, yaxis_title=ylabel, barmode="group", height=380,
                      margin=dict(l=60, r=20, t=50, b=40))
    return fig


# --- spectrum and homogeneity figures

from plotly.colors import qualitative as _qualitative  # noqa: E402
from plotly.subplots import make_subplots as _make_subplots  # noqa: E402

_COLORS = _qualitative.Plotly


def _array(values) -> np.ndarray:
    """float64 numpy array from a tensor, array or list."""
    return np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64)


def _rgba(color: str, alpha: float) -> str:
    r, g, b = (int(color.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _positive(values: np.ndarray, reference: float) -> np.ndarray:
    """Values clipped at 1e-12 × reference, so zeros and roundoff negatives stay on a log axis."""
    return np.maximum(values, 1e-12 * reference)


def band_chart(series: dict, *, log_y: bool = False, title: str = "", xlabel: str = "", ylabel: str = "",
               band: str = "5–95 %") -> go.Figure:
    """A line with a shaded band per entry {name: (x, center, low, high)}; hover shows all three values."""
    fig = go.Figure()
    for n, (name, (x, center, low, high)) in enumerate(series.items()):
        x, center, low, high = (_array(v) for v in (x, center, low, high))
        if log_y:
            top = float(np.max(high))
            center, low, high = (_positive(v, top) for v in (center, low, high))
        color = _COLORS[n % len(_COLORS)]
        fig.add_trace(go.Scatter(x=np.concatenate([x, x[::-1]]), y=np.concatenate([high, low[::-1]]),
                                 fill="toself", fillcolor=_rgba(color, 0.18), line=dict(width=0),
                                 hoverinfo="skip", legendgroup=name, showlegend=False, name=f"{name} {band}"))
        fig.add_trace(go.Scatter(
            x=x, y=center, mode="lines", line=dict(color=color, width=2), name=name, legendgroup=name,
            customdata=np.stack([low, high], axis=-1),
            hovertemplate=(f"<b>{name}</b><br>{xlabel or 'x'} %{{x}}<br>value %{{y:.3g}}<br>"
                           f"{band}: %{{customdata[0]:.3g}} – %{{customdata[1]:.3g}}<extra></extra>")))
    fig.update_layout(title=title or None, xaxis_title=xlabel, yaxis_title=ylabel, height=420,
                      margin=dict(l=70, r=20, t=50, b=50), hovermode="closest")
    fig.update_yaxes(type="log" if log_y else "linear", exponentformat="power")
    return fig


def spectrum_chart(summaries: dict, *, log_y: bool = True, title: str = "", ylabel: str | None = None) -> go.Figure:
    """Eigenvalue against rank for each {name: SpectrumSummary}: the mean, and a 5–95 percentile band."""
    series = {name: (np.arange(1, len(s.mean) + 1), s.mean, s.p5, s.p95) for name, s in summaries.items()}
    normalized = all(s.normalized for s in summaries.values())
    ylabel = ylabel or ("eigenvalue / top eigenvalue" if normalized else "eigenvalue")
    return band_chart(series, log_y=log_y, title=title, xlabel="rank", ylabel=ylabel)


def quantile_boxes(groups: dict, *, log_y: bool = True, title: str = "", ylabel: str = "") -> go.Figure:
    """Grouped box plots from raw values {group: {series: values}}; whiskers at the 5th and 95th percentiles.

    Only the quantiles go into the figure (not every value), so large samples stay small on the page.
    """
    fig = go.Figure()
    names = list(dict.fromkeys(name for series in groups.values() for name in series))
    for n, name in enumerate(names):
        xs, stats = [], []
        for group, series in groups.items():
            if name in series:
                values = _array(series[name]).ravel()
                xs.append(group)
                stats.append(np.percentile(values, [5, 25, 50, 75, 95]))
        stats = np.array(stats)
        if log_y:
            stats = _positive(stats, float(stats.max()))
        fig.add_trace(go.Box(x=xs, lowerfence=stats[:, 0], q1=stats[:, 1], median=stats[:, 2], q3=stats[:, 3],
                             upperfence=stats[:, 4], name=name, marker_color=_COLORS[n % len(_COLORS)],
                             boxpoints=False))
    fig.update_layout(title=title or None, yaxis_title=ylabel, boxmode="group", height=420,
                      margin=dict(l=70, r=20, t=50, b=50))
    fig.update_yaxes(type="log" if log_y else "linear", exponentformat="power")
    return fig


def histogram_overlay(series: dict, *, nbins: int = 30, title: str = "", xlabel: str = "",
                      ylabel: str = "fraction of pairs") -> go.Figure:
    """Overlaid histograms {name: values} with shared bins, each normalized to fractions."""
    arrays = {name: _array(v).ravel() for name, v in series.items()}
    arrays = {name: a[np.isfinite(a)] for name, a in arrays.items()}
    low = min(a.min() for a in arrays.values())
    high = max(a.max() for a in arrays.values())
    size = (high - low) / nbins if high > low else 1.0
    fig = go.Figure([go.Histogram(x=a, name=name, histnorm="probability", opacity=0.6,
                                  xbins=dict(start=low, end=high + size * 1e-6, size=size),
                                  marker_color=_COLORS[n % len(_COLORS)])
                     for n, (name, a) in enumerate(arrays.items())])
    fig.update_layout(title=title or None, xaxis_title=xlabel, yaxis_title=ylabel, barmode="overlay", height=380,
                      margin=dict(l=70, r=20, t=50, b=50), showlegend=len(arrays) > 1)
    return fig


def scatter_grid(x, y, *, r=None, labels=None, title: str = "", xlabel: str = "", ylabel: str = "") -> go.Figure:
    """An n×m grid of scatter plots: panel (i, j) plots y[i, j] against x[i, j] (each of length k).

    r : optional (n, m) values written inside each panel, top left (e.g. correlations); labels : (n,) row
    and (m,) column names (default 0..), above the top row and left of the first column, so that the grid
    stays legible at a phone's width. Hover shows the pair and the index k (rank) of each point. A dashed
    identity line helps compare scales.
    """
    x, y = _array(x), _array(y)
    n, m, k = x.shape
    rows, cols = (labels or (list(range(n)), list(range(m))))
    titles = [str(cols[j]) if i == 0 else "" for i in range(n) for j in range(m)]
    fig = _make_subplots(rows=n, cols=m, subplot_titles=titles, shared_xaxes=True, shared_yaxes=True,
                        horizontal_spacing=0.02, vertical_spacing=0.05)
    if r is not None:
        for i in range(n):
            for j in range(m):
                axis = "" if i * m + j == 0 else i * m + j + 1
                fig.add_annotation(text=f"r={float(_array(r)[i, j]):.2f}", x=0.03, y=0.97, xanchor="left",
                                   yanchor="top", xref=f"x{axis} domain", yref=f"y{axis} domain",
                                   showarrow=False, font=dict(size=9, color="#555"))
    ranks = np.arange(1, k + 1)
    low, high = float(np.nanmin([x.min(), y.min()])), float(np.nanmax([x.max(), y.max()]))
    for i in range(n):
        for j in range(m):
            fig.add_trace(go.Scatter(x=x[i, j], y=y[i, j], mode="markers", marker=dict(size=3, color=_COLORS[0]),
                                     customdata=ranks, showlegend=False,
                                     hovertemplate=f"{rows[i]} → {cols[j]}<br>rank %{{customdata}}<br>"
                                                   f"x %{{x:.3g}}<br>y %{{y:.3g}}<extra></extra>"), row=i + 1, col=j + 1)
            fig.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", showlegend=False, hoverinfo="skip",
                                     line=dict(color="gray", width=1, dash="dash")), row=i + 1, col=j + 1)
    for j in range(m):
        fig.update_xaxes(title_text=xlabel if j == m // 2 else "", row=n, col=j + 1)
    # at a phone's width a panel is ~50 px wide: at most three upright ticks, never rotated and squeezed together
    fig.update_xaxes(nticks=3, tickangle=0, tickfont=dict(size=10))
    for i in range(n):
        fig.update_yaxes(title_text=f"{rows[i]}: {ylabel}" if i == n // 2 and ylabel else str(rows[i]),
                         row=i + 1, col=1)
    fig.update_layout(title=title or None, height=140 * n + 120, margin=dict(l=70, r=20, t=80, b=60))
    return fig


def scatter_fit(x, y, *, r: float | None = None, title: str = "", xlabel: str = "", ylabel: str = "",
                hover=None) -> go.Figure:
    """A scatter of y against x with its least-squares line; `r` (if given) is shown in the legend."""
    x, y = _array(x).ravel(), _array(y).ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    fig = go.Figure(go.Scatter(x=x, y=y, mode="markers", marker=dict(size=5, opacity=0.6), name="pairs",
                               text=None if hover is None else [str(h) for h in hover],
                               hovertemplate=("%{text}<br>" if hover is not None else "")
                                             + "x %{x:.3g}<br>y %{y:.3g}<extra></extra>"))
    if ok.sum() > 1 and np.ptp(x[ok]) > 0:
        slope, intercept = np.polyfit(x[ok], y[ok], 1)
        line_x = np.array([x[ok].min(), x[ok].max()])
        label = "least squares" + (f" (r = {r:.2f})" if r is not None else "")
        fig.add_trace(go.Scatter(x=line_x, y=slope * line_x + intercept, mode="lines", name=label,
                                 line=dict(color="black", dash="dash"), hoverinfo="skip"))
    fig.update_layout(title=title or None, xaxis_title=xlabel, yaxis_title=ylabel, height=400,
                      margin=dict(l=70, r=20, t=50, b=50))
    return fig



def gap_heatmap(gap, lrs, angles, *, title: str = "") -> go.Figure:
    """The toy sweep's log10 (f in x ÷ f in the eigenbasis), (angles, lrs), on a red-blue scale symmetric about
    zero (at least ±1): a row per start angle (radians, labelled in degrees), a column per learning rate."""
    top = max(1.0, float(np.abs(_array(gap)).max()))
    degrees = [f"{a:.0f}°" for a in np.degrees(_array(angles)).tolist()]
    return heatmap(gap, [str(lr) for lr in _array(lrs).tolist()], degrees, colorscale="RdBu", zmin=-top, zmax=top,
                   xlabel="learning rate", ylabel="start, from the flat eigenvector", colorbar_title="log10 ratio",
                   title=title)


# --- tables and bands of the analysis chapters' results


def rows_table(rows: dict, *, header: str = "model", precision: int = 4):
    """A `markdown_table` of one row per entry {row label: {column: value}}; the columns of the first row."""
    columns = list(next(iter(rows.values()), {}))
    return markdown_table({header: list(rows), **{c: [row[c] for row in rows.values()] for c in columns}},
                          precision=precision)


def band(x, samples) -> tuple:
    """(x, mean, 5th, 95th percentile) over the rows of samples (n, len(x)): one entry of `band_chart`."""
    samples = _array(samples)
    return (x, samples.mean(0), *np.percentile(samples, [5, 95], axis=0))


def dims_table(dims: dict, decades: dict, at_rank_20: dict | None = None, *, header: str = "model"):
    """Eigen-dimensions per entry {name: analysis.Dimensions}: for each fraction of the eigenvalue sum, the mean
    over codes and [min–max]; the mean span in decades {name: float}; the mean normalized eigenvalue at rank 20
    {name: float or None} if given."""
    columns = {header: list(dims)}
    for f, label in enumerate(next(iter(dims.values())).labels if dims else []):
        columns[label] = [f"{dm.mean[f]:.1f} [{dm.counts[:, f].min()}–{dm.counts[:, f].max()}]"
                          for dm in dims.values()]
    columns["decades, λ1 / λmin"] = [f"{v:.1f}" for v in decades.values()]
    if at_rank_20 is not None:
        columns["λ20 / λ1"] = ["–" if v is None else f"{v:.4f}" for v in at_rank_20.values()]
    return markdown_table(columns)


def spectrum_against_random(summaries: dict, random: dict, *, title: str = "") -> go.Figure:
    """Each spectrum {name: analysis.SpectrumSummary} against rank, beside the flat band (median, 5th to 95th
    percentile) of the random-direction values {name: values} of the same name, on a log scale."""
    series = {}
    for name, s in summaries.items():
        x, values = np.arange(1, len(s.mean) + 1), _array(random[name])
        series[f"{name}: eigenvalues"] = (x, s.mean, s.p5, s.p95)
        series[f"{name}: random vᵀHv"] = (x, *(np.full(len(x), np.quantile(values, q)) for q in (0.5, 0.05, 0.95)))
    return band_chart(series, log_y=True, title=title, xlabel="rank", ylabel="value / top eigenvalue")


def mean_median_table(summary: dict, *, paper: dict | None = None, precision: int = 3):
    """Mean and median of each measure {measure: analysis.OffDiagonal}, with the paper's values {column: [one
    string per measure]} beside them."""
    return markdown_table({"measure": list(summary), "mean": [s.mean for s in summary.values()],
                           "median": [s.median for s in summary.values()], **(paper or {})}, precision=precision)


def alignment_table(alignments: dict, *, precision: int = 3):
    """The alignment of each method's directions with the metric, {model: {method: axes.Alignment}}: their mean
    energy in the top-k eigenspace, the first and lowest axis's, the |cos| of axis 1 with eigenvector 1, and the
    mean and 95th percentile of random directions' energy."""
    rows = [(name, method, a) for name, by_method in alignments.items() for method, a in by_method.items()]
    k = rows[0][2].k if rows else 0
    return markdown_table({"model": [r[0] for r in rows], "method": [r[1] for r in rows],
                           f"mean energy in top-{k}": [float(a.energy.mean()) for *_, a in rows],
                           "energy of axis 1": [float(a.energy[0]) for *_, a in rows],
                           "lowest axis energy": [float(a.energy.min()) for *_, a in rows],
                           "cosine, axis 1 · eigvec 1 (abs.)": [float(a.cosine[0, 0]) for *_, a in rows],
                           "random: mean": [float(a.random_energy.mean()) for *_, a in rows],
                           "random: 95th pct": [float(a.random_energy.quantile(0.95)) for *_, a in rows]},
                          precision=precision)


use_offline_html()  # at import, so every figure a notebook shows renders in the static book


# --- local edits (chapter 07)


def nested_table(rows: dict, labels=("model", "region"), *, precision: int = 4):
    """A `markdown_table` of nested results {outer: {inner: {column: value}}} (as deep as `labels`): one row per
    leaf, its keys in the first columns (headed `labels`), then the leaf's columns, in the first leaf's order."""
    flat = [((), rows)]
    for _ in labels:
        flat = [(keys + (key,), value) for keys, inner in flat for key, value in inner.items()]
    columns = {label: [keys[n] for keys, _ in flat] for n, label in enumerate(labels)}
    for header in (flat[0][1] if flat else {}):
        columns[header] = [leaf[header] for _, leaf in flat]
    return markdown_table(columns, precision=precision)


def outlined_rows(images, masks, row_labels=(), col_labels=(), *, title: str = "", label_width: int = 110
                  ) -> ImageFigure:
    """A `montage` whose row r is images[r] (n, 3, H, W) with the edge of masks[r] drawn on each (`outline`)."""
    rows = np.stack([outline(x, mask) for x, mask in zip(images, masks)])
    return montage(rows, row_labels, col_labels, title=title, label_width=label_width)


def svg_plot(lines: list, x_ticks: np.ndarray, top: float, *, title: str, render: int, xlabel: str, ylabel: str,
              legend: list, tick: str, width: int = 560, height: int = 230) -> str:
    """HTML of a title, an inline SVG plot of `lines` [(class, x (k,), y (k,), colour, solid with markers, else
    dashed and clipped to the plot)] over x_ticks' range and y from 0 to 1.15·top, and a legend [(border style,
    label)]: the explorer's curves (`helpers.explore`). Plain markup in a widget's state, so it needs no JavaScript
    library and draws again after a reload. The title and legend are HTML, which wraps on a narrow screen; the
    plot's own text is sized by the explorer's style (larger when the curve is narrow, `gg-curve-svg`), and its
    margins leave room for either size. `render` numbers the plot (data-render, and its clip path's id)."""
    left, right, top_margin, bottom = 78, 22, 12, 60
    x_low, x_high = float(x_ticks[0]), float(x_ticks[-1])
    y_max = top * 1.15 or 1.0
    if not np.isfinite(y_max):
        raise ValueError(f"curve has non-finite values: {[list(map(float, y)) for _, _, y, _, _ in lines]}")
    plot_w, plot_h = width - left - right, height - top_margin - bottom

    def x(t):
        return left + (t - x_low) / (x_high - x_low) * plot_w

    def y(v):
        return height - bottom - v / y_max * plot_h

    drawn = []
    for name, xs, ys, colour, solid in lines:
        points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(xs, ys))
        if solid:
            markers = "".join(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="3.5"/>' for t, v in zip(xs, ys))
            drawn.append(f'<polyline class="{name}" points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>'
                         f'<g fill="{colour}">{markers}</g>')
        else:
            drawn.append(f'<polyline class="{name}" clip-path="url(#gg-plot-{render})" points="{points}" fill="none" '
                         f'stroke="{colour}" stroke-width="1.5" stroke-dasharray="5 4"/>')
    ticks = []
    for t in x_ticks:
        ticks.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{height - bottom}" y2="{height - bottom + 5}"/>'
                     f'<text x="{x(t):.1f}" y="{height - bottom + 8}" dy="1em" text-anchor="middle">'
                     f'{tick.format(t)}</text>')
    for v in np.linspace(0, y_max, 3):
        ticks.append(f'<line x1="{left - 5}" x2="{left}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>'
                     f'<text x="{left - 8}" y="{y(v):.1f}" dy="0.35em" text-anchor="end">{v:.2g}</text>')
    svg = (
        f'<svg class="gg-curve-svg" data-render="{render}" viewBox="0 0 {width} {height}" '
        f'style="width:100%;height:auto" role="img" xmlns="http://www.w3.org/2000/svg">'
        f'<title>{_html.escape(title)}</title>'
        f'<defs><clipPath id="gg-plot-{render}"><rect x="{left}" y="{top_margin}" width="{plot_w}" height="{plot_h}"/>'
        f'</clipPath></defs>'
        f'<g stroke="#444" fill="#444" stroke-width="1">{"".join(ticks)}</g>'
        f'<rect x="{left}" y="{top_margin}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>'
        f'{"".join(drawn)}'
        f'<text x="{left + plot_w / 2:.0f}" y="{height - 4}" text-anchor="middle" fill="#444">{_html.escape(xlabel)}'
        f'</text><text transform="translate(4 {top_margin + plot_h / 2:.0f}) rotate(-90)" dy="1em" '
        f'text-anchor="middle" fill="#444">{_html.escape(ylabel)}</text></svg>')
    keys = "".join(f'<span style="border-top:{style}"></span>{_html.escape(label)}' for style, label in legend)
    return (f'<div><div class="gg-curve-title">{_html.escape(title)}</div>{svg}<div class="gg-legend">{keys}</div>'
            f'</div>')
