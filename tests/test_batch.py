"""metric_many: chunked results equal one `metric` call; the store resumes, refuses foreign requests and
recovers from corrupt chunks; a two-process Dask cluster gives the single-process numbers."""
import json
import os
import threading

import pytest
import torch
from torch import nn

import helpers
from helpers import batch, distances, generators
from helpers.metric import Metric, describe_basis, metric


class Tiny(nn.Module):
    """6-d codes to 3x4x4 images: real metrics in milliseconds, for the store's bookkeeping."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(6, 48)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(48, 6, generator=torch.Generator().manual_seed(0)))

    def forward(self, z):
        return torch.tanh(self.linear(z)).view(-1, 3, 4, 4)


@pytest.fixture(scope="module")
def tiny():
    return generators.Generator(Tiny(), 6, name="tiny")


@pytest.fixture(scope="module")
def codes():
    return torch.randn(7, 6, generator=torch.Generator().manual_seed(1))  # 4 chunks of 2, 2, 2, 1


@pytest.fixture(scope="module")
def face_codes(faces):
    return faces.sample(2, seed=1)  # 2 chunks of batch_size 1 (partial chunks: see the tiny model's tests)


@pytest.fixture(scope="module")
def face_reference(faces, lpips_alex, face_codes):
    return metric(faces, face_codes, lpips_alex, progress=False)


def relative_error(a, b):
    """Largest per-point ‖a − b‖ / ‖b‖ over the batch."""
    return ((a - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)).max().item()


def counting(monkeypatch, fail_on=None, store=None):
    """Wrap batch._compute: record each call as (its points, the chunk files already in `store`); raise on call
    number `fail_on`."""
    real = batch._compute
    calls = []

    def compute(G, z, distance, method, options):
        calls.append((z.clone(), sorted(p.name for p in store.glob("chunk-*")) if store else None))
        if len(calls) == fail_on:
            raise RuntimeError("interrupted")
        return real(G, z, distance, method, options)

    monkeypatch.setattr(batch, "_compute", compute)
    return calls


def same(a: Metric, b: Metric):
    return all(torch.equal(getattr(a, f), getattr(b, f)) for f in ("H", "eigvals", "eigvecs", "z"))


def test_matches_one_metric_call_on_faces(faces, lpips_alex, face_codes, face_reference):
    result = batch.metric_many(faces, face_codes, lpips_alex, batch_size=1, progress=False)
    assert len(result) == 2 and result.method == "jacobian" and result.options == face_reference.options
    assert torch.equal(result.z, face_codes)
    assert relative_error(result.H, face_reference.H) < 1e-6
    assert relative_error(result.eigvals, face_reference.eigvals) < 1e-6
    assert result.eigvals[:, 0].min() > 0 and result.seconds > 0


def test_store_writes_each_chunk_and_reloads_without_computing(tiny, codes, tmp_path, monkeypatch):
    store = tmp_path / "store"
    calls = counting(monkeypatch, store=store)
    first = batch.metric_many(tiny, codes, distances.mse(), store=store, batch_size=2, progress=False)
    assert len(calls) == 4
    # each chunk is on disk before the next one starts
    assert [files for _, files in calls] == [[f"chunk-{j:05d}.npz" for j in range(i)] for i in range(4)]
    assert sorted(os.listdir(store)) == ["chunk-00000.npz", "chunk-00001.npz", "chunk-00002.npz",
                                         "chunk-00003.npz", "manifest.json"]
    manifest = json.loads((store / "manifest.json").read_text())
    assert [(c["start"], c["stop"]) for c in manifest["chunks"]] == [(0, 2), (2, 4), (4, 6), (6, 7)]
    assert manifest["fingerprint"]["generator"] == "tiny" and manifest["fingerprint"]["batch_size"] == 2
    assert relative_error(first.H, metric(tiny, codes, distances.mse(), progress=False).H) < 1e-6

    def refuse(*args):
        raise AssertionError("computed although the store is complete")

    monkeypatch.setattr(batch, "_compute", refuse)
    again = batch.metric_many(tiny, codes, distances.mse(), store=store, batch_size=2, progress=False)
    assert same(again, first) and again.seconds == pytest.approx(first.seconds)
    assert same(batch.load_store(store), first)


def test_resume_computes_only_missing_chunks(tiny, codes, tmp_path, monkeypatch):
    uninterrupted = batch.metric_many(tiny, codes, distances.mse(), batch_size=2, progress=False)
    store = tmp_path / "store"
    calls = counting(monkeypatch, fail_on=3)
    with pytest.raises(RuntimeError, match="interrupted"):
        batch.metric_many(tiny, codes, distances.mse(), store=store, batch_size=2, progress=False)
    assert sorted(p.name for p in store.glob("chunk-*")) == ["chunk-00000.npz", "chunk-00001.npz"]
    with pytest.raises(ValueError, match=r"2 of 4 chunks missing \(2, 3\)"):
        batch.load_store(store)

    calls = counting(monkeypatch)
    resumed = batch.metric_many(tiny, codes, distances.mse(), store=store, batch_size=2, progress=False)
    assert len(calls) == 2  # chunks 2 and 3 only
    assert torch.equal(calls[0][0], codes[4:6]) and torch.equal(calls[1][0], codes[6:7])
    assert same(resumed, uninterrupted)
    assert not [name for name in os.listdir(store) if name.endswith(".part")]


def test_store_refuses_a_different_request(tiny, codes, tmp_path):
    store = tmp_path / "store"
    mse = distances.mse()
    batch.metric_many(tiny, codes[:2], mse, store=store, batch_size=2, progress=False)
    before = sorted(os.listdir(store))
    with pytest.raises(ValueError, match="zs_sha256 differs"):
        batch.metric_many(tiny, codes[:2] + 1e-3, mse, store=store, batch_size=2, progress=False)
    with pytest.raises(ValueError, match="method differs .*'jacobian'.*'backprop'"):
        batch.metric_many(tiny, codes[:2], mse, store=store, batch_size=2, method="backprop", progress=False)
    with pytest.raises(ValueError, match="options differs .*'allow_tf32': True"):
        batch.metric_many(tiny, codes[:2], mse, store=store, batch_size=2, allow_tf32=True, progress=False)
    with pytest.raises(ValueError, match="batch_size differs"):
        batch.metric_many(tiny, codes[:2], mse, store=store, batch_size=1, progress=False)
    assert sorted(os.listdir(store)) == before
    # a default passed explicitly is the same request
    batch.metric_many(tiny, codes[:2], mse, store=store, batch_size=2, chunk_size=256, progress=False)


def test_store_resumes_with_other_speed_options(tiny, codes, tmp_path, monkeypatch):
    """chunk_size and max_memory change how fast the metric is computed, not the metric: the store resumes."""
    store = tmp_path / "store"
    calls = counting(monkeypatch, fail_on=2)
    with pytest.raises(RuntimeError, match="interrupted"):
        batch.metric_many(tiny, codes, distances.mse(), store=store, batch_size=2, chunk_size=4, progress=False)
    calls = counting(monkeypatch)
    resumed = batch.metric_many(tiny, codes, distances.mse(), store=store, batch_size=2, chunk_size=64,
                                max_memory=2 ** 20, progress=False)
    assert len(calls) == 3 and torch.equal(calls[0][0], codes[2:4])  # chunk 0 came from the store
    assert same(resumed, batch.metric_many(tiny, codes, distances.mse(), batch_size=2, progress=False))


def test_corrupt_chunks_are_recomputed_with_a_warning(tiny, codes, tmp_path, monkeypatch):
    store = tmp_path / "store"
    complete = batch.metric_many(tiny, codes, distances.mse(), store=store, batch_size=2, progress=False)
    (store / "chunk-00000.npz").write_bytes(b"\x00 not an npz file \xff" * 10)
    good = (store / "chunk-00002.npz").read_bytes()
    (store / "chunk-00002.npz").write_bytes(good[:len(good) // 2])  # truncated
    calls = counting(monkeypatch)
    with pytest.warns(UserWarning) as record:
        repaired = batch.metric_many(tiny, codes, distances.mse(), store=store, batch_size=2, progress=False)
    messages = [str(w.message) for w in record]
    assert len(messages) == 2  # and no ResourceWarning: the unreadable files were closed
    assert "chunk-00000.npz could not be read" in messages[0] and "recomputing chunk 0" in messages[0]
    assert "chunk-00002.npz could not be read (BadZipFile" in messages[1] and "recomputing chunk 2" in messages[1]
    assert torch.equal(calls[0][0], codes[0:2]) and torch.equal(calls[1][0], codes[4:6]) and len(calls) == 2
    assert same(repaired, complete) and same(batch.load_store(store), complete)


def test_bad_arguments(tiny, codes):
    with pytest.raises(TypeError, match="unknown option.*kk"):
        batch.metric_many(tiny, codes, distances.mse(), kk=3, progress=False)
    with pytest.raises(ValueError, match=r"shape \(n, 6\)"):
        batch.metric_many(tiny, codes[:, :5], distances.mse(), progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        batch.metric_many(tiny, codes, distances.mse(), batch_size=0, progress=False)
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        batch.load_store("/nonexistent-store")


def test_unpicklable_generator_is_refused_before_sending(tiny, codes):
    class Locked(nn.Module):
        def __init__(self):
            super().__init__()
            self.lock = threading.Lock()
            self.net = Tiny()

        def forward(self, z):
            return self.net(z)

    client = object()  # never reached: the check comes before anything is sent
    with pytest.raises(TypeError, match="generator cannot be sent to Dask workers.*_thread.lock.*nn.Module"):
        batch.metric_many(generators.Generator(Locked(), 6), codes, distances.mse(), client=client, progress=False)


@pytest.fixture(scope="module")
def dask_client(request):
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None)
    client = Client(cluster)

    def close():
        client.close()
        cluster.close()

    request.addfinalizer(close)
    return client


@pytest.mark.slow
def test_dask_cluster_matches_single_process(faces, lpips_alex, face_codes, face_reference, dask_client, tmp_path,
                                             monkeypatch):
    # spawned workers run this checkout's helpers (they inherit sys.path and the working directory)
    assert set(dask_client.run(eval, "__import__('helpers').__file__").values()) == {helpers.__file__}
    assert set(dask_client.run(os.getcwd).values()) == {os.getcwd()}
    scattered = []
    scatter = dask_client.scatter
    monkeypatch.setattr(dask_client, "scatter", lambda obj, **kw: (scattered.append((type(obj), kw)),
                                                                    scatter(obj, **kw))[1])
    store = tmp_path / "store"
    result = batch.metric_many(faces, face_codes, lpips_alex, store=store, batch_size=1, client=dask_client,
                               progress=False)
    # the models went to the workers once each, not with every task
    assert [t for t, _ in scattered] == [type(faces), type(lpips_alex)]
    assert all(kw["broadcast"] for _, kw in scattered)
    assert set(dask_client.run(eval, "__import__('torch').get_num_threads()").values()) == {1}
    assert torch.equal(result.z, face_codes)
    assert relative_error(result.H, face_reference.H) < 1e-6
    assert relative_error(result.eigvals, face_reference.eigvals) < 1e-6
    assert sorted(p.name for p in store.glob("chunk-*")) == ["chunk-00000.npz", "chunk-00001.npz"]
    assert same(batch.load_store(store), result)


def test_stores_made_before_allow_tf32_still_resume(tiny, codes, tmp_path, monkeypatch):
    store = tmp_path / "store"
    first = batch.metric_many(tiny, codes[:2], distances.mse(), store=store, batch_size=2, progress=False)
    manifest = json.loads((store / batch.MANIFEST).read_text())
    assert manifest["fingerprint"]["options"]["allow_tf32"] is False
    del manifest["fingerprint"]["options"]["allow_tf32"]  # as written before the option existed
    (store / batch.MANIFEST).write_text(json.dumps(manifest))
    calls = counting(monkeypatch)
    again = batch.metric_many(tiny, codes[:2], distances.mse(), store=store, batch_size=2, progress=False)
    assert calls == [] and same(again, first)
    with pytest.raises(ValueError, match="options differs .*'allow_tf32': True"):
        batch.metric_many(tiny, codes[:2], distances.mse(), store=store, batch_size=2, allow_tf32=True,
                          progress=False)


def test_subspace_chunks_equal_one_call_and_carry_the_certificate(tiny, codes, tmp_path):
    options = dict(method="subspace", k=3, tol=1e-6)
    whole = metric(tiny, codes, distances.mse(), progress=False, **options)
    store = tmp_path / "store"
    result = batch.metric_many(tiny, codes, distances.mse(), store=store, batch_size=2, progress=False, **options)
    assert relative_error(result.eigvals, whole.eigvals) < 1e-10
    assert torch.equal(result.passes, whole.passes) and result.residuals.shape == (7, 3)
    assert (result.residuals <= 1e-6 * result.eigvals[:, :1]).all()
    loaded = batch.load_store(store)
    assert torch.equal(loaded.residuals, result.residuals) and torch.equal(loaded.passes, result.passes)


def test_warm_start_basis_is_fingerprinted_and_cut_per_chunk(tiny, codes, tmp_path, monkeypatch):
    store = tmp_path / "store"
    basis = torch.linalg.qr(torch.randn(6, 3, generator=torch.Generator().manual_seed(5)))[0]
    options = dict(method="subspace", k=3, tol=1e-6, batch_size=2, progress=False)
    first = batch.metric_many(tiny, codes, distances.mse(), store=store, basis=basis, **options)
    assert first.options["basis"] == describe_basis(basis)
    manifest = json.loads((store / batch.MANIFEST).read_text())
    assert manifest["fingerprint"]["options"]["basis"] == describe_basis(basis)
    with pytest.raises(ValueError, match="options differs"):
        batch.metric_many(tiny, codes, distances.mse(), store=store, basis=basis + 1e-3, **options)
    with pytest.raises(ValueError, match="options differs"):
        batch.metric_many(tiny, codes, distances.mse(), store=store, **options)  # no warm start
    calls = counting(monkeypatch)
    again = batch.metric_many(tiny, codes, distances.mse(), store=store, basis=basis.clone(), **options)
    assert calls == [] and same(again, first)
    # one basis per point: each chunk gets its own points' bases
    per_point = basis.expand(7, -1, -1).clone()
    per_point[4] = torch.linalg.qr(torch.randn(6, 3, generator=torch.Generator().manual_seed(6)))[0]
    seen = []
    real = metric

    def spy(*args, **kwargs):
        seen.append(kwargs["basis"].clone())
        return real(*args, **kwargs)

    monkeypatch.setattr(batch.metric_module, "metric", spy)
    batch.metric_many(tiny, codes, distances.mse(), basis=per_point, **options)
    assert [b.shape for b in seen] == [(2, 6, 3), (2, 6, 3), (2, 6, 3), (1, 6, 3)]
    assert torch.equal(torch.cat(seen), per_point)
    with pytest.raises(ValueError, match=r"basis must have shape \(6, m\) for every point or \(7, 6, m\)"):
        batch.metric_many(tiny, codes, distances.mse(), basis=per_point[:3], **options)
    with pytest.raises(ValueError, match="option of method='subspace', not of 'jacobian'"):
        batch.metric_many(tiny, codes, distances.mse(), basis=basis, batch_size=2, progress=False)


def test_stores_made_before_the_subspace_options_still_resume(tiny, codes, tmp_path, monkeypatch):
    for method in ("jacobian", "lanczos"):
        store = tmp_path / method
        first = batch.metric_many(tiny, codes[:2], distances.mse(), store=store, batch_size=2, method=method, k=3,
                                  progress=False)
        manifest = json.loads((store / batch.MANIFEST).read_text())
        options = manifest["fingerprint"]["options"]
        assert options["tol"] is None and options["block"] is None and options["basis"] is None
        for added in ("block", "basis"):  # as written before they existed, with the old default tol
            del options[added]
        options["tol"] = 0.0
        (store / batch.MANIFEST).write_text(json.dumps(manifest))
        calls = counting(monkeypatch)
        again = batch.metric_many(tiny, codes[:2], distances.mse(), store=store, batch_size=2, method=method, k=3,
                                  progress=False)
        assert calls == [] and same(again, first)
    # for 'subspace' an explicit default tol is the same request as None
    store = tmp_path / "subspace"
    batch.metric_many(tiny, codes[:2], distances.mse(), store=store, batch_size=2, method="subspace", k=3,
                      progress=False)
    calls = counting(monkeypatch)
    batch.metric_many(tiny, codes[:2], distances.mse(), store=store, batch_size=2, method="subspace", k=3,
                      tol=1e-4, progress=False)
    assert calls == []
