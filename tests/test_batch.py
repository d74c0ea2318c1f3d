"""metric_many: chunked results equal one `metric` call; the store resumes, refuses foreign requests and
recovers from corrupt chunks; a two-process Dask cluster gives the single-process numbers."""
import functools
import json
import multiprocessing
import os
import threading
import time

import pytest
import torch
from torch import nn

import helpers
import helpers.store
from helpers import batch, distances, generators
from helpers.metric import Metric, describe_basis, metric
from helpers.store import MANIFEST


class Tiny(nn.Module):
    """6-d codes to 3x4x4 images: real metrics in milliseconds, for the store's bookkeeping."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(6, 48)
        with torch.no_grad():  # seeded: every Tiny() is the same model, in any process
            self.linear.weight.copy_(torch.randn(48, 6, generator=torch.Generator().manual_seed(0)))
            self.linear.bias.copy_(0.1 * torch.randn(48, generator=torch.Generator().manual_seed(1)))

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
    """chunk_size and max_memory change how fast the metric is computed, not the metric (beyond float32 rounding:
    a point computed alone or with others in one vmapped call can differ in the last bits): the store resumes."""
    store = tmp_path / "store"
    calls = counting(monkeypatch, fail_on=2)
    with pytest.raises(RuntimeError, match="interrupted"):
        batch.metric_many(tiny, codes, distances.mse(), store=store, batch_size=2, chunk_size=4, progress=False)
    calls = counting(monkeypatch)
    resumed = batch.metric_many(tiny, codes, distances.mse(), store=store, batch_size=2, chunk_size=64,
                                max_memory=2 ** 20, progress=False)
    assert len(calls) == 3 and torch.equal(calls[0][0], codes[2:4])  # chunk 0 came from the store
    fresh = batch.metric_many(tiny, codes, distances.mse(), batch_size=2, progress=False)
    assert torch.equal(resumed.z, fresh.z) and relative_error(resumed.H, fresh.H) < 1e-6


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
    assert "chunk-00002.npz could not be read" in messages[1] and "BadZipFile" in messages[1]
    assert "recomputing chunk 2" in messages[1]
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
    manifest = json.loads((store / MANIFEST).read_text())
    assert manifest["fingerprint"]["options"]["allow_tf32"] is False
    del manifest["fingerprint"]["options"]["allow_tf32"]  # as written before the option existed
    (store / MANIFEST).write_text(json.dumps(manifest))
    calls = counting(monkeypatch)
    again = batch.metric_many(tiny, codes[:2], distances.mse(), store=store, batch_size=2, progress=False)
    assert calls == [] and same(again, first)
    with pytest.raises(ValueError, match="options differs .*'allow_tf32': True"):
        batch.metric_many(tiny, codes[:2], distances.mse(), store=store, batch_size=2, allow_tf32=True,
                          progress=False)


# --- what a store recognises (issue 12) ---------------------------------------------------------------------

class Lin(nn.Module):
    """G(z) = W z as 3x4x4 images, with the weights given."""

    def __init__(self, weight):
        super().__init__()
        self.linear = nn.Linear(6, 48, bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(weight)

    def forward(self, z):
        return self.linear(z).view(-1, 3, 4, 4)


def weights(seed):
    return torch.randn(48, 6, generator=torch.Generator().manual_seed(seed))


def test_store_recognises_the_generator_by_its_weights_not_its_name(codes, tmp_path):
    """Failed before: two `custom` generators with different weights shared one store, and the second call
    returned the first one's metrics (93 % off) without a word."""
    store = tmp_path / "store"
    first, second = generators.Generator(Lin(weights(0)), 6), generators.Generator(Lin(weights(1)), 6)
    assert first.name == second.name == "custom"
    batch.metric_many(first, codes, distances.mse(), store=store, batch_size=4, progress=False)
    with pytest.raises(ValueError, match="generator_sha256 differs"):
        batch.metric_many(second, codes, distances.mse(), store=store, batch_size=4, progress=False)
    with torch.no_grad():  # the same model with its weights changed in place
        first.net.linear.weight.mul_(2)
    with pytest.raises(ValueError, match="generator_sha256 differs"):
        batch.metric_many(first, codes, distances.mse(), store=store, batch_size=4, progress=False)


class Weighted(distances.Distance):
    """MSE with per-channel weights held in a buffer."""

    def __init__(self, w):
        super().__init__()
        self.register_buffer("w", torch.tensor(w))

    def features(self, x):
        return (x * self.w.view(1, 3, 1, 1).sqrt()).flatten(1)


def test_store_recognises_the_distance_by_its_buffers(tiny, codes, tmp_path):
    store = tmp_path / "store"
    batch.metric_many(tiny, codes, Weighted([1.0, 1.0, 1.0]), store=store, batch_size=4, progress=False)
    with pytest.raises(ValueError, match="distance_sha256 differs"):
        batch.metric_many(tiny, codes, Weighted([1.0, 2.0, 1.0]), store=store, batch_size=4, progress=False)
    batch.metric_many(tiny, codes, Weighted([1.0, 1.0, 1.0]), store=store, batch_size=4, progress=False)


def test_store_recognises_a_plain_function_by_what_it_closes_over(codes, tmp_path):
    def wrap(A):
        return generators.Generator(lambda z: (z @ A.T).view(-1, 3, 4, 4), 6, name="matrix")

    store = tmp_path / "store"
    batch.metric_many(wrap(weights(0)), codes, distances.mse(), store=store, batch_size=4, progress=False)
    batch.metric_many(wrap(weights(0).clone()), codes, distances.mse(), store=store, batch_size=4, progress=False)
    with pytest.raises(ValueError, match="generator_sha256 differs"):
        batch.metric_many(wrap(weights(1)), codes, distances.mse(), store=store, batch_size=4, progress=False)


def as_format_1(store):
    """Rewrite a store's manifest as helpers wrote it before weights were fingerprinted (format 1)."""
    manifest = json.loads((store / MANIFEST).read_text())
    manifest["format"] = 1
    del manifest["digest"]
    for key in ("generator_sha256", "distance_sha256"):
        del manifest["fingerprint"][key]
    (store / MANIFEST).write_text(json.dumps(manifest))


def test_an_older_store_is_moved_aside_and_recomputed(tiny, codes, tmp_path, monkeypatch):
    """A format-1 store cannot say which weights made it: metric_many moves it into store/format-1 (where
    load_store still reads it) and computes afresh, so a notebook's fixed store path keeps working."""
    store = tmp_path / "store"
    other = generators.Generator(Lin(weights(1)), 6, name="tiny")  # same name, other weights: what format 1 missed
    old = batch.metric_many(other, codes, distances.mse(), store=store, batch_size=4, progress=False)
    as_format_1(store)
    calls = counting(monkeypatch)
    with pytest.warns(UserWarning, match=r"was a format-1 metric store.*moved to .*format-1 \(load_store reads it"):
        new = batch.metric_many(tiny, codes, distances.mse(), store=store, batch_size=4, progress=False)
    assert len(calls) == 2  # nothing of the old store was used
    assert same(new, batch.metric_many(tiny, codes, distances.mse(), batch_size=4, progress=False))
    assert sorted(os.listdir(store / "format-1")) == ["chunk-00000.npz", "chunk-00001.npz", "manifest.json"]
    with pytest.warns(UserWarning, match="format-1 store: its chunks carry no fingerprint"):
        assert same(batch.load_store(store / "format-1"), old)
    assert same(batch.load_store(store), new)


def test_a_chunk_from_another_store_is_not_used(tiny, codes, tmp_path, monkeypatch):
    """Chunks record their manifest's digest: a chunk copied from another request's store (same file name,
    same points and method, another generator) is refused by load_store and recomputed by a rerun."""
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    mine = batch.metric_many(tiny, codes, distances.mse(), store=ours, batch_size=4, progress=False)
    other = generators.Generator(Lin(weights(1)), 6, name="tiny")
    batch.metric_many(other, codes, distances.mse(), store=theirs, batch_size=4, progress=False)
    (ours / "chunk-00001.npz").write_bytes((theirs / "chunk-00001.npz").read_bytes())
    with pytest.raises(ValueError, match="chunk-00001.npz was not written for this store's manifest"):
        batch.load_store(ours)
    calls = counting(monkeypatch)
    with pytest.warns(UserWarning, match="chunk-00001.npz could not be read .*not written for this store"):
        again = batch.metric_many(tiny, codes, distances.mse(), store=ours, batch_size=4, progress=False)
    assert len(calls) == 1 and torch.equal(calls[0][0], codes[4:])
    assert same(again, mine) and same(batch.load_store(ours), mine)


def _start_store(store, seed, barrier, results):
    """Child process: metric_many on its own codes into `store`, waiting at `barrier` just before creating the
    manifest, so that both processes have seen no manifest (the race the old check-then-write lost)."""
    real = helpers.store.create_exclusive

    def create(file, text):
        barrier.wait(timeout=120)
        return real(file, text)

    helpers.store.create_exclusive = create
    G = generators.Generator(Tiny(), 6, name="tiny")
    zs = torch.randn(4, 6, generator=torch.Generator().manual_seed(seed))
    try:
        result = batch.metric_many(G, zs, distances.mse(), store=store, batch_size=2, progress=False)
        results.put((seed, "ok", result.H.numpy()))
    except ValueError as err:
        results.put((seed, "refused", str(err)))


def test_two_processes_cannot_both_start_one_store(tmp_path):
    """Failed before: both processes passed the manifest check, both wrote a manifest, and the store ended up
    with chunks of both requests, which load_store returned without complaint."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    store = str(tmp_path / "store")
    workers = [context.Process(target=_start_store, args=(store, seed, barrier, results)) for seed in (1, 2)]
    for w in workers:
        w.start()
    outcomes = sorted((results.get(timeout=300) for _ in workers), key=lambda r: r[1])
    for w in workers:
        w.join(timeout=60)
    assert [o[1] for o in outcomes] == ["ok", "refused"], outcomes
    assert "was made for a different request: zs_sha256 differs" in outcomes[1][2]
    winner = outcomes[0][0]
    loaded = batch.load_store(store)
    assert torch.equal(loaded.z, torch.randn(4, 6, generator=torch.Generator().manual_seed(winner)))
    assert torch.equal(loaded.H, torch.from_numpy(outcomes[0][2]))


# --- Dask workers that die (issue 12) ----------------------------------------------------------------------

class Killer(nn.Module):
    """Tiny, except that on a Dask worker its first `kills` forward passes (counted in files under `marks`,
    across processes) end the worker process, as an out-of-memory kill would."""

    def __init__(self, marks, kills):
        super().__init__()
        self.net, self.marks, self.kills = Tiny(), str(marks), kills

    def forward(self, z):
        from distributed import get_worker

        try:
            get_worker()
        except ValueError:  # not on a worker
            return self.net(z)
        for k in range(self.kills):
            try:
                os.close(os.open(os.path.join(self.marks, f"kill-{k}"), os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                continue
            time.sleep(0.5)  # let the other worker start its chunk too, so that both die holding the models
            os._exit(1)
        return self.net(z)


@pytest.mark.slow
def test_dask_workers_that_die_get_the_models_again(codes, dask_client, tmp_path):
    """Failed before with `FutureCancelledError ... already forgotten` once both workers had died: nannies
    restart workers empty, and the scattered models were gone."""
    reference = metric(generators.Generator(Tiny(), 6, name="tiny"), codes[:4], distances.mse(), progress=False)
    G = generators.Generator(Killer(tmp_path, kills=2), 6, name="tiny")
    with pytest.warns(RuntimeWarning, match="sending them again"):
        result = batch.metric_many(G, codes[:4], distances.mse(), batch_size=1, client=dask_client, progress=False)
    assert sorted(os.listdir(tmp_path)) == ["kill-0", "kill-1"]  # both workers did die
    assert relative_error(result.H, reference.H) < 1e-6


@pytest.mark.slow
def test_models_lost_again_and_again_is_a_clear_error_and_the_store_resumes(tiny, codes, dask_client, tmp_path,
                                                                             monkeypatch):
    """Past CLUSTER_RETRIES losses the run stops and says that a rerun resumes (losses simulated here by
    cancelling the models once sent, which is what the scheduler does when their last holder dies)."""
    scatter = batch._scatter

    def lost(client, obj, what):
        future = scatter(client, obj, what)
        client.cancel(future)
        return future

    store = tmp_path / "store"
    monkeypatch.setattr(batch, "_scatter", lost)
    with pytest.warns(RuntimeWarning, match="sending them again"), pytest.raises(RuntimeError, match=r"Dask workers died and lost the generator and distance sent to them 3 "
                                           r"time\(s\); 4 chunk\(s\) were not computed; the 0 chunk\(s\) finished "
                                           r"in this run are in .*store, and rerunning metric_many with the same "
                                           r"store computes only the rest"):
        batch.metric_many(tiny, codes[:4], distances.mse(), store=store, batch_size=1, client=dask_client,
                          progress=False)
    monkeypatch.setattr(batch, "_scatter", scatter)
    resumed = batch.metric_many(tiny, codes[:4], distances.mse(), store=store, batch_size=1, client=dask_client,
                                progress=False)
    assert same(resumed, batch.metric_many(tiny, codes[:4], distances.mse(), batch_size=1, progress=False))


def test_subspace_chunks_equal_one_call_and_carry_the_certificate(tiny, codes, tmp_path):
    options = dict(method="subspace", k=3, tol=1e-6)
    whole = metric(tiny, codes, distances.mse(), progress=False, **options)
    store = tmp_path / "store"
    result = batch.metric_many(tiny, codes, distances.mse(), store=store, batch_size=2, progress=False, **options)
    assert relative_error(result.eigvals, whole.eigvals) < 1e-6  # float32 model: chunks of 2 points against 7
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
    manifest = json.loads((store / MANIFEST).read_text())
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

    @functools.wraps(real)  # the same signature: metric_many reads metric's options from it
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
        manifest = json.loads((store / MANIFEST).read_text())
        options = manifest["fingerprint"]["options"]
        assert options["tol"] is None and options["block"] is None and options["basis"] is None
        for added in ("block", "basis"):  # as written before they existed, with the old default tol
            del options[added]
        options["tol"] = 0.0
        (store / MANIFEST).write_text(json.dumps(manifest))
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
