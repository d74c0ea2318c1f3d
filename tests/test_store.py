"""helpers.store: model digests that are stable across processes and see what a model computes with; keyed
files that are written atomically and read back only for their own fingerprint. (The metric store is tested
through `metric_many` in test_batch.py, the inversion units through `run_method` in test_inversion_store.py.)"""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from helpers import distances, generators, store


def seeded_linear():
    """nn.Linear(6, 48) with the same weights in every process."""
    linear = nn.Linear(6, 48)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(48, 6, generator=torch.Generator().manual_seed(0)))
        linear.bias.copy_(0.1 * torch.randn(48, generator=torch.Generator().manual_seed(1)))
    return linear


def weights(seed):
    return torch.randn(48, 6, generator=torch.Generator().manual_seed(seed))


GLOBAL_MATRIX = weights(0)


def test_model_digest_is_stable_across_processes_and_sees_globals():
    """A store made in one run must resume in the next: the digest may not depend on ids, addresses or hash
    seeds. A function's module-level globals are part of it."""
    G = generators.Generator(lambda z: (z @ GLOBAL_MATRIX.T).view(-1, 3, 4, 4) * len({"a", "b", "c"}), 6)
    here = [store.model_digest(m) for m in (generators.Generator(seeded_linear(), 6, name="tiny"), G,
                                            distances.mse())]
    code = ("import sys; sys.path.insert(0, 'tests'); import test_store as t; from helpers import store, generators, "
            "distances; G = generators.Generator(lambda z: (z @ t.GLOBAL_MATRIX.T).view(-1, 3, 4, 4), 6); "
            "print(store.model_digest(generators.Generator(t.seeded_linear(), 6, name='tiny')), "
            "store.model_digest(distances.mse()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env=os.environ | {"PYTHONHASHSEED": "12345"}, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [here[0], here[2]]
    global GLOBAL_MATRIX
    saved = GLOBAL_MATRIX
    try:
        GLOBAL_MATRIX = weights(1)
        assert store.model_digest(G) != here[1]
    finally:
        GLOBAL_MATRIX = saved
    assert store.model_digest(G) == here[1]


def test_model_digest_sees_non_persistent_buffers_and_plain_attributes():
    class Scaled(nn.Module):
        def __init__(self, shift, scale):
            super().__init__()
            self.register_buffer("shift", torch.tensor([shift]), persistent=False)  # not in the state_dict
            self.scale = scale  # a plain attribute that changes the output (like BigGAN's truncation)

        def forward(self, z):
            return self.scale * z + self.shift

    digest = store.model_digest
    assert digest(Scaled(1.0, 0.5)) == digest(Scaled(1.0, 0.5))
    assert digest(Scaled(1.0, 0.5)) != digest(Scaled(2.0, 0.5)) != digest(Scaled(2.0, 0.7))
    assert digest(seeded_linear()) != digest(seeded_linear().double())  # dtype counts


def test_keyed_files_are_read_back_only_for_their_fingerprint(tmp_path):
    fingerprint = store.as_json({"tensor": store.tensor_digest(weights(0)), "options": (1, 2)})
    assert fingerprint["options"] == [1, 2]  # as it reads back from a file
    file = store.keyed_file(tmp_path / "new", fingerprint)
    assert file.name == store.fingerprint_digest(fingerprint)[:32] + ".npz"
    store.save_npz(file, fingerprint, x=np.arange(3), label="a")
    assert not [p for p in file.parent.iterdir() if p != file]  # no temporary file left behind
    data = store.load_npz(file, fingerprint)
    assert data["x"].tolist() == [0, 1, 2] and str(data["label"]) == "a"
    with pytest.raises(ValueError, match="other parameters"):
        store.load_npz(file, fingerprint | {"options": [1, 3]})
    assert store.reusable(tmp_path / "absent.npz", store.load_npz, "computing it") is None
    file.write_bytes(file.read_bytes()[:50])
    with pytest.warns(UserWarning, match=r"could not be read .*; computing it"):
        assert store.reusable(file, store.load_npz, "computing it") is None
