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
    """sha256 of what a generator or distance computes with (everything `walk` reaches): for an nn.Module, every
    parameter and buffer (key, dtype, shape, bytes), every submodule's qualified class, plain attributes and
    hooks, and the code of its class's methods; for a plain function, its qualified name, code and the values it
    closes over or reads from its module's globals (tensors, arrays, numbers, functions, modules). So an edit of
    a generator's `forward` or a distance's `features` gives another digest, as other weights do. Stable across
    processes and devices; the code is compared as Python bytecode, so another Python version gives another one."""
    digest = hashlib.sha256()
    for _path, kind, value in walk(obj):
        if kind == "tensor":
            digest.update(f"tensor\x1f{value.dtype}\x1f{tuple(value.shape)}\x1e".encode())
            digest.update(_tensor_bytes(value))
        elif kind == "array":
            digest.update(f"array\x1f{value.dtype.str}\x1f{value.shape}\x1e".encode())
            digest.update(np.ascontiguousarray(value).data if value.dtype != object else repr(value.tolist()).encode())
        elif kind == "bytecode":
            digest.update(value)
        elif kind == "rng":  # by its class, not its state (which changes as it draws)
            digest.update(f"rng\x1f{_qualname(type(value))}\x1e".encode())
        elif kind != "module":  # a module's class comes as its own "class" entry
            digest.update(f"{kind}\x1f{value}\x1e".encode())
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


# --- the walk: everything a generator or distance computes with ---------------------------------------------------

_PLAIN = (type(None), bool, int, float, complex, str, bytes, slice, torch.dtype, torch.device)
_NUMPY_GENERATORS = (np.random.Generator, np.random.RandomState)
_DEPTH = 12  # levels of nesting followed (a module's submodules count as one level)


def walk(obj, label: str = ""):
    """Everything `obj` (a generator or distance: an nn.Module, function, bound method, partial or other callable)
    computes with, in a fixed order, as (path, kind, value) entries: the one walk behind `model_digest` (which
    feeds them all) and `checks.eval_mode` (which looks at the modules).

    Followed: an nn.Module's submodules (kind "module", value the module, path like `net.main.1`), their plain
    attributes and hooks, parameters and buffers ("tensor"), and the methods of their classes (other than
    torch's own, known by name); a function's bytecode ("bytecode"), constants, defaults, closure and the
    module-level globals it names; a bound method's object; a partial's arguments; the public attributes and
    class methods of any other object; lists, tuples, dicts. Python modules and classes are entries by name
    ("pymodule", "named"); a random generator of its own (torch's or numpy's) an entry "rng" with the generator; an
    object met again is an entry "seen". `training` flags are left out (a module
    whose output depends on them is refused in training mode by `checks.eval_mode`).
    """
    return _walk(obj, label, set(), 0)


def _walk(obj, path, seen, depth):
    if isinstance(obj, _PLAIN):
        yield path, "plain", repr(obj)
        return
    if isinstance(obj, torch.Tensor):
        yield path, "tensor", obj
        return
    if isinstance(obj, np.ndarray):
        yield path, "array", obj
        return
    if isinstance(obj, types.ModuleType):
        yield path, "pymodule", obj.__name__
        return
    if isinstance(obj, (types.BuiltinFunctionType, type)):
        yield path, "named", _qualname(obj)
        return
    if type(obj) is torch.Generator or isinstance(obj, _NUMPY_GENERATORS):  # (torch.Generator's isinstance is slow)
        # a random generator of its own: its state changes as it is used
        yield path, "rng", obj
        return
    if id(obj) in seen or depth > _DEPTH:
        yield path, "seen" if id(obj) in seen else "deep", _qualname(type(obj))
        return
    seen.add(id(obj))
    if isinstance(obj, (list, tuple)):
        yield path, type(obj).__name__, len(obj)
        for i, item in enumerate(obj):
            yield from _walk(item, f"{path}[{i}]", seen, depth + 1)
    elif isinstance(obj, (set, frozenset)):
        yield path, "set", sorted(repr(item) for item in obj)
    elif isinstance(obj, dict):
        yield path, "dict", len(obj)
        for key in sorted(obj, key=repr):
            yield path, "key", repr(key)
            yield from _walk(obj[key], f"{path}[{key!r}]", seen, depth + 1)
    elif isinstance(obj, torch.nn.Module):
        yield from _walk_module(obj, path, seen, depth)
    elif isinstance(obj, types.FunctionType):
        where = f"{path} ({obj.__qualname__})" if path else obj.__qualname__
        yield where, "function", f"{obj.__module__}.{obj.__qualname__}"
        yield from _walk_code(obj.__code__, obj.__globals__, where, seen, depth, doc=obj.__doc__)
        yield from _walk(obj.__defaults__, f"{where} defaults", seen, depth + 1)
        yield from _walk(obj.__kwdefaults__, f"{where} defaults", seen, depth + 1)
        for name, cell in zip(obj.__code__.co_freevars, obj.__closure__ or ()):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                yield where, "empty cell", name
                continue
            yield from _walk(value, f"{where} closure: {name}", seen, depth + 1)
    elif isinstance(obj, types.MethodType):
        yield path, "method", obj.__func__.__qualname__
        yield from _walk(obj.__func__, path, seen, depth + 1)
        yield from _walk(obj.__self__, path or type(obj.__self__).__name__, seen, depth + 1)
    elif isinstance(obj, functools.partial):
        yield path, "partial", ""
        yield from _walk((obj.func, obj.args, obj.keywords), f"{path} partial", seen, depth + 1)
    else:  # another callable or object: its class (and its methods) and public attributes
        yield path, "object", _qualname(type(obj))
        yield from _walk_class(type(obj), path, seen, depth)
        yield from _walk_attributes(obj, path, seen, depth)


def _walk_module(module, path, seen, depth):
    for name, sub in module.named_modules(remove_duplicate=False):
        where = ".".join(p for p in (path, name) if p) or type(sub).__name__
        seen.add(id(sub))
        yield where, "module", sub
        yield where, "class", f"{name}\x1f{_qualname(type(sub))}"
        yield from _walk_class(type(sub), where, seen, depth)
        yield from _walk_attributes(sub, where, seen, depth)
        for hooks in ("_forward_pre_hooks", "_forward_hooks"):  # they change what the module computes
            registered = getattr(sub, hooks, None)
            if registered:
                yield where, "hooks", hooks
                yield from _walk(list(registered.values()), f"{where} {hooks[1:]}", seen, depth + 1)
    state = module.state_dict(keep_vars=True)
    for key, buffer in module.named_buffers(remove_duplicate=False):  # non-persistent buffers too
        state.setdefault(key, buffer)
    for key, tensor in sorted(state.items()):
        yield path, "state", key
        yield from _walk(tensor, ".".join(p for p in (path, key) if p), seen, depth + 1)


def _walk_attributes(obj, path, seen, depth):
    """The public instance attributes of obj (a module's parameters, buffers and submodules are walked apart)."""
    for key, value in sorted(getattr(obj, "__dict__", {}).items()):
        if key.startswith("_") or key == "training" or isinstance(value, torch.nn.Module):
            continue
        yield path, "attr", key
        yield from _walk(value, f"{path}.{key}" if path else key, seen, depth + 1)


def _walk_class(kind, path, seen, depth):
    """The methods (their code) and plain class attributes of kind and its bases, except torch's and builtins'
    own classes (known by their qualified name, which is in the walk already)."""
    for cls in kind.__mro__:
        module = getattr(cls, "__module__", "") or ""
        if cls is object or module == "builtins" or module.split(".")[0] == "torch" or id(cls) in seen:
            continue
        seen.add(id(cls))
        yield path, "methods of", _qualname(cls)
        for name, value in sorted(vars(cls).items()):
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            elif isinstance(value, property):
                value = (value.fget, value.fset)
            elif not isinstance(value, types.FunctionType) and (name.startswith("__") or
                                                                 not isinstance(value, (*_PLAIN, tuple, list, dict))):
                continue  # dunder data (__doc__, __module__, line numbers) and descriptors say nothing computed
            yield path, "class attr", name
            yield from _walk(value, f"{path} {cls.__name__}.{name}" if path else f"{cls.__name__}.{name}", seen,
                             depth + 1)


def _walk_code(code, namespace, path, seen, depth, doc=None):
    """Bytecode, constants (a docstring left out) and the globals it names, nested code objects included."""
    yield path, "bytecode", code.co_code
    for i, const in enumerate(code.co_consts):
        if isinstance(const, types.CodeType):
            yield from _walk_code(const, namespace, path, seen, depth)
        elif not (i == 0 and doc is not None and const == doc):
            yield from _walk(const, path, seen, depth + 1)
    for name in code.co_names:
        if name in namespace:
            yield path, "global", name
            yield from _walk(namespace[name], f"{path} global: {name}", seen, depth + 1)


def _qualname(kind) -> str:
    return f"{getattr(kind, '__module__', '?')}.{getattr(kind, '__qualname__', repr(kind))}"


# --- files -------------------------------------------------------------------------------------------------------

def create_exclusive(file: Path, text: str) -> bool:
    """Write `text` to `file` unless it exists, atomically: True if this call created it, False if it existed.

    The content is written to a temporary file and hard-linked into place (link fails if `file` exists); on a
    file system without hard links it falls back to an exclusive open (readers then retry a moment).
    """
    try:
        partial = temp_beside(file)
    except OSError as err:  # a read-only folder, no permission: say which and what to do (nothing was computed yet)
        message = (f"cannot create {file} ({err.strerror or err}): make {file.parent} writable, or choose a store "
                   f"path in a writable folder")
        raise (type(err)(err.errno, message) if err.errno is not None else type(err)(message)) from err
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
PARTS_FORMAT = 3  # 3: models fingerprinted by their code too; every part carries its codes, the manifest their digests
PART_DIGEST = "store_digest"  # the entry of a part file that holds the digest of the manifest it was written for
PART_CODES = "codes"  # the entry of a part file that holds the codes it was computed at (as given, any dtype)
CODES_DIGEST = "codes_sha256"  # a manifest entry's sha256 of its part's codes


def part_file(i: int, n_parts: int) -> str:
    return f"chunk-{i:0{max(5, len(str(n_parts - 1)))}d}.npz"


def directory(path: Path, what: str = "store") -> Path:
    """path, unless it exists and is not a directory (ValueError saying what to pass instead)."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path} is a file, not a directory: pass the path of a directory (it is created if "
                         f"missing), e.g. {path.with_suffix('')}-store")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{what} {path} lies under {parent}, which is a file: pass a path under a directory")
            break
    return path


def open_parts(path: Path, fingerprint: dict, parts: list[tuple[int, int]], *, codes: list[str],
               comparable: Callable[[dict], dict] = lambda fingerprint: fingerprint) -> dict:
    """Check an existing store's manifest against this request, or start a new store of `parts` (start, stop) at
    the codes whose sha256 digests are `codes` (one per part); returns the manifest, whose "digest" (of the
    request's comparable part) every part file records (`PART_DIGEST`) and whose "chunks" list each part's file,
    span and codes digest.

    comparable : the part of a fingerprint that must match (e.g. without options that only change speed). The
    manifest is created exclusively: if another process creates it first, this one checks against it. A store of
    an older format is moved aside first (see `set_aside`), with a warning.
    """
    directory(path)
    old = format_of(path)
    if isinstance(old, int) and old < PARTS_FORMAT:
        aside = set_aside(path, old)
        if aside is not None:
            warnings.warn(f"{path} was a format-{old} metric store, made before {_FORMATS.get(old, '?')}, so it cannot "
                          f"be verified against this request; it was moved to {aside} (load_store reads it there) "
                          f"and the metrics are computed afresh", stacklevel=3)
    if not (path / MANIFEST).exists():
        if path.is_dir() and any(path.glob("chunk-*.npz")):
            raise ValueError(f"{path} holds chunk files but no {MANIFEST}: cannot tell what they are; use another "
                             f"store directory")
        manifest = {"format": PARTS_FORMAT, "fingerprint": fingerprint,
                    "digest": fingerprint_digest(comparable(fingerprint)), "n_points": parts[-1][1],
                    "chunks": [{"file": part_file(i, len(parts)), "start": start, "stop": stop, CODES_DIGEST: digest}
                               for i, ((start, stop), digest) in enumerate(zip(parts, codes))]}
        if create_exclusive(path / MANIFEST, json.dumps(manifest, indent=1)):
            return manifest
    manifest = read_manifest(path, wait=True)
    stored = comparable(manifest["fingerprint"])
    fingerprint = comparable(fingerprint)
    differ = [key for key in fingerprint if stored.get(key) != fingerprint[key]]
    differ += [key for key in stored if key not in fingerprint]
    if differ:
        details = "; ".join(f"{key} differs (store: {_short(stored.get(key))}, "
                            f"now: {_short(fingerprint.get(key))})" for key in differ)
        changed = " (the sha256 of a model covers its weights, settings and code)" if any(
            key.endswith("_sha256") and key != "zs_sha256" for key in differ) else ""
        raise ValueError(f"store {path} was made for a different request: {details}{changed}. Use another store "
                         f"directory, or delete this one to compute it again (results are never mixed)")
    return manifest


_FORMATS = {1: "generators were recognised by their weights", 2: "generators were recognised by their code"}


def read_manifest(path: Path, *, old_ok: bool = False, wait: bool = False) -> dict:
    """The store's manifest, checked for the fields readers use. An older format raises ValueError saying why,
    unless old_ok (reading only). wait: retry for up to a second if the file is still being written (the
    exclusive-open fallback)."""
    directory(path)
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
    problem = _manifest_problem(manifest)
    if problem:
        raise ValueError(f"{file} is not a metric store manifest ({problem}); use another store directory")
    if manifest["format"] == PARTS_FORMAT or (old_ok and manifest["format"] < PARTS_FORMAT):
        return manifest
    if manifest["format"] < PARTS_FORMAT:
        raise ValueError(f"store {path} was written by an older version of helpers (store format "
                         f"{manifest['format']}), before {_FORMATS.get(manifest['format'], '?')}, so its chunks cannot "
                         f"be checked against this request. Use a new store directory (load_store still reads this one)")
    raise ValueError(f"{file} is a format-{manifest['format']} store manifest; this version of helpers reads "
                     f"format {PARTS_FORMAT} (and older ones with load_store)")


def _manifest_problem(manifest) -> str:
    """What makes `manifest` unusable, or ''."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("format"), int):
        return "no format number"
    if manifest["format"] >= 2 and not isinstance(manifest.get("digest"), str):
        return "no digest"
    chunks = manifest.get("chunks")
    if not isinstance(chunks, list) or not chunks or not all(
            isinstance(c, dict) and isinstance(c.get("file"), str) and "/" not in c["file"] and "\\" not in c["file"]
            and isinstance(c.get("start"), int) and isinstance(c.get("stop"), int) and c["start"] < c["stop"]
            for c in chunks):
        return "its chunk list is missing or malformed"
    if [c["start"] for c in chunks] != [0] + [c["stop"] for c in chunks[:-1]]:
        return "its chunks do not cover the points in order"
    if manifest["format"] >= 3 and not all(isinstance(c.get(CODES_DIGEST), str) for c in chunks):
        return f"a chunk has no {CODES_DIGEST}"
    if not isinstance(manifest.get("fingerprint", {}), dict):
        return "its fingerprint is not a mapping"
    return ""


def format_of(path: Path):
    """The format number of the store's manifest, or None (no manifest, or unreadable)."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest.get("format") if isinstance(manifest, dict) else None


def set_aside(path: Path, old: int = 1) -> Path | None:
    """Move a format-`old` store's chunks and manifest into a new folder path/format-<old> (or format-<old>-2,
    ...), under a lock so that concurrent callers move it once; returns that folder, or None if another process
    did it. The manifest moves last: if this is interrupted, the next call moves the rest."""
    with file_lock(path / ".store.lock"):
        if format_of(path) != old:
            return None
        aside = next(path / name for name in [f"format-{old}"] + [f"format-{old}-{i}" for i in range(2, 1000)]
                     if not (path / name / MANIFEST).exists())
        try:
            aside.mkdir(exist_ok=True)
            for chunk in path.glob("chunk-*.npz"):
                os.replace(chunk, aside / chunk.name)
            os.replace(path / MANIFEST, aside / MANIFEST)
        except OSError as err:
            raise ValueError(f"store {path} was written by an older version of helpers (store format {old}), before "
                             f"{_FORMATS.get(old, '?')}, and it could not be moved aside ({err}); use a new store "
                             f"directory (load_store still reads this one)") from err
    return aside


def part_extras(digest: str, codes: torch.Tensor) -> dict:
    """What a part file records beside its results: the manifest's digest and the codes (as given)."""
    return {PART_DIGEST: digest, PART_CODES: _storable(codes).numpy()}


def codes_digest(codes: torch.Tensor) -> str:
    """sha256 of codes as a part file records them (`part_extras`), for the manifest's entry of that part."""
    return tensor_digest(_storable(codes))


def _storable(codes: torch.Tensor) -> torch.Tensor:
    codes = codes.detach().cpu().contiguous()
    return codes.float() if codes.dtype == torch.bfloat16 else codes  # numpy has no bfloat16; the cast is exact


def recorded(file) -> tuple[str | None, torch.Tensor | None]:
    """The manifest digest and the codes a part file (a path or an open file) records (None where it has none:
    format 1 has neither, format 2 no codes)."""
    with np.load(file, allow_pickle=False) as data:
        digest = str(data[PART_DIGEST]) if PART_DIGEST in data.files else None
        codes = torch.from_numpy(data[PART_CODES]) if PART_CODES in data.files else None
    return digest, codes


def _verified(file: Path, i: int, entry: dict, digest: str | None, read: Callable, check: Callable | None):
    """read(file) -> (part, the digest it records, its codes), checked: written for the manifest with this digest,
    at the codes the manifest lists for it (format 3), and passing check(i, part, codes) (ValueError)."""
    part, part_digest, codes = read(file)
    if digest is not None and part_digest != digest:
        raise ValueError(f"it was not written for this store's manifest (its fingerprint digest is "
                         f"{_short(part_digest, 20)}, the manifest's {digest[:16]}...): it holds another request's "
                         f"results")
    if CODES_DIGEST in entry:
        if codes is None or codes_digest(codes) != entry[CODES_DIGEST] or len(codes) != entry["stop"] - entry["start"]:
            raise ValueError(f"it holds results at other codes than the manifest lists for points {entry['start']} to "
                             f"{entry['stop'] - 1} (a chunk file moved from another place or another store?)")
    if len(part) != entry["stop"] - entry["start"]:
        raise ValueError(f"it holds {len(part)} points, the manifest says {entry['stop'] - entry['start']}")
    if check is not None:
        check(i, part, codes)
    return part


def present_parts(path: Path, manifest: dict, read: Callable, check: Callable | None = None) -> dict:
    """{i: part} for the parts already in the store; read(file) -> (part, the digest it records, its codes). A
    part that is unreadable, was written for another manifest, holds other codes than the manifest lists for it
    or fails check(i, part, codes) (ValueError) is left out, to be computed again, with a warning."""
    parts = {}
    for i, entry in enumerate(manifest["chunks"]):
        part = reusable(path / entry["file"],
                        lambda file: _verified(file, i, entry, manifest["digest"], read, check),
                        f"recomputing chunk {i}")
        if part is not None:
            parts[i] = part
    return parts


def load_parts(path: Path, read: Callable, check: Callable | None = None) -> tuple[dict, list]:
    """The manifest and every part of a complete store, in order; read(file) -> (part, the digest it records,
    its codes); check(i, part, codes) raises ValueError for a part that does not belong where it is.

    ValueError lists missing parts, names an unreadable one, a part that was not written for this store's
    manifest (another request's results), one at other codes than the manifest lists for it, or one that fails
    check: the same checks as a resuming `metric_many` makes. A store of an older format is read with a warning
    of what cannot be verified.
    """
    manifest = read_manifest(path, old_ok=True)
    digest = manifest.get("digest")
    if manifest["format"] < PARTS_FORMAT:
        unverified = "which request they belong to and at which codes" if digest is None else "at which codes"
        warnings.warn(f"{path} is a format-{manifest['format']} store: it cannot be verified {unverified} its chunks "
                      f"were computed", stacklevel=3)
    entries = manifest["chunks"]
    missing = [i for i, entry in enumerate(entries) if not (path / entry["file"]).exists()]
    if missing:
        listed = ", ".join(str(i) for i in missing[:20]) + (", ..." if len(missing) > 20 else "")
        raise ValueError(f"store {path} is incomplete: {len(missing)} of {len(entries)} chunks missing ({listed}); "
                         f"run metric_many with the same inputs and store to finish it")
    parts = []
    for i, entry in enumerate(entries):
        file = path / entry["file"]
        try:
            part = _verified(file, i, entry, digest, read, check)
        except Exception as err:  # zipfile, numpy and OS errors mean the same as ours: this chunk is not usable
            reason = str(err) if isinstance(err, ValueError) else f"cannot be read ({type(err).__name__}: {err})"
            raise ValueError(f"{file}: {reason}. Delete it and run metric_many with the same inputs and store to "
                             f"recompute it") from err
        parts.append(part)
    return manifest, parts


def _short(value, width: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."
