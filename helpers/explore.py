"""Interactive exploration of a generator's eigen-axes in Jupyter: one call, `explore()`, returns the app.

Pick a model (and eye colour), a seed, a region, an eigen-rank and a step; the app shows the image strip along
that axis (for a region: that local direction) and the distance curve. Metrics are cached per code (and region),
so moving the sliders costs only a render; those of the other models at the same seed are computed in the
background while the app is idle, so that switching models costs only a render too. Its geodesic view joins the
codes of two seeds by the geodesic and the straight line (`geodesic_study.between`), with their perceptual speeds.
"""
from __future__ import annotations

import html
import io
import math
import queue
import threading
import time
from concurrent.futures import Future, wait
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np
import torch

from . import axes, checks, distances, generators, geodesic_study, local
from . import metric as metric_module
from . import viz

# The app's own style, part of its widget state, so it is there again after a browser reload, in JupyterLab and in
# Voilà. `.gg-dim` dims the strips and the curve while a metric is computed. The progress bar moves by itself while
# busy (its stripes), between the kernel's estimates. The walk's and the view's labels and buttons stay on one line.
# The strips are shown at their own size (never scaled up, which blurs them), smaller only on a narrow screen. The
# curve's text is sized for the width the curve gets (a container query), so that it stays readable on a phone. When
# the kernel stops or restarts, JupyterLab and Voilà mark every widget `jupyter-widgets-disconnected`: the app then
# says so instead of showing its last state (a busy message, disabled controls) as if it were still working.
_STYLE = """<style>
.gg-dim { opacity: 0.3; transition: opacity 0.2s; }
.gg-explorer .gg-progress .progress-bar {
  background-image: linear-gradient(45deg, rgba(255,255,255,.25) 25%, transparent 25%, transparent 50%,
                    rgba(255,255,255,.25) 50%, rgba(255,255,255,.25) 75%, transparent 75%, transparent);
  background-size: 16px 16px; animation: gg-stripes 1s linear infinite; }
@keyframes gg-stripes { from { background-position: 16px 0; } to { background-position: 0 0; } }
.gg-explorer .gg-status { min-height: 1.5em; }
.gg-explorer .gg-cap { color: #8a5a00; margin: 0 12px 0 4px; }
.gg-explorer .gg-mode, .gg-explorer .gg-view { display: flex; flex-flow: row nowrap; align-items: center; }
.gg-explorer .gg-mode > div, .gg-explorer .gg-view > div { display: flex; flex-flow: row nowrap; }
.gg-explorer .gg-path-label { margin: 6px 0 2px 0; }
.gg-explorer img.gg-strip, .gg-explorer .gg-paths img { align-self: flex-start; width: auto; height: auto;
                                                        max-width: 100%; object-fit: contain; }
.gg-explorer .gg-curve { container-type: inline-size; max-width: 640px; }
.gg-explorer .gg-curve-svg { font-family: sans-serif; font-size: 12px; }
.gg-explorer .gg-curve-title { font-weight: bold; margin: 4px 0 2px 0; }
.gg-explorer .gg-legend { font-size: 12px; color: #444; }
.gg-explorer .gg-legend span { display: inline-block; width: 24px; height: 0; margin: 0 4px 3px 10px;
                               vertical-align: middle; }
@container (max-width: 520px) { .gg-explorer .gg-curve-svg { font-size: 22px; } }
.gg-explorer .gg-offline { display: none; }
.gg-explorer.jupyter-widgets-disconnected .gg-offline { display: block; }
.gg-explorer.jupyter-widgets-disconnected .gg-progress,
.gg-explorer.jupyter-widgets-disconnected .gg-status { display: none !important; }
.gg-explorer.jupyter-widgets-disconnected .gg-dim { opacity: 1; }
</style>"""

_OFFLINE = ('<p style="color:#b00020"><b>The kernel stopped or restarted</b>: this app no longer answers. Run its '
            "cell again (in Voilà: reload the page) to start it afresh.</p>")

# The region menu's default choices: the whole image (the paper's eigen-axes) and boxes that fit any generator,
# as (rows, cols) fractions of the image (`distances.box`). `explore(regions=...)` takes others, or masks.
REGIONS = {"whole image": None,
           "top half": ((0.0, 0.5), (0.0, 1.0)), "bottom half": ((0.5, 1.0), (0.0, 1.0)),
           "left half": ((0.0, 1.0), (0.0, 0.5)), "right half": ((0.0, 1.0), (0.5, 1.0)),
           "centre": ((0.25, 0.75), (0.25, 0.75))}

MAX_SEED = 2 ** 63 - 1  # torch's generator seeds; negative seeds would alias large ones
VIEWS = ("eigen-axes", "geodesic")
PATHS = {"geodesic": ("geodesic", "#1f77b4"), "straight": ("straight line", "#ff7f0e")}  # kind: (label, colour)

# Metrics are computed one at a time in this process: torch's forward-mode AD levels, which the metric's JVPs use,
# are global, not per thread, and two threads computing at once corrupt each other's ("invalid forward AD level").
# Models load under the same lock: building a network draws its layers' initial weights from torch's global
# generator, and the metric's entry check (`checks.model`) takes a global generator that advances while the
# model runs for the model drawing random numbers ("draws random numbers when it runs"), as it did for a model
# switched to while the background loaded another.
_METRICS = threading.Lock()


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
    """The explorer app; its widgets are attributes (`view`, `model`, `eye_class`, `seed`, `region`, `rank`, `step`,
    `mode`, for the geodesic view `seed_b` and `path_steps`, and the outputs `strip`, `geodesic_strip`,
    `straight_strip`, `curve`, `progress`, `status`, `cap`).

    Parameters
    ----------
    models : names of `generators.MODELS`, or {label: Generator} for your own generators.
    distance : a distance name for `distances.load`, or a distance object.
    n_steps : images per strip (a positive integer; made odd, so the middle one is the reference).
    power : steps are scaled by (λ_k/λ_1)^(-power), so every rank shows comparable change.
    step : the step slider's first value; max_step : its largest value (latent units, along rank 1).
    max_fraction : no walk goes further than max_fraction·‖z0‖ from z0 (see `effective_step`).
    regions : {name: None (the whole image), a box ((top, bottom), (left, right)) in fractions of the image, or
        a mask (h, w) in [0, 1]}; the first is selected. For a region the axes are its local directions
        (`local.generalized_directions` of the region's and the rest's metrics, from one Jacobian pass, with
        δ = tau·tr H_rest), the curve is the distance inside the region, and the status gives the change inside
        over the change outside at the ends of the walk. Needs a distance with `feature_maps` (MSE, LPIPS).
    prefetch : compute the metrics of the other models at the selected seed in the background while the app is
        idle (one at a time, never while it is busy), so that switching models costs only a render.
    path_steps : the geodesic view's first number of steps per path (2 or more); path_iter : the most L-BFGS
        iterations of its geodesics (`geodesic.geodesic`'s max_iter): fewer are sooner, the geodesic a little longer.

    The geodesic view joins the codes of `seed` and `seed_b` by the geodesic and the straight line, each in
    `path_steps` steps (computed once per model, seed pair in either order and steps), and shows their images and
    perceptual speed: each step's length in the units of H, measured as 4 sub-steps (`geodesic_study.between`, as
    chapter 09), times the number of steps.

    Each control change re-renders the strip and the curve from the cached metric. A new model, eye colour
    or seed (or a new region) needs the metric at a new code first, unless the background has computed it: the
    app then shows a progress bar and what it is doing, dims the old strip and curve, and disables the controls
    until it is done. A value a control cannot take (a seed out of range, a step that is not a number) is
    refused with a message that names the control, and the control goes back to its last value.
    """

    def __init__(self, models=generators.EMBEDDED, *, distance="lpips-alex", device="cpu",
                 n_steps: int = 7, power: float = 1 / 3, step: float = 1.5, max_step: float = 4.0,
                 max_fraction: float = 0.5, regions: dict = REGIONS, tau: float = local.TAU, prefetch: bool = True,
                 path_steps: int = 6, path_iter: int = 20):
        checks.positive_int(n_steps, "n_steps (images per strip)")
        if checks.positive_int(path_steps, "path_steps (steps per path)") < 2:
            raise ValueError(f"path_steps (steps per path) must be at least 2, got {path_steps}")
        self.path_iter = checks.positive_int(path_iter, "path_iter (L-BFGS iterations of a geodesic)")
        _finite("max_step (the step slider's largest value)", max_step, low=0, strict=True)
        _finite("step (the step slider's first value)", step, low=0, high=max_step)
        _finite("max_fraction", max_fraction, low=0, strict=True)
        self.device = device
        self.regions = _check_regions(regions)
        self.tau = tau
        self.n_steps = n_steps | 1
        self.power = power
        self.max_fraction = max_fraction
        self.distance = distances.load(distance, device=device) if isinstance(distance, str) else distance
        self._given = dict(models) if isinstance(models, dict) else {}
        names = list(self._given) if self._given else list(models)
        self._cache: dict = {}  # key -> Future of a generator, a Reference or LocalAxes
        self._lock = threading.Lock()
        self._seconds: dict = {}  # model name -> seconds its last metric took (for the progress estimate)
        self._last_metric_seconds: float | None = None
        self._background = _Background() if prefetch and len(names) > 1 else None
        self._valid = {}  # control -> its last accepted value (a refused value goes back to it)
        self.renders = 0  # completed renders; the curve carries it as data-render, for browser tests
        self._updating = False

        self.view = widgets.ToggleButtons(options=VIEWS, value=VIEWS[0], description="view",
                                          style={"button_width": "90px", "description_width": "initial"})
        self.model = widgets.Dropdown(options=names, value=names[0], description="model")
        self.eye_class = widgets.Dropdown(options=generators.EYE_CLASSES, value="brown", description="eye class")
        self.seed = widgets.IntText(value=0, description="seed")
        self.seed_b = widgets.IntText(value=1, description="to seed")
        self.path_steps = widgets.IntSlider(value=path_steps, min=2, max=max(16, path_steps), description="path steps",
                                            continuous_update=False, style={"description_width": "initial"})
        self.region = widgets.Dropdown(options=list(self.regions), value=next(iter(self.regions)),
                                       description="region")
        # continuous_update=False: a drag renders once, on release, instead of queueing a render per pixel.
        self.rank = widgets.IntSlider(value=1, min=1, max=100, description="eigen-rank", continuous_update=False,
                                      style={"description_width": "initial"})
        self.step = widgets.FloatSlider(value=step, min=0.0, max=max_step, step=0.1, description="step",
                                        continuous_update=False, style={"description_width": "initial"})
        self.cap = widgets.HTML()  # says where the cap stops the step slider, at the slider
        self.mode = widgets.ToggleButtons(options=list(axes.MODES), value="linear", description="walk",
                                          style={"button_width": "76px", "description_width": "initial"},
                                          layout=widgets.Layout(width="auto", flex="0 0 auto"))
        self.strip = widgets.Image(format="jpeg")
        self.geodesic_strip, self.straight_strip = widgets.Image(format="jpeg"), widgets.Image(format="jpeg")
        self.path_labels = [widgets.HTML(), widgets.HTML()]
        self.paths_box = widgets.VBox([self.path_labels[0], self.geodesic_strip, self.path_labels[1],
                                       self.straight_strip])
        self.curve = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, bar_style="info",
                                              layout=widgets.Layout(display="none", width="160px", flex="0 0 auto"))
        self.status = widgets.HTML(layout=widgets.Layout(flex="1 1 300px"))
        self.controls = [self.view, self.model, self.eye_class, self.seed, self.seed_b, self.path_steps, self.region,
                         self.rank, self.step, self.mode]
        for widget, name in [*zip(self.controls, ("view", "model", "eye-class", "seed", "seed-b", "path-steps",
                                                  "region", "rank", "step", "mode")),
                             (self.strip, "strip"), (self.curve, "curve"), (self.progress, "progress"),
                             (self.status, "status"), (self.cap, "cap"), (self.paths_box, "paths"),
                             *[(label, "path-label") for label in self.path_labels],
                             (self.geodesic_strip, "geodesic-strip"), (self.straight_strip, "straight-strip")]:
            widget.add_class(f"gg-{name}")
        def wrap():  # more lines on a narrow screen; a layout per row, which the views hide one by one
            return widgets.Layout(flex_flow="row wrap", align_items="center")

        offline = widgets.HTML(_OFFLINE)
        offline.add_class("gg-offline")
        # What is being computed, and the summary of what is shown, sit right under the controls: in view
        # whatever the window's height.
        self._axes_row = widgets.HBox([self.rank, self.step, self.cap, self.mode], layout=wrap())
        super().__init__([widgets.HTML(_STYLE), self.view, widgets.HBox(self.controls[1:7], layout=wrap()),
                          self._axes_row, widgets.HBox([self.progress, self.status], layout=wrap()), offline,
                          self.strip, self.paths_box, self.curve])
        self.add_class("gg-explorer")
        for control in self.controls:
            control.observe(self._on_change, names="value")
        self.update()

    # --- state -------------------------------------------------------------------------------------------------

    def generator(self):
        """The selected generator, loaded once per (model, eye class)."""
        return self._generator(self.model.value, self.eye_class.value)

    def reference(self) -> Reference:
        """The selected code z0, its metric and reference image, computed once per (generator, seed)."""
        G, seed = self.generator(), self.seed.value
        last = (f" (the last one took {self._last_metric_seconds:.1f} s)" if self._last_metric_seconds else "")
        message = (f"computing the metric of {html.escape(G.name)} at seed {seed}: {G.latent_dim} Jacobian columns "
                   f"through the generator and the distance{last}…")
        return self._get(("reference", id(G), seed), lambda: self._compute_reference(G, seed), message,
                         expected=self._seconds.get(G.name, self._last_metric_seconds))

    def local_axes(self) -> LocalAxes | None:
        """The selected region's local directions at the selected code, computed once per (generator, seed,
        region); None for the whole image."""
        name = self.region.value
        if self.regions[name] is None:
            return None
        G, ref, seed = self.generator(), self.reference(), self.seed.value
        message = (f"computing the metrics of the region {html.escape(name)} and of the rest of "
                   f"{html.escape(G.name)} at seed {seed}: one pass of {G.latent_dim} Jacobian columns…")
        return self._get(("local", id(G), seed, name), lambda: self._compute_local(G, ref, name), message,
                         expected=self._seconds.get(G.name))

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

    def step_cap(self) -> float:
        """The step slider's value past which the selected rank's walk is capped (max_fraction·‖z0‖ / multiplier)."""
        _, scale = self.step_bound()
        return self.max_fraction * float(self.reference().z0.norm()) / scale

    def steps(self) -> torch.Tensor:
        """The steps (n_steps,) of the strip, float64: from −t to +t, t from `step_bound`."""
        t, _ = self.step_bound()
        return torch.linspace(-t, t, self.n_steps, dtype=torch.float64)

    def codes(self) -> torch.Tensor:
        """Codes (n_steps, d) along the selected eigen-axis (or local direction), from −t to +t around z0."""
        ref = self.reference()
        return axes.walk(ref.z0, self.axis_values()[1][:, self.rank.value - 1], self.steps().to(ref.z0.device),
                         mode=self.mode.value)

    def paths(self) -> geodesic_study.Pairs:
        """The geodesic and the straight line (`PATHS`) between the codes of `seed` and `seed_b`, in `path_steps`
        steps, with their step lengths: computed once per (generator, unordered seed pair, steps), since the path
        from b to a is the one from a to b reversed."""
        G, a, b, n = self.generator(), self.seed.value, self.seed_b.value, self.path_steps.value
        key = ("paths", G.name)
        last = f" (the last one took {self._seconds[key]:.1f} s)" if key in self._seconds else ""
        message = (f"computing the geodesic of {html.escape(G.name)} from seed {a} to seed {b} in {n} steps: up to "
                   f"{self.path_iter} L-BFGS iterations on its {n - 1} inner codes{last}…")
        low, high = sorted((a, b))
        found = self._get(("paths", id(G), low, high, n), lambda: self._compute_paths(G, low, high, n), message,
                          expected=self._seconds.get(key, 10.0))
        return found if a < b else found.reversed()

    # --- computing: cached, in a thread, with progress ---------------------------------------------------------

    def _generator(self, name: str, eye_class: str):
        if name in self._given:
            return self._given[name]
        key = (name, eye_class if name.startswith("cdcgan-eyes") else None)
        options = {"eye_class": key[1]} if key[1] else {}
        return self._get(("generator", key), lambda: _load(name, self.device, options),
                         f"loading {html.escape(name)}…", expected=None)

    def _compute_reference(self, G, seed: int) -> Reference:
        start = time.perf_counter()
        z0 = G.sample(1, seed=seed)
        with _METRICS:
            result = metric_module.metric(G, z0, self.distance, progress=False)
        with torch.no_grad():
            image = G(z0)
            features = self.distance.features(image) if _has_features(self.distance) else None
        seconds = time.perf_counter() - start
        self._seconds[G.name] = self._last_metric_seconds = seconds
        return Reference(z0[0], result.eigvals[0], result.eigvecs[0], image, features, seconds)

    def _compute_paths(self, G, a: int, b: int, n: int) -> geodesic_study.Pairs:
        z = torch.cat([G.sample(1, seed=a), G.sample(1, seed=b)])  # z0 of each seed in the eigen-axes view
        with _METRICS:  # the geodesic's preconditioner is a metric (forward-mode AD)
            # each step measured in 4 sub-steps, as chapter 09 does: a few chords would flatter the geodesic
            found = geodesic_study.between(G.name, G, self.distance, z[:1], z[1:], n, kinds=tuple(PATHS),
                                           max_iter=self.path_iter)
        self._seconds[("paths", G.name)] = found.seconds
        return found

    def _compute_local(self, G, ref: Reference, name: str) -> LocalAxes:
        start = time.perf_counter()
        mask = _mask(self.regions[name], ref.image.shape[-2:])
        with _METRICS:
            inside, rest = metric_module.region_metric(G, ref.z0[None], self.distance, mask, progress=False)
        found = local.generalized_directions(inside.H[0], rest.H[0], tau=self.tau)
        vectors = found.vectors.to(ref.z0)
        curvature = torch.einsum("dk,de,ek->k", found.vectors, inside.H[0], found.vectors)
        region = distances.Region(self.distance, mask).to(ref.image.device)
        with torch.no_grad():
            ref_inside, ref_outside = region.split_features(ref.image)
        return LocalAxes(vectors, found.scores, curvature, region, ref_inside, ref_outside,
                         time.perf_counter() - start)

    def _get(self, key, compute, message: str, expected: float | None):
        """The cached result for `key`, computed by `compute` in a thread the first time (or waited for, when the
        background is computing it), with the app busy meanwhile: `message`, and a progress bar that follows the
        time elapsed against `expected` seconds. A failure is not cached: choosing it again tries again."""
        with self._lock:
            future = self._cache.get(key)
            new = future is None
            if new:
                future = self._cache[key] = Future()
        if not future.done():
            self._busy(message, 0.05)
            if new:
                threading.Thread(target=_fulfil, args=(future, compute), daemon=True).start()
            start = time.perf_counter()
            while not wait([future], timeout=0.25).done:
                elapsed = time.perf_counter() - start
                self.progress.value = 0.05 + 0.85 * (1 - math.exp(-elapsed / (expected or 3.0)))
        if future.exception() is not None:
            with self._lock:
                if self._cache.get(key) is future:
                    del self._cache[key]
            raise future.exception()
        return future.result()

    def _prefetch(self) -> None:
        """Queue the metrics of the other models at the selected seed (and eye colour) for the background."""
        if self._background is None:
            return
        seed, eye_class = self.seed.value, self.eye_class.value
        names = [n for n in self.model.options if n != self.model.value]

        def job(name):
            def run():
                if (self.seed.value, self.eye_class.value) != (seed, eye_class):
                    return  # the selection moved on: not wanted any more
                G = self._cached_or_load(name, eye_class)
                key = ("reference", id(G), seed)
                with self._lock:
                    if key in self._cache:
                        return
                    future = self._cache[key] = Future()
                _fulfil(future, lambda: self._compute_reference(G, seed))
            return run

        self._background.replace([job(name) for name in names])

    def _cached_or_load(self, name: str, eye_class: str):
        """`_generator` for the background: the same cache, no busy display (the background never touches widgets)."""
        if name in self._given:
            return self._given[name]
        key = (name, eye_class if name.startswith("cdcgan-eyes") else None)
        with self._lock:
            future = self._cache.get(("generator", key))
            new = future is None
            if new:
                future = self._cache[("generator", key)] = Future()
        if new:
            options = {"eye_class": key[1]} if key[1] else {}
            _fulfil(future, lambda: _load(name, self.device, options))
        return future.result()

    # --- rendering ---------------------------------------------------------------------------------------------

    def update(self) -> None:
        """Recompute the strip and the curve for the current widget values."""
        self._updating = True  # a value clamped by a new rank.max must not start a second update
        if self._background is not None:
            self._background.hold()
        try:
            self._check_controls()
            self._show_view()
            G = self.generator()
            if self._geodesic_view():
                self._render_paths(G, self.paths())
            else:
                self.rank.max = G.latent_dim
                ref = self.reference()
                self.local_axes()
                self._render(G, ref)
            self._valid = {control: control.value for control in self.controls}
        finally:
            self._updating = False
            self._idle()
            if self._background is not None:
                self._background.release()
        if not self._geodesic_view():  # a geodesic needs no metric at the seed
            self._prefetch()

    def _geodesic_view(self) -> bool:
        return self.view.value == "geodesic"

    def _show_view(self) -> None:
        """Show the selected view's controls and outputs, hide the other's."""
        geodesic = self._geodesic_view()
        for widget in (self.seed_b, self.path_steps, self.paths_box):
            widget.layout.display = None if geodesic else "none"
        for widget in (self.region, self._axes_row, self.strip):
            widget.layout.display = "none" if geodesic else None
        self.seed.description = "from seed" if geodesic else "seed"

    def _check_controls(self) -> None:
        """Refuse control values the app cannot show, naming the control; the control goes back to its last
        accepted value."""
        problem = None
        seed, seed_b = self.seed.value, self.seed_b.value
        if not 0 <= seed <= MAX_SEED:
            problem = (self.seed, f"seed must be an integer from 0 to {MAX_SEED:,}, got {seed}")
        elif not 0 <= seed_b <= MAX_SEED:
            problem = (self.seed_b, f"to seed must be an integer from 0 to {MAX_SEED:,}, got {seed_b}")
        elif self._geodesic_view() and seed == seed_b:
            if self._valid.get(self.view) == VIEWS[0]:  # the view just changed: offer the next seed
                self.seed_b.value = seed + 1 if seed < MAX_SEED else seed - 1  # no update: self._updating is set
            else:
                changed = self.seed if self._valid.get(self.seed) != seed else self.seed_b
                problem = (changed, f"{changed.description} must differ from the other seed ({seed}): a geodesic "
                                    f"joins two different codes")
        elif not (math.isfinite(self.step.value) and self.step.min <= self.step.value <= self.step.max):
            problem = (self.step, f"step must be a number from {self.step.min:g} to {self.step.max:g}, "
                                  f"got {self.step.value}")
        if problem is None:
            return
        control, message = problem
        if control in self._valid:
            control.value = self._valid[control]  # no update: self._updating is set
        raise ValueError(message)

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
        rank = self.rank.value
        axis = "eigen-rank" if found is None else "local direction"
        t, scale = self.step_bound()
        eigval = float(self.axis_values()[0][rank - 1])
        scaled = self.step.value * scale
        capped = t < scaled * (1 - 1e-9)
        steps = (f"steps up to ±{t:.2f}, capped at {self.max_fraction:g}·‖z<sub>0</sub>‖ (step × multiplier = "
                 f"{self.step.value:g} × {scale:.2f} = {scaled:.2f}; larger steps leave the image manifold)"
                 if capped else f"steps up to ±{t:.2f} = {self.step.value:g} × {scale:.2f}")
        if found is None:
            status = (f"{html.escape(G.name)}, seed {self.seed.value}: rank {rank}, λ<sub>{rank}</sub> = "
                      f"{eigval:.3g} (λ<sub>1</sub> = {float(ref.eigvals[0]):.3g}); {steps}")
            title = f"distance to the reference along rank {rank} ({self.mode.value} walk)"
        else:
            ends = [0, self.n_steps - 1]
            ratio = float(self.distances[ends].sum() / self.outside[ends].sum().clamp_min(1e-30))
            status = (f"{html.escape(G.name)}, seed {self.seed.value}, region {html.escape(self.region.value)}: "
                      f"local direction {rank}, generalised eigenvalue {float(found.scores[rank - 1]):.3g} (change "
                      f"inside per change outside, to second order); at the ends of this walk the change inside is "
                      f"{ratio:.3g}× the change outside; {steps}")
            title = f"distance inside the region along local direction {rank} ({self.mode.value} walk)"
        # The curve last: the page has everything else of this render once the curve's new data-render shows.
        self.strip.value = _jpeg(viz.tile(shown, nrow=self.n_steps))
        self.rank.description = axis
        self.cap.value = f"capped at step {self.step_cap():.2f} for {axis} {rank}" if capped else ""
        self.status.value = status
        self.curve.value = _svg_curve(self.steps().numpy(), self.distances.detach().cpu().double().numpy(), eigval,
                                      title=title, render=self.renders)

    def _render_paths(self, G, found: geodesic_study.Pairs) -> None:
        """Show the two paths' strips (z_a left, z_b right) and labels, their speed curve and the status."""
        self.path_images = geodesic_study.path_images(G, found)  # (2, n+1, 3, H, W) in the order of PATHS
        t, self.speeds = geodesic_study.speed_curves(found)
        self.lengths = {kind: float(lengths[0]) for kind, lengths in found.lengths().items()}
        self.renders += 1
        a, b, n, result = self.seed.value, self.seed_b.value, found.n_steps, found.result
        for label, strip, images, (kind, (name, colour)) in zip(
                self.path_labels, (self.geodesic_strip, self.straight_strip), self.path_images, PATHS.items()):
            strip.value = _jpeg(viz.tile(viz.to_uint8(images), nrow=n + 1))
            label.value = (f'<b style="color:{colour}">{name}</b>, length {self.lengths[kind]:.3g}: seed {a} (left) '
                           f"to seed {b} (right) in {n} steps")
        ratio = self.lengths["geodesic"] / self.lengths["straight"]
        stopped = "converged" if bool(result.converged.all()) else "stopped at the iteration limit"
        self.status.value = (f"{html.escape(G.name)}, seeds {a} → {b}: the geodesic is {ratio:.3g}× as long as the "
                             f"straight line ({self.lengths['geodesic']:.3g} against {self.lengths['straight']:.3g}, "
                             f"in the units of H); {int(result.iterations.max())} L-BFGS iterations, {stopped}, "
                             f"{found.seconds:.1f} s")
        self.curve.value = _svg_speeds(np.asarray(t), self.speeds, self.lengths, render=self.renders)

    def _busy(self, message: str, fraction: float) -> None:
        """Show that the app is working: disabled controls, dimmed outputs, progress bar, message (in this order:
        the page applies the changes in turn, so the message shows with the controls disabled)."""
        for control in self.controls:
            control.disabled = True
        for output in (self.strip, self.paths_box, self.curve):
            output.add_class("gg-dim")
        self.progress.value = fraction
        self.progress.layout.display = None
        self.status.value = f"<b>working:</b> {message}"

    def _idle(self) -> None:
        self.progress.layout.display = "none"
        for output in (self.strip, self.paths_box, self.curve):
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


class _Background:
    """One daemon thread that runs the explorer's prefetch jobs in order, never while the app is busy (`hold`
    until `release`); `replace` drops the jobs not started yet for new ones. Its jobs never touch widgets."""

    def __init__(self):
        self._jobs: queue.Queue = queue.Queue()
        self._free = threading.Event()
        self._free.set()
        self._thread = threading.Thread(target=self._run, daemon=True)  # a kernel's exit never waits for it
        self._thread.start()

    def hold(self) -> None:
        self._free.clear()

    def release(self) -> None:
        self._free.set()

    def replace(self, jobs) -> None:
        while True:
            try:
                self._jobs.get_nowait()
            except queue.Empty:
                break
        for job in jobs:
            self._jobs.put(job)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            self._free.wait()
            try:
                job()
            except Exception:  # noqa: BLE001 (kept in the job's future; shown if the user selects it)
                pass


def _load(name: str, device, options: dict):
    """`generators.load`, never while a metric is computed (see `_METRICS`)."""
    with _METRICS:
        return generators.load(name, device=device, **options)


def _fulfil(future: Future, compute) -> None:
    try:
        future.set_result(compute())
    except BaseException as error:  # noqa: BLE001 (handed to whoever waits for the result)
        future.set_exception(error)


def _finite(name: str, value, *, low: float | None = None, high: float | None = None, strict: bool = False) -> None:
    """Raise unless `value` is a finite number within [low, high] (above low, with strict), naming the option."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (low is None or (value > low if strict else value >= low)) and (high is None or value <= high)
    if not ok:
        bounds = (f" {'above' if strict else 'at least'} {low:g}" if low is not None else "") + (
            f" and at most {high:g}" if high is not None else "")
        raise ValueError(f"{name} must be a finite number{bounds}, got {value!r}")


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


def _svg_curve(steps: np.ndarray, values: np.ndarray, eigval: float, *, title: str, render: int) -> str:
    """The distance curve: the measured distances (solid, with markers) and the metric's quadratic prediction ½λt²
    (dashed; exact as t → 0, an overestimate at larger steps, where LPIPS curves away), in `viz.svg_plot`."""
    t_max = float(np.abs(steps).max()) or 1.0
    fine = np.linspace(-t_max, t_max, 81)
    lines = [("gg-predicted", fine, 0.5 * eigval * fine ** 2, "#d62728", False),
             ("gg-measured", steps, values, "#1f77b4", True)]
    legend = [("2px solid #1f77b4", "measured"), ("2px dashed #d62728", "½λt² (the metric, exact as t → 0)")]
    return viz.svg_plot(lines, np.linspace(-t_max, t_max, 5), float(values.max()), title=title, render=render,
                        xlabel="step t along the axis", ylabel="distance", legend=legend, tick="{:+.2g}")


def _svg_speeds(t: np.ndarray, speeds: dict, lengths: dict, *, render: int) -> str:
    """The geodesic view's curve: the perceptual speed (n,) of each path of `PATHS` at its steps' middles t (n,)
    (`geodesic_study.speed_curves`), in `viz.svg_plot`; the legend gives each path's length."""
    lines = [(f"gg-speed gg-{kind}", t, np.asarray(speeds[kind]), PATHS[kind][1], True) for kind in PATHS]
    legend = [(f"2px solid {colour}", f"{name}, length {lengths[kind]:.3g}") for kind, (name, colour) in PATHS.items()]
    peak = max(max(values) for values in speeds.values())
    return viz.svg_plot(lines, np.linspace(0, 1, 5), peak, title="perceptual speed along the paths (step length × "
                        "steps)", render=render, xlabel="t along the path", ylabel="speed", legend=legend,
                        tick="{:.2g}")
