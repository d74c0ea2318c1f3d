"""Metric tensors at many latent points (`metric_many`): chunk by chunk, locally or on a Dask cluster, each finished
chunk written to an optional store (`helpers.store`) so that runs resume; `load_store` reads a finished store.
"""
from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from . import checks
from . import metric as metric_module
from . import store as store_module
from .metric import Metric

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
        digest = store_module.open_parts(store, _fingerprint(G, zs, distance, method, options, batch_size), chunks,
                                         comparable=_comparable)

        def same_points(i, result):
            expected = zs[chunks[i][0]:chunks[i][1]].cpu()
            if result.method != method or not torch.equal(result.z, expected.to(result.z.dtype)):
                raise ValueError(f"it holds other points or another method ({result.method!r})")

        results = store_module.present_parts(store, len(chunks), digest, _read_chunk, same_points)
    todo = [i for i in range(len(chunks)) if i not in results]

    bar = tqdm(total=len(chunks), initial=len(chunks) - len(todo), desc=f"metric_many ({method})", unit="chunk",
               disable=not progress)

    def finish(i: int, result: Metric) -> None:
        results[i] = result
        if store is not None:
            result.save(store / store_module.part_file(i, len(chunks)), extra={store_module.PART_DIGEST: digest})
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
    return _concatenate(store_module.load_parts(Path(path), _read_chunk))


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


# --- the store: a manifest fingerprinting the request, one file of Metrics per chunk -----------------------------

def _fingerprint(G, zs, distance, method, options, batch_size) -> dict:
    data = zs.detach().cpu().contiguous()
    fingerprint = {
        "zs_sha256": store_module.tensor_digest(data),
        "zs_shape": list(data.shape),
        "zs_dtype": str(data.dtype),
        "method": method,
        "options": options | ({"basis": metric_module.describe_basis(options["basis"])}
                              if options.get("basis") is not None else {}),
        "batch_size": batch_size,
        "generator": getattr(G, "name", type(G).__name__),
        "generator_sha256": store_module.model_digest(G),
        "latent_dim": getattr(G, "latent_dim", data.shape[1]),
        "distance": store_module.describe(distance),
        "distance_sha256": store_module.model_digest(distance),
    }
    return store_module.as_json(fingerprint)  # as it reads back from the manifest


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


def _read_chunk(file: Path) -> tuple[Metric, str | None]:
    """The Metric in a chunk file and the store digest it records (None if it has none)."""
    # an open file rather than the path: np.load leaks its own handle when a zip file is truncated
    with open(file, "rb") as f:
        result = Metric.load(f)
        f.seek(0)
        return result, store_module.recorded_digest(f)


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
