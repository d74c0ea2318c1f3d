"""The fault suite: generated bad inputs (shapes, dtypes, ranges, module modes, randomness, non-distances, options,
damaged files) thrown at every public entry point. Each call must end in one of two ways:

- refused clearly: a ValueError or TypeError (or the CLI's one-line error) raised by a `raise` statement in
  `helpers`, whose message names the problem, never a traceback from deep inside torch, numpy or the standard
  library;
- or the right answer, checked against the known metric of the small generators of tests/cases.py or a second
  method.

Hypothesis runs a fixed budget of examples per test, derandomized and without an example database, so every CI
run draws the same inputs (`FAULTS`); the models are the float64 toys of tests/cases.py, so the suite takes a few
minutes on two cores.
"""
from __future__ import annotations

import functools
import json
import os
import traceback
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from cases import ConvFeatures, TinyConvNet, conv_case, dense_hessian, linear_case
from helpers import batch, book, checks, distances, local, metric, store
from helpers.generators import Generator

HELPERS = Path(checks.__file__).resolve().parent
FAULTS = settings(max_examples=30, derandomize=True, database=None, deadline=None, print_blob=False,
                  suppress_health_check=list(HealthCheck))
QUICK = settings(FAULTS, max_examples=12)


# --- what counts as a clear refusal -------------------------------------------------------------------------------

def raised_by_helpers(err: BaseException) -> bool:
    """Whether err was raised by a `raise` statement in helpers (not by torch, numpy or Python deep inside)."""
    tb = err.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    path = Path(tb.tb_frame.f_code.co_filename).resolve()
    if HELPERS not in path.parents:
        return False
    import linecache

    return linecache.getline(str(path), tb.tb_lineno).strip().startswith("raise")


def outcome(call):
    """('ok', result) or ('refused', error) for a clear helpers error; anything else fails the test."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return "ok", call()
    except (ValueError, TypeError, book.UsageError) as err:
        where = "".join(traceback.format_exception(err)[-3:])
        assert raised_by_helpers(err), f"not raised by helpers:\n{where}"
        assert len(str(err)) >= 25, f"message too short to say what is wrong: {err!r}"
        return "refused", err


def refused(call, *words):
    kind, value = outcome(call)
    assert kind == "refused", f"accepted, returned {value!r}"
    message = str(value).lower()
    assert all(w.lower() in message for w in words), f"{value} lacks {words}"
    return value


def close(a, b, rtol):
    return torch.allclose(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64),
                          rtol=rtol, atol=rtol * float(torch.as_tensor(b).abs().max()))


# --- the models: toys with known metrics, and faulty versions of them -------------------------------------------

LINEAR = linear_case()
CONV = conv_case(b=2)
RTOL = {"jacobian": 1e-9, "backprop": 1e-9, "lanczos": 1e-7, "finite-difference": 1e-4, "subspace": 1e-6}


class Ranged(ConvFeatures):
    """ConvFeatures on images in [-1, 1], as LPIPS: checks.generated holds the images to that range."""

    input_range = (-1.0, 1.0)


def tiny_bn_net(dropout=False):
    layers = [nn.Linear(6, 48), nn.BatchNorm1d(48), nn.Tanh()] + ([nn.Dropout(0.3)] if dropout else [])
    return nn.Sequential(*layers, nn.Unflatten(1, (3, 4, 4))).double()


class Holder:
    """A plain object that holds a model (as a user's wrapper class might)."""

    def __init__(self, net):
        self.models = {"main": net}

    def generate(self, z):
        return self.models["main"](z)


def training_mode_generators():
    """(label, G) for a mode-dependent module in training mode reached in every way `store.walk` follows."""
    def make(how):
        net = tiny_bn_net(dropout=how.endswith("dropout"))
        if how == "module":
            G = Generator(net, 6)
            G.net.train()  # Generator.train() refuses; its submodules do not
            return G
        wrappers = {
            "closure": lambda: (lambda z: net(z)),
            "partial": lambda: functools.partial(lambda m, z: m(z), net),
            "bound method": lambda: Holder(net).generate,
            "hook dropout": lambda: _hooked(net),
            "list dropout": lambda: (lambda z, nets=[net]: nets[0](z)),
        }
        G = Generator(wrappers[how](), 6)
        net.train()  # after Generator() put what it could reach directly into eval mode
        return G
    return [(how, make(how)) for how in ("module", "closure", "partial", "bound method", "hook dropout",
                                          "list dropout")]


def _hooked(net):
    """A plain linear map whose output a forward hook passes through `net` (in training mode)."""
    linear = nn.Linear(6, 6).double().requires_grad_(False)
    linear.register_forward_hook(lambda module, args, out: net(out))
    return linear


LINEAR_NET = LINEAR.G.net


def faulty_generator(kind: str) -> Generator:
    """The linear toy with one fault."""
    f = {
        "noise": lambda z: LINEAR_NET(z) + 1e-3 * torch.randn(len(z), 3, 4, 4, dtype=z.dtype),
        "own-rng noise": _own_noise(),
        "numpy noise": lambda z: LINEAR_NET(z) + torch.from_numpy(1e-3 * np.random.randn(len(z), 3, 4, 4)),
        "batch mean": lambda z: LINEAR_NET(z) - LINEAR_NET(z).mean(0, keepdim=True),
        "first only": lambda z: LINEAR_NET(z[:1]),
        "one short": lambda z: LINEAR_NET(z)[:max(len(z) - 1, 1)] if len(z) > 2 else LINEAR_NET(z),
        "one channel": lambda z: LINEAR_NET(z)[:, :1],
        "no batch dim": lambda z: LINEAR_NET(z)[0],
        "integer images": lambda z: (LINEAR_NET(z) * 100).long(),
        "nan image": lambda z: LINEAR_NET(z) * torch.where(torch.arange(len(z)) == len(z) - 1, torch.nan, 1.0
                                                            ).to(z.dtype)[:, None, None, None],
    }[kind]
    return Generator(f, 8, name=kind)


def _own_noise():
    generator = torch.Generator().manual_seed(0)
    return lambda z: LINEAR_NET(z) + 1e-7 * torch.randn(len(z), 3, 4, 4, dtype=z.dtype, generator=generator)


GENERATOR_FAULTS = ["noise", "own-rng noise", "numpy noise", "batch mean", "first only", "one short", "one channel",
                    "no batch dim", "integer images", "nan image"]


def faulty_distance(kind: str):
    mse = distances.mse()
    dropout = nn.Dropout(0.5).train()
    return {
        "ignores x0": lambda x0, x: x.flatten(1).pow(2).sum(1),
        "negative": lambda x0, x: -mse(x0, x),
        "noisy": lambda x0, x: mse(x0, x) + 1e-3 * torch.rand(len(x), dtype=x.dtype),
        "dropout": lambda x0, x: mse(dropout(x0), dropout(x)),
        "scalar": lambda x0, x: mse(x0, x).sum(),
        "column": lambda x0, x: mse(x0, x)[:, None],
        "nan": lambda x0, x: mse(x0, x) * torch.nan,
        "batch normalised": lambda x0, x: ((x0 - x0.mean(0)) - (x - x.mean(0))).flatten(1).pow(2).sum(1),
        "shifted": lambda x0, x: mse(x0, x) + 1.0,
    }[kind]


DISTANCE_FAULTS = ["ignores x0", "negative", "noisy", "dropout", "scalar", "column", "nan", "batch normalised",
                   "shifted"]


# --- latent codes ---------------------------------------------------------------------------------------------

def bad_codes():
    """Codes for the linear toy (d = 8) that are wrong in one way (or fine: then the answer must be right)."""
    z = LINEAR.z
    return st.one_of(
        st.sampled_from(["list", "numpy", "empty", "zero-dim", "wrong d", "3-d", "complex", "int", "bool",
                         "nan", "inf", "meta", "sparse", "float32", "huge", "beyond float32", "single"]),
    ).map(lambda kind: (kind, {
        "list": lambda: z.tolist(),
        "numpy": lambda: z.numpy(),
        "empty": lambda: z[:0],
        "zero-dim": lambda: torch.tensor(1.0),
        "wrong d": lambda: z[:, :5],
        "3-d": lambda: z[None],
        "complex": lambda: z.to(torch.complex128),
        "int": lambda: z.long(),
        "bool": lambda: z > 0,
        "nan": lambda: torch.where(z > 1, torch.nan, z),
        "inf": lambda: z.clone().index_fill_(1, torch.tensor([0]), torch.inf),
        "meta": lambda: z.to("meta"),
        "sparse": lambda: z.to_sparse(),
        "float32": lambda: z.float(),
        "huge": lambda: z * 1e30,
        "beyond float32": lambda: z * 1e300,
        "single": lambda: z[0],
    }[kind]()))


@FAULTS
@given(codes=bad_codes(), method=st.sampled_from(metric.METHODS))
def test_bad_codes_are_refused_or_give_the_true_metric(codes, method):
    kind, z = codes
    kind_, result = outcome(lambda: metric.metric(LINEAR.G, z, LINEAR.distance, method, k=3, progress=False))
    if kind_ == "ok":  # the linear toy's metric is the same everywhere: the true one, whatever the codes
        assert kind in ("float32", "single", "huge", "beyond float32"), f"{kind} codes accepted"
        truth = torch.linalg.eigvalsh(LINEAR.H[0]).flip(0)[:3]
        assert close(result.eigvals[:, :3], truth.expand(len(result), 3), RTOL[method] if kind != "huge" else 1e-3)


@QUICK
@given(codes=bad_codes())
def test_bad_codes_everywhere_else(codes, tmp_path_factory):
    kind, z = codes
    if kind in ("float32", "single", "huge", "beyond float32"):
        return
    G, d = LINEAR.G, LINEAR.distance
    folder = tmp_path_factory.mktemp("store")
    for call in (lambda: metric.hvp(G, z, d), lambda: metric.finite_difference_hvp(G, z, d),
                 lambda: metric.region_metric(G, z, d, distances.box(4, (0, 0.5), (0, 1))),
                 lambda: batch.metric_many(G, z, d, store=folder, progress=False),
                 lambda: local.pixel_jacobian(G, z)):
        refused(call)


# --- generators -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("how,G", training_mode_generators(), ids=lambda v: v if isinstance(v, str) else "")
def test_training_mode_anywhere_is_refused_by_every_entry_point(how, G):
    z = torch.randn(3, 6, dtype=torch.float64)
    for method in metric.METHODS:
        refused(lambda: metric.metric(G, z, distances.mse(), method, k=2, progress=False), "training mode", ".eval()")
    refused(lambda: metric.hvp(G, z[0], distances.mse()), "training mode")
    refused(lambda: batch.metric_many(G, z, distances.mse(), progress=False), "training mode")
    refused(lambda: local.pixel_jacobian(G, z[0]), "training mode")


def test_training_mode_in_the_distance_is_refused():
    class Features(distances.Distance):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Dropout(0.1)).double()

        def features(self, x):
            return self.net(x)

    d = Features()  # nn.Module starts in training mode
    refused(lambda: metric.metric(LINEAR.G, LINEAR.z, d), "the distance", "training mode")
    d.eval()
    assert close(metric.metric(LINEAR.G, LINEAR.z, d).H, 1.0 * LINEAR.H * 3 * 16, 1e-9)  # ‖x‖² = N · MSE


@FAULTS
@given(kind=st.sampled_from(GENERATOR_FAULTS), method=st.sampled_from(metric.METHODS),
       b=st.integers(1, 4))
def test_faulty_generators_are_refused(kind, method, b):
    G = faulty_generator(kind)
    z = LINEAR.z[:1].expand(b, -1) + 0.1 * torch.arange(b, dtype=torch.float64)[:, None]
    kind_, result = outcome(lambda: metric.metric(G, z, LINEAR.distance, method, k=3, progress=False))
    if kind_ == "ok":  # only where the fault does not show (G is never given more than two codes at once), and
        # then the answer is right
        assert kind == "one short" and (b <= 2 or method in ("lanczos", "finite-difference")), f"{kind}, b = {b}"
        assert close(result.eigvals[:, :3], torch.linalg.eigvalsh(LINEAR.H[0]).flip(0)[:3].expand(b, 3),
                     RTOL[method])


@QUICK
@given(kind=st.sampled_from(GENERATOR_FAULTS))
def test_faulty_generators_at_the_other_entry_points(kind):
    G, z = faulty_generator(kind), LINEAR.z
    calls = [lambda: metric.hvp(G, z[0], LINEAR.distance), lambda: metric.finite_difference_hvp(G, z[0], LINEAR.distance),
             lambda: metric.region_metrics(G, z, LINEAR.distance, {"left": distances.box(4, (0, 1), (0, 0.5))}),
             lambda: batch.metric_many(G, z, LINEAR.distance, progress=False)]
    for call in calls:
        kind_, _ = outcome(call)
        if kind in ("noise", "own-rng noise", "numpy noise", "batch mean", "first only", "nan image",
                    "integer images", "one channel", "no batch dim"):
            assert kind_ == "refused" or kind in ("batch mean", "first only", "nan image") and call is calls[0] \
                or kind in ("batch mean", "first only", "nan image") and call is calls[1], kind


@QUICK
@given(shift=st.sampled_from(["+1", "*2", "*255", "(x+1)/2", "*1.1"]), method=st.sampled_from(metric.METHODS))
def test_images_outside_the_distance_range_are_refused(shift, method):
    net = TinyConvNet(6)
    scaled = {"+1": lambda x: x + 1, "*2": lambda x: 2 * x, "*255": lambda x: 255 * x,
              "(x+1)/2": lambda x: (x + 1) / 2, "*1.1": lambda x: 1.1 * x}[shift]
    G = Generator(lambda z: scaled(net(z)), 6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = metric.metric(G, CONV.z, Ranged(), method, k=3, progress=False)
        except ValueError as err:
            assert raised_by_helpers(err) and "expects images in [-1, 1]" in str(err)
            assert shift in ("+1", "*2", "*255")
            return
    assert shift in ("(x+1)/2", "*1.1"), f"{shift} accepted"
    if shift == "(x+1)/2":  # inside the range, but no pixel in its lower half: said, not silent
        assert any("no pixel is below 0" in str(w.message) for w in caught)
    truth = dense_hessian(G, Ranged(), CONV.z[0])
    assert close(result.H[0] if method in ("jacobian", "backprop") else result.eigvals[0, :3],
                 truth if method in ("jacobian", "backprop") else torch.linalg.eigvalsh(truth).flip(0)[:3],
                 max(RTOL[method], 1e-6))


# --- distances ----------------------------------------------------------------------------------------------------

@FAULTS
@given(kind=st.sampled_from(DISTANCE_FAULTS), method=st.sampled_from(["backprop", "lanczos", "finite-difference"]),
       b=st.integers(1, 3))
def test_things_that_are_not_distances_are_refused(kind, method, b):
    refused(lambda: metric.metric(LINEAR.G, LINEAR.z[:b], faulty_distance(kind), method, k=3, progress=False))


@QUICK
@given(kind=st.sampled_from(DISTANCE_FAULTS))
def test_not_distances_at_the_other_entry_points(kind):
    d = faulty_distance(kind)
    refused(lambda: metric.hvp(LINEAR.G, LINEAR.z[0], d, kind="double-backprop"))
    refused(lambda: metric.finite_difference_hvp(LINEAR.G, LINEAR.z[0], d))
    refused(lambda: batch.metric_many(LINEAR.G, LINEAR.z, d, method="backprop", progress=False))


def test_a_divergence_that_is_not_symmetric_gives_its_metric():
    """KL divergence of softmaxed pixels: not symmetric, but d(x0, x0) = 0 is its minimum, so it has a metric."""
    def kl(x0, x):
        p, q = (torch.log_softmax(t.flatten(1), 1) for t in (x0, x))
        return (p.exp() * (p - q)).sum(1)

    exact = metric.metric(CONV.G, CONV.z[0], kl, "backprop")
    assert close(exact.H[0], dense_hessian(CONV.G, kl, CONV.z[0]), 1e-8)


# --- options ------------------------------------------------------------------------------------------------------

ODD_NUMBERS = st.one_of(st.sampled_from([0, -1, 0.0, -0.5, 1.5, float("nan"), float("inf"), -float("inf"), True,
                                         "1", None, 1e-300, 10 ** 30, np.float32(np.nan), np.int64(-3), [1]]),
                        st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5))


@FAULTS
@given(option=st.sampled_from(["eps", "tol", "k", "chunk_size", "max_memory", "block"]), value=ODD_NUMBERS,
       method=st.sampled_from(metric.METHODS))
def test_odd_option_values_are_refused_by_every_method_or_give_the_true_metric(option, value, method):
    if option == "block" and method != "subspace":
        method = "subspace"
    call = functools.partial(metric.metric, LINEAR.G, LINEAR.z[:2], LINEAR.distance, method, progress=False,
                             **({"k": 3} if option != "k" else {}), **{option: value})
    kind, result = outcome(call)
    if kind == "ok":
        k = min(result.eigvals.shape[1], 3)
        truth = torch.linalg.eigvalsh(LINEAR.H[0]).flip(0)[:k]
        rtol = 1e-3 if option in ("eps", "tol") else RTOL[method]  # a large step or tolerance is less exact
        assert close(result.eigvals[:, :k], truth.expand(2, k), rtol), (option, value, method)


@QUICK
@given(k=ODD_NUMBERS)
def test_top_takes_a_positive_count(k):
    m = metric.metric(LINEAR.G, LINEAR.z[:1], LINEAR.distance)
    kind, result = outcome(lambda: m.top(k))
    if kind == "ok":
        assert isinstance(k, (int, np.integer)) and 1 <= k <= 8 and result[0].shape == (1, int(k))


@QUICK
@given(option=st.sampled_from(["batch_size", "chunk_size", "max_memory", "eps", "tol"]), value=ODD_NUMBERS)
def test_metric_many_options_are_checked_before_a_store_is_made(option, value, tmp_path_factory):
    folder = tmp_path_factory.mktemp("store") / "s"
    kind, result = outcome(lambda: batch.metric_many(LINEAR.G, LINEAR.z, LINEAR.distance, store=folder,
                                                     progress=False, **{option: value}))
    if kind == "refused":
        assert not folder.exists(), "a store was made for a request that was refused"
    else:
        assert close(result.H, LINEAR.H, 1e-6)


# --- metric files and masks ----------------------------------------------------------------------------------------

GOOD = metric.metric(LINEAR.G, LINEAR.z[:2], LINEAR.distance, progress=False)


def damaged_metric_file():
    """Bytes of a Metric file damaged one way: truncated, a field of another shape or type, an unknown method."""
    import io

    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        saved = GOOD.save(Path(folder) / "m.npz").read_bytes()

    def npz(**changes):
        with np.load(io.BytesIO(saved)) as data:
            arrays = {k: data[k] for k in data.files}
        for key, value in changes.items():
            if value is None:
                del arrays[key]
            else:
                arrays[key] = value
        out = io.BytesIO()
        np.savez(out, **arrays)
        return out.getvalue()

    good = npz()
    return st.one_of(
        st.integers(0, len(good) - 1).map(lambda n: good[:n]),
        st.binary(max_size=100),
        st.sampled_from([
            npz(H=np.zeros((2, 8, 7))), npz(eigvals=np.zeros((2, 9))), npz(z=np.zeros(8)), npz(method="bogus"),
            npz(options="{'k': os.system}"), npz(eigvecs=None), npz(residuals=np.zeros((3, 3))),
            npz(H=np.zeros((2, 8, 8), dtype=np.int64)), npz(options="[1, 2]"), npz(passes=np.zeros(2)),
        ]))


@FAULTS
@given(content=damaged_metric_file())
def test_damaged_metric_files_are_refused(content, tmp_path_factory):
    file = tmp_path_factory.mktemp("metric") / "m.npz"
    file.write_bytes(content)
    kind, loaded = outcome(lambda: metric.Metric.load(file))
    if kind == "ok":  # only an intact file loads, as it was saved
        assert torch.equal(loaded.H, GOOD.H) and torch.equal(loaded.eigvals, GOOD.eigvals)


@QUICK
@given(mask=st.sampled_from(["nan", "negative", "above one", "zeros", "ones", "3-d", "empty", "other aspect",
                             "complex", "fine"]))
def test_bad_masks_are_refused(mask):
    m = {"nan": torch.full((4, 4), torch.nan), "negative": -torch.ones(4, 4), "above one": 2 * torch.ones(4, 4),
         "zeros": torch.zeros(4, 4), "ones": torch.ones(4, 4), "3-d": torch.ones(1, 4, 4), "empty": torch.ones(0, 4),
         "other aspect": distances.box((4, 8), (0, 1), (0, 0.5)), "complex": distances.box(4, (0, 1), (0, 0.5)) + 0j,
         "fine": distances.box(4, (0, 1), (0, 0.5))}[mask]
    kind, result = outcome(lambda: metric.region_metric(LINEAR.G, LINEAR.z, LINEAR.distance, m))
    assert (kind == "ok") == (mask == "fine"), (mask, result)
    if kind == "ok":  # the area-weighted halves add up to the whole metric
        region, rest = result
        assert close(0.5 * region.H + 0.5 * rest.H, LINEAR.H, 1e-9)


# --- the matrices of `local` ----------------------------------------------------------------------------------------

def bad_matrix():
    H = LINEAR.H[0]
    return st.sampled_from(["nan", "inf", "asymmetric", "rectangular", "3 points", "scalar", "list", "complex",
                            "fine"]).map(lambda kind: (kind, {
                                "nan": lambda: H.clone().fill_diagonal_(torch.nan),
                                "inf": lambda: H.clone().index_put_((torch.tensor([0]), torch.tensor([1])),
                                                                    torch.tensor(torch.inf, dtype=H.dtype)),
                                "asymmetric": lambda: H + torch.triu(torch.ones_like(H), 1) * H.abs().max(),
                                "rectangular": lambda: H[:, :5],
                                "3 points": lambda: H.expand(3, 8, 8),
                                "scalar": lambda: H[0, 0],
                                "list": lambda: H.tolist(),
                                "complex": lambda: H.to(torch.complex128),
                                "fine": lambda: H.clone(),
                            }[kind]()))


@FAULTS
@given(matrix=bad_matrix(), which=st.sampled_from(["generalized", "lowrank", "quotients", "homogeneity"]),
       tau=st.sampled_from([1e-3, 0.0, -1.0, float("nan"), float("inf")]))
def test_local_refuses_what_is_not_a_pair_of_metrics(matrix, which, tau):
    kind, H = matrix
    rest = LINEAR.H[0] + 0.1 * torch.eye(8, dtype=torch.float64)
    calls = {"generalized": lambda: local.generalized_directions(H, rest, 3, tau=tau),
             "lowrank": lambda: local.lowrank_directions(H, rest, max_iter=50),
             "quotients": lambda: local.quotients(H, rest, torch.eye(8, dtype=torch.float64)[:, :2], tau=tau),
             "homogeneity": lambda: local.region_homogeneity(H, rest, 3, tau=tau)}
    result_kind, _ = outcome(calls[which])
    bad_tau = not (tau >= 0 and np.isfinite(tau)) and which != "lowrank"
    if kind not in ("fine", "list") or bad_tau:
        assert result_kind == "refused" or kind in ("3 points",) and which in ("quotients", "homogeneity") \
            and not bad_tau, (kind, which, tau)


# --- stores -------------------------------------------------------------------------------------------------------

def stored(folder, G=None, distance=None):
    return batch.metric_many(G or LINEAR.G, LINEAR.z, distance or LINEAR.distance, store=folder, batch_size=1,
                             progress=False)


@FAULTS
@given(damage=st.sampled_from(["flip", "truncate", "swap", "copy", "delete", "manifest json", "manifest garbage",
                               "manifest chunks", "foreign"]), where=st.integers(0, 10 ** 6))
def test_damaged_stores_are_recomputed_or_refused_never_wrong(damage, where, tmp_path_factory):
    folder = tmp_path_factory.mktemp("store") / "s"
    truth = stored(folder)
    chunks = sorted(folder.glob("chunk-*.npz"))
    victim = chunks[where % len(chunks)]
    data = bytearray(victim.read_bytes())
    if damage == "flip":
        data[where % len(data)] ^= 0xFF
        victim.write_bytes(bytes(data))
    elif damage == "truncate":
        victim.write_bytes(bytes(data[:where % len(data)]))
    elif damage in ("swap", "copy"):
        other = chunks[(where + 1) % len(chunks)]
        other_bytes = other.read_bytes()
        if damage == "swap":
            other.write_bytes(bytes(data))
        victim.write_bytes(other_bytes)
    elif damage == "delete":
        victim.unlink()
    elif damage.startswith("manifest"):
        manifest = json.loads((folder / store.MANIFEST).read_text())
        if damage == "manifest json":
            manifest["chunks"][where % len(chunks)]["start"] += 1
            (folder / store.MANIFEST).write_text(json.dumps(manifest))
        elif damage == "manifest chunks":
            manifest["chunks"] = manifest["chunks"][::-1]
            (folder / store.MANIFEST).write_text(json.dumps(manifest))
        else:
            (folder / store.MANIFEST).write_bytes(os.urandom(where % 50 + 1))
    else:  # a chunk of another store (other codes) in its place
        other = tmp_path_factory.mktemp("other") / "s"
        batch.metric_many(LINEAR.G, LINEAR.z + 1, LINEAR.distance, store=other, batch_size=1, progress=False)
        victim.write_bytes((other / victim.name).read_bytes())
    kind, loaded = outcome(lambda: batch.load_store(folder))
    if kind == "ok":
        assert torch.equal(loaded.H, truth.H) and torch.equal(loaded.z, truth.z)
    kind, resumed = outcome(lambda: stored(folder))
    if kind == "ok":
        assert torch.equal(resumed.H, truth.H) and torch.equal(resumed.z, truth.z)
    else:
        assert damage.startswith("manifest"), f"{damage}: {resumed}"


class Doubler(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = LINEAR_NET

    def forward(self, z):
        return self.net(z)


def edited_class(body):
    """A generator class named like `Doubler` with the same weights, but another forward."""
    namespace = {"nn": nn, "LINEAR_NET": LINEAR_NET, "__name__": Doubler.__module__}  # as if edited in place
    exec(f"class Doubler(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
         f"        self.net = LINEAR_NET\n\n    def forward(self, z):\n        return {body}\n", namespace)
    namespace["Doubler"].__qualname__ = Doubler.__qualname__
    namespace["Doubler"].__module__ = Doubler.__module__
    return namespace["Doubler"]


def test_edited_code_is_another_request_for_the_same_store(tmp_path):
    folder = tmp_path / "s"
    stored(folder, Generator(Doubler(), 8))
    assert close(batch.load_store(folder).H, LINEAR.H, 1e-12)
    edited = Generator(edited_class("2 * self.net(z)")(), 8)
    assert store.model_digest(edited) != store.model_digest(Generator(Doubler(), 8))
    refused(lambda: stored(folder, edited), "different request", "generator_sha256", "code")
    same = Generator(edited_class("self.net(z)")(), 8)  # the same code again: the same request
    assert store.model_digest(same) == store.model_digest(Generator(Doubler(), 8))

    class Features(distances.Distance):
        def features(self, x):
            return x.flatten(1) / x[0].numel() ** 0.5

    class Edited(distances.Distance):
        def features(self, x):
            return 2 * x.flatten(1) / x[0].numel() ** 0.5

    Edited.__qualname__ = Features.__qualname__
    assert store.model_digest(Features()) != store.model_digest(Edited())


def test_a_store_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    refused(lambda: stored(tmp_path / "file"), "is a file")
    refused(lambda: stored(tmp_path / "file" / "s"), "is a file")
    refused(lambda: batch.load_store(tmp_path / "file"), "is a file")


def test_a_full_disk_is_named_and_the_store_resumes(tmp_path, monkeypatch):
    import errno

    folder = tmp_path / "s"
    calls = []
    real = np.savez

    def savez(file, **arrays):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(file, **arrays)

    monkeypatch.setattr(np, "savez", savez)
    with pytest.raises(OSError, match=r"no space left on the device holding .*chunk-00001\.npz.*free some space"):
        stored(folder)
    monkeypatch.setattr(np, "savez", real)
    assert torch.equal(stored(folder).H, stored(tmp_path / "fresh").H)


# --- the book's files and command line ------------------------------------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children,
                                                                                      max_size=3), max_leaves=12)


def summary_like():
    """JSON that looks like a summary.json in parts (the keys the tool reads), with values of any type."""
    entry = st.fixed_dictionaries({}, optional={"status": JSON, "duration_s": JSON, "parameters": JSON,
                                                "summary": st.dictionaries(st.sampled_from(["results/t", "x"]), JSON,
                                                                           max_size=2), "profile": JSON,
                                                "finished": JSON, "load": JSON, "cpus": JSON})
    return st.one_of(JSON, st.fixed_dictionaries({"notebooks": st.one_of(JSON, st.dictionaries(
        st.sampled_from(["01_metric", "02_spectrum"]), st.one_of(entry, JSON), max_size=2))}, optional={
        "profile": JSON, "overrides": JSON}))


def file_contents():
    return st.one_of(summary_like().map(lambda v: json.dumps(v).encode()), st.binary(max_size=40),
                     st.just(b'{"notebooks": '), st.just(b"\xff\xfe{}"))


@FAULTS
@given(content=file_contents(), command=st.sampled_from(["results", "timings", "record"]))
def test_damaged_book_files_end_in_one_line_naming_the_file(content, command, tmp_path_factory, capsys):
    folder = tmp_path_factory.mktemp("book")
    summary = folder / "summary.json"
    summary.write_bytes(content)
    if command == "results":
        status = book.main(["results", "--summary", str(summary), "--out", str(folder / "pages")])
        err = capsys.readouterr().err
    else:
        write = book.write_timings if command == "timings" else book.write_record
        try:
            write(summary, folder / f"{command}.json")
            status, err = 0, ""
        except book.UsageError as error:
            status, err = 2, f"error: {error}\n"
    assert status in (0, 2)
    if status:
        assert err.count("\n") == 1 and str(summary) in err, err


@FAULTS
@given(content=file_contents(), which=st.sampled_from(["timings", "recorded"]))
def test_damaged_timings_and_recorded_files_are_named(content, which, tmp_path_factory):
    folder = tmp_path_factory.mktemp("book")
    good = {"notebooks": {"01_metric": {"status": "ok", "duration_s": 3.0, "profile": "full", "summary": {}}}}
    (folder / "summary.json").write_text(json.dumps(good))
    target = folder / f"{which}.json"
    target.write_bytes(content)
    write = book.write_timings if which == "timings" else book.write_record
    kind, _ = outcome(lambda: write(folder / "summary.json", target))
    if kind == "refused":
        assert str(target) in str(_)
    pages = folder / "pages"
    if which == "recorded":
        kind, _ = outcome(lambda: book.write_results(folder / "summary.json", pages, target))
        assert kind == "ok" or str(target) in str(_)


@FAULTS
@given(content=file_contents())
def test_a_run_never_loses_its_entry_to_a_damaged_summary(content, tmp_path_factory, capsys):
    folder = tmp_path_factory.mktemp("run")
    path = folder / "summary.json"
    path.write_bytes(content)
    entry = {"status": "ok", "duration_s": 1.0, "summary": {"x": 1}}
    merged = book.merge_summary(path, {"profile": "default"}, {"00_new": entry})
    assert merged["notebooks"]["00_new"] == entry
    assert json.loads(path.read_text())["notebooks"]["00_new"] == entry
    if list(folder.glob("summary.json.damaged-*")):  # set aside, not deleted
        assert capsys.readouterr().err.count("\n") == 1


@FAULTS
@given(text=st.one_of(st.text(max_size=30), st.just("[" * 5000 + "]" * 5000), st.just("(" * 300 + ")" * 300),
                      st.just("1" * 5000), st.just("1e999"), st.just("-1e999"), st.just("[1e999]"),
                      st.just("9" * 400 + ".0")))
def test_pathological_parameter_values_are_read_or_refused(text):
    kind, value = outcome(lambda: book.parse_value(text))
    if kind == "ok":
        problem = book.type_problem(value, 0.5)
        if isinstance(value, float) and not np.isfinite(value):
            assert problem


def test_an_out_that_is_a_file_is_refused_before_anything_runs(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert book.main(["run", "--only", "00", "--out", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file" in err
    assert book.main(["results", "--summary", str(tmp_path / "file"), "--out", str(tmp_path / "file")]) == 2


# --- inversion's entry: the same gate ------------------------------------------------------------------------------

@pytest.mark.parametrize("how,G", training_mode_generators()[:2], ids=["module", "closure"])
def test_inversion_refuses_a_generator_in_training_mode(how, G):
    from helpers import inversion

    target = torch.zeros(1, 3, 4, 4, dtype=torch.float64)
    refused(lambda: inversion.adam(G, target, distances.mse(), torch.zeros(1, 6, dtype=torch.float64), steps=2),
            "training mode")
    refused(lambda: inversion.invert_cma(G, target, distances.mse(), budget=4, progress=False), "training mode")


@pytest.mark.parametrize("kind", ["noise", "batch mean", "first only"])
def test_inversion_and_activation_refuse_faulty_generators(kind):
    from helpers import activation, inversion

    G = faulty_generator(kind)
    G.sample = lambda n=1, seed=0: LINEAR.z[seed % 3:seed % 3 + n]  # noqa: E731  two different codes
    target = torch.zeros(1, 3, 4, 4, dtype=torch.float64)
    refused(lambda: inversion.adam(G, target, distances.mse(), LINEAR.z[:2], steps=2, progress=False))
    refused(lambda: inversion.invert_cma(G, target, distances.mse(), budget=4, progress=False))
    units = SimpleNamespace(units=[("conv1", 0)])  # refused before the units' network runs
    refused(lambda: activation.maximize(G, units, [0, 0], [0, 1], budget=4, progress=False))


# --- round two: a fresh pass, as a new user brings a model ---------------------------------------------------------

CONV_NET = CONV.G.net


def _inference_codes():
    with torch.inference_mode():
        return CONV.z.clone()


def _no_grad(call):
    with torch.no_grad():
        return call()


WRAPPED = {  # (generator, codes, call wrapper): each gives the conv case's metric
    "nn.DataParallel inside": lambda: (Generator(nn.DataParallel(CONV_NET), 6), CONV.z, None),
    "nn.DataParallel(G) as G": lambda: (nn.DataParallel(CONV.G), CONV.z, None),
    "torch.compile (eager)": lambda: (Generator(torch.compile(CONV_NET, backend="eager"), 6), CONV.z, None),
    "functools.partial": lambda: (Generator(functools.partial(lambda s, z: s * CONV_NET(z), 1.0), 6), CONV.z, None),
    "channels_last images": lambda: (Generator(lambda z: CONV_NET(z).contiguous(memory_format=torch.channels_last),
                                               6), CONV.z, None),
    "requires_grad codes": lambda: (CONV.G, CONV.z.clone().requires_grad_(True), None),
    "transposed codes": lambda: (CONV.G, CONV.z.T.contiguous().T, None),
    "inference-mode codes": lambda: (CONV.G, _inference_codes(), None),
    "under torch.no_grad()": lambda: (CONV.G, CONV.z, _no_grad),
}


@pytest.mark.parametrize("how", list(WRAPPED))
@pytest.mark.parametrize("method", metric.METHODS)
def test_wrapped_generators_and_odd_codes_give_the_true_metric(how, method):
    G, z, around = WRAPPED[how]()
    call = functools.partial(metric.metric, G, z, CONV.distance, method, k=3, progress=False)
    kind, result = outcome(call if around is None else functools.partial(around, call))
    if how == "channels_last images" and method in ("jacobian", "subspace"):  # a memory-format copy inside vmap:
        assert kind == "refused" and "method='backprop'" in str(result)  # torch.func cannot, autograd can
        return
    assert kind == "ok", result
    if method in ("jacobian", "backprop"):
        assert close(result.H, CONV.H, 1e-9)
    else:
        assert close(result.eigvals[:, :3], torch.linalg.eigvalsh(CONV.H).flip(-1)[:, :3], RTOL[method] * 10)


def test_expanded_and_duplicate_codes_give_the_true_metric(tmp_path):
    expanded = CONV.z[:1].expand(3, -1)  # stride 0: three views of one code
    assert close(metric.metric(CONV.G, expanded, CONV.distance).H, CONV.H[:1].expand(3, 6, 6), 1e-9)
    twice = torch.cat([LINEAR.z, LINEAR.z])
    result = batch.metric_many(LINEAR.G, twice, LINEAR.distance, store=tmp_path / "s", batch_size=2, progress=False)
    assert close(result.H, LINEAR.H.repeat(2, 1, 1), 1e-9)
    assert torch.equal(batch.load_store(tmp_path / "s").H, result.H)


def _swapped():
    return metric.metric(distances.mse(), LINEAR.z, LINEAR.G)


ODD_MODELS = {  # (call, words the refusal must contain)
    "float16 generator": (lambda: metric.metric(Generator(TinyConvNet(6).half(), 6), CONV.z.half(), Ranged().half()),
                          ["float16", "G.float()"]),
    "bfloat16 generator": (lambda: metric.metric(Generator(TinyConvNet(6).bfloat16(), 6), CONV.z, CONV.distance,
                                                 "finite-difference", k=2), ["bfloat16"]),
    "batch norm without running statistics": (
        lambda: metric.metric(Generator(nn.Sequential(nn.Linear(6, 48), nn.BatchNorm1d(48, track_running_stats=False),
                                                      nn.Tanh(), nn.Unflatten(1, (3, 4, 4))).double().eval(), 6),
                              CONV.z, distances.mse(), "finite-difference", k=2), ["track_running_stats"]),
    "inside torch.inference_mode()": (lambda: _in_inference_mode(lambda: metric.metric(CONV.G, CONV.z, CONV.distance)),
                                      ["inference_mode"]),
    "weights made under inference mode": (lambda: metric.metric(_inference_generator(), CONV.z, CONV.distance),
                                          ["inference_mode"]),
    "a seed where codes go": (lambda: metric.metric(CONV.G, 0, CONV.distance), ["G.sample"]),
    "channels-last images": (lambda: metric.metric(Generator(lambda z: CONV_NET(z).permute(0, 2, 3, 1), 6), CONV.z,
                                                   distances.mse()), ["permute"]),
    "(images, extra) returned": (lambda: metric.metric(Generator(lambda z: (CONV_NET(z), z), 6), CONV.z,
                                                       CONV.distance), ["tuple", "images alone"]),
    "a bare module given codes of another size": (
        lambda: metric.metric(nn.Sequential(nn.Linear(8, 48), nn.Tanh(), nn.Unflatten(1, (3, 4, 4))).double(),
                              torch.ones(2, 5, dtype=torch.float64), distances.mse()), ["latent_dim", "5"]),
    "metric(distance, z, G)": (_swapped, ["metric(G, z, distance)"]),
    "a distance of one argument": (lambda: metric.metric(LINEAR.G, LINEAR.z, lambda x: x.sum()), ["the distance",
                                                                                                  "(x0, x)"]),
    "a distance that fails on the images": (
        lambda: metric.metric(LINEAR.G, LINEAR.z, lambda a, b: nn.functional.conv2d(
            a - b, torch.ones(1, 3, 7, 7, dtype=a.dtype)).pow(2).flatten(1).sum(1)), ["the distance", "failed"]),
    "a Python float distance": (lambda: metric.metric(LINEAR.G, LINEAR.z, lambda a, b: float(distances.mse()(a, b)[0])),
                                ["one value per image"]),
    "a norm, not its square (finite differences)": (
        lambda: metric.metric(CONV.G, CONV.z, lambda a, b: (a - b).flatten(1).norm(dim=1), "finite-difference", k=2),
        ["grows like", "square it"]),
    "the lpips package's network on G(z) + 1": (
        lambda: metric.metric(Generator(lambda z: CONV_NET(z) + 1, 6), CONV.z, _lpips_package_distance(), "backprop"),
        ["lpips package", "expects images in [-1, 1]"]),
    "geodesic ends one rounding apart": (
        lambda: __import__("helpers.geodesic").geodesic.geodesic(
            LINEAR.G, LINEAR.distance, LINEAR.z[0], LINEAR.z[0] * (1 + 1e-15), n=2), ["equal up to rounding"]),
    "a PIL image as a mask": (lambda: metric.region_metric(LINEAR.G, LINEAR.z, LINEAR.distance, _pil_mask()),
                              ["a mask must be a tensor or array"]),
    "Metric['a']": (lambda: GOOD["a"], ["indexed by point"]),
    "G.sample(-1)": (lambda: CONV.G.sample(-1), ["positive integer"]),
    "G.sample(seed=2.5)": (lambda: CONV.G.sample(2, seed=2.5), ["seed"]),
    "Generator(net, z.shape)": (lambda: Generator(CONV_NET, CONV.z.shape), ["latent_dim"]),
}


def _lpips_package_distance():
    """A user's own distance around an lpips-package network (no input_range): a tiny module of that package."""
    import lpips

    net = lpips.pretrained_networks.alexnet.__new__(lpips.pretrained_networks.alexnet)
    nn.Module.__init__(net)  # an empty module of the lpips package (no weights to load) is enough to be recognised
    layer = nn.Conv2d(3, 4, 3).double().requires_grad_(False)
    return lambda a, b, net=net: (layer(a) - layer(b)).flatten(1).pow(2).sum(1)


def _pil_mask():
    from PIL import Image

    return Image.new("L", (4, 4), 255)


def _in_inference_mode(call):
    with torch.inference_mode():
        return call()


def _inference_generator():
    with torch.inference_mode():
        return Generator(TinyConvNet(6), 6)


@pytest.mark.parametrize("fault", list(ODD_MODELS))
def test_odd_models_and_calls_are_refused_clearly(fault):
    call, words = ODD_MODELS[fault]
    refused(call, *words)


def _geodesic_calls(G, distance):
    from helpers import geodesic

    za, zb = LINEAR.z[0], LINEAR.z[1]
    line = geodesic.straight(za, zb, 4)
    return {"geodesic": lambda: geodesic.geodesic(G, distance, za, zb, n=4, max_iter=3),
            "shoot": lambda: geodesic.shoot(G, distance, za, zb - za, n=2),
            "path_length": lambda: geodesic.path_length(G, distance, line),
            "path_metric": lambda: geodesic.path_metric(G, distance, line[:, :2], 2),
            "curve_length": lambda: geodesic.curve_length(G, distance, lambda t: za + t[:, None] * (zb - za), nodes=2)}


PATH_FAULTS = {
    "training-mode batch norm": lambda: (_training_bn_generator(), distances.mse(), "training mode"),
    "noise injection": lambda: (faulty_generator("noise"), distances.mse(), "random"),
    "batch statistics": lambda: (faulty_generator("batch mean"), distances.mse(), "batch"),
    "a distance that ignores x0": lambda: (LINEAR.G, lambda a, b: b.flatten(1).pow(2).sum(1), "not a distance"),
    "a negative distance": (lambda: (LINEAR.G, lambda a, b: -distances.mse()(a, b), "not a distance")),
}


def _training_bn_generator():
    net = tiny_bn_net()
    G = Generator(lambda z: net(z[:, :6]), 8)  # a closure: Generator() cannot put net into eval mode
    net.train()
    return G


@pytest.mark.parametrize("fault", list(PATH_FAULTS))
@pytest.mark.parametrize("entry", ["geodesic", "shoot", "path_length", "path_metric", "curve_length"])
def test_geodesic_entry_points_refuse_faulty_models(fault, entry):
    G, distance, words = PATH_FAULTS[fault]()
    if entry in ("shoot", "path_metric", "curve_length") and not isinstance(distance, distances.Distance):
        distance = type("Lambda", (distances.Distance,), {"forward": lambda self, a, b, f=distance: f(a, b),
                                                           "features": lambda self, x: x.flatten(1)})()
    refused(_geodesic_calls(G, distance)[entry], words)


def test_a_store_in_a_folder_that_cannot_be_written_is_named(tmp_path, monkeypatch):
    import tempfile

    def denied(*args, dir=None, **kwargs):
        raise PermissionError(13, "Permission denied", dir)

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(PermissionError, match=r"cannot create .*manifest\.json.*make .* writable"):
        stored(tmp_path / "read-only" / "s")
