"""The models the chapters load, each with its metrics at its sampled codes: computed once by `batch.metric_many`
into one store per model, distance, number of codes and seed under runs/metrics, and read back by every chapter;
`load_models` is the analysis chapters' set-up in one call.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from . import analysis, assets, batch, distances, generators
from .metric import Metric

STORE_ROOT = Path("runs") / "metrics"  # relative to the working directory (the book runs from the repository root)


@dataclass
class ModelMetrics:
    """A named generator G and its metrics at its sampled codes (`metric.z`, (n, d)).

    For a model in `generators.FULL_SPACE` (the conditional eyes): `full` is the generator on its full input,
    `full_metric` the metrics there, and `metric` their restriction to G's block ("noise").
    """

    G: object
    metric: Metric
    full: object = None
    full_metric: Metric | None = None


def model_metrics(name: str, distance: str, n_points: int, seed: int, *, loaded=None, device="cpu",
                  root: str | Path = STORE_ROOT, progress: bool = False, **load_options) -> ModelMetrics:
    """Metrics of the generator `name` at G.sample(n_points, seed), computed once and shared between chapters.

    The store is root/<G.name>-<distance>-<n_points>-<seed>; every chapter that asks for the same model,
    distance, number of codes and seed reads it instead of computing again. distance : a name for
    `distances.load`; loaded : that distance already loaded (else it is loaded here). load_options go to
    `generators.load` (e.g. eye_class, weights). A model in `generators.FULL_SPACE` is computed once on its
    full input (codes from the full generator's `sample`) and restricted to its default block.
    """
    d = loaded if loaded is not None else distances.load(distance, device=device)

    def compute(G):
        return batch.metric_many(G, G.sample(n_points, seed=seed), d, progress=progress,
                                 store=Path(root) / f"{G.name}-{distance}-{n_points}-{seed}")

    G = generators.load(name, device=device, **load_options)
    if getattr(G, "pretrained", True) is False:
        raise ValueError(f"{name} loaded with random weights ({G.note}); its metrics are not results. Load it "
                         f"with weights='pretrained' (needs the internet), e.g. through many_models(online=...)")
    if name not in generators.FULL_SPACE:
        return ModelMetrics(G, compute(G))
    full = generators.load(name, device=device, **generators.FULL_SPACE[name], **load_options)
    full_metric = compute(full)
    return ModelMetrics(G, analysis.restrict_metric(full_metric, full.blocks["noise"]), full, full_metric)


def many_models(names, distance: str, n_points: int, seed: int, *, online=(), options: dict | None = None,
                loaded=None, device="cpu", root: str | Path = STORE_ROOT,
                progress: bool = False) -> tuple[dict[str, ModelMetrics], list[str]]:
    """`model_metrics` for each of `names`, then for each of `online` with its published (downloaded) weights.

    options : {name: load options}, e.g. {"cdcgan-eyes128": {"eye_class": "blue"}}. An online model (BigGAN-deep)
    whose weights cannot be downloaded is left out, never replaced by random weights; the notes (one string
    per model left out) say which and why. Returns ({name: ModelMetrics}, notes).
    """
    d = loaded if loaded is not None else distances.load(distance, device=device)
    options = options or {}
    results, notes = {}, []
    for name in tqdm([*names, *online], desc="models", unit="model", disable=not progress):
        extra = {"weights": "pretrained"} if name in online else {}
        try:
            results[name] = model_metrics(name, distance, n_points, seed, loaded=d, device=device, root=root,
                                          **{**options.get(name, {}), **extra})
        except assets.AssetError as err:
            if name not in online:
                raise
            cause = err.__cause__
            reason = type(cause).__name__ if cause is not None else str(err).splitlines()[0]
            notes.append(f"{name} left out: its published weights could not be downloaded ({reason}); it needs "
                         f"the internet")
    return results, notes


@dataclass
class Models:
    """The models an analysis chapter studies, as `load_models` loaded them: `distance` (loaded) and its name;
    results {name: `ModelMetrics`} in the order asked, online models last; notes, one per online model left
    out; options {name: load options} (eye colour, published weights); the codes' n_points and seed."""

    distance: object
    distance_name: str
    results: dict[str, ModelMetrics]
    notes: list[str]
    options: dict
    n_points: int
    seed: int
    device: str = "cpu"

    def metrics_with(self, name: str, distance: str) -> Metric:
        """Model `name`'s metrics at the same codes under another distance (a name for `distances.load`)."""
        return model_metrics(name, distance, self.n_points, self.seed, device=self.device,
                             **self.options.get(name, {})).metric

    def metrics_of(self, G, z) -> Metric:
        """The metrics of another generator G (a control) at codes z under this distance, in G's own store."""
        return batch.metric_many(G, z, self.distance, progress=False,
                                 store=STORE_ROOT / f"{G.name}-{self.distance_name}-{self.n_points}-{self.seed}")


def load_models(names, distance: str, n_points: int, seed: int, *, online=(), eye_class: str = "brown",
                device="cpu") -> Models:
    """The set-up of the analysis chapters: `distance` loaded, and the metrics of each of `names` (a name given
    twice counts once) and of each `online` model (published weights) at G.sample(n_points, seed), read from
    their stores (`many_models`). The eyes DCGAN draws eyes of `eye_class`. The notes on online models left
    out are printed; lpips's warning about torchvision's deprecated `pretrained=` is silenced.
    """
    warnings.filterwarnings("ignore", module="torchvision.models._utils")
    loaded = distances.load(distance, device=device)
    options = {"cdcgan-eyes128": {"eye_class": eye_class}, **{name: {"weights": "pretrained"} for name in online}}
    names = [name for name in dict.fromkeys(names) if name not in online]
    results, notes = many_models(names, distance, n_points, seed, online=list(online), loaded=loaded,
                                 device=device, options=options)
    for note in notes:
        print(note)
    return Models(loaded, distance, results, notes, options, n_points, seed, device)
