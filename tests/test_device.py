"""Device placement: everything follows the inputs' device.

CI has no GPU, so the forward paths run on *fake* CUDA tensors (torch's FakeTensorMode: shapes, dtypes and
devices propagate, no data, no GPU needed), which raises on any tensor that ends up on the CPU next to a CUDA
one. Data-dependent steps (checks on values, eigsh, autograd's engine) cannot run fake; the tests at the end
run everything on a real GPU when one is present.
"""
import pytest
import torch

from helpers import axes, distances, generators, inversion, metric
from helpers.explore import explore

fake_tensor = pytest.importorskip("torch._subclasses.fake_tensor")
CUDA = torch.device("cuda", 0)


def _fake_cuda(module, mode):
    """Move a real CPU module's parameters and buffers to fake CUDA tensors, in place."""
    with mode:
        for m in module.modules():
            for name, p in list(m._parameters.items()):
                if p is not None:
                    m._parameters[name] = torch.nn.Parameter(mode.from_tensor(p.detach()).to(CUDA),
                                                             requires_grad=p.requires_grad)
            for name, b in list(m._buffers.items()):
                if b is not None:
                    m._buffers[name] = mode.from_tensor(b).to(CUDA)
    return module


@pytest.fixture
def fake_mode():
    """A FakeTensorMode to enter once the real modules are built and moved (building inside it fails)."""
    return fake_tensor.FakeTensorMode(allow_non_fake_inputs=True)


@pytest.mark.parametrize("name, options, size", [
    ("dcgan-faces64", {}, 64),
    ("cdcgan-eyes128", {}, 128),
    ("cdcgan-eyes128", {"space": "full"}, 128),
    ("biggan-deep-128", {"weights": "random"}, 128),
])
def test_generators_sample_and_render_on_the_generators_device(fake_mode, name, options, size):
    G = _fake_cuda(generators.load(name, **options), fake_mode)
    assert G.device == CUDA
    with fake_mode:
        z = G.sample(3, seed=0)
        x = G(z)
    assert z.device == CUDA and z.shape == (3, G.latent_dim)
    assert x.device == CUDA and x.shape == (3, 3, size, size)


@pytest.mark.parametrize("build", [lambda: distances.lpips("alex"), lambda: distances.lpips("alex", resize=96),
                                   lambda: distances.lpips("vgg"), distances.mse])
def test_distances_and_features_on_the_images_device(fake_mode, build):
    d = _fake_cuda(build(), fake_mode)
    with fake_mode:
        x = torch.zeros(2, 3, 64, 64, device=CUDA)
        assert d(x, x).device == CUDA
        assert d.features(x).device == CUDA


def test_jacobian_engine_keeps_everything_on_the_device(fake_mode):
    """The forward-mode engine (vmapped JVPs, float64 Gram) on a fake GPU: H comes back on the GPU."""
    G = _fake_cuda(generators.load("dcgan-faces64"), fake_mode)
    d = _fake_cuda(distances.lpips("alex"), fake_mode)
    with fake_mode:
        z = G.sample(3, seed=0)
        H = metric.pullback(lambda q: d.features(G(q)), z, chunk_size=64, max_memory=2 ** 22)
        eigvals, eigvecs = metric.eigh_descending(H)
    assert H.device == CUDA and H.dtype == torch.float64 and H.shape == (3, 100, 100)
    assert eigvals.device == CUDA and eigvecs.device == CUDA


def test_walks_images_and_curves_on_the_device(fake_mode):
    G = _fake_cuda(generators.load("dcgan-faces64"), fake_mode)
    d = _fake_cuda(distances.lpips("alex"), fake_mode)
    with fake_mode:
        z0 = G.sample(1, seed=0)[0]
        codes = z0 + torch.linspace(-1, 1, 5, device=CUDA)[:, None] * torch.ones(100, device=CUDA)
        assert axes.render(G, codes).device == CUDA
        assert axes.distance_curves(G, d, z0, codes).device == CUDA


# --- a real GPU --------------------------------------------------------------------------------------------

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@gpu
@pytest.mark.parametrize("method", metric.METHODS)
def test_metric_on_gpu_matches_cpu(faces, lpips_alex, method):
    z = faces.sample(2, seed=3)
    on_cpu = metric.metric(faces, z, lpips_alex, method, k=10)
    G, d = generators.load("dcgan-faces64", device="cuda"), distances.lpips("alex", device="cuda")
    on_gpu = metric.metric(G, z.cuda(), d, method, k=10)
    for field in ("H", "eigvals", "eigvecs", "z"):
        assert getattr(on_gpu, field).device.type == "cuda", field
    if method in ("jacobian", "backprop"):  # exact: the whole matrix
        assert (on_gpu.H.cpu() - on_cpu.H).norm() / on_cpu.H.norm() < 1e-4
    else:  # top-k: the eigenvalues (a rank-k reconstruction is sensitive to a small gap at rank k)
        error = (on_gpu.eigvals.cpu() - on_cpu.eigvals).abs().max() / on_cpu.eigvals[:, 0].min()
        assert error < (1e-2 if method == "finite-difference" else 1e-4)


@gpu
def test_walks_and_inversion_on_gpu():
    G, d = generators.load("dcgan-faces64", device="cuda"), distances.lpips("alex", device="cuda")
    m = metric.metric(G, G.sample(1, seed=0), d)
    codes = axes.eigen_walks(m.z[0], m.eigvecs[0], m.eigvals[0], [1, 2], [-1.0, 0.0, 1.0])
    assert codes.device.type == "cuda" and codes.shape == (2, 3, 100)
    assert axes.distance_curves(G, d, m.z[0], codes).device.type == "cuda"
    target = G(G.sample(1, seed=5))
    result = inversion.invert(G, target, d, basis="eigen", steps=3, progress=False)
    assert result.z_best.device.type == "cuda" and result.history.device.type == "cuda"
    cma = inversion.invert_cma(G, target, d, basis=m.eigvecs[0][:, :5], eigvals=m.eigvals[0][:5], budget=20,
                               progress=False)
    assert cma.z_best.device.type == "cuda"
    app = explore({"faces": G}, distance=d, device="cuda", n_steps=5)
    before = app.strip.value
    app.rank.value = 3
    assert app.images.device.type == "cuda" and app.strip.value != before
