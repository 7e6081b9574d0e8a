"""The native adapter's CPU kernels against dense / torch references.

Graphs include empty rows, isolated nodes, a single node, an edgeless graph and
very skewed degrees (a star); gradients are checked with gradcheck in float64
(dropout masks are counter-based, hence deterministic, so gradcheck also runs
with dropout on).  The extension is compiled once per session (and cached in
the user cache across sessions).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gnnbench.adapters.native import build, ops  # noqa: E402
from gnnbench.adapters.native.ops import ACT_ELU, ACT_NONE, ACT_RELU, Csr, SparseFeatures  # noqa: E402


@pytest.fixture(scope="module")
def lib():
    mod, _, _ = build.load("cpu")
    return mod


@pytest.fixture(autouse=True)
def _restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


# ---------------------------------------------------------------------------- graphs

def _random_graph(n, m, rng, isolated=0):
    """m random directed edges (src, dst), none touching the last `isolated` nodes."""
    live = max(n - isolated, 1)
    src = rng.integers(0, live, size=m)
    dst = rng.integers(0, live, size=m)
    key = np.unique(src * n + dst)                # no duplicates (self-loops allowed)
    return key // n, key % n


def _star(n):
    """Node 0 receives from and sends to everyone: one row of degree n-1, the rest 1."""
    others = np.arange(1, n)
    return np.concatenate([others, np.zeros(n - 1, np.int64)]), np.concatenate([np.zeros(n - 1, np.int64), others])


def graphs(rng):
    out = {}
    out["random"] = (12, *_random_graph(12, 30, rng, isolated=3))
    out["star"] = (9, *_star(9))
    out["single"] = (1, np.array([0]), np.array([0]))
    out["single_no_edge"] = (1, np.zeros(0, np.int64), np.zeros(0, np.int64))
    out["edgeless"] = (5, np.zeros(0, np.int64), np.zeros(0, np.int64))
    return out


GRAPH_NAMES = ["random", "star", "single", "single_no_edge", "edgeless"]


def _graph(name, seed=0, weighted=True, dtype=torch.float64):
    rng = np.random.default_rng(seed)
    n, src, dst = graphs(rng)[name]
    w = rng.uniform(0.1, 1.0, size=len(src)) if weighted else None
    return n, src, dst, w, Csr.build(src, dst, n, w, dtype=dtype)


def _dense_adj(n, src, dst, w):
    A = torch.zeros(n, n, dtype=torch.float64)
    for s, d, v in zip(src, dst, w if w is not None else np.ones(len(src))):
        A[d, s] += v
    return A


def _mask(lib, shape, p, seed, ctr):
    """The 0/1 dropout mask the kernels use for an output of this shape."""
    ones = torch.ones(shape, dtype=torch.float64)
    return (lib.epilogue(ones, None, ACT_NONE, p, seed, ctr) != 0).double()


def _act(z, act):
    if act == ACT_RELU:
        return torch.relu(z)
    if act == ACT_ELU:
        return torch.nn.functional.elu(z)
    return z


# ---------------------------------------------------------------------------- SpMM

@pytest.mark.parametrize("name", GRAPH_NAMES)
@pytest.mark.parametrize("act", [ACT_NONE, ACT_RELU, ACT_ELU])
def test_spmm_matches_dense(lib, name, act):
    n, src, dst, w, g = _graph(name)
    A = _dense_adj(n, src, dst, w)
    X = torch.randn(n, 5, dtype=torch.float64)
    R = torch.randn(n, 5, dtype=torch.float64)
    b = torch.randn(5, dtype=torch.float64)
    for p in (0.0, 0.4):
        Y = lib.spmm(g.rowptr, g.col, g.val, X, R, b, act, p, 7, 3, None)
        ref = _act(A @ X + R + b, act)
        if p:
            ref = ref * _mask(lib, (n, 5), p, 7, 3) / (1 - p)
        torch.testing.assert_close(Y, ref, rtol=1e-12, atol=1e-12)


def test_spmm_unweighted_strided_and_out(lib):
    n, src, dst, _, g = _graph("random", weighted=False)
    A = _dense_adj(n, src, dst, None)
    P = torch.randn(n, 8, dtype=torch.float64)
    Y = lib.spmm(g.rowptr, g.col, None, P[:, :4], P[:, 4:], None, ACT_NONE, 0.0, 0, 0, None)
    torch.testing.assert_close(Y, A @ P[:, :4] + P[:, 4:])
    out = torch.full((n, 8), 7.0, dtype=torch.float64)
    lib.spmm(g.rowptr, g.col, None, P[:, 4:], None, None, ACT_NONE, 0.0, 0, 0, out[:, :4])
    torch.testing.assert_close(out[:, :4], A @ P[:, 4:])
    assert torch.all(out[:, 4:] == 7.0)          # the other columns untouched


def test_spmm_float32_large_parallel(lib):
    """Big enough for the OpenMP path, skewed degrees; against torch.sparse."""
    rng = np.random.default_rng(1)
    n = 4000
    src = np.concatenate([rng.integers(0, n, 30000), np.arange(1, n)])   # plus a hub: node 0 <- everyone
    dst = np.concatenate([rng.integers(0, n, 30000), np.zeros(n - 1, np.int64)])
    key = np.unique(src * n + dst)
    src, dst = key // n, key % n
    w = rng.uniform(size=len(src)).astype(np.float32)
    g = Csr.build(src, dst, n, w)
    X = torch.randn(n, 16)
    A = torch.sparse_coo_tensor(np.stack([dst, src]), torch.from_numpy(w), (n, n)).coalesce()
    for t in (1, 2):
        torch.set_num_threads(t)
        Y = lib.spmm(g.rowptr, g.col, g.val, X, None, None, ACT_NONE, 0.0, 0, 0, None)
        torch.testing.assert_close(Y, torch.sparse.mm(A, X), rtol=1e-5, atol=1e-5)
        # transposed CSR gives A^T X
        Yt = lib.spmm(g.trowptr, g.tcol, g.tval, X, None, None, ACT_NONE, 0.0, 0, 0, None)
        torch.testing.assert_close(Yt, torch.sparse.mm(A.t().coalesce(), X), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["random", "star", "single", "edgeless"])
@pytest.mark.parametrize("act,p", [(ACT_NONE, 0.0), (ACT_RELU, 0.3), (ACT_ELU, 0.5)])
def test_spmm_gradcheck(lib, name, act, p):
    n, src, dst, w, g = _graph(name)
    X = torch.randn(n, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    f = lambda X, b: ops.spmm(X, g, lib, b, act, p, 11, 5)  # noqa: E731
    assert torch.autograd.gradcheck(f, (X, b))


@pytest.mark.parametrize("name", ["random", "star", "edgeless"])
def test_sage_mean_matches_reference_and_gradcheck(lib, name):
    rng = np.random.default_rng(2)
    n, src, dst, _, _ = _graph(name)
    deg = np.bincount(dst, minlength=n).astype(np.float64)
    w = 1.0 / np.maximum(deg, 1.0)[dst]
    g = Csr.build(src, dst, n, w, dtype=torch.float64)
    P = torch.tensor(rng.standard_normal((n, 6)), requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    Y = ops.sage_mean(P, g, lib, b, ACT_RELU, 0.0)
    # reference: mean over in-neighbours (0 for isolated nodes) + root + bias
    mean = torch.zeros(n, 3, dtype=torch.float64).index_add_(0, torch.from_numpy(dst), P.detach()[src, :3])
    mean = mean / torch.from_numpy(np.maximum(deg, 1))[:, None]
    torch.testing.assert_close(Y, torch.relu(mean + P.detach()[:, 3:] + b.detach()))
    f = lambda P, b: ops.sage_mean(P, g, lib, b, ACT_RELU, 0.25, 3, 9)  # noqa: E731
    assert torch.autograd.gradcheck(f, (P, b))


@pytest.mark.parametrize("name", GRAPH_NAMES)
def test_sddmm_matches_dense(lib, name):
    n, src, dst, _, g = _graph(name, weighted=False)
    U = torch.randn(n, 6, dtype=torch.float64)
    V = torch.randn(n, 6, dtype=torch.float64)
    out = lib.sddmm(g.rowptr, g.col, U, V)
    rows = np.repeat(np.arange(n), np.diff(g.rowptr.numpy()))
    ref = (U[g.col.long()] * V[torch.from_numpy(rows)]).sum(-1)
    torch.testing.assert_close(out, ref)


def test_sddmm_float32_parallel(lib):
    rng = np.random.default_rng(8)
    n = 5000
    src, dst = _random_graph(n, 40000, rng)
    g = Csr.build(src, dst, n, None)
    U, V = torch.randn(n, 64), torch.randn(n, 64)
    rows = torch.from_numpy(np.repeat(np.arange(n), np.diff(g.rowptr.numpy())))
    torch.testing.assert_close(lib.sddmm(g.rowptr, g.col, U, V), (U[g.col.long()] * V[rows]).sum(-1),
                               rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------- epilogue and dropout

def test_epilogue_gradcheck(lib):
    X = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, requires_grad=True)
    for act, p in ((ACT_NONE, 0.5), (ACT_RELU, 0.2), (ACT_ELU, 0.0), (ACT_ELU, 0.6)):
        assert torch.autograd.gradcheck(lambda X, b: ops.epilogue(X, lib, b, act, p, 1, 2), (X, b))


def test_epilogue_float32_elu_accuracy(lib):
    """The vectorised float exp used for ELU stays within float32 rounding."""
    X = torch.linspace(-30, 5, 100_003).reshape(-1, 1)
    Y = lib.epilogue(X, None, ACT_ELU, 0.0, 0, 0)
    torch.testing.assert_close(Y, torch.nn.functional.elu(X.double()).float(), rtol=0, atol=2e-7)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.6, 0.9])
def test_dropout_keep_fraction_and_scale(lib, p):
    n = 1_000_000
    X = torch.ones(n // 100, 100)
    Y = lib.epilogue(X, None, ACT_NONE, p, 12345, 1)
    kept = Y != 0
    frac = kept.double().mean().item()
    sigma = (p * (1 - p) / n) ** 0.5
    assert abs(frac - (1 - p)) < 6 * sigma, (frac, 1 - p)
    torch.testing.assert_close(Y[kept], torch.full_like(Y[kept], 1 / (1 - p)))
    # neighbouring elements and consecutive steps are uncorrelated
    k = kept.flatten().double()
    assert abs(torch.corrcoef(torch.stack([k[:-1], k[1:]]))[0, 1].item()) < 0.01
    k2 = (lib.epilogue(X, None, ACT_NONE, p, 12345, 2) != 0).flatten().double()
    assert abs(torch.corrcoef(torch.stack([k, k2]))[0, 1].item()) < 0.01


def test_dropout_determinism(lib):
    X = torch.randn(300, 40)
    a = lib.epilogue(X, None, ACT_NONE, 0.5, 7, 3)
    assert torch.equal(a, lib.epilogue(X, None, ACT_NONE, 0.5, 7, 3))            # same seed, same step
    assert not torch.equal(a, lib.epilogue(X, None, ACT_NONE, 0.5, 8, 3))        # another seed
    assert not torch.equal(a, lib.epilogue(X, None, ACT_NONE, 0.5, 7, 4))        # another step/site
    torch.set_num_threads(1)
    one = lib.epilogue(torch.randn(400, 100), None, ACT_NONE, 0.5, 7, 3) != 0
    torch.set_num_threads(2)
    two = lib.epilogue(torch.randn(400, 100), None, ACT_NONE, 0.5, 7, 3) != 0
    assert torch.equal(one, two)                                                  # thread count independent
    assert torch.equal(lib.epilogue(X, None, ACT_NONE, 0.0, 7, 3), X)            # p = 0: identity
    assert torch.count_nonzero(lib.epilogue(X, None, ACT_NONE, 1.0, 7, 3)) == 0  # p = 1: all dropped


def test_dropout_mask_is_the_documented_hash(lib):
    """The dense dropout kernels (forward and backward, all row widths, float and double) keep
    exactly the elements whose draw rand32(key, idx) is >= round(p * 2^32): the 32-bit-lane fast
    path must not change a single draw."""
    seed, ctr, p = 4242, 9, 0.6
    th = round(p * 2**32)
    for n, f in ((2708, 1433), (37, 8), (5, 3), (3, 3703)):
        draws = lib.rand_u32(n * f, seed, ctr).to(torch.int64) & 0xFFFFFFFF
        want = (draws >= th).reshape(n, f)
        for dtype in (torch.float32, torch.float64):
            X = torch.rand(n, f, dtype=dtype) + 0.5
            Y = lib.epilogue(X, None, ACT_NONE, p, seed, ctr)
            assert torch.equal(Y != 0, want), (n, f, dtype)
            torch.testing.assert_close(Y[want], X[want] / (1 - p))
            G = lib.epilogue_bwd(Y, torch.ones_like(X), ACT_NONE, p, seed, ctr)
            assert torch.equal(G != 0, want), (n, f, dtype)


def test_rng_uniform(lib):
    u = lib.rand_u32(1 << 20, 99, 0).double() / 2**32
    assert abs(u.mean().item() - 0.5) < 0.002
    hist = torch.histc(u, bins=16, min=0, max=1)
    expected = u.numel() / 16
    chi2 = (((hist - expected) ** 2) / expected).sum().item()
    assert chi2 < 45          # 15 dof: p ~ 1e-4


# ---------------------------------------------------------------------------- sparse input features

def _sparse_x(rng, n=20, f=30, density=0.15, dtype=torch.float64):
    x = rng.uniform(0.1, 1, size=(n, f)) * (rng.uniform(size=(n, f)) < density)
    x[3] = 0.0                     # an empty row
    x[:, 5] = 0.0                  # an empty column
    return x, SparseFeatures.build(x, dtype=dtype)


@pytest.mark.parametrize("p", [0.0, 0.5])
def test_sparse_input_mm_matches_dense(lib, p):
    rng = np.random.default_rng(3)
    x, xs = _sparse_x(rng)
    W = torch.randn(x.shape[1], 7, dtype=torch.float64)
    # the dropped X itself: X_drop @ I
    Xd = lib.csr_mm(xs.rowptr, xs.col, xs.val, torch.eye(x.shape[1], dtype=torch.float64), p, 5, 8)
    X = torch.from_numpy(x)
    nz = X != 0
    assert torch.all(Xd[~nz] == 0)                                  # zeros stay zeros
    kept = Xd != 0
    torch.testing.assert_close(Xd[kept], X[kept] / (1 - p))          # kept non-zeros scaled by 1/(1-p)
    if p:
        assert 0 < kept.sum() < nz.sum()
    Y = lib.csr_mm(xs.rowptr, xs.col, xs.val, W, p, 5, 8)
    torch.testing.assert_close(Y, Xd @ W)
    G = torch.randn(x.shape[0], 7, dtype=torch.float64)
    for mode in (0, 1, 2):      # auto, through X's CSR, through X's CSC
        dW = lib.csr_mm_tgrad(xs.rowptr, xs.col, xs.val, xs.cptr, xs.crow, xs.cperm, xs.cval, G, p, 5, 8, mode)
        torch.testing.assert_close(dW, Xd.t() @ G)
    W.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda W: ops.sparse_input_mm(W, xs, lib, p, 5, 8), (W,))


def test_sparse_input_mm_float32_parallel(lib):
    rng = np.random.default_rng(4)
    x, xs = _sparse_x(rng, n=3000, f=500, density=0.05, dtype=torch.float32)
    W = torch.randn(500, 64)
    G = torch.randn(3000, 64)
    Xd = lib.csr_mm(xs.rowptr, xs.col, xs.val, torch.eye(500), 0.5, 1, 1)
    for t in (1, 2):
        torch.set_num_threads(t)
        torch.testing.assert_close(lib.csr_mm(xs.rowptr, xs.col, xs.val, W, 0.5, 1, 1), Xd @ W, rtol=1e-4, atol=1e-4)
        for mode in (1, 2):
            dW = lib.csr_mm_tgrad(xs.rowptr, xs.col, xs.val, xs.cptr, xs.crow, xs.cperm, xs.cval, G, 0.5, 1, 1, mode)
            torch.testing.assert_close(dW, Xd.t() @ G, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------- skinny dense products

@pytest.mark.parametrize("n,k,m", [(1, 16, 3), (7, 16, 7), (33, 64, 6), (10, 8, 8), (9, 32, 1), (50, 24, 5)])
def test_skinny_mm_and_tgrad_match_torch(lib, n, k, m):
    X = torch.randn(n, k, dtype=torch.float64)
    W = torch.randn(k, m, dtype=torch.float64)
    G = torch.randn(n, m, dtype=torch.float64)
    Y = lib.skinny_mm(X, W)
    assert Y is not None
    torch.testing.assert_close(Y, X @ W)
    dW = lib.skinny_tgrad(X, G)
    if k in (8, 16, 32):                              # doubles: 1, 2 or 4 vectors of 8
        torch.testing.assert_close(dW, X.t() @ G)
    else:
        assert dW is None                              # shape not handled: the caller falls back to torch
    Xs = torch.randn(n, 2 * k, dtype=torch.float64)[:, :k]      # strided rows
    torch.testing.assert_close(lib.skinny_mm(Xs, W), Xs @ W)
    assert lib.skinny_mm(X, torch.randn(k, 9, dtype=torch.float64)) is None   # too wide for doubles


def test_skinny_float32_parallel_and_autograd(lib):
    X = torch.randn(5003, 64)
    W = torch.randn(64, 7)
    G = torch.randn(5003, 7)
    for t in (1, 2):
        torch.set_num_threads(t)
        torch.testing.assert_close(lib.skinny_mm(X, W), X @ W, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(lib.skinny_tgrad(X, G), X.t() @ G, rtol=1e-4, atol=1e-3)
    Xd = torch.randn(12, 16, dtype=torch.float64, requires_grad=True)
    Wd = torch.randn(16, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: ops.dense_mm(a, b, lib), (Xd, Wd))
    Wwide = torch.randn(16, 24, dtype=torch.float64, requires_grad=True)          # falls back to torch
    assert torch.autograd.gradcheck(lambda a, b: ops.dense_mm(a, b, lib), (Xd, Wwide))


# ---------------------------------------------------------------------------- GAT

def _gat_reference(n, src, dst, Hw, att_src, att_dst, slope, mask=None, scale=1.0):
    """Dense float64 GAT attention (out [N,H,F], alpha [E,H] in the given edge order)."""
    a_s = (Hw * att_src).sum(-1)
    a_d = (Hw * att_dst).sum(-1)
    s = torch.from_numpy(src)
    d = torch.from_numpy(dst)
    e = torch.nn.functional.leaky_relu(a_s[s] + a_d[d], slope)
    H = Hw.shape[1]
    emax = torch.full((n, H), -torch.inf, dtype=Hw.dtype).scatter_reduce(0, d[:, None].expand(-1, H), e, "amax")
    ex = torch.exp(e - emax[d])
    den = torch.zeros(n, H, dtype=Hw.dtype).index_add(0, d, ex)
    alpha = ex / den[d]
    a = alpha if mask is None else alpha * mask * scale
    out = torch.zeros_like(Hw).index_add(0, d, Hw[s] * a[:, :, None])
    return out, alpha


def test_head_mean(lib):
    X = torch.randn(9, 4, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(ops.head_mean(X, b, lib), X.mean(1) + b)
    assert torch.autograd.gradcheck(lambda X, b: ops.head_mean(X, b, lib), (X, b))
    X1 = torch.randn(5, 1, 7, dtype=torch.float64)
    torch.testing.assert_close(lib.head_mean(X1, None), X1[:, 0])


@pytest.mark.parametrize("name", GRAPH_NAMES)
@pytest.mark.parametrize("H,F", [(1, 3), (8, 8), (8, 3), (3, 2)])
def test_gat_forward_matches_reference(lib, name, H, F):
    n, src, dst, _, g = _graph(name, weighted=False)
    Hw = torch.randn(n, H, F, dtype=torch.float64)
    att_src = torch.randn(H, F, dtype=torch.float64)
    att_dst = torch.randn(H, F, dtype=torch.float64)
    order = np.lexsort((src, dst))                                   # the kernels' by-destination order
    src_o, dst_o = src[order], dst[order]
    for p in (0.0, 0.5):
        out, alpha, a_s, a_d = lib.gat_fwd(g.rowptr, g.col, Hw, att_src, att_dst, 0.2, p, 4, 6)
        mask = None
        if p:
            mask = _mask(lib, (len(src), H), p, 4, 6)              # edge k / head h -> index k*H+h
        ref_out, ref_alpha = _gat_reference(n, src_o, dst_o, Hw, att_src, att_dst, 0.2, mask, 1 / (1 - p))
        torch.testing.assert_close(out, ref_out)
        torch.testing.assert_close(alpha, ref_alpha)
        torch.testing.assert_close(a_s, (Hw * att_src).sum(-1))


def test_gat_float32_large_parallel(lib):
    rng = np.random.default_rng(5)
    n = 3000
    src, dst = _random_graph(n, 20000, rng, isolated=10)
    loops = np.arange(n - 10)
    src, dst = np.concatenate([src, loops]), np.concatenate([dst, loops])
    key = np.unique(src * n + dst)
    src, dst = key // n, key % n
    g = Csr.build(src, dst, n, None)
    order = np.lexsort((src, dst))
    for H, F in ((8, 8), (8, 3), (1, 7)):
        Hw = torch.randn(n, H, F)
        a1, a2 = torch.randn(H, F), torch.randn(H, F)
        ref, _ = _gat_reference(n, src[order], dst[order], Hw.double(), a1.double(), a2.double(), 0.2)
        for t in (1, 2):
            torch.set_num_threads(t)
            out = lib.gat_fwd(g.rowptr, g.col, Hw, a1, a2, 0.2, 0.0, 0, 0)[0]
            torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["random", "star", "single"])
@pytest.mark.parametrize("H,F,p", [(2, 3, 0.0), (8, 2, 0.4), (1, 4, 0.3)])
def test_gat_gradcheck(lib, name, H, F, p):
    n, src, dst, _, g = _graph(name, weighted=False)
    Hw = torch.randn(n, H, F, dtype=torch.float64, requires_grad=True)
    att_src = torch.randn(H, F, dtype=torch.float64, requires_grad=True)
    att_dst = torch.randn(H, F, dtype=torch.float64, requires_grad=True)
    f = lambda Hw, a, b: ops.gat_attention(Hw, a, b, g, lib, 0.2, p, 13, 21)  # noqa: E731
    assert torch.autograd.gradcheck(f, (Hw, att_src, att_dst))


@pytest.mark.parametrize("H,F", [(8, 8), (8, 3), (8, 11), (1, 7), (4, 5)])
def test_gat_backward_float32_parallel_matches_float64(lib, H, F):
    """The 8-head vectorised paths (compile-time F, any F), the others, and the
    parallel reduction of d att, against float64."""
    rng = np.random.default_rng(6)
    n = 2500
    src, dst = _random_graph(n, 15000, rng)
    loops = np.arange(n)
    key = np.unique(np.concatenate([src, loops]) * n + np.concatenate([dst, loops]))
    g = Csr.build(key // n, key % n, n, None)
    g64 = Csr.build(key // n, key % n, n, None, dtype=torch.float64)
    Hw = torch.randn(n, H, F)
    a1, a2 = torch.randn(H, F), torch.randn(H, F)
    G = torch.randn(n, H, F)
    res = []
    for dt, graph in ((torch.float64, g64), (torch.float32, g)):
        out, alpha, a_s, a_d = lib.gat_fwd(graph.rowptr, graph.col, Hw.to(dt), a1.to(dt), a2.to(dt), 0.2, 0.6, 1, 2)
        res.append(lib.gat_bwd(graph.rowptr, graph.col, graph.trowptr, graph.tcol, graph.tpos, Hw.to(dt), a1.to(dt),
                               a2.to(dt), a_s, a_d, alpha, G.to(dt), 0.2, 0.6, 1, 2))
    for r64, r32 in zip(*res):
        torch.testing.assert_close(r32.double(), r64, rtol=1e-3, atol=1e-3)


# ---------------------------------------------------------------------------- CSR structures

def test_csr_transpose_and_perm():
    rng = np.random.default_rng(7)
    n, src, dst = graphs(rng)["random"]
    w = rng.uniform(size=len(src))
    g = Csr.build(src, dst, n, w, dtype=torch.float64)
    rp, col = g.rowptr.numpy(), g.col.numpy()
    rows = np.repeat(np.arange(n), np.diff(rp))
    trows = np.repeat(np.arange(n), np.diff(g.trowptr.numpy()))
    tperm, tpos = g.tperm.numpy(), g.tpos.numpy()
    # transposed edge t is by-destination edge tperm[t]: same endpoints, same weight
    assert np.array_equal(trows, col[tperm]) and np.array_equal(g.tcol.numpy(), rows[tperm])
    assert np.array_equal(g.tval.numpy(), g.val.numpy()[tperm])
    assert np.array_equal(tpos[tperm], np.arange(len(src)))


# ---------------------------------------------------------------------------- CUDA sources

@pytest.mark.heavy
def test_cuda_sources_compile_with_nvcc(tmp_path):
    """What `make native-cuda-check` runs: the .cu file builds alone for sm_90 (no GPU needed)."""
    nvcc = build._nvcc()
    if nvcc is None:
        pytest.skip("nvcc not installed")
    csrc = Path(build.__file__).parent / "csrc"
    r = subprocess.run([nvcc, "-c", "-arch=sm_90", "-O3", f"-I{csrc}", str(csrc / "native_cuda.cu"),
                        "-o", str(tmp_path / "k.o")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "k.o").stat().st_size > 0


# ---------------------------------------------------------------------------- gnnbench kernels

def test_kernels_bench_rows_and_table(data_dir):
    from gnnbench.adapters.native import kernels_bench as kb
    rows = kb.run_kernels(["cora", "synthetic:nodes=500,avg_degree=4"], [8], data_dir, repeats=1,
                          impls=("native", "torch.sparse", "pyg"), copy_bw=1e10)
    assert len(rows) == 2 * 2 * 3
    for r in rows:
        assert r["error"] == "" and r["median_ms"] > 0 and r["gbps"] > 0, r
        assert r["edges"] > r["nodes"] > 0 and r["copy_gbps"] == 10.0
    table = kb.format_table(rows)
    assert "| spmm | cora |" in table and "| sddmm | synthetic:nodes=500,avg_degree=4 |" in table
    from click.testing import CliRunner
    from gnnbench.cli import main
    r = CliRunner().invoke(main, ["kernels", "--datasets", "synthetic:nodes=300,avg_degree=4", "--widths", "4",
                                  "--repeats", "1", "--impls", "native", "--ops", "spmm"])
    assert r.exit_code == 0 and "| spmm | synthetic:nodes=300,avg_degree=4 | 300 |" in r.output, r.output
