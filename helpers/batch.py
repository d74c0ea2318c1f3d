"""Metric tensors at many latent points: computed chunk by chunk, locally or on a Dask cluster.

`metric_many` writes each finished chunk atomically to an optional store, so runs resume; `load_store` reads it.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import re
import time
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from . import checks
from . import metric as metric_module
from .assets import file_lock, temp_beside
from .metric import Metric

STORE_ROOT = Path("runs") / "metrics"  # relative to the working directory (the book runs from the repository root)
MANIFEST = "manifest.json"
STORE_FORMAT = 2  # 2: generator and distance fingerprinted by their weights; chunks carry the manifest's digest
SPEED_OPTIONS = ("chunk_size", "max_memory")  # how fast, not what is computed: a store resumes with others
ADDED_OPTIONS = ("block", "basis", "relative", "hvp_kind")  # added later; unset (None, False) they change nothing
CLUSTER_RETRIES = 2  # times the models are sent again after Dask workers died and took them with them


def metric_many(G: Callable, zs: torch.Tensor, distance: Callable, *, store: str | Path | None = None,
                batch_size: int = 16, method: str = "jacobian", client=None, progress: bool = True,
                **options) -> Metric:
    """`metric.metric` at n points zs (n, d), batch_size points at a time; one Metric (CPU tensors) in zs's order.

    Parameters
    ----------
    G, distance, method, **options : as for `metric.metric` (options: k, eps, chunk_size, max_memory, tol,
        block, basis, relative, hvp_kind). A warm-start `basis` is (d, m) for every point or (n, d, m), one per point of zs; it is
        an input, fingerprinted by its sha256.
    zs : (n, d) latent codes; each chunk is moved to G's device.
    store : directory for the results. Each finished chunk is written there atomically as it completes,
        with a manifest.json fingerprinting the request; a rerun loads the chunks present and computes the
        rest. A store made for different inputs raises ValueError (chunk_size and max_memory may differ: they
        change speed, not results); an unreadable chunk is recomputed. The fingerprint holds sha256 digests
        of zs and of G's and the distance's weights (every parameter and buffer), module classes and plain
        attributes: a generator with other weights under the same name is another request. A plain function
        (G or distance not an nn.Module) is recognised by its qualified name, its code and the tensors,
        arrays and numbers it closes over or reads from its module's globals; state it reaches otherwise
        (attributes of other objects, files) is not seen, so wrap such state in an nn.Module. The manifest
        is created exclusively: of two processes starting one store with different requests, one raises
        the ValueError. Each chunk records the manifest's digest, and a chunk of another store is not used.
        A store written before format 2 (fingerprinted by G's name only) cannot be verified: it is moved
        into a `format-1` folder inside the store (load_store reads it there), with a warning, and computed
        afresh.
    batch_size : points per chunk (one file, one task).
    client : a `dask.distributed.Client`: chunks run on its workers (G and distance are sent once per worker).
        If workers die and the models are lost with them, they are sent again (CLUSTER_RETRIES times);
        past that, or when one chunk keeps killing workers, RuntimeError says so (a rerun with the same
        store resumes from the chunks already written).
    progress : show a progress bar over chunks.

    `seconds` of the result is the sum of the chunks' compute times (loaded chunks count their stored time).
    """
    zs = checks.points(G, zs)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if method not in metric_module.METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(metric_module.METHODS)}")
    options = _effective_options(options)
    n = len(zs)
    checks.warm_start_request(options["basis"], zs, method)
    chunks = [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    results: dict[int, Metric] = {}
    digest = None
    if store is not None:
        store = Path(store)
        digest = _open_store(store, _fingerprint(G, zs, distance, method, options, batch_size), chunks)
        results = _load_present(store, zs, chunks, method, digest)
    todo = [i for i in range(len(chunks)) if i not in results]

    bar = tqdm(total=len(chunks), initial=len(chunks) - len(todo), desc=f"metric_many ({method})", unit="chunk",
               disable=not progress)

    def finish(i: int, result: Metric) -> None:
        results[i] = result
        if store is not None:
            result.save(store / _chunk_file(i, len(chunks)), extra={"store_digest": digest})
        bar.update()

    try:
        if client is None:
            device = _device(G, zs)
            for i in todo:
                start, stop = chunks[i]
                finish(i, _compute(G, zs[start:stop].to(device), distance, method,
                                   _chunk_options(options, start, stop)))
        elif todo:
            _run_on_cluster(client, G, distance, zs, chunks, todo, method, options, finish, store)
    finally:
        bar.close()
    result = _concatenate([results[i] for i in range(len(chunks))])
    if options["basis"] is not None:  # the whole request's basis, not the first chunk's share of it
        result.options["basis"] = metric_module.describe_basis(options["basis"])
    return result


def load_store(path: str | Path) -> Metric:
    """Read a complete store written by `metric_many` as one Metric.

    ValueError lists missing chunks, names an unreadable one, or a chunk that was not written for this store's
    manifest (another request's results). A format-1 store (before weights were fingerprinted) is read with
    a warning that its chunks cannot be verified.
    """
    path = Path(path)
    manifest = _read_manifest(path, old_ok=True)
    digest = manifest.get("digest")
    if digest is None:
        warnings.warn(f"{path} is a format-{manifest['format']} store: its chunks carry no fingerprint, so it cannot "
                      f"be verified that they all belong to one request", stacklevel=2)
    entries = manifest["chunks"]
    missing = [i for i, entry in enumerate(entries) if not (path / entry["file"]).exists()]
    if missing:
        listed = ", ".join(str(i) for i in missing[:20]) + (", ..." if len(missing) > 20 else "")
        raise ValueError(f"store {path} is incomplete: {len(missing)} of {len(entries)} chunks missing ({listed}); "
                         f"run metric_many with the same inputs and store to finish it")
    parts = []
    for entry in entries:
        file = path / entry["file"]
        try:
            part, chunk_digest = _read_chunk(file)
        except Exception as err:  # zipfile, numpy and OS errors all mean the same: unreadable
            raise ValueError(f"cannot read {file} ({type(err).__name__}: {err}); run metric_many "
                             f"with the same inputs and store to recompute it") from err
        if digest is not None and chunk_digest != digest:
            raise ValueError(f"{file} was not written for this store's manifest (its fingerprint digest is "
                             f"{_short(chunk_digest, 20)}, the manifest's {digest[:16]}...): it holds another "
                             f"request's results. Delete it and run metric_many with the same inputs and store to "
                             f"recompute it")
        if len(part) != entry["stop"] - entry["start"]:
            raise ValueError(f"{file} holds {len(part)} points, the manifest says {entry['stop'] - entry['start']}; "
                             f"delete it and run metric_many with the same inputs and store to recompute it")
        parts.append(part)
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
            cause = err.__cause__
            reason = type(cause).__name__ if cause is not None else str(err).splitlines()[0]
            notes.append(f"{name} left out: its published weights could not be downloaded ({reason}); it needs "
                         f"the internet")
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


def _run_on_cluster(client, G, distance, zs, chunks, todo, method, options, finish, store=None) -> None:
    """Run the chunks `todo` on the cluster, calling finish(i, result) as each completes.

    Workers that die (a nanny restarts them empty) lose the models sent to them; once no worker holds a copy,
    the chunks still queued are cancelled. Then the models are sent again and those chunks resubmitted, up to
    CLUSTER_RETRIES times. A chunk that keeps killing its workers (Dask's KilledWorker) is not retried.
    """
    from concurrent.futures import CancelledError

    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    pending = list(todo)
    lost = None
    for attempt in range(CLUSTER_RETRIES + 1):
        if attempt:
            warnings.warn(f"Dask workers died and the generator and distance sent to them were lost; sending them "
                          f"again for the {len(pending)} chunk(s) left", RuntimeWarning, stacklevel=3)
        handles = [_scatter(client, G, "generator"), _scatter(client, distance, "distance")]
        futures = {client.submit(_chunk_task, handles[0], handles[1], zs[chunks[i][0]:chunks[i][1]].cpu(), method,
                                 _chunk_options(options, *chunks[i]), pure=False): i for i in pending}
        lost = None
        try:
            for future in as_completed(list(futures)):
                i = futures[future]
                try:
                    result = future.result()
                except CancelledError as err:
                    if all(h.status == "finished" for h in handles):
                        raise  # cancelled by someone else, not because the models were lost
                    lost = err
                    break
                except KilledWorker as err:
                    raise RuntimeError(f"chunk {i} (points {chunks[i][0]} to {chunks[i][1] - 1}) was running on Dask "
                                       f"workers that died each time (KilledWorker: out of memory? a crash in the "
                                       f"model?); {_resume_note(store, len(todo) - len(pending))}") from err
                finish(i, result)
                pending.remove(i)
        finally:  # on success this releases the workers' copies; on error it also stops the chunks still queued
            client.cancel(list(futures) + handles)
        if lost is None:
            return
    raise RuntimeError(f"Dask workers died and lost the generator and distance sent to them {CLUSTER_RETRIES + 1} "
                       f"time(s); {len(pending)} chunk(s) were not computed; "
                       f"{_resume_note(store, len(todo) - len(pending))}") from lost


def _resume_note(store, done: int) -> str:
    if store is None:
        return "pass store= to metric_many so that a rerun keeps the chunks already finished"
    return (f"the {done} chunk(s) finished in this run are in {store}, and rerunning metric_many with the same "
            f"store computes only the rest")


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
        "zs_sha256": _tensor_digest(data),
        "zs_shape": list(data.shape),
        "zs_dtype": str(data.dtype),
        "method": method,
        "options": options | ({"basis": metric_module.describe_basis(options["basis"])}
                              if options.get("basis") is not None else {}),
        "batch_size": batch_size,
        "generator": getattr(G, "name", type(G).__name__),
        "generator_sha256": model_digest(G),
        "latent_dim": getattr(G, "latent_dim", data.shape[1]),
        "distance": _describe(distance),
        "distance_sha256": model_digest(distance),
    }
    return json.loads(json.dumps(fingerprint))  # as it reads back from the manifest (tuples become lists)


def _tensor_digest(t: torch.Tensor) -> str:
    return hashlib.sha256(_tensor_bytes(t)).hexdigest()


def _tensor_bytes(t: torch.Tensor):
    t = t.detach()
    if t.device.type == "meta":
        return b"meta"
    return t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data


def model_digest(obj) -> str:
    """sha256 of what a generator or distance computes with: for an nn.Module, every parameter and buffer
    (key, dtype, shape, bytes), every submodule's qualified class and its plain attributes (numbers, strings,
    functions); for a plain function, its qualified name, code and the values it closes over or reads from
    its module's globals (tensors, arrays, numbers, modules). Stable across processes and devices."""
    digest = hashlib.sha256()
    _feed(digest, obj, set(), 0)
    return digest.hexdigest()


_PLAIN = (type(None), bool, int, float, complex, str, bytes, slice, torch.dtype, torch.device)


def _feed(digest, obj, seen: set, depth: int) -> None:
    """Add obj to the digest (see `model_digest`); ids in `seen` are fed once, recursion stops at depth 12."""
    update = lambda *parts: digest.update(("\x1f".join(map(str, parts)) + "\x1e").encode())  # noqa: E731
    if isinstance(obj, _PLAIN):
        update("plain", repr(obj))
        return
    if isinstance(obj, torch.Tensor):
        update("tensor", obj.dtype, tuple(obj.shape))
        digest.update(_tensor_bytes(obj))
        return
    if isinstance(obj, np.ndarray):
        update("array", obj.dtype.str, obj.shape)
        digest.update(np.ascontiguousarray(obj).data if obj.dtype != object else repr(obj.tolist()).encode())
        return
    if isinstance(obj, types.ModuleType):
        update("module", obj.__name__)
        return
    if id(obj) in seen or depth > 12:
        update("seen" if id(obj) in seen else "deep", _qualname(type(obj)))
        return
    seen.add(id(obj))
    if isinstance(obj, (list, tuple)):
        update(type(obj).__name__, len(obj))
        for item in obj:
            _feed(digest, item, seen, depth + 1)
    elif isinstance(obj, (set, frozenset)):
        update("set", sorted(repr(item) for item in obj))
    elif isinstance(obj, dict):
        update("dict", len(obj))
        for key in sorted(obj, key=repr):
            update("key", repr(key))
            _feed(digest, obj[key], seen, depth + 1)
    elif isinstance(obj, torch.nn.Module):
        for name, module in obj.named_modules(remove_duplicate=False):
            update("module", name, _qualname(type(module)))
            _feed_attributes(digest, module, seen, depth)
        state = obj.state_dict(keep_vars=True)
        for key, buffer in obj.named_buffers(remove_duplicate=False):  # non-persistent buffers too
            state.setdefault(key, buffer)
        for key, tensor in sorted(state.items()):
            update("state", key)
            _feed(digest, tensor, seen, depth + 1)
    elif isinstance(obj, types.FunctionType):
        update("function", obj.__module__, obj.__qualname__)
        _feed_code(digest, obj.__code__, obj.__globals__, seen, depth)
        _feed(digest, obj.__defaults__, seen, depth + 1)
        _feed(digest, obj.__kwdefaults__, seen, depth + 1)
        for cell in obj.__closure__ or ():
            try:
                _feed(digest, cell.cell_contents, seen, depth + 1)
            except ValueError:  # an empty cell
                update("empty cell")
    elif isinstance(obj, types.MethodType):
        update("method")
        _feed(digest, obj.__func__, seen, depth + 1)
        _feed(digest, obj.__self__, seen, depth + 1)
    elif isinstance(obj, functools.partial):
        update("partial")
        _feed(digest, (obj.func, obj.args, obj.keywords), seen, depth + 1)
    elif isinstance(obj, (types.BuiltinFunctionType, type)):
        update("named", _qualname(obj))
    else:  # another callable or object: its class and plain attributes
        update("object", _qualname(type(obj)))
        _feed_attributes(digest, obj, seen, depth)


def _feed_attributes(digest, obj, seen, depth) -> None:
    """The public instance attributes of obj (a module's parameters, buffers and submodules are fed apart)."""
    for key, value in sorted(getattr(obj, "__dict__", {}).items()):
        if key.startswith("_") or isinstance(value, torch.nn.Module):
            continue
        digest.update(f"attr\x1f{key}\x1e".encode())
        _feed(digest, value, seen, depth + 1)


def _feed_code(digest, code, namespace, seen, depth) -> None:
    """Bytecode, constants and the globals it names (nested code objects included)."""
    digest.update(code.co_code)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _feed_code(digest, const, namespace, seen, depth)
        else:
            _feed(digest, const, seen, depth + 1)
    for name in code.co_names:
        if name in namespace:
            digest.update(f"global\x1f{name}\x1e".encode())
            _feed(digest, namespace[name], seen, depth + 1)


def _qualname(kind) -> str:
    return f"{getattr(kind, '__module__', '?')}.{getattr(kind, '__qualname__', repr(kind))}"


def _describe(obj) -> str:
    """repr without memory addresses (a function's repr changes every run)."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(obj))


def _digest(fingerprint: dict) -> str:
    """The digest of a new store's fingerprint (its comparable part), recorded in the manifest and in every chunk.
    Computed once, when the store is created: chunks are compared with the manifest's recorded value."""
    return hashlib.sha256(json.dumps(_comparable(fingerprint), sort_keys=True).encode()).hexdigest()


def _open_store(path: Path, fingerprint: dict, chunks) -> str:
    """Check an existing store's manifest against this request, or start a new store; returns its digest.

    The manifest is created exclusively: if another process creates it first, this one checks against it.
    A format-1 store is moved aside first (see `_set_aside`).
    """
    if _format_of(path) == 1:
        aside = _set_aside(path)
        if aside is not None:
            warnings.warn(f"{path} was a format-1 metric store, made before generators were recognised by their "
                          f"weights, so it cannot be verified against this request; it was moved to {aside} "
                          f"(load_store reads it there) and the metrics are computed afresh", stacklevel=3)
    if not (path / MANIFEST).exists():
        if path.is_dir() and any(path.glob("chunk-*.npz")):
            raise ValueError(f"{path} holds chunk files but no {MANIFEST}: cannot tell what they are; use another "
                             f"store directory")
        manifest = {"format": STORE_FORMAT, "fingerprint": fingerprint, "digest": _digest(fingerprint),
                    "n_points": chunks[-1][1],
                    "chunks": [{"file": _chunk_file(i, len(chunks)), "start": start, "stop": stop}
                               for i, (start, stop) in enumerate(chunks)]}
        if _create_exclusive(path / MANIFEST, json.dumps(manifest, indent=1)):
            return manifest["digest"]
    manifest = _read_manifest(path, wait=True)
    stored = _comparable(manifest["fingerprint"])
    fingerprint = _comparable(fingerprint)
    differ = [key for key in fingerprint if stored.get(key) != fingerprint[key]]
    differ += [key for key in stored if key not in fingerprint]
    if differ:
        details = "; ".join(f"{key} differs (store: {_short(stored.get(key))}, "
                            f"now: {_short(fingerprint.get(key))})" for key in differ)
        raise ValueError(f"store {path} was made for a different request: {details}. Use another store "
                         f"directory (results are never mixed)")
    return manifest["digest"]


def _format_of(path: Path):
    """The format number of the store's manifest, or None (no manifest, or unreadable)."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest.get("format") if isinstance(manifest, dict) else None


def _set_aside(path: Path) -> Path | None:
    """Move a format-1 store's chunks and manifest into a new folder path/format-1 (or format-1-2, ...), under a
    lock so that concurrent callers move it once; returns that folder, or None if another process did it.
    The manifest moves last: if this is interrupted, the next call moves the rest."""
    with file_lock(path / ".store.lock"):
        if _format_of(path) != 1:
            return None
        aside = next(path / name for name in ["format-1"] + [f"format-1-{i}" for i in range(2, 1000)]
                     if not (path / name / MANIFEST).exists())
        try:
            aside.mkdir(exist_ok=True)
            for chunk in path.glob("chunk-*.npz"):
                os.replace(chunk, aside / chunk.name)
            os.replace(path / MANIFEST, aside / MANIFEST)
        except OSError as err:
            raise ValueError(f"store {path} was written by an older version of helpers (store format 1), which "
                             f"recognised the generator by its name only, and it could not be moved aside ({err}); "
                             f"use a new store directory (load_store still reads this one)") from err
    return aside


def _create_exclusive(file: Path, text: str) -> bool:
    """Write `text` to `file` unless it exists, atomically: True if this call created it, False if it existed.

    The content is written to a temporary file and hard-linked into place (link fails if `file` exists); on a
    file system without hard links it falls back to an exclusive open (readers then retry a moment).
    """
    partial = temp_beside(file)
    try:
        partial.write_text(text)
        try:
            os.link(partial, file)
            return True
        except FileExistsError:
            return False
        except OSError:
            pass
        try:
            with open(file, "x") as f:
                f.write(text)
            return True
        except FileExistsError:
            return False
    finally:
        partial.unlink(missing_ok=True)


def _comparable(fingerprint: dict) -> dict:
    """The part of a fingerprint that must match: without the options that only change speed, without
    allow_tf32 when off and the 'subspace' options when unset (what stores made before those options hold),
    and with tol=None read as the value it stands for."""
    options = {k: v for k, v in fingerprint.get("options", {}).items()
               if k not in SPEED_OPTIONS and not (k == "allow_tf32" and v is False)
               and not (k in ADDED_OPTIONS and (v is None or v is False))}
    if "tol" in options and options["tol"] is None:
        options["tol"] = metric_module.SUBSPACE_TOL if fingerprint.get("method") == "subspace" else 0.0
    return fingerprint | {"options": options}


def _short(value, width: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def _read_manifest(path: Path, *, old_ok: bool = False, wait: bool = False) -> dict:
    """The store's manifest. An older format raises ValueError saying why, unless old_ok (reading only).
    wait: retry for up to a second if the file is still being written (the exclusive-open fallback)."""
    file = path / MANIFEST
    if not file.exists():
        raise FileNotFoundError(f"{path} is not a metric store: it has no {MANIFEST}")
    for attempt in range(20 if wait else 1):
        try:
            manifest = json.loads(file.read_text())
            break
        except (OSError, ValueError) as err:
            if attempt == (19 if wait else 0):
                raise ValueError(f"cannot read {file} ({err}); use another store directory") from err
            time.sleep(0.05)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("format"), int):
        raise ValueError(f"{file} is not a metric store manifest")
    if manifest["format"] == STORE_FORMAT and isinstance(manifest.get("digest"), str):
        return manifest
    if manifest["format"] == 1:
        if old_ok:
            return manifest
        raise ValueError(f"store {path} was written by an older version of helpers (store format 1), which "
                         f"recognised the generator by its name only, so its chunks cannot be checked against this "
                         f"generator's and distance's weights. Use a new store directory (load_store still reads "
                         f"this one)")
    raise ValueError(f"{file} is a format-{manifest['format']} store manifest; this version of helpers reads "
                     f"format {STORE_FORMAT} (and 1 with load_store)")


def _read_chunk(file: Path) -> tuple[Metric, str | None]:
    """The Metric in a chunk file and the store digest it records (None if it has none)."""
    # an open file rather than the path: np.load leaks its own handle when a zip file is truncated
    with open(file, "rb") as f:
        result = Metric.load(f)
        f.seek(0)
        with np.load(f, allow_pickle=False) as data:
            digest = str(data["store_digest"]) if "store_digest" in data.files else None
    return result, digest


def _load_present(path: Path, zs, chunks, method, digest: str) -> dict[int, Metric]:
    """The chunks already in the store; an unreadable or foreign chunk file is left out (recomputed) with a warning."""
    results = {}
    for i, (start, stop) in enumerate(chunks):
        file = path / _chunk_file(i, len(chunks))
        if not file.exists():
            continue
        try:
            result, chunk_digest = _read_chunk(file)
            if chunk_digest != digest:
                raise ValueError("it was not written for this store's manifest (another fingerprint digest)")
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


def _chunk_options(options: dict, start: int, stop: int) -> dict:
    """The options of one chunk: a per-point basis (n, d, m) cut to the chunk's points."""
    basis = options.get("basis")
    return options | {"basis": basis[start:stop]} if basis is not None and basis.dim() == 3 else options
