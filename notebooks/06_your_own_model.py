# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-user_expressions
#     formats: py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% tags=["remove-cell"]
from helpers.report import glue, run_times

run_times = glue("run_times", run_times("06_your_own_model"))

# %% [markdown]
# # Your own generator and distance
#
# **What this chapter tests.** That `helpers` works with a model and a distance it has never seen: a
# generator wrapped by hand from its `torch.nn.Module` and trained weights, and a distance defined in a few
# lines, get the same metric from three methods, and the trained network's metric is far more anisotropic
# than the same architecture with random weights.
#
# **Rerun it** ({eval}`run_times`):
#
# ```bash
# python -m helpers.book run --only 06 -p seed 1 -p blur 8
# ```

# %% [markdown]
# Everything in this book works with any generator and any image distance that follow two small
# protocols. This page wraps a model as you would wrap your own, defines a distance of its own, and
# computes the metric and its eigen-axes for them, with the same functions the other chapters use.
#
# **A generator** is anything that maps codes of shape `(n, d)` to images of shape `(n, 3, H, W)` with
# values in $[-1, 1]$, differentiably. `Generator(net, latent_dim=d)` wraps it in one line: the wrapper
# freezes the weights, keeps the model in eval mode, checks latent shapes and adds `sample(n, seed)`.
#
# **A distance** is anything that maps two batches of images to one value per image, `d(x0, x) -> (n,)`.
# Every method of `helpers.metric.metric` accepts it, except the fastest exact one, `jacobian`, which also
# needs a feature map $f$ with $d(x_0, x) = \lVert f(x_0) - f(x) \rVert^2$: subclass
# `helpers.distances.Distance` and implement `features`.

# %% tags=["parameters"]
seed = 0
blur = 4  # side of the average-pooling window of the blurred-pixel distance
device = "cpu"

# %% tags=["hide-input"]
import torch
from torch import nn

from helpers import assets, distances, generators, metric, viz
from helpers.generators import Generator
from helpers.report import glue, record

# %% [markdown]
# ## A generator of your own
#
# As the example, `dcgan-faces64`, the DigiFace face generator of chapter 00, built here from scratch as
# you would build your own network: the generator of the PyTorch DCGAN tutorial, written out layer by
# layer, with the trained weights loaded from its state dict. `assets.fetch` returns the path of the
# verified weights file; with your own model this is your checkpoint.

# %%
class FacesDCGAN(nn.Module):
    """The PyTorch DCGAN tutorial's generator: a 100-d code to a 64×64 RGB image."""

    def __init__(self, latent_dim=100, width=64):
        super().__init__()
        channels = [latent_dim, 8 * width, 4 * width, 2 * width, width]
        layers = []
        for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
            stride, padding = (1, 0) if i == 0 else (2, 1)
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride, padding, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(True)]
        last = nn.ConvTranspose2d(width, 3, 4, 2, 1, bias=False)
        self.main = nn.Sequential(*layers, last, nn.Tanh())

    def forward(self, z):  # (n, 100) -> (n, 3, 64, 64), values in [-1, 1]
        return self.main(z[:, :, None, None])


weights = assets.fetch("dcgan-faces64")
checkpoint = torch.load(weights, map_location="cpu", weights_only=True)
my_net = FacesDCGAN()
my_net.load_state_dict(checkpoint["netG_state_dict"])
G = Generator(my_net, latent_dim=100, name="my-faces").to(device)
z = G.sample(4, seed=seed)
viz.image_grid(G(z), nrow=4, title="samples from my-faces")

# %% [markdown]
# The hand-built wrapper is the same function as the book's own loader, `generators.load("dcgan-faces64")`:

# %%
with torch.no_grad():
    built_in = generators.load("dcgan-faces64", device=device)
    same = float((G(z) - built_in(z)).abs().max())
same_as_loader = glue("same_as_loader", "exactly (the largest pixel difference is zero)"
                      if same == 0 else f"to {same:.1e} in pixel value")

# %% [markdown]
# The two match {eval}`same_as_loader`.

# %% [markdown]
# ## A distance of your own
#
# As an example, a distance that compares images after blurring them (averaging over windows of
# {eval}`blur` by {eval}`blur` pixels): it ignores fine detail and sees only coarse structure. It
# is a squared distance between feature vectors (the blurred pixels, scaled so the value is a mean), so it
# gets the exact `jacobian` method for free.

# %%
class BlurredPixels(distances.Distance):
    """Mean squared difference of images blurred by window × window average pooling."""

    def __init__(self, window: int = 4):
        super().__init__()
        self.window = window

    def features(self, x):
        blurred = nn.functional.avg_pool2d(x, self.window)
        return blurred.flatten(1) / blurred[0].numel() ** 0.5


blurred = BlurredPixels(blur)
glue("blur", blur)
viz.markdown_table({"sample": list(range(len(z))),
                    "distance from sample 0": blurred(G(z[:1]), G(z)).tolist()})

# %% [markdown]
# ## Its metric, three ways
#
# The exact `jacobian` method uses the feature map; `backprop` and `lanczos` need only the distance values.
# A plain function works as a distance for those two: here the same blurred distance written as a lambda.

# %%
exact = metric.metric(G, z[0], blurred)
as_function = lambda x0, x: blurred(x0, x)  # noqa: E731  a distance with no feature map
by_backprop = metric.metric(G, z[0], as_function, "backprop")
by_lanczos = metric.metric(G, z[0], as_function, "lanczos", k=5)
top5 = exact.eigvals[:, :5]
agreement = {
    "backprop vs jacobian (relative Frobenius)":
        float((by_backprop.H - exact.H).norm() / exact.H.norm()),
    "lanczos top-5 vs jacobian (max relative)":
        float(((by_lanczos.eigvals - top5).abs() / top5).max()),
}
record("custom_model_agreement", agreement)
backprop_gap = glue("backprop_gap",
                    agreement["backprop vs jacobian (relative Frobenius)"])
lanczos_gap = glue("lanczos_gap", agreement["lanczos top-5 vs jacobian (max relative)"])
viz.markdown_table({"comparison": list(agreement), "error": list(agreement.values())})

# %% [markdown]
# ## Trained weights make the metric anisotropic
#
# The eigenvalues say how anisotropic the generator is under the distance; the eigenvectors are the axes
# to explore. For comparison, the same architecture with PyTorch's default initial (untrained) weights,
# at the same code:

# %%
with torch.random.fork_rng(devices=[]):  # PyTorch's default initialisation, seeded
    torch.manual_seed(seed)
    untrained_net = FacesDCGAN()
G_untrained = Generator(untrained_net, latent_dim=100, name="untrained").to(device)
untrained = metric.metric(G_untrained, z[0], blurred)


def decades(result, rank):
    """log10 of the top eigenvalue over the eigenvalue at `rank` (1-based)."""
    return float(torch.log10(result.eigvals[0, 0] / result.eigvals[0, rank - 1]))


rank = 50
spread = {"trained": decades(exact, rank), "untrained": decades(untrained, rank)}
record("custom_model_decades_to_rank50", spread)
decades_trained = glue("decades_trained", spread["trained"])
decades_untrained = glue("decades_untrained", spread["untrained"])
more = spread["trained"] > spread["untrained"]
anisotropy_verdict = verdict = glue("anisotropy_verdict", "more" if more else "less")
nets = {"trained (my-faces)": exact, "untrained, same architecture": untrained}
viz.line_chart(range(1, G.latent_dim + 1),
               {name: (r.eigvals[0] / r.eigvals[0, 0]).cpu().numpy()
                for name, r in nets.items()},
               log_y=True, title="spectrum under BlurredPixels", xlabel="rank",
               ylabel="λ / λ₁")

# %%
steps = torch.linspace(-3, 3, 7)
along_top = torch.stack([z[0] + t * exact.eigvecs[0, :, 0].float() for t in steps])
viz.image_grid(G(along_top), nrow=7,
               title="my-faces along its top eigenvector under BlurredPixels")

# %% [markdown]
# The explorer of chapter 04 takes your generator and distance too: `explore({"mine": G}, distance=blurred)`.
#
# ## BigGAN, for readers online
#
# The paper's largest model, BigGAN-deep, has weights that only the web serves, so this book does not run
# it. With a connection it is one line; every function on this page then works on it unchanged (its code is
# 256-d: the noise and the class embedding):
#
# ```python
# from helpers import generators
# G = generators.load("biggan-deep-256", weights="pretrained")  # downloads the published weights
# ```
#
# ## What the numbers show
#
# Wrapping the model took one line once the network was built, and the distance a few. The hand-built
# network reproduces the built-in loader {eval}`same_as_loader`. The three
# methods agree on its metric: backprop differs from the forward-mode Jacobian by
# {eval}`f"{backprop_gap:.1e}"` (relative Frobenius), and Lanczos finds its top eigenvalues to
# {eval}`f"{lanczos_gap:.1e}"`. Nothing in `helpers` knew about this network or this distance beforehand.
#
# From the top eigenvalue to the one at rank 50, the spectrum of the trained network falls by
# {eval}`f"{decades_trained:.3g}"` decades and that of the untrained one by
# {eval}`f"{decades_untrained:.3g}"` decades: the trained weights make the metric {eval}`anisotropy_verdict`
# anisotropic, under a distance that knows nothing about faces. Chapter 03's shuffled-weights control makes
# the same comparison for LPIPS.

# %% [markdown]
# ## Try it
#
# - `-p blur 1` (no blur: plain MSE) or `-p blur 16` (very coarse): how the distance changes the spectrum
#   and the top axis.
# - `-p seed 3`: another code; the hand-built model and the loader still agree exactly.
# - Replace `FacesDCGAN` and the checkpoint with your own network, and `BlurredPixels` with your own
#   features: the rest of the page runs unchanged.
# - Online: `generators.load("biggan-deep-256", weights="pretrained")` in place of `G` (slow on a CPU; use
#   `-p device cuda`).
