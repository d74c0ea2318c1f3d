"""Metric tensors at many latent points: computed chunk by chunk, locally or on a Dask cluster.

`metric_many` writes each finished chunk atomically to an optional store, so runs resume; `load_store` reads it.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import re
import warnings
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from . import metric as metric_module
from .assets import atomic_path
from .metric import Metric

MANIFEST = "manifest.json"
STORE_FORMAT = 1
SPEED_OPTIONS = ("chunk_size", "max_memory")  # how fast, not what is computed: a store resumes with others
ADDED_OPTIONS = ("block", "basis")  # added later; unset (None) they change nothing stores made before hold


def metric_many(G: Callable, zs: torch.Tensor, distance: Callable, *, store: str | Path | None = None,
                batch_size: int = 16, method: str = "jacobian", client=None, progress: bool = True,
                **options) -> Metric:
    """`metric.metric` at n points zs (n, d), batch_size points at a time; one Metric (CPU tensors) in zs's order.

    Parameters
    ----------
    G, distance, method, **options : as for `metric.metric` (options: k, eps, chunk_size, max_memory, tol,
        block, basis). A warm-start `basis` is (d, m) for every point or (n, d, m), one per point of zs.
    zs : (n, d) latent codes; each chunk is moved to G's device.
    store : directory for the results. Each finished chunk is written there atomically as it completes,
        with a manifest.json fingerprinting the request; a rerun loads the chunks present and computes the
        rest. A store made for different inputs raises ValueError (chunk_size and max_memory may differ: they
        change speed, not results; a warm-start basis is an input, fingerprinted by its sha256); an
        unreadable chunk is recomputed.
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
    _check_basis(options["basis"], zs, method)
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
                finish(i, _compute(G, zs[start:stop].to(device), distance, method, _chunk_options(options, start, stop)))
        elif todo:
            _run_on_cluster(client, G, distance, zs, chunks, todo, method, options, finish)
    finally:
        bar.close()
    result = _concatenate([results[i] for i in range(len(chunks))])
    if options["basis"] is not None:  # the whole request's basis, not the first chunk's share of it
        result.options["basis"] = metric_module.describe_basis(options["basis"])
    return result


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
                             _chunk_options(options, *chunks[i]), pure=False): i for i in todo}
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
        "options": options | ({"basis": metric_module.describe_basis(options["basis"])}
                              if options.get("basis") is not None else {}),
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
    """The part of a fingerprint that must match: without the options that only change speed, without
    allow_tf32 when off and the 'subspace' options when unset (what stores made before those options hold),
    and with tol=None read as the value it stands for."""
    options = {k: v for k, v in fingerprint.get("options", {}).items()
               if k not in SPEED_OPTIONS and not (k == "allow_tf32" and v is False)
               and not (k in ADDED_OPTIONS and v is None)}
    if "tol" in options and options["tol"] is None:
        options["tol"] = metric_module.SUBSPACE_TOL if fingerprint.get("method") == "subspace" else 0.0
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


def _check_basis(basis, zs, method) -> None:
    """A warm-start basis for metric_many: (d, m) shared or (n, d, m) per point (`metric` checks the rest)."""
    if basis is None:
        return
    if method != "subspace":
        raise ValueError(f"basis (a warm start) is an option of method='subspace', not of {method!r}")
    if not isinstance(basis, torch.Tensor):
        raise TypeError(f"basis must be a torch.Tensor of shape (d, m) or (n, d, m), got {type(basis).__name__}")
    n, d = zs.shape
    if not (basis.dim() == 2 and basis.shape[0] == d) and not (basis.dim() == 3 and basis.shape[:2] == (n, d)):
        raise ValueError(f"basis must have shape ({d}, m) for every point or ({n}, {d}, m) for the {n} points, "
                         f"got {tuple(basis.shape)}")


def _chunk_options(options: dict, start: int, stop: int) -> dict:
    """The options of one chunk: a per-point basis (n, d, m) cut to the chunk's points."""
    basis = options.get("basis")
    return options | {"basis": basis[start:stop]} if basis is not None and basis.dim() == 3 else options


def _device(G, z) -> torch.device:
    device = getattr(G, "device", None)
    return device if isinstance(device, torch.device) else z.device


def _to_cpu(m: Metric) -> Metric:
    optional = {name: None if getattr(m, name) is None else getattr(m, name).cpu()
                for name in metric_module.OPTIONAL_ARRAYS}
    return Metric(m.H.cpu(), m.eigvals.cpu(), m.eigvecs.cpu(), m.z.cpu(), m.method, m.seconds, dict(m.options),
                  **optional)


def _concatenate(parts: list[Metric]) -> Metric:
    tensors = (torch.cat([getattr(p, name) for p in parts]) for name in ("H", "eigvals", "eigvecs", "z"))
    optional = {name: torch.cat([getattr(p, name) for p in parts])
                if all(getattr(p, name) is not None for p in parts) else None
                for name in metric_module.OPTIONAL_ARRAYS}
    return Metric(*tensors, method=parts[0].method, seconds=sum(p.seconds for p in parts),
                  options=dict(parts[0].options), **optional)
