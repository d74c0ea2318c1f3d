"""Interactive exploration of a generator's eigen-axes in Jupyter: one call, `explore()`, returns the app.

Pick a model (and eye colour), a seed, an eigen-rank and a step; the app shows the image strip along that
axis and the distance curve. Metrics are cached per code, so moving the sliders costs only a render.
"""
from __future__ import annotations

import io
import ipywidgets as widgets
import numpy as np
import torch
from IPython.display import display

from . import axes, distances, generators
from . import metric as metric_module
from . import viz


class Explorer(widgets.VBox):
    """The explorer app; its widgets are attributes (`model`, `eye_class`, `seed`, `rank`, `step`, `mode`).

    Parameters
    ----------
    models : names of `generators.MODELS`, or {label: Generator} for your own generators.
    distance : a distance name for `distances.load`, or a distance object.
    n_steps : images per strip (odd, so the middle one is the reference).
    power : steps are scaled by (λ_k/λ_1)^(-power), so every rank shows comparable change.
    """

    def __init__(self, models=generators.EMBEDDED, *, distance="lpips-alex", device="cpu",
                 n_steps: int = 7, power: float = 1 / 3, max_step: float = 8.0):
        self.device = device
        self.n_steps = n_steps | 1
        self.power = power
        self.distance = distances.load(distance, device=device) if isinstance(distance, str) else distance
        self._given = dict(models) if isinstance(models, dict) else {}
        names = list(self._given) if self._given else list(models)
        self._generators: dict = {}
        self._metrics: dict = {}

        self.model = widgets.Dropdown(options=names, value=names[0], description="model")
        self.eye_class = widgets.Dropdown(options=generators.EYE_CLASSES, value="brown", description="eye class")
        self.seed = widgets.IntText(value=0, description="seed")
        self.rank = widgets.IntSlider(value=1, min=1, max=100, description="eigen-rank")
        self.step = widgets.FloatSlider(value=max_step / 2, min=0.0, max=max_step, step=0.25,
                                        description="step")
        self.mode = widgets.ToggleButtons(options=["linear", "spherical"], value="linear", description="walk")
        self.strip = widgets.Image(format="png")
        self.curve = widgets.Output()
        self.status = widgets.HTML()
        controls = [self.model, self.eye_class, self.seed, self.rank, self.step, self.mode]
        super().__init__([widgets.HBox(controls[:3]), widgets.HBox(controls[3:]), self.strip, self.curve,
                          self.status])
        for control in controls:
            control.observe(self._on_change, names="value")
        self.update()

    def generator(self):
        """The selected generator, loaded once per (model, eye class)."""
        name = self.model.value
        if name in self._given:
            return self._given[name]
        key = (name, self.eye_class.value if name.startswith("cdcgan-eyes") else None)
        if key not in self._generators:
            options = {"eye_class": key[1]} if key[1] else {}
            self._generators[key] = generators.load(name, device=self.device, **options)
        return self._generators[key]

    def reference(self):
        """The selected code z0 (d,) and its metric, computed once per (generator, seed)."""
        G = self.generator()
        key = (id(G), self.seed.value)
        if key not in self._metrics:
            z0 = G.sample(1, seed=self.seed.value)
            self._metrics[key] = (z0[0], metric_module.metric(G, z0, self.distance, progress=False))
        return self._metrics[key]

    def codes(self) -> torch.Tensor:
        """Codes (n_steps, d) along the selected eigen-axis, from −step to +step around z0."""
        z0, result = self.reference()
        steps = torch.linspace(-self.step.value, self.step.value, self.n_steps, dtype=torch.float64)
        return axes.explore(z0, result.eigvecs[0], result.eigvals[0], [self.rank.value], steps,
                            mode=self.mode.value, power=self.power)[0]

    def update(self) -> None:
        """Recompute the strip and the curve for the current widget values."""
        G = self.generator()
        self.eye_class.disabled = not self.model.value.startswith("cdcgan-eyes")
        self.rank.max = G.latent_dim
        z0, result = self.reference()
        codes = self.codes()
        images = axes.render(G, codes)
        self.images = images
        self.distances = axes.distance_curves(G, self.distance, z0, codes)
        self.strip.value = _png(viz.tile(viz.to_uint8(images), nrow=self.n_steps))
        self.curve.clear_output(wait=True)
        with self.curve:
            steps = np.linspace(-self.step.value, self.step.value, self.n_steps)
            display(viz.line_chart(steps, {f"rank {self.rank.value}": self.distances.cpu().numpy()},
                                   title="distance to the reference along the axis", xlabel="step",
                                   ylabel="distance"))
        eigval = float(result.eigvals[0, self.rank.value - 1])
        self.status.value = (f"{G.name}, seed {self.seed.value}: eigenvalue λ<sub>{self.rank.value}</sub> = "
                             f"{eigval:.3g} (λ<sub>1</sub> = {float(result.eigvals[0, 0]):.3g})")

    def _on_change(self, change) -> None:
        self.update()


def explore(models=generators.EMBEDDED, **options) -> Explorer:
    """The explorer app for `models` (see `Explorer`); display it as the last line of a notebook cell."""
    return Explorer(models, **options)


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


