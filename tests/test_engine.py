"""The engine's grid: every operator and every solver on every small case with a known metric (tests/cases.py),
against the dense truth, and the solvers alone on plain matrices with a known spectrum."""
import numpy as np
import pytest
import torch
from scipy.sparse.linalg import LinearOperator

from cases import CASES
from helpers import operators, solvers

# relative error each operator must reach: exact ones to roundoff, finite differences to their truncation error
OPERATORS = {
    "gauss-newton": (lambda c: operators.GaussNewton(c.G, c.z, c.distance), 1e-10),
    "double-backprop": (lambda c: operators.DoubleBackprop(c.G, c.z, c.distance), 1e-10),
    "finite-difference": (lambda c: operators.FiniteDifference(c.G, c.z, c.distance, eps=1e-5), 1e-5),
    "dense": (lambda c: operators.Dense(c.H), 1e-14),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    return CASES[request.param]()


def relative(a, b):
    return ((torch.as_tensor(a) - torch.as_tensor(b)).norm() / torch.as_tensor(b).norm()).item()


def vectors(case, m=3, seed=0):
    b, d = case.z.shape
    return torch.randn(b, d, m, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


# --- operators ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", OPERATORS)
def test_operator_blocks_at_all_points_equal_the_true_metric(case, kind):
    make, rtol = OPERATORS[kind]
    operator = make(case)
    V = vectors(case)
    HV = operator.matmat(V)
    assert HV.shape == V.shape and HV.dtype == torch.float64
    assert relative(HV, case.H @ V) < rtol
    assert operator.columns.tolist() == [V.shape[2]] * len(case.z)


@pytest.mark.parametrize("kind", OPERATORS)
def test_operator_blocks_at_some_points_equal_the_true_metric(case, kind):
    make, rtol = OPERATORS[kind]
    operator = make(case)
    V = vectors(case)
    points = [2, 0]
    assert relative(operator.matmat(V[points], points), case.H[points] @ V[points]) < rtol
    assert operator.columns.tolist() == [3, 0, 3]


@pytest.mark.parametrize("kind", OPERATORS)
def test_operator_as_scipy_linear_operator_at_one_point(case, kind):
    make, rtol = OPERATORS[kind]
    operator = make(case)
    A = operator.linear_operator(1)
    assert isinstance(A, LinearOperator) and A.shape == case.H.shape[1:] and A.dtype == np.float64
    assert A.kind == operator.kind
    V = vectors(case)[1].numpy()
    truth = case.H[1].numpy()
    assert relative(A.matvec(V[:, 0]), truth @ V[:, 0]) < rtol
    assert relative(A.matmat(V), truth @ V) < rtol


@pytest.mark.parametrize("kind", OPERATORS)
def test_operator_dense_equals_the_true_metric(case, kind):
    make, rtol = OPERATORS[kind]
    H = make(case).dense()
    assert H.shape == case.H.shape and H.dtype == torch.float64
    assert torch.allclose(H, H.transpose(1, 2), rtol=0, atol=1e-14 * H.abs().max())
    assert relative(H, case.H) < rtol


def test_operators_refuse_blocks_of_the_wrong_shape(case):
    operator = operators.GaussNewton(case.G, case.z, case.distance)
    with pytest.raises(ValueError, match=r"V must be \(p, d, m\)"):
        operator.matmat(torch.zeros(2, case.z.shape[1], 1, dtype=torch.float64))


# --- solvers on every operator -------------------------------------------------------------------------------------

def true_top(case, k):
    vals, vecs = solvers.eigh_descending(case.H)
    return vals[:, :k], vecs[:, :, :k]


def assert_same_pairs(vals, vecs, case, k, rtol):
    true_vals, true_vecs = true_top(case, k)
    assert vals.shape == (len(case.z), k) and vecs.shape == (len(case.z), case.z.shape[1], k)
    assert torch.allclose(vals, true_vals, rtol=rtol, atol=rtol * true_vals[:, :1].abs().max())
    # eigenvectors up to sign, where the eigenvalue is separated from its neighbours
    gaps = (true_vals[:, :-1] - true_vals[:, 1:]).abs() > 1e-3 * true_vals[:, :1]
    cosines = (vecs * true_vecs).sum(1).abs()[:, :-1]
    assert torch.allclose(cosines[gaps], torch.ones_like(cosines[gaps]), atol=1e3 * rtol)


@pytest.mark.parametrize("kind", OPERATORS)
def test_dense_eigh_of_every_operator(case, kind):
    make, rtol = OPERATORS[kind]
    vals, vecs = solvers.eigh_descending(make(case).dense())
    assert_same_pairs(vals[:, :4], vecs[:, :, :4], case, 4, 10 * rtol)


@pytest.mark.parametrize("kind", OPERATORS)
def test_lanczos_on_every_operator(case, kind):
    make, rtol = OPERATORS[kind]
    found = solvers.lanczos(make(case), 3)
    assert_same_pairs(found.eigvals, found.eigvecs, case, 3, 10 * rtol)
    assert found.residuals is None and (found.columns > 0).all()


@pytest.mark.parametrize("kind", OPERATORS)
def test_block_krylov_on_every_operator_with_a_true_certificate(case, kind):
    make, rtol = OPERATORS[kind]
    tol = 1e-6
    found = solvers.block_krylov(make(case), 3, tol=tol, block=2)
    assert_same_pairs(found.eigvals, found.eigvecs, case, 3, 10 * rtol)
    if kind != "finite-difference":  # its products are H only to truncation error, so is its certificate
        true = (case.H @ found.eigvecs - found.eigvecs * found.eigvals[:, None, :]).norm(dim=1)
        assert (true <= tol * found.eigvals[:, :1] + 1e-12).all()
        assert torch.allclose(found.residuals, true, atol=1e-10 * found.eigvals.max())
    assert ((found.columns >= 3) & (found.columns <= case.z.shape[1])).all()


def test_block_krylov_groups_give_the_same_pairs(case):
    operator = operators.GaussNewton(case.G, case.z, case.distance)
    together = solvers.block_krylov(operator, 3, block=2)
    one_by_one = solvers.block_krylov(operator, 3, block=2, points_per_group=1)
    assert torch.allclose(together.eigvals, one_by_one.eigvals, rtol=1e-12)
    assert torch.equal(together.columns, one_by_one.columns)


# --- solvers on plain matrices with a known spectrum ---------------------------------------------------------------

def known_matrices(eigvals, b=2, seed=0):
    """b symmetric matrices Q diag(eigvals) Qᵀ with random orthogonal Q, and the Q."""
    g = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn(b, len(eigvals), len(eigvals), generator=g, dtype=torch.float64))[0]
    lam = torch.as_tensor(eigvals, dtype=torch.float64)
    return Q @ torch.diag(lam) @ Q.transpose(1, 2), Q


SPECTRA = {
    "decaying": torch.logspace(0, -6, 30, dtype=torch.float64),
    "clustered top": torch.cat([torch.tensor([1.0, 1.0 - 1e-4, 0.999], dtype=torch.float64),
                                torch.logspace(-1, -5, 27, dtype=torch.float64)]),
    "negative tail": torch.cat([torch.logspace(0, -3, 20, dtype=torch.float64),
                                -torch.logspace(-4, -2, 10, dtype=torch.float64)]),
}


@pytest.mark.parametrize("spectrum", SPECTRA)
def test_solvers_on_plain_matrices(spectrum):
    lam = SPECTRA[spectrum]
    H, _ = known_matrices(lam)
    top = lam.sort(descending=True).values[:5].expand(2, -1)
    vals, _ = solvers.eigh_descending(H)
    assert torch.allclose(vals[:, :5], top, rtol=1e-12, atol=1e-14)
    found = solvers.lanczos(operators.Dense(H), 5)
    assert torch.allclose(found.eigvals, top, rtol=1e-10, atol=1e-14)
    found = solvers.block_krylov(operators.Dense(H), 5, tol=1e-10, block=3)
    assert torch.allclose(found.eigvals, top, rtol=1e-8, atol=1e-12)
    assert (found.residuals <= 1e-10 * found.eigvals[:, :1] + 1e-14).all()


def test_top_eigenpairs_takes_a_plain_array_or_an_operator_and_is_reproducible():
    H, _ = known_matrices(SPECTRA["decaying"], b=1)
    first = solvers.top_eigenpairs(H[0].numpy(), 4)
    assert all(torch.equal(a, b) for a, b in zip(first, solvers.top_eigenpairs(H[0].numpy(), 4)))
    again = solvers.top_eigenpairs(operators.Dense(H).linear_operator(0), 4)
    assert torch.allclose(first[0], again[0], rtol=1e-12) and torch.allclose(first[1], again[1], atol=1e-10)


def test_block_krylov_tol_zero_spans_everything():
    H, _ = known_matrices(SPECTRA["decaying"][:12])
    found = solvers.block_krylov(operators.Dense(H), 4, tol=0, block=5)
    assert found.columns.tolist() == [12, 12]
    assert torch.allclose(found.eigvals, SPECTRA["decaying"][:4].expand(2, -1), rtol=1e-10)


def test_block_krylov_warm_started_with_the_eigenvectors_needs_one_block():
    H, Q = known_matrices(SPECTRA["decaying"])
    found = solvers.block_krylov(operators.Dense(H), 4, tol=1e-8, block=4, basis=Q[:, :, :4])
    assert found.columns.tolist() == [4, 4]
    assert torch.allclose(found.eigvals, SPECTRA["decaying"][:4].expand(2, -1), rtol=1e-10)


def test_block_krylov_relative_certificate():
    H, _ = known_matrices(SPECTRA["decaying"])
    found = solvers.block_krylov(operators.Dense(H), 6, tol=1e-6, relative=True, block=2)
    assert (found.residuals <= 1e-6 * found.eigvals).all()
    loose = solvers.block_krylov(operators.Dense(H), 6, tol=1e-6, block=2)
    assert (loose.residuals <= 1e-6 * loose.eigvals[:, :1]).all()
    assert (found.columns >= loose.columns).all()  # each pair's own scale is the stricter certificate


@pytest.mark.parametrize("bad, message", [({"k": 0}, "k must be"), ({"k": 30}, "k must be"),
                                          ({"block": 0}, "block must be a positive integer"),
                                          ({"tol": 1.5}, "tol must be"), ({"basis": torch.zeros(30, 2)}, "no basis")])
def test_block_krylov_refuses_bad_options(bad, message):
    H, _ = known_matrices(SPECTRA["decaying"])
    with pytest.raises(ValueError, match=message):
        solvers.block_krylov(operators.Dense(H), **({"k": 3} | bad))


def test_fix_signs_makes_the_largest_entry_positive_and_keeps_empty_blocks():
    X = torch.tensor([[0.1, -3.0], [-2.0, 1.0]], dtype=torch.float64)
    assert torch.equal(solvers.fix_signs(X), torch.tensor([[-0.1, 3.0], [2.0, -1.0]], dtype=torch.float64))
    assert solvers.fix_signs(torch.zeros(4, 0)).shape == (4, 0)
