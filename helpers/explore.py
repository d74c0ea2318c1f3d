"""Interactive exploration of a generator's eigen-axes in Jupyter: one call, `explore()`, returns the app.

Pick a model (and eye colour), a seed, a region, an eigen-rank and a step; the app shows the image strip along
that axis (for a region: that local direction) and the distance curve. Metrics are cached per code (and region),
so moving the sliders costs only a render.
"""
from __future__ import annotations

import html
import io
import time
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np
import torch

from . import axes, checks, distances, generators, local
from . import metric as metric_module
from . import viz

# Dims the strip and the curve while a metric is computed (the class is set on them only while busy). Part of
# the app's own widget state, so it is there again after a browser reload, in JupyterLab and in Voilà.
_STYLE = "<style>.gg-dim { opacity: 0.3; transition: opacity 0.2s; }</style>"

# The region menu's default choices: the whole image (the paper's eigen-axes) and boxes that fit any generator,
# as (rows, cols) fractions of the image (`distances.box`). `explore(regions=...)` takes others, or masks.
REGIONS = {"whole image": None,
           "top half": ((0.0, 0.5), (0.0, 1.0)), "bottom half": ((0.5, 1.0), (0.0, 1.0)),
           "left half": ((0.0, 1.0), (0.0, 0.5)), "right half": ((0.0, 1.0), (0.5, 1.0)),
           "centre": ((0.25, 0.75), (0.25, 0.75))}


def effective_step(step: float, scale: float, z0_norm: float, max_fraction: float = 0.5) -> float:
    """The largest step t along one eigen-axis: min(step · scale, max_fraction · ‖z0‖).

    scale is the rank's multiplier (λ_k/λ_1)^(−power) (`axes.step_scales`), which grows without bound down
    the spectrum (×30 at rank 100 of the faces DCGAN). The cap keeps every walk within max_fraction·‖z0‖ of
    z0: a linear walk ends at norm ≤ ‖z0‖·√(1 + max_fraction²) (×1.12 at the default 0.5, inside the shell
    where the prior's codes lie), a spherical one turns by at most max_fraction radians. Steps beyond the
    cap leave the image manifold: the images break up into texture.
    """
    if not max_fraction > 0:
        raise ValueError(f"max_fraction must be > 0, got {max_fraction}")
    return float(min(step * scale, max_fraction * z0_norm))


@dataclass
class Reference:
    """What the app keeps per (generator, seed): the code z0 (d,), its metric's eigenpairs, the reference
    image x0 (1, 3, H, W), its distance features f(x0) (1, F) (None for a distance without `features`) and
    the seconds the metric took."""

    z0: torch.Tensor
    eigvals: torch.Tensor
    eigvecs: torch.Tensor
    image: torch.Tensor
    features: torch.Tensor | None
    seconds: float


@dataclass
class LocalAxes:
    """What the app keeps per (generator, seed, region): the local directions (d, d) as columns, from
    `local.generalized_directions` (most change inside the region per change outside), their generalised
    eigenvalues (d,), the curvature of the region's distance along each, vᵀH_region v (d,), the region
    distance (`distances.Region`), the reference's region and rest features (1, F) and the seconds taken."""

    vectors: torch.Tensor
    scores: torch.Tensor
    curvature: torch.Tensor
    region: distances.Region
    inside: torch.Tensor
    outside: torch.Tensor
    seconds: float


class Explorer(widgets.VBox):
    """The explorer app; its widgets are attributes (`model`, `eye_class`, `seed`, `rank`, `step`, `mode`,
    and the outputs `strip`, `curve`, `progress`, `status`).

    Parameters
    ----------
    models : names of `generators.MODELS`, or {label: Generator} for your own generators.
    distance : a distance name for `distances.load`, or a distance object.
    n_steps : images per strip (odd, so the middle one is the reference).
    power : steps are scaled by (λ_k/λ_1)^(-power), so every rank shows comparable change.
    step : the step slider's first value; max_step : its largest value (latent units, along rank 1).
    max_fraction : no walk goes further than max_fraction·‖z0‖ from z0 (see `effective_step`).
    regions : {name: None (the whole image), a box ((top, bottom), (left, right)) in fractions of the image, or
        a mask (h, w) in [0, 1]}; the first is selected. For a region the axes are its local directions
        (`local.generalized_directions` of the region's and the rest's metrics, from one Jacobian pass, with
        δ = tau·tr H_rest), the curve is the distance inside the region, and the status gives the change inside
        over the change outside at the ends of the walk. Needs a distance with `feature_maps` (MSE, LPIPS).

    Each control change re-renders the strip and the curve from the cached metric. A new model, eye colour
    or seed (or a new region) needs the metric at a new code first: the app then shows a progress bar and
    what it is doing, dims the old strip and curve, and disables the controls until it is done.
    """

    def __init__(self, models=generators.EMBEDDED, *, distance="lpips-alex", device="cpu",
                 n_steps: int = 7, power: float = 1 / 3, step: float = 1.5, max_step: float = 4.0,
                 max_fraction: float = 0.5, regions: dict = REGIONS, tau: float = local.TAU):
        self.device = device
        self.regions = _check_regions(regions)
        self.tau = tau
        self.n_steps = n_steps | 1
        self.power = power
        self.max_fraction = max_fraction
        self.distance = distances.load(distance, device=device) if isinstance(distance, str) else distance
        self._given = dict(models) if isinstance(models, dict) else {}
        names = list(self._given) if self._given else list(models)
        self._generators: dict = {}
        self._references: dict = {}
        self._local: dict = {}
        self._last_metric_seconds: float | None = None
        self.renders = 0  # completed renders; the curve carries it as data-render, for browser tests
        self._updating = False

        self.model = widgets.Dropdown(options=names, value=names[0], description="model")
        self.eye_class = widgets.Dropdown(options=generators.EYE_CLASSES, value="brown", description="eye class")
        self.seed = widgets.IntText(value=0, description="seed")
        self.region = widgets.Dropdown(options=list(self.regions), value=next(iter(self.regions)),
                                       description="region")
        # continuous_update=False: a drag renders once, on release, instead of queueing a render per pixel.
        self.rank = widgets.IntSlider(value=1, min=1, max=100, description="eigen-rank", continuous_update=False)
        self.step = widgets.FloatSlider(value=step, min=0.0, max=max_step, step=0.1, description="step",
                                        continuous_update=False)
        self.mode = widgets.ToggleButtons(options=list(axes.MODES), value="linear", description="walk",
                                          style={"button_width": "80px"})
        self.strip = widgets.Image(format="jpeg")
        self.curve = widgets.HTML()
        self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, bar_style="info",
                                              layout=widgets.Layout(display="none", width="160px"))
        self.status = widgets.HTML()
        self.controls = [self.model, self.eye_class, self.seed, self.region, self.rank, self.step, self.mode]
        for widget, name in [*zip(self.controls, ("model", "eye-class", "seed", "region", "rank", "step", "mode")),
                             (self.strip, "strip"), (self.curve, "curve"), (self.progress, "progress"),
                             (self.status, "status")]:
            widget.add_class(f"gg-{name}")
        wrap = widgets.Layout(flex_flow="row wrap")  # controls wrap onto more lines on a narrow screen
        super().__init__([widgets.HTML(_STYLE), widgets.HBox(self.controls[:4], layout=wrap),
                          widgets.HBox(self.controls[4:], layout=wrap), self.strip, self.curve,
                          widgets.HBox([self.progress, self.status], layout=wrap)])
        self.add_class("gg-explorer")
        for control in self.controls:
            control.observe(self._on_change, names="value")
        self.update()

    # --- state -------------------------------------------------------------------------------------------------

    def generator(self):
        """The selected generator, loaded once per (model, eye class)."""
        name = self.model.value
        if name in self._given:
            return self._given[name]
        key = (name, self.eye_class.value if name.startswith("cdcgan-eyes") else None)
        if key not in self._generators:
            self._busy(f"loading {name}…", 0.05)
            options = {"eye_class": key[1]} if key[1] else {}
            self._generators[key] = generators.load(name, device=self.device, **options)
        return self._generators[key]

    def reference(self) -> Reference:
        """The selected code z0, its metric and reference image, computed once per (generator, seed)."""
        G = self.generator()
        key = (id(G), self.seed.value)
        if key not in self._references:
            last = (f" (the last one took {self._last_metric_seconds:.1f} s)" if self._last_metric_seconds
                    else "")
            self._busy(f"computing the metric of {html.escape(G.name)} at seed {self.seed.value}: "
                       f"{G.latent_dim} Jacobian columns through the generator and the distance{last}…", 0.15)
            start = time.perf_counter()
            z0 = G.sample(1, seed=self.seed.value)
            result = metric_module.metric(G, z0, self.distance, progress=False)
            self._busy("rendering…", 0.9)
            with torch.no_grad():
                image = G(z0)
                features = self.distance.features(image) if _has_features(self.distance) else None
            seconds = time.perf_counter() - start
            self._last_metric_seconds = seconds
            self._references[key] = Reference(z0[0], result.eigvals[0], result.eigvecs[0], image, features, seconds)
        return self._references[key]

    def local_axes(self) -> LocalAxes | None:
        """The selected region's local directions at the selected code, computed once per (generator, seed,
        region); None for the whole image."""
        name = self.region.value
        if self.regions[name] is None:
            return None
        G, ref = self.generator(), self.reference()
        key = (id(G), self.seed.value, name)
        if key not in self._local:
            self._busy(f"computing the metrics of the region {html.escape(name)} and of the rest of "
                       f"{html.escape(G.name)} at seed {self.seed.value}: one pass of {G.latent_dim} Jacobian "
                       f"columns…", 0.15)
            start = time.perf_counter()
            mask = _mask(self.regions[name], ref.image.shape[-2:])
            inside, rest = metric_module.region_metric(G, ref.z0[None], self.distance, mask, progress=False)
            found = local.generalized_directions(inside.H[0], rest.H[0], tau=self.tau)
            vectors = found.vectors.to(ref.z0)
            curvature = torch.einsum("dk,de,ek->k", found.vectors, inside.H[0], found.vectors)
            region = distances.Region(self.distance, mask).to(ref.image.device)
            with torch.no_grad():
                ref_inside, ref_outside = region.split_features(ref.image)
            self._local[key] = LocalAxes(vectors, found.scores, curvature, region, ref_inside, ref_outside,
                                         time.perf_counter() - start)
        return self._local[key]

    def axis_values(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(values (d,), vectors (d, d)) of the selected region's axes: the metric's eigenpairs for the whole
        image; for a region its local directions, with the curvature vᵀH_region v of each as its value."""
        found = self.local_axes()
        if found is None:
            ref = self.reference()
            return ref.eigvals, ref.eigvecs
        return found.curvature, found.vectors

    def step_bound(self) -> tuple[float, float]:
        """(t, multiplier): the walk's largest step t for the selected rank and step (`effective_step`), and
        that rank's multiplier (λ_k/λ_1)^(−power) (for a region, with λ_k the curvature inside the region)."""
        ref = self.reference()
        scale = float(axes.step_scales(self.axis_values()[0], self.power)[self.rank.value - 1])
        return effective_step(self.step.value, scale, float(ref.z0.norm()), self.max_fraction), scale

    def steps(self) -> torch.Tensor:
        """The steps (n_steps,) of the strip, float64: from −t to +t, t from `step_bound`."""
        t, _ = self.step_bound()
        return torch.linspace(-t, t, self.n_steps, dtype=torch.float64)

    def codes(self) -> torch.Tensor:
        """Codes (n_steps, d) along the selected eigen-axis (or local direction), from −t to +t around z0."""
        ref = self.reference()
        return axes.walk(ref.z0, self.axis_values()[1][:, self.rank.value - 1], self.steps().to(ref.z0.device),
                         mode=self.mode.value)

    # --- rendering ---------------------------------------------------------------------------------------------

    def update(self) -> None:
        """Recompute the strip and the curve for the current widget values."""
        self._updating = True  # a value clamped by a new rank.max must not start a second update
        try:
            G = self.generator()
            self.rank.max = G.latent_dim
            ref = self.reference()
            self.local_axes()
            self._render(G, ref)
        finally:
            self._updating = False
            self._idle()

    def _render(self, G, ref: Reference) -> None:
        codes = self.codes()
        middle = self.n_steps // 2
        outer = torch.cat([codes[:middle], codes[middle + 1:]])  # the middle code is z0: its image is cached
        found = self.local_axes()
        with torch.no_grad():
            images = G(outer)
            if found is not None:
                inside, outside = found.region.split_features(images)
                values = (inside - found.inside).pow(2).sum(dim=1)
                rest = (outside - found.outside).pow(2).sum(dim=1)
            elif ref.features is not None:
                values = (self.distance.features(images) - ref.features).pow(2).sum(dim=1)
            else:
                values = self.distance(ref.image.expand_as(images), images)
        self.images = torch.cat([images[:middle], ref.image, images[middle:]])
        self.distances = torch.cat([values[:middle], values.new_zeros(1), values[middle:]])
        self.outside = None if found is None else torch.cat([rest[:middle], rest.new_zeros(1), rest[middle:]])
        self.renders += 1
        shown = (viz.to_uint8(self.images) if found is None
                 else viz.outline(self.images, found.region.mask.cpu()))
        self.strip.value = _jpeg(viz.tile(shown, nrow=self.n_steps))
        rank = self.rank.value
        t, scale = self.step_bound()
        eigval = float(self.axis_values()[0][rank - 1])
        title = (f"distance to the reference along rank {rank} ({self.mode.value} walk)" if found is None else
                 f"distance inside the region along local direction {rank} ({self.mode.value} walk)")
        self.curve.value = _svg_curve(self.steps().numpy(), self.distances.detach().cpu().double().numpy(), eigval,
                                      title=title, render=self.renders)
        scaled = self.step.value * scale
        steps = (f"steps up to ±{t:.2f}, capped at {self.max_fraction:g}·‖z<sub>0</sub>‖ (step × multiplier = "
                 f"{self.step.value:g} × {scale:.2f} = {scaled:.2f}; larger steps leave the image manifold)"
                 if t < scaled * (1 - 1e-9) else f"steps up to ±{t:.2f} = {self.step.value:g} × {scale:.2f}")
        if found is None:
            self.status.value = (f"{html.escape(G.name)}, seed {self.seed.value}: rank {rank}, "
                                 f"λ<sub>{rank}</sub> = {eigval:.3g} (λ<sub>1</sub> = {float(ref.eigvals[0]):.3g}); "
                                 f"{steps}")
            return
        ends = [0, self.n_steps - 1]
        ratio = float(self.distances[ends].sum() / self.outside[ends].sum().clamp_min(1e-30))
        self.status.value = (f"{html.escape(G.name)}, seed {self.seed.value}, region {html.escape(self.region.value)}: "
                             f"local direction {rank}, generalised eigenvalue {float(found.scores[rank - 1]):.3g} "
                             f"(change inside per change outside, to second order); at the ends of this walk the "
                             f"change inside is {ratio:.3g}× the change outside; {steps}")

    def _busy(self, message: str, fraction: float) -> None:
        """Show that the app is working: progress bar, message, dimmed outputs, disabled controls."""
        self.progress.value = fraction
        self.progress.layout.display = None
        self.status.value = f"<b>working:</b> {message}"
        for output in (self.strip, self.curve):
            output.add_class("gg-dim")
        for control in self.controls:
            control.disabled = True

    def _idle(self) -> None:
        self.progress.layout.display = "none"
        for output in (self.strip, self.curve):
            output.remove_class("gg-dim")
        for control in self.controls:
            control.disabled = control is self.eye_class and not self._eyes_selected()

    def _eyes_selected(self) -> bool:
        return self.model.value not in self._given and self.model.value.startswith("cdcgan-eyes")

    def _on_change(self, change) -> None:
        if self._updating:
            return
        try:
            self.update()
        except Exception as error:  # shown in the app, then raised (to the caller, or Jupyter's log)
            self.status.value = f'<b style="color:#b00020">error:</b> {html.escape(str(error))}'
            raise


def explore(models=generators.EMBEDDED, **options) -> Explorer:
    """The explorer app for `models` (see `Explorer`); display it as the last line of a notebook cell."""
    return Explorer(models, **options)


def _check_regions(regions) -> dict:
    """The region choices {name: None, a box or an (h, w) mask}, each checked; raises with the bad entry named."""
    if not isinstance(regions, dict) or not regions:
        raise ValueError(f"regions must be a non-empty dict {{name: None, box or mask}}, got {regions!r}")
    for name, value in regions.items():
        if value is None:
            continue
        try:
            _mask(value, (8, 8))
        except (TypeError, ValueError) as err:
            raise ValueError(f"region {name!r}: {err}") from None
    return dict(regions)


def _mask(value, shape) -> torch.Tensor:
    """An (H, W) mask for a box ((top, bottom), (left, right)) drawn at `shape`, or a mask given as is."""
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(len(part) == 2 for part in value):
        return distances.box(tuple(shape), *value)
    return checks.mask(value)


def _has_features(distance) -> bool:
    return type(distance).features is not distances.Distance.features if isinstance(
        distance, distances.Distance) else callable(getattr(distance, "features", None))


def _jpeg(image: np.ndarray) -> bytes:
    """JPEG bytes of an (H, W, 3) uint8 image: a fraction of PNG's encoding time and size for GAN images."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def _svg_curve(steps: np.ndarray, values: np.ndarray, eigval: float, *, title: str, render: int,
               width: int = 640, height: int = 240) -> str:
    """The distance curve as inline SVG: measured distances (solid, with markers) and the metric's quadratic
    prediction ½λt² (dashed; exact as t → 0, an overestimate at larger steps, where LPIPS curves away).
    Plain markup in the widget's state, so it needs no JavaScript library and draws again after a reload."""
    left, right, top, bottom = 62, 16, 30, 42
    t_max = float(np.abs(steps).max()) or 1.0
    y_max = float(values.max()) * 1.15 or 1.0
    if not np.isfinite(y_max):
        raise ValueError(f"distance curve has non-finite values: {values.tolist()}")

    def x(t):
        return left + (t + t_max) / (2 * t_max) * (width - left - right)

    def y(v):
        return height - bottom - v / y_max * (height - top - bottom)

    fine = np.linspace(-t_max, t_max, 81)
    predicted = " ".join(f"{x(t):.1f},{y(0.5 * eigval * t * t):.1f}" for t in fine)
    measured = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(steps, values))
    markers = "".join(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="3.5"/>' for t, v in zip(steps, values))
    ticks = []
    for t in np.linspace(-t_max, t_max, 5):
        ticks.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{height - bottom}" y2="{height - bottom + 5}"/>'
                     f'<text x="{x(t):.1f}" y="{height - bottom + 18}" text-anchor="middle">{t:+.2f}</text>')
    for v in np.linspace(0, y_max, 4):
        ticks.append(f'<line x1="{left - 5}" x2="{left}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>'
                     f'<text x="{left - 8}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.3g}</text>')
    plot_w, plot_h = width - left - right, height - top - bottom
    return (
        f'<svg class="gg-curve-svg" data-render="{render}" viewBox="0 0 {width} {height}" '
        f'style="width:100%;max-width:{width}px;height:auto;font:12px sans-serif" role="img" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{html.escape(title)}</title>'
        f'<defs><clipPath id="gg-plot-{render}"><rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}"/>'
        f'</clipPath></defs>'
        f'<text x="{left}" y="18" font-weight="bold">{html.escape(title)}</text>'
        f'<g stroke="#444" fill="#444">{"".join(ticks)}</g>'
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>'
        f'<polyline class="gg-predicted" clip-path="url(#gg-plot-{render})" points="{predicted}" fill="none" '
        f'stroke="#d62728" stroke-width="1.5" stroke-dasharray="5 4"/>'
        f'<polyline class="gg-measured" points="{measured}" fill="none" stroke="#1f77b4" stroke-width="2"/>'
        f'<g fill="#1f77b4">{markers}</g>'
        f'<text x="{left + plot_w / 2:.0f}" y="{height - 6}" text-anchor="middle">step t along the axis</text>'
        f'<text transform="translate(14 {top + plot_h / 2:.0f}) rotate(-90)" text-anchor="middle">distance</text>'
        f'<g font-size="11"><line x1="{width - right - 190}" x2="{width - right - 166}" y1="{top + 12}" '
        f'y2="{top + 12}" stroke="#1f77b4" stroke-width="2"/><text x="{width - right - 160}" y="{top + 16}">'
        f'measured</text><line x1="{width - right - 190}" x2="{width - right - 166}" y1="{top + 28}" '
        f'y2="{top + 28}" stroke="#d62728" stroke-dasharray="5 4"/><text x="{width - right - 160}" '
        f'y="{top + 32}">½λt² (the metric, t → 0)</text></g></svg>')
