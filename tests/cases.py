"""Small generators whose metric is known, shared by the tests: each `Case` has codes z (b, d) and the true metric
H (b, d, d), analytic where there is a closed form and from torch's dense autograd Hessian otherwise. Float64 throughout,
so every exact method must match to roundoff and finite differences to their truncation error."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from helpers import distances
from helpers.generators import Generator


@dataclass
class Case:
    """A generator G, a distance, codes z (b, d) and the true metric H (b, d, d) of that distance at each code."""

    name: str
    G: Generator
    distance: distances.Distance
    z: torch.Tensor
    H: torch.Tensor


def _codes(b: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(b, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


# --- linear: G(z) = A z, MSE -------------------------------------------------------------------------------------

def linear_generator(d=8, side=4, seed=0, dtype=torch.float64):
    """G(z) = A z reshaped to (3, side, side), and A; with MSE its metric is 2 AᵀA / N everywhere (N = 3·side²)."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(d, 3 * side * side, bias=False), nn.Unflatten(1, (3, side, side))).to(dtype)
    A = net[0].weight.detach().clone()
    return Generator(net, d, name="linear"), A


def analytic_metric(A):
    """The MSE metric of G(z) = A z: 2 AᵀA / N (MSE averages over the N rows of A)."""
    return 2 * A.T @ A / A.shape[0]


def linear_case(b=3, d=8) -> Case:
    G, A = linear_generator(d)
    return Case("linear", G, distances.mse(), _codes(b, d, 1), analytic_metric(A).expand(b, d, d).clone())


# --- quadratic: G(z) = A z + B (z ⊙ z), MSE: a different known metric at every code ------------------------------

class Quadratic(nn.Module):
    """G(z) = A z + B (z ⊙ z), reshaped to (3, side, side): J(z) = A + 2 B diag(z), so the MSE metric is
    2 J(z)ᵀJ(z)/N, a different known matrix at every point; `spread` scales B (small: nearly homogeneous)."""

    def __init__(self, d=24, side=4, spread=1.0, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        scales = torch.logspace(0, -3, d, dtype=torch.float64)  # a decaying spectrum, like a generator's
        self.A = nn.Parameter(torch.randn(3 * side * side, d, generator=g, dtype=torch.float64) * scales)
        self.B = nn.Parameter(spread * torch.randn(3 * side * side, d, generator=g, dtype=torch.float64) * scales / 4)
        self.side = side

    def forward(self, z):
        return (z @ self.A.T + (z * z) @ self.B.T).view(-1, 3, self.side, self.side)

    def metric(self, z):
        J = (self.A + 2 * self.B * z).detach()
        return 2 * J.T @ J / self.A.shape[0]


def quadratic_generator(**kw):
    net = Quadratic(**kw)
    return Generator(net, net.A.shape[1], name="quadratic"), net


def quadratic_case(b=3, d=12) -> Case:
    G, net = quadratic_generator(d=d)
    z = _codes(b, d, 2)
    return Case("quadratic", G, distances.mse(), z, torch.stack([net.metric(point) for point in z]))


# --- half image: coordinates [0, k) change only the left half ------------------------------------------------------

class HalfGenerator(nn.Module):
    """Images (3, side, side): coordinates [0, k) feed only the left half; [k, d) feed both halves.

    left = tanh(A z[:k] + B z[k:]), right = tanh(C z[k:]): a change of z[:k] leaves the right half exactly
    unchanged, and (C full rank) no other direction does, so the directions that change the left half and not
    the right span e_0..e_{k-1} exactly. `jacobian(z)` is the closed form (for the default tanh).
    """

    def __init__(self, d=10, k=3, side=8, seed=0, activation=torch.tanh):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.k, self.side, self.activation = k, side, activation
        half = 3 * side * side // 2
        self.A = nn.Parameter(torch.randn(half, k, generator=gen, dtype=torch.float64) / k ** 0.5)
        self.B = nn.Parameter(torch.randn(half, d - k, generator=gen, dtype=torch.float64) / d ** 0.5)
        self.C = nn.Parameter(torch.randn(half, d - k, generator=gen, dtype=torch.float64) / d ** 0.5)

    def forward(self, z):
        left = self.activation(z[:, :self.k] @ self.A.T + z[:, self.k:] @ self.B.T)
        right = self.activation(z[:, self.k:] @ self.C.T)
        shape = (-1, 3, self.side, self.side // 2)
        return torch.cat([left.reshape(shape), right.reshape(shape)], dim=3)

    def jacobian(self, z):
        """(N, d) pixel Jacobian at one code z (d,), rows in the flattened (3, side, side) order; tanh only."""
        left = torch.tanh(z[:self.k] @ self.A.T + z[self.k:] @ self.B.T)
        right = torch.tanh(z[self.k:] @ self.C.T)
        J_left = (1 - left ** 2)[:, None] * torch.cat([self.A, self.B], 1)
        J_right = (1 - right ** 2)[:, None] * torch.cat([torch.zeros(len(right), self.k, dtype=z.dtype), self.C], 1)
        s, d = self.side, z.shape[0]
        return torch.cat([J_left.reshape(3, s, s // 2, d), J_right.reshape(3, s, s // 2, d)], dim=2).reshape(-1, d)


def half_case(b=3, d=10) -> Case:
    net = HalfGenerator(d=d).requires_grad_(False)
    z = _codes(b, d, 3)
    Js = [net.jacobian(point).detach() for point in z]
    H = torch.stack([2 * J.T @ J / J.shape[0] for J in Js])
    return Case("half-image", Generator(net, d, name="half"), distances.mse(), z, H)


# --- a small convolutional net with a feature distance: the dense autograd Hessian as reference ------------------

class TinyConvNet(nn.Module):
    """A smooth (tanh, softplus) transposed-convolution generator: codes (n, d) -> (n, 3, 8, 8), random weights."""

    def __init__(self, d=6, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.main = nn.Sequential(nn.ConvTranspose2d(d, 8, 4, 1, 0), nn.Softplus(),
                                  nn.ConvTranspose2d(8, 3, 4, 2, 1), nn.Tanh()).double()

    def forward(self, z):
        return self.main(z[:, :, None, None])


class ConvFeatures(distances.Distance):
    """A feature distance like LPIPS in miniature: ‖φ(x0) − φ(x)‖² with φ a fixed random conv layer + tanh."""

    def __init__(self, seed=1):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 5, 3, padding=1).double().requires_grad_(False)

    def features(self, x):
        return torch.tanh(self.conv(x)).flatten(1) / 8


def dense_hessian(G, distance, z0):
    """The Hessian of z ↦ d(G(z0), G(z)) at z = z0 (d, d) by torch's own dense autograd (independent of helpers)."""
    with torch.no_grad():
        x0 = G(z0[None])
    return torch.autograd.functional.hessian(lambda z: distance(x0, G(z[None])).sum(), z0)


def conv_case(b=3, d=6) -> Case:
    G, distance = Generator(TinyConvNet(d), d, name="tiny-conv"), ConvFeatures()
    z = _codes(b, d, 4)
    return Case("conv-net", G, distance, z, torch.stack([dense_hessian(G, distance, point) for point in z]))


# --- a sphere: stereographic coordinates mapped isometrically onto images, MSE ------------------------------------

class Sphere(nn.Module):
    """G(u) = Q s(u) reshaped to (3, side, side): s(u) = (2u, ‖u‖² − 1) / (‖u‖² + 1) the inverse stereographic
    projection of u (n, d) onto the unit sphere Sᵈ ⊂ R^(d+1), Q (3·side², d+1) with orthonormal columns.

    With MSE, d(G(u), G(u')) = ‖s(u) − s(u')‖² / N (N = 3·side²), so H = (2/N)·g with g = 4 I / (1 + ‖u‖²)² the
    round metric: geodesics are great circles, of length √(2/N)·angle; `metric(u)` is that H.
    Not in CASES: its metric is a multiple of the identity (no separated eigenvectors for the solver grid).
    """

    def __init__(self, d=2, side=4, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        Q, _ = torch.linalg.qr(torch.randn(3 * side * side, d + 1, generator=g, dtype=torch.float64))
        self.register_buffer("Q", Q)
        self.side = side

    @staticmethod
    def to_sphere(u):
        """s(u) (..., d+1) on the unit sphere for codes u (..., d)."""
        r2 = u.pow(2).sum(-1, keepdim=True)
        return torch.cat([2 * u, r2 - 1], -1) / (r2 + 1)

    @staticmethod
    def from_sphere(s):
        """The code u (..., d) of a point s (..., d+1) of the sphere (not the pole (0, …, 0, 1))."""
        return s[..., :-1] / (1 - s[..., -1:])

    def forward(self, u):
        return (self.to_sphere(u) @ self.Q.T).view(-1, 3, self.side, self.side)

    def metric(self, u):
        N = self.Q.shape[0]
        return 2 / N * 4 / (1 + u.pow(2).sum()) ** 2 * torch.eye(len(u), dtype=u.dtype)


def sphere_generator(d=2, side=4, seed=0):
    net = Sphere(d, side, seed)
    return Generator(net, d, name="sphere"), net


CASES = {"linear": linear_case, "quadratic": quadratic_case, "half-image": half_case, "conv-net": conv_case}
