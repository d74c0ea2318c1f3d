"""Metric tensors at many latent points: computed chunk by chunk, locally or on a Dask cluster.

`metric_many` writes each finished chunk atomically to an optional store, so runs resume; `load_store` reads it.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from . import metric as metric_module
from .assets import atomic_path
from .metric import Metric

STORE_ROOT = Path("runs") / "metrics"  # relative to the working directory (the book runs from the repository root)
MANIFEST = "manifest.json"
STORE_FORMAT = 1
SPEED_OPTIONS = ("chunk_size", "max_memory")  # how fast, not what is computed: a store resumes with others


def metric_many(G: Callable, zs: torch.Tensor, distance: Callable, *, store: str | Path | None = None,
                batch_size: int = 16, method: str = "jacobian", client=None, progress: bool = True,
                **options) -> Metric:
    """`metric.metric` at n points zs (n, d), batch_size points at a time; one Metric (CPU tensors) in zs's order.

    Parameters
    ----------
    G, distance, method, **options : as for `metric.metric` (options: k, eps, chunk_size, max_memory, tol).
    zs : (n, d) latent codes; each chunk is moved to G's device.
    store : directory for the results. Each finished chunk is written there atomically as it completes,
        with a manifest.json fingerprinting the request; a rerun loads the chunks present and computes the
        rest. A store made for different inputs raises ValueError (chunk_size and max_memory may differ: they
        change speed, not results); an unreadable chunk is recomputed.
    batch_size : points per chunk (one file, one task).
    client : a `dask.distributed.Client`: chunks run on its workers (G and distance are sent once per worker).
    progress : show a progress bar over chunks.

    `seconds` of the result is the sum of the chunks' compute times (loaded chunks count their stored time).
    """
    zs = _check_points(G, zs)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if method not in metric_module.METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(metric_module.METHODS)}")
    options = _effective_options(options)
    n = len(zs)
    chunks = [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    results: dict[int, Metric] = {}
    if store is not None:
        store = Path(store)
        _open_store(store, _fingerprint(G, zs, distance, method, options, batch_size), chunks)
        results = _load_present(store, zs, chunks, method)
    todo = [i for i in range(len(chunks)) if i not in results]

    bar = tqdm(total=len(chunks), initial=len(chunks) - len(todo), desc=f"metric_many ({method})", unit="chunk",
               disable=not progress)

    def finish(i: int, result: Metric) -> None:
        results[i] = result
        if store is not None:
            result.save(store / _chunk_file(i, len(chunks)))
        bar.update()

    try:
        if client is None:
            device = _device(G, zs)
            for i in todo:
                start, stop = chunks[i]
                finish(i, _compute(G, zs[start:stop].to(device), distance, method, options))
        elif todo:
            _run_on_cluster(client, G, distance, zs, chunks, todo, method, options, finish)
    finally:
        bar.close()
    return _concatenate([results[i] for i in range(len(chunks))])


def load_store(path: str | Path) -> Metric:
    """Read a complete store written by `metric_many` as one Metric (ValueError listing missing chunks if not)."""
    path = Path(path)
    manifest = _read_manifest(path)
    entries = manifest["chunks"]
    missing = [i for i, entry in enumerate(entries) if not (path / entry["file"]).exists()]
    if missing:
        listed = ", ".join(str(i) for i in missing[:20]) + (", ..." if len(missing) > 20 else "")
        raise ValueError(f"store {path} is incomplete: {len(missing)} of {len(entries)} chunks missing ({listed}); "
                         f"run metric_many with the same inputs and store to finish it")
    parts = []
    for entry in entries:
        try:
            parts.append(_read_chunk(path / entry["file"]))
        except Exception as err:  # zipfile, numpy and OS errors all mean the same: unreadable
            raise ValueError(f"cannot read {path / entry['file']} ({type(err).__name__}: {err}); run metric_many "
                             f"with the same inputs and store to recompute it") from err
    return _concatenate(parts)


# --- the chapters' shared metrics ----------------------------------------------------------------------------

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
    from . import analysis, distances, generators

    d = loaded if loaded is not None else distances.load(distance, device=device)

    def compute(G):
        return metric_many(G, G.sample(n_points, seed=seed), d, progress=progress,
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
    from . import assets, distances

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
            notes.append(f"{name} left out: its pretrained weights could not be downloaded "
                         f"({str(err).splitlines()[0][:200]})")
    return results, notes


# --- computing -------------------------------------------------------------------------------------------

def _compute(G, z, distance, method, options) -> Metric:
    """One chunk: `metric.metric` at z (b, d) without its own progress bar, returned on the CPU."""
    result = metric_module.metric(G, z, distance, method=method, progress=False, **options)
    return _to_cpu(result)


def _chunk_task(G, distance, z, method, options) -> Metric:
    """What a Dask worker runs for one chunk; G and distance are the worker's own copies (scattered once)."""
    # Each worker process has its own torch, whose intra-op thread pool defaults to every core of the machine:
    # n workers would run n × cores threads on the same cores and slow each other down. Dask's parallelism is
    # across workers (and their threads), so each task runs torch single-threaded.
    torch.set_num_threads(1)
    return _compute(G, z.to(_device(G, z)), distance, method, options)


def _run_on_cluster(client, G, distance, zs, chunks, todo, method, options, finish) -> None:
    from distributed import as_completed

    handles = [_scatter(client, G, "generator"), _scatter(client, distance, "distance")]
    futures = {client.submit(_chunk_task, handles[0], handles[1], zs[chunks[i][0]:chunks[i][1]].cpu(), method,
                             options, pure=False): i for i in todo}
    try:
        for future in as_completed(list(futures)):
            finish(futures[future], future.result())
    finally:  # on success this releases the workers' copies; on error it also stops the chunks still queued
        client.cancel(list(futures) + handles)


def _scatter(client, obj, what):
    """Send obj to every worker once; the returned future stands for it in tasks."""
    import cloudpickle  # what Dask falls back to; checking first gives a short error instead of a worker traceback

    try:
        cloudpickle.dumps(obj)
    except Exception as err:
        raise TypeError(f"the {what} cannot be sent to Dask workers: it does not pickle ({type(err).__name__}: "
                        f"{err}). Make it a plain nn.Module (state in parameters and buffers, no locks, open "
                        f"files or other live handles), e.g. Generator(my_module, latent_dim), or run without "
                        f"client") from err
    # hash=False: dask would otherwise tokenize (serialize) the whole model once more just to name it
    return client.scatter(obj, broadcast=True, hash=False)


# --- the store ---------------------------------------------------------------------------------------------

def _chunk_file(i: int, n_chunks: int) -> str:
    return f"chunk-{i:0{max(5, len(str(n_chunks - 1)))}d}.npz"


def _fingerprint(G, zs, distance, method, options, batch_size) -> dict:
    data = zs.detach().cpu().contiguous()
    fingerprint = {
        "zs_sha256": hashlib.sha256(data.reshape(-1).view(torch.uint8).numpy().tobytes()).hexdigest(),
        "zs_shape": list(data.shape),
        "zs_dtype": str(data.dtype),
        "method": method,
        "options": options,
        "batch_size": batch_size,
        "generator": getattr(G, "name", type(G).__name__),
        "latent_dim": getattr(G, "latent_dim", data.shape[1]),
        "distance": _describe(distance),
    }
    return json.loads(json.dumps(fingerprint))  # as it reads back from the manifest (tuples become lists)


def _describe(obj) -> str:
    """repr without memory addresses (a function's repr changes every run)."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(obj))


def _open_store(path: Path, fingerprint: dict, chunks) -> None:
    """Check an existing store's manifest against this request, or start a new store."""
    if (path / MANIFEST).exists():
        stored = _comparable(_read_manifest(path)["fingerprint"])
        fingerprint = _comparable(fingerprint)
        differ = [key for key in fingerprint if stored.get(key) != fingerprint[key]]
        differ += [key for key in stored if key not in fingerprint]
        if differ:
            details = "; ".join(f"{key} differs (store: {_short(stored.get(key))}, "
                                f"now: {_short(fingerprint.get(key))})" for key in differ)
            raise ValueError(f"store {path} was made for a different request: {details}. Use another store "
                             f"directory (results are never mixed)")
        return
    if path.is_dir() and any(path.glob("chunk-*.npz")):
        raise ValueError(f"{path} holds chunk files but no {MANIFEST}: cannot tell what they are; use another "
                         f"store directory")
    manifest = {"format": STORE_FORMAT, "fingerprint": fingerprint, "n_points": chunks[-1][1],
                "chunks": [{"file": _chunk_file(i, len(chunks)), "start": start, "stop": stop}
                           for i, (start, stop) in enumerate(chunks)]}
    _write_json_atomic(path / MANIFEST, manifest)


def _comparable(fingerprint: dict) -> dict:
    """The part of a fingerprint that must match: without the options that only change speed, and without
    allow_tf32 when off (full float32 is what stores made before the option hold)."""
    options = {k: v for k, v in fingerprint.get("options", {}).items()
               if k not in SPEED_OPTIONS and not (k == "allow_tf32" and v is False)}
    return fingerprint | {"options": options}


def _short(value, width: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def _read_manifest(path: Path) -> dict:
    file = path / MANIFEST
    if not file.exists():
        raise FileNotFoundError(f"{path} is not a metric store: it has no {MANIFEST}")
    try:
        manifest = json.loads(file.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {file} ({err}); use another store directory") from err
    if not isinstance(manifest, dict) or manifest.get("format") != STORE_FORMAT:
        raise ValueError(f"{file} is not a format-{STORE_FORMAT} metric store manifest")
    return manifest


def _write_json_atomic(file: Path, content: dict) -> None:
    with atomic_path(file) as partial:
        partial.write_text(json.dumps(content, indent=1))


def _read_chunk(file: Path) -> Metric:
    # an open file rather than the path: np.load leaks its own handle when a zip file is truncated
    with open(file, "rb") as f:
        return Metric.load(f)


def _load_present(path: Path, zs, chunks, method) -> dict[int, Metric]:
    """The chunks already in the store; an unreadable or foreign chunk file is left out (recomputed) with a warning."""
    results = {}
    for i, (start, stop) in enumerate(chunks):
        file = path / _chunk_file(i, len(chunks))
        if not file.exists():
            continue
        try:
            result = _read_chunk(file)
            expected = zs[start:stop].cpu()
            if result.method != method or not torch.equal(result.z, expected.to(result.z.dtype)):
                raise ValueError(f"it holds other points or another method ({result.method!r})")
        except Exception as err:  # zipfile, numpy and OS errors all mean the same: unusable
            warnings.warn(f"{file} could not be read ({type(err).__name__}: {err}); recomputing chunk {i}",
                          stacklevel=3)
            continue
        results[i] = result
    return results


# --- shared pieces -----------------------------------------------------------------------------------------

def _check_points(G, zs) -> torch.Tensor:
    if not isinstance(zs, torch.Tensor):
        raise TypeError(f"zs must be a torch.Tensor, got {type(zs).__name__}")
    latent_dim = getattr(G, "latent_dim", None)
    if zs.dim() != 2 or len(zs) == 0 or (latent_dim is not None and zs.shape[1] != latent_dim):
        raise ValueError(f"zs must have shape (n, {latent_dim or 'd'}) with n >= 1, got {tuple(zs.shape)}")
    if not zs.is_floating_point():
        raise TypeError(f"zs must be floating point, got {zs.dtype}")
    return zs.detach()


def _effective_options(options: dict) -> dict:
    """`metric.metric`'s keyword options with its defaults filled in (so a default passed explicitly matches)."""
    parameters = inspect.signature(metric_module.metric).parameters
    defaults = {name: p.default for name, p in parameters.items() if p.kind is p.KEYWORD_ONLY and name != "progress"}
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)} for metric; known: {', '.join(defaults)}")
    return defaults | options


def _device(G, z) -> torch.device:
    device = getattr(G, "device", None)
    return device if isinstance(device, torch.device) else z.device


def _to_cpu(m: Metric) -> Metric:
    return Metric(m.H.cpu(), m.eigvals.cpu(), m.eigvecs.cpu(), m.z.cpu(), m.method, m.seconds, dict(m.options))


def _concatenate(parts: list[Metric]) -> Metric:
    tensors = (torch.cat([getattr(p, name) for p in parts]) for name in ("H", "eigvals", "eigvecs", "z"))
    return Metric(*tensors, method=parts[0].method, seconds=sum(p.seconds for p in parts),
                  options=dict(parts[0].options))
