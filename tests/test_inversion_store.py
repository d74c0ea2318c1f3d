"""Stored inversion units (`inversion.run_method(store=...)`): a run interrupted after one unit resumes with the
same numbers as an uninterrupted one; the key changes with every parameter; writes are atomic. Also the cached
target features of `adam`, checked against the distance itself.

Tiny settings: the faces model, 3 Adam steps (or BasinCMA with 2 proposals × 1 inner step and 2 final steps),
6 rows in units of 2.
"""

import numpy as np
import pytest
import torch

from helpers import inversion, store

BUDGET, ROWS, UNIT = 3, 6, 2


@pytest.fixture(scope="module")
def setup(faces):
    targets = faces(faces.sample(2, seed=123)).detach()
    seeds = list(range(100, 100 + ROWS))
    z0 = inversion.start_codes(faces, seeds)
    index = torch.arange(ROWS) % 2
    return targets, z0, index, seeds


def run(faces, lpips_alex, setup, store, method=None, **changes):
    targets, z0, index, seeds = setup
    options = dict(target_index=index, budget=BUDGET, lr=0.2, schedule="cosine", seeds=seeds, pixel_weight=1.0,
                   chunk_size=UNIT, store=store, unit_rows=UNIT, progress=False) | changes
    return inversion.run_method(faces, targets, lpips_alex, method or inversion.Method("z"), z0, **options)


def same(a, b):
    for name in ("z_best", "loss_best", "history", "images"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert (a.seeds, a.target_index, a.lr, a.schedule) == (b.seeds, b.target_index, b.lr, b.schedule)


def test_adam_measures_the_distance_itself(faces, lpips_alex, setup):
    targets, z0, index, _ = setup
    result = inversion.adam(faces, targets, lpips_alex, z0, target_index=index, steps=2, lr=0.2, progress=False)
    with torch.no_grad():
        direct = lpips_alex(targets[index], faces(z0))
    assert torch.allclose(result.history[:, 0], direct, rtol=1e-5, atol=1e-7)  # step 0 is the start
    assert direct.min() > 0.05  # the starts are not the targets: a real distance was compared


@pytest.mark.parametrize("kind", ["adam", "basin"])
def test_interrupted_run_resumes_with_the_same_numbers(faces, lpips_alex, setup, tmp_path, monkeypatch, kind):
    method = inversion.Method("z") if kind == "adam" else inversion.Method(
        "BasinCMA, z", kind="basin", options=dict(generations=1, popsize=2, inner_steps=1, sigma0=0.5))
    budget = BUDGET if kind == "adam" else 4
    whole = run(faces, lpips_alex, setup, tmp_path / "whole", method, budget=budget)
    assert len(list((tmp_path / "whole").glob("*.npz"))) == ROWS // UNIT
    assert [u.read for u in whole.units] == [False] * (ROWS // UNIT) and sum(u.rows for u in whole.units) == ROWS

    real, calls = inversion.save_unit, []

    def killed_in_the_second_unit(*args, **kwargs):  # the second unit ran but is killed before it is written
        if calls:
            raise KeyboardInterrupt("killed")
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(inversion, "save_unit", killed_in_the_second_unit)
    with pytest.raises(KeyboardInterrupt):
        run(faces, lpips_alex, setup, tmp_path / "split", method, budget=budget)
    monkeypatch.undo()
    assert len(list((tmp_path / "split").glob("*.npz"))) == 1
    assert not list((tmp_path / "split").glob(".*"))  # no temporary file left behind

    resumed = run(faces, lpips_alex, setup, tmp_path / "split", method, budget=budget)
    assert [u.read for u in resumed.units] == [True] + [False] * (ROWS // UNIT - 1)
    same(resumed, whole)
    again = run(faces, lpips_alex, setup, tmp_path / "split", method, budget=budget)  # all read back
    same(again, whole)
    assert [u.read for u in again.units] == [True] * (ROWS // UNIT)
    assert all(u.seconds > 0 and u.cpu_seconds > 0 for u in again.units)  # the times of their runs, read back
    assert all(u.images == UNIT * budget and u.method == method.name for u in again.units)


def test_stored_and_unstored_runs_agree(faces, lpips_alex, setup, tmp_path):
    stored = run(faces, lpips_alex, setup, tmp_path)
    plain = run(faces, lpips_alex, setup, None)
    for name in ("z_best", "loss_best", "history", "images"):
        assert torch.allclose(getattr(stored, name), getattr(plain, name), rtol=1e-5, atol=1e-6), name
    assert stored.basis_name == plain.basis_name == "z"
    assert len(stored.units) == ROWS // UNIT and plain.units == ()  # units are what a store ran or read back


def test_the_key_changes_with_every_parameter(faces, lpips_alex, setup, random_basis):
    targets, z0, index, seeds = setup
    base = dict(target_index=index, budget=BUDGET, lr=0.2, schedule="cosine", seeds=seeds, pixel_weight=1.0,
                pixel="l1", chunk_size=UNIT)
    z = inversion.Method("z")

    def key(method=z, G=faces, targets=targets, z0=z0, **changes):
        fingerprint = inversion.unit_fingerprint(G, targets, lpips_alex, method, z0, **(base | changes))
        return store.fingerprint_digest(fingerprint)

    reference = key()
    assert key() == reference  # the same parameters: the same key (so a rerun reads the store)
    changed = [key(budget=BUDGET + 1), key(lr=0.4), key(lr=[0.2] * (ROWS - 1) + [0.4]), key(schedule="step"),
               key(seeds=[s + 1 for s in seeds]), key(pixel_weight=0.5), key(pixel="mse"), key(chunk_size=4),
               key(target_index=1 - index), key(targets=targets.flip(0)), key(z0=z0 + 1e-3),
               key(method=inversion.Method("eigenbasis", basis=random_basis)),
               key(method=inversion.Method("eigenbasis", basis=random_basis.flip(1))),
               key(method=inversion.Method("z again")),
               key(method=inversion.Method("b", kind="basin", options=dict(generations=1, popsize=2))),
               key(method=inversion.Method("b", kind="basin", options=dict(generations=2, popsize=2)))]
    assert len(set(changed) | {reference}) == len(changed) + 1


def test_a_different_generator_changes_the_key(faces, celeba, lpips_alex, setup):
    targets, z0, index, seeds = setup
    options = dict(target_index=index, budget=BUDGET, lr=0.2, schedule="cosine", seeds=seeds, pixel_weight=1.0,
                   pixel="l1", chunk_size=UNIT)
    keys = {store.fingerprint_digest(inversion.unit_fingerprint(G, targets, lpips_alex, inversion.Method("z"),
                                                                      z0, **options)) for G in (faces, celeba)}
    assert len(keys) == 2


def test_writes_are_atomic_and_bad_files_are_run_again(faces, lpips_alex, setup, tmp_path, monkeypatch):
    first = run(faces, lpips_alex, setup, tmp_path)
    files = sorted(tmp_path.glob("*.npz"))
    assert len(files) == ROWS // UNIT

    # a write that fails half-way leaves neither the file nor a temporary one
    def fails(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    target = tmp_path / "new" / "unit.npz"
    monkeypatch.setattr(np, "savez", fails)
    with pytest.raises(OSError, match="disk full"):
        inversion.save_unit(first, target, {"x": 1})
    monkeypatch.undo()
    assert not target.exists() and not list(target.parent.iterdir())

    # a truncated unit and a unit of other parameters are both run again, with a warning
    files[0].write_bytes(files[0].read_bytes()[:100])
    run(faces, lpips_alex, setup, tmp_path / "other", lr=0.4)
    other_file = sorted((tmp_path / "other").glob("*.npz"))[1]
    files[1].write_bytes(other_file.read_bytes())
    with pytest.warns(UserWarning, match="running that unit again"):
        again = run(faces, lpips_alex, setup, tmp_path)
    same(again, first)
    with pytest.raises(ValueError, match="other parameters"):
        inversion.load_unit(other_file, inversion.unit_fingerprint(
            faces, setup[0], lpips_alex, inversion.Method("z"), setup[1][2:4], target_index=setup[2][2:4],
            budget=BUDGET, lr=0.2, schedule="cosine", seeds=setup[3][2:4], pixel_weight=1.0, pixel="l1",
            chunk_size=UNIT))


def test_bad_unit_rows(faces, lpips_alex, setup, tmp_path):
    with pytest.raises(ValueError, match="unit_rows must be a positive integer"):
        run(faces, lpips_alex, setup, tmp_path, unit_rows=0)


@pytest.fixture(scope="module")
def random_basis(faces):
    random = torch.randn(faces.latent_dim, faces.latent_dim, generator=torch.Generator().manual_seed(0))
    return torch.linalg.qr(random)[0]
