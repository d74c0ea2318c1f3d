"""The one store of results on disk: a fingerprint names everything that decides a result (sha256 of tensors, models,
code), files are written atomically, and a stored result is used only where it was written for that fingerprint.
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
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
import torch

from .assets import atomic_path, file_lock, temp_beside

T = TypeVar("T")


# --- fingerprints ------------------------------------------------------------------------------------------------

def tensor_digest(t: torch.Tensor) -> str:
    """sha256 of a tensor's bytes (dtype and shape are not in it: put them in the fingerprint beside it)."""
    return hashlib.sha256(_tensor_bytes(t)).hexdigest()


def model_digest(obj) -> str:
    """sha256 of what a generator or distance computes with: for an nn.Module, every parameter and buffer
    (key, dtype, shape, bytes), every submodule's qualified class and its plain attributes (numbers, strings,
    functions); for a plain function, its qualified name, code and the values it closes over or reads from
    its module's globals (tensors, arrays, numbers, modules). Stable across processes and devices."""
    digest = hashlib.sha256()
    _feed(digest, obj, set(), 0)
    return digest.hexdigest()


def code_digest(functions) -> str:
    """sha256 of the source of these functions and classes: any edit of them, even one that changes no number,
    gives another digest, so results stored under it are computed again."""
    return hashlib.sha256("\n".join(inspect.getsource(f) for f in functions).encode()).hexdigest()


def describe(obj) -> str:
    """repr without memory addresses (a function's repr changes every run)."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(obj))


def as_json(fingerprint):
    """The fingerprint as it reads back from a JSON file (tuples become lists), so a stored one compares equal."""
    return json.loads(json.dumps(fingerprint))


def fingerprint_digest(fingerprint: dict) -> str:
    """sha256 of a fingerprint's JSON with sorted keys: the key results are stored and found under."""
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()


def _tensor_bytes(t: torch.Tensor):
    t = t.detach()
    if t.device.type == "meta":
        return b"meta"
    return t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data


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


# --- files -------------------------------------------------------------------------------------------------------

def create_exclusive(file: Path, text: str) -> bool:
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


def keyed_file(folder: str | Path, fingerprint: dict) -> Path:
    """Where the result of `fingerprint` is stored in `folder`: one .npz file named by its digest."""
    return Path(folder) / f"{fingerprint_digest(fingerprint)[:32]}.npz"


def save_npz(file: str | Path, fingerprint: dict | None = None, **arrays) -> Path:
    """Write named arrays (and strings, numbers) to an .npz file atomically, creating its folder; with a
    fingerprint, it is written into the file (as JSON) for `load_npz` to check."""
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    if fingerprint is not None:
        arrays["fingerprint"] = json.dumps(fingerprint, sort_keys=True)
    with atomic_path(file) as partial, open(partial, "wb") as f:
        np.savez(f, **arrays)
    return file


def load_npz(file: str | Path, fingerprint: dict | None = None) -> dict[str, np.ndarray]:
    """Every array of an .npz file written by `save_npz`; with `fingerprint`, ValueError unless the file was
    written for it."""
    # an open file rather than the path: np.load leaks its own handle when a zip file is truncated
    with open(file, "rb") as f, np.load(f, allow_pickle=False) as data:
        if fingerprint is not None and json.loads(str(data["fingerprint"])) != fingerprint:
            raise ValueError(f"{file} holds the results of other parameters (its fingerprint differs)")
        return {name: data[name] for name in data.files}


def reusable(file: Path, read: Callable[[Path], T], redo: str) -> T | None:
    """read(file) where the file is there and passes read's checks; None where it is absent, and None with a
    warning that names it, the reason and what happens instead (`redo`) where it is truncated, unreadable or
    written for another request."""
    if not file.exists():
        return None
    try:
        return read(file)
    except Exception as err:  # zipfile, numpy, OS and fingerprint errors all mean the same: not usable
        warnings.warn(f"{file} could not be read ({type(err).__name__}: {err}); {redo}", stacklevel=2)
        return None


# --- a request stored in parts: a manifest that fingerprints it, one file per part ----------------------------

MANIFEST = "manifest.json"
PARTS_FORMAT = 2  # 2: models fingerprinted by their weights; parts carry the manifest's digest
PART_DIGEST = "store_digest"  # the entry of a part file that holds the digest of the manifest it was written for


def part_file(i: int, n_parts: int) -> str:
    return f"chunk-{i:0{max(5, len(str(n_parts - 1)))}d}.npz"


def open_parts(path: Path, fingerprint: dict, parts: list[tuple[int, int]], *,
               comparable: Callable[[dict], dict] = lambda fingerprint: fingerprint) -> str:
    """Check an existing store's manifest against this request, or start a new store of `parts` (start, stop);
    returns the digest of the request's comparable part, which every part file records (`PART_DIGEST`).

    comparable : the part of a fingerprint that must match (e.g. without options that only change speed). The
    manifest is created exclusively: if another process creates it first, this one checks against it. A
    format-1 store is moved aside first (see `set_aside`).
    """
    if format_of(path) == 1:
        aside = set_aside(path)
        if aside is not None:
            warnings.warn(f"{path} was a format-1 metric store, made before generators were recognised by their "
                          f"weights, so it cannot be verified against this request; it was moved to {aside} "
                          f"(load_store reads it there) and the metrics are computed afresh", stacklevel=3)
    if not (path / MANIFEST).exists():
        if path.is_dir() and any(path.glob("chunk-*.npz")):
            raise ValueError(f"{path} holds chunk files but no {MANIFEST}: cannot tell what they are; use another "
                             f"store directory")
        manifest = {"format": PARTS_FORMAT, "fingerprint": fingerprint,
                    "digest": fingerprint_digest(comparable(fingerprint)), "n_points": parts[-1][1],
                    "chunks": [{"file": part_file(i, len(parts)), "start": start, "stop": stop}
                               for i, (start, stop) in enumerate(parts)]}
        if create_exclusive(path / MANIFEST, json.dumps(manifest, indent=1)):
            return manifest["digest"]
    manifest = read_manifest(path, wait=True)
    stored = comparable(manifest["fingerprint"])
    fingerprint = comparable(fingerprint)
    differ = [key for key in fingerprint if stored.get(key) != fingerprint[key]]
    differ += [key for key in stored if key not in fingerprint]
    if differ:
        details = "; ".join(f"{key} differs (store: {_short(stored.get(key))}, "
                            f"now: {_short(fingerprint.get(key))})" for key in differ)
        raise ValueError(f"store {path} was made for a different request: {details}. Use another store "
                         f"directory (results are never mixed)")
    return manifest["digest"]


def read_manifest(path: Path, *, old_ok: bool = False, wait: bool = False) -> dict:
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
    if manifest["format"] == PARTS_FORMAT and isinstance(manifest.get("digest"), str):
        return manifest
    if manifest["format"] == 1:
        if old_ok:
            return manifest
        raise ValueError(f"store {path} was written by an older version of helpers (store format 1), which "
                         f"recognised the generator by its name only, so its chunks cannot be checked against this "
                         f"generator's and distance's weights. Use a new store directory (load_store still reads "
                         f"this one)")
    raise ValueError(f"{file} is a format-{manifest['format']} store manifest; this version of helpers reads "
                     f"format {PARTS_FORMAT} (and 1 with load_store)")


def format_of(path: Path):
    """The format number of the store's manifest, or None (no manifest, or unreadable)."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest.get("format") if isinstance(manifest, dict) else None


def set_aside(path: Path) -> Path | None:
    """Move a format-1 store's chunks and manifest into a new folder path/format-1 (or format-1-2, ...), under a
    lock so that concurrent callers move it once; returns that folder, or None if another process did it.
    The manifest moves last: if this is interrupted, the next call moves the rest."""
    with file_lock(path / ".store.lock"):
        if format_of(path) != 1:
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


def recorded_digest(file) -> str | None:
    """The manifest digest a part file (a path or an open file) records (`PART_DIGEST`), or None (format 1)."""
    with np.load(file, allow_pickle=False) as data:
        return str(data[PART_DIGEST]) if PART_DIGEST in data.files else None


def present_parts(path: Path, n_parts: int, digest: str, read: Callable, check: Callable | None = None) -> dict:
    """{i: part} for the parts already in the store; read(file) -> (part, the digest it records). A part that is
    unreadable, was written for another manifest or fails check(i, part) (ValueError) is left out, to be
    computed again, with a warning."""
    def read_checked(file, i):
        part, part_digest = read(file)
        if part_digest != digest:
            raise ValueError("it was not written for this store's manifest (another fingerprint digest)")
        if check is not None:
            check(i, part)
        return part

    parts = {}
    for i in range(n_parts):
        part = reusable(path / part_file(i, n_parts), lambda file: read_checked(file, i), f"recomputing chunk {i}")
        if part is not None:
            parts[i] = part
    return parts


def load_parts(path: Path, read: Callable) -> list:
    """Every part of a complete store, in order; read(file) -> (part, the digest it records).

    ValueError lists missing parts, names an unreadable one, a part that was not written for this store's
    manifest (another request's results) or one with another number of points than the manifest says. A format-1
    store (before weights were fingerprinted) is read with a warning that its parts cannot be verified.
    """
    manifest = read_manifest(path, old_ok=True)
    digest = manifest.get("digest")
    if digest is None:
        warnings.warn(f"{path} is a format-{manifest['format']} store: its chunks carry no fingerprint, so it cannot "
                      f"be verified that they all belong to one request", stacklevel=3)
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
            part, part_digest = read(file)
        except Exception as err:  # zipfile, numpy and OS errors all mean the same: unreadable
            raise ValueError(f"cannot read {file} ({type(err).__name__}: {err}); run metric_many "
                             f"with the same inputs and store to recompute it") from err
        if digest is not None and part_digest != digest:
            raise ValueError(f"{file} was not written for this store's manifest (its fingerprint digest is "
                             f"{_short(part_digest, 20)}, the manifest's {digest[:16]}...): it holds another "
                             f"request's results. Delete it and run metric_many with the same inputs and store to "
                             f"recompute it")
        if len(part) != entry["stop"] - entry["start"]:
            raise ValueError(f"{file} holds {len(part)} points, the manifest says {entry['stop'] - entry['start']}; "
                             f"delete it and run metric_many with the same inputs and store to recompute it")
        parts.append(part)
    return parts


def _short(value, width: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."
