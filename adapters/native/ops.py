"""Autograd wrappers of the native kernels and the graph structures they read.

Every sparse part of the models runs in our kernels (``csrc/``); torch supplies
dense GEMMs, the loss and the optimiser.  Structures that depend only on the
graph (CSR, its transpose, normalised edge weights, features in CSR/CSC) are
built once, in numpy, by ``Csr.build`` / ``SparseFeatures.build``.

Dropout is counter-based: a site's mask is a pure function of (seed, ctr,
element index), so no mask is stored; backward passes recompute it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

ACT_NONE, ACT_RELU, ACT_ELU = 0, 1, 2
_INT32_MAX = 2**31 - 1


def _i64(a, device):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64)).to(device)


def _i32(a, device):
    a = np.asarray(a)
    if a.size and int(a.max()) > _INT32_MAX:
        raise ValueError("native kernels index with int32: graph too large")
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int32)).to(device)


@dataclass
class Csr:
    """A graph as CSR by destination (messages col -> row) plus its transpose.

    ``tperm[t]``: position in the by-destination order of the t-th edge of the
    transposed (by-source) order; ``tpos`` its inverse.  ``val``/``tval``: edge
    weights (or None).
    """
    n: int
    rowptr: torch.Tensor
    col: torch.Tensor
    val: torch.Tensor | None
    trowptr: torch.Tensor
    tcol: torch.Tensor
    tval: torch.Tensor | None
    tperm: torch.Tensor
    tpos: torch.Tensor
    row: torch.Tensor           # destination of each edge, by-destination order (int64; for recompute)

    @staticmethod
    def build(src, dst, n: int, weight=None, device="cpu", dtype=torch.float32) -> "Csr":
        src = np.asarray(src, np.int64)
        dst = np.asarray(dst, np.int64)
        e = src.size
        if e > _INT32_MAX:
            raise ValueError("native kernels index edges with int32: graph too large")
        order = np.lexsort((src, dst))                    # by destination, then source
        rowptr = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(dst, minlength=n), out=rowptr[1:])
        torder = np.lexsort((dst, src))                   # by source, then destination
        trowptr = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(src, minlength=n), out=trowptr[1:])
        pos = np.empty(e, np.int64)
        pos[order] = np.arange(e)
        val = tval = None
        if weight is not None:
            w = np.asarray(weight)
            val = torch.from_numpy(np.ascontiguousarray(w[order])).to(device=device, dtype=dtype)
            tval = torch.from_numpy(np.ascontiguousarray(w[torder])).to(device=device, dtype=dtype)
        tperm = pos[torder]
        tpos = np.empty(e, np.int64)
        tpos[tperm] = np.arange(e)
        return Csr(n, _i64(rowptr, device), _i32(src[order], device), val, _i64(trowptr, device),
                   _i32(dst[torder], device), tval, _i32(tperm, device), _i32(tpos, device),
                   _i64(dst[order], device))

    def with_weights(self, val, tval) -> "Csr":
        return Csr(self.n, self.rowptr, self.col, val, self.trowptr, self.tcol, tval, self.tperm, self.tpos,
                   self.row)

    @property
    def num_edges(self) -> int:
        return int(self.col.numel())


@dataclass
class SparseFeatures:
    """Input features X [N, Fin] in CSR (rows) and CSC (columns, with each
    non-zero's CSR position, so dropout masks agree in both orders)."""
    n: int
    f: int
    rowptr: torch.Tensor
    col: torch.Tensor
    val: torch.Tensor
    cptr: torch.Tensor
    crow: torch.Tensor
    cperm: torch.Tensor
    cval: torch.Tensor

    @staticmethod
    def build(x: np.ndarray, device="cpu", dtype=torch.float32) -> "SparseFeatures":
        n, f = x.shape
        rows, cols = np.nonzero(x)                        # row-major: CSR order
        vals = x[rows, cols]
        if rows.size > _INT32_MAX:
            raise ValueError("native kernels index features with int32: too many non-zeros")
        rowptr = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=n), out=rowptr[1:])
        corder = np.lexsort((rows, cols))
        cptr = np.zeros(f + 1, np.int64)
        np.cumsum(np.bincount(cols, minlength=f), out=cptr[1:])
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=dtype)  # noqa: E731
        return SparseFeatures(n, f, _i64(rowptr, device), _i32(cols, device), t(vals), _i64(cptr, device),
                              _i32(rows[corder], device), _i32(corder, device), t(vals[corder]))


# ----------------------------------------------------------------------------
# autograd Functions.  `lib` is the loaded extension (CPU or CUDA build).

class SpMM(torch.autograd.Function):
    """Y = drop(act(A X + bias)), A a weighted CSR graph; dX = A^T dZ."""

    @staticmethod
    def forward(ctx, X, bias, g: Csr, lib, act: int, p: float, seed: int, ctr: int):
        Y = lib.spmm(g.rowptr, g.col, g.val, X, None, bias, act, p, seed, ctr, None)
        ctx.save_for_backward(Y)
        ctx.cfg = (g, lib, act, p, seed, ctr)
        return Y

    @staticmethod
    def backward(ctx, gY):
        (Y,) = ctx.saved_tensors
        g, lib, act, p, seed, ctr = ctx.cfg
        gz = lib.epilogue_bwd(Y, gY.contiguous(), act, p, seed, ctr) if (act != ACT_NONE or p > 0) else gY.contiguous()
        dX = dbias = None
        if ctx.needs_input_grad[0]:
            dX = lib.spmm(g.trowptr, g.tcol, g.tval, gz, None, None, ACT_NONE, 0.0, 0, 0, None)
        if ctx.needs_input_grad[1]:
            dbias = gz.sum(0)
        return dX, dbias, None, None, None, None, None, None


class SageMean(torch.autograd.Function):
    """P = [P_neigh | P_root] (N x 2F): Y = drop(act(mean_nbrs(P_neigh) + P_root + bias)).

    ``g.val`` holds 1/deg(destination) per edge (mean; isolated nodes get 0)."""

    @staticmethod
    def forward(ctx, P, bias, g: Csr, lib, act: int, p: float, seed: int, ctr: int):
        f = P.shape[1] // 2
        Y = lib.spmm(g.rowptr, g.col, g.val, P[:, :f], P[:, f:], bias, act, p, seed, ctr, None)
        ctx.save_for_backward(Y)
        ctx.cfg = (g, lib, act, p, seed, ctr)
        return Y

    @staticmethod
    def backward(ctx, gY):
        (Y,) = ctx.saved_tensors
        g, lib, act, p, seed, ctr = ctx.cfg
        gz = lib.epilogue_bwd(Y, gY.contiguous(), act, p, seed, ctr) if (act != ACT_NONE or p > 0) else gY.contiguous()
        dP = dbias = None
        if ctx.needs_input_grad[0]:
            f = gz.shape[1]
            dP = gz.new_empty((gz.shape[0], 2 * f))
            lib.spmm(g.trowptr, g.tcol, g.tval, gz, None, None, ACT_NONE, 0.0, 0, 0, dP[:, :f])
            dP[:, f:].copy_(gz)
        if ctx.needs_input_grad[1]:
            dbias = gz.sum(0)
        return dP, dbias, None, None, None, None, None, None


class SparseInputMM(torch.autograd.Function):
    """Y = drop_nnz(X) @ W for sparse input features X (dropout on the non-zeros:
    the same distribution as dense dropout, zeros stay zero); dW = drop(X)^T dY."""

    @staticmethod
    def forward(ctx, W, x: SparseFeatures, lib, p: float, seed: int, ctr: int):
        ctx.cfg = (x, lib, p, seed, ctr)
        return lib.csr_mm(x.rowptr, x.col, x.val, W.contiguous(), p, seed, ctr)

    @staticmethod
    def backward(ctx, gY):
        x, lib, p, seed, ctr = ctx.cfg
        dW = lib.csr_mm_tgrad(x.rowptr, x.col, x.val, x.cptr, x.crow, x.cperm, x.cval, gY.contiguous(), p, seed,
                              ctr)
        return dW, None, None, None, None, None


class Epilogue(torch.autograd.Function):
    """Y = drop(act(X + bias)) (dense dropout when act is none and bias None)."""

    @staticmethod
    def forward(ctx, X, bias, lib, act: int, p: float, seed: int, ctr: int):
        Y = lib.epilogue(X, bias, act, p, seed, ctr)
        ctx.save_for_backward(Y)
        ctx.cfg = (lib, act, p, seed, ctr)
        return Y

    @staticmethod
    def backward(ctx, gY):
        (Y,) = ctx.saved_tensors
        lib, act, p, seed, ctr = ctx.cfg
        gz = lib.epilogue_bwd(Y, gY.contiguous(), act, p, seed, ctr)
        dbias = gz.sum(0) if ctx.needs_input_grad[1] else None
        return gz, dbias, None, None, None, None, None


class HeadMean(torch.autograd.Function):
    """Y = mean over heads of X [N, H, F] + bias (GAT's averaging last layer), one pass."""

    @staticmethod
    def forward(ctx, X, bias, lib):
        ctx.heads = X.shape[1]
        return lib.head_mean(X.contiguous(), bias)

    @staticmethod
    def backward(ctx, gY):
        h = ctx.heads
        dX = (gY * (1.0 / h)).unsqueeze(1).expand(-1, h, -1).contiguous() if ctx.needs_input_grad[0] else None
        dbias = gY.sum(0) if ctx.needs_input_grad[1] else None
        return dX, dbias, None


class GATAttention(torch.autograd.Function):
    """out[i,h] = sum_{j in N(i)} drop(softmax_j(leaky(<Hw_j,a_src_h> + <Hw_i,a_dst_h>))) Hw[j,h]."""

    @staticmethod
    def forward(ctx, Hw, att_src, att_dst, g: Csr, lib, slope: float, p: float, seed: int, ctr: int):
        Hw = Hw.contiguous()
        att_src, att_dst = att_src.contiguous(), att_dst.contiguous()
        out, alpha, a_s, a_d = lib.gat_fwd(g.rowptr, g.col, Hw, att_src, att_dst, slope, p, seed, ctr)
        ctx.save_for_backward(Hw, att_src, att_dst, a_s, a_d, alpha)
        ctx.cfg = (g, lib, slope, p, seed, ctr)
        return out

    @staticmethod
    def backward(ctx, gout):
        Hw, att_src, att_dst, a_s, a_d, alpha = ctx.saved_tensors
        g, lib, slope, p, seed, ctr = ctx.cfg
        dHw, das, dad = lib.gat_bwd(g.rowptr, g.col, g.trowptr, g.tcol, g.tpos, Hw, att_src, att_dst, a_s, a_d,
                                    alpha, gout.contiguous(), slope, p, seed, ctr)
        return dHw, das, dad, None, None, None, None, None, None


class DenseMM(torch.autograd.Function):
    """Y = X @ W with our skinny kernels where they apply (hidden layers: a few outputs,
    where MKL is slow), torch.mm otherwise; dX = G W^T (torch), dW = X^T G."""

    @staticmethod
    def forward(ctx, X, W, lib):
        ctx.save_for_backward(X, W)
        ctx.lib = lib
        Y = lib.skinny_mm(X, W) if X.stride(-1) == 1 else None
        return X @ W if Y is None else Y

    @staticmethod
    def backward(ctx, G):
        X, W = ctx.saved_tensors
        G = G.contiguous()
        dX = G @ W.t() if ctx.needs_input_grad[0] else None
        dW = None
        if ctx.needs_input_grad[1]:
            dW = ctx.lib.skinny_tgrad(X, G) if X.stride(-1) == 1 else None
            if dW is None:
                dW = X.t() @ G
        return dX, dW, None


# --- plain-call helpers ------------------------------------------------------

def dense_mm(X, W, lib):
    """X @ W: our skinny CPU kernels when the extension has them, else torch."""
    if hasattr(lib, "skinny_mm") and not X.is_cuda:
        return DenseMM.apply(X, W.contiguous(), lib)
    return X @ W



def spmm(X, g: Csr, lib, bias=None, act=ACT_NONE, p=0.0, seed=0, ctr=0):
    return SpMM.apply(X, bias, g, lib, act, float(p), int(seed), int(ctr))


def sage_mean(P, g: Csr, lib, bias=None, act=ACT_NONE, p=0.0, seed=0, ctr=0):
    return SageMean.apply(P, bias, g, lib, act, float(p), int(seed), int(ctr))


def sparse_input_mm(W, x: SparseFeatures, lib, p=0.0, seed=0, ctr=0):
    return SparseInputMM.apply(W, x, lib, float(p), int(seed), int(ctr))


def epilogue(X, lib, bias=None, act=ACT_NONE, p=0.0, seed=0, ctr=0):
    return Epilogue.apply(X, bias, lib, act, float(p), int(seed), int(ctr))


def dropout(X, lib, p, seed, ctr):
    return Epilogue.apply(X, None, lib, ACT_NONE, float(p), int(seed), int(ctr))


def head_mean(X, bias, lib):
    return HeadMean.apply(X, bias, lib)


def gat_attention(Hw, att_src, att_dst, g: Csr, lib, slope=0.2, p=0.0, seed=0, ctr=0):
    return GATAttention.apply(Hw, att_src, att_dst, g, lib, float(slope), float(p), int(seed), int(ctr))


# ---- graph classification (GIN) -----------------------------------------------------------------

@dataclass
class GraphBatch:
    """A collated batch of graphs for our kernels. The canonical edge list is symmetric and sorted
    by (source, target), and collation keeps that order, so one CSR (``rowptr`` from the sources,
    ``col`` the targets) serves the aggregation and its transpose alike. ``ptr``/``members``: the
    graph -> node CSR of the readout (graph g's nodes are ptr[g]:ptr[g+1])."""
    x: torch.Tensor
    rowptr: torch.Tensor
    col: torch.Tensor
    ptr: torch.Tensor
    members: torch.Tensor
    pool_val: torch.Tensor | None      # 1/size per node for a mean readout, None for a sum
    batch: torch.Tensor                # graph of each node (int64), for the readout's backward
    y: torch.Tensor

    @staticmethod
    def build(arrays: dict, mean: bool, device="cpu") -> "GraphBatch":
        n = arrays["x"].shape[0]
        src, dst = arrays["edge_index"]
        rowptr = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(src, minlength=n), out=rowptr[1:])
        ptr = arrays["ptr"]
        pool_val = None
        if mean:
            sizes = np.diff(ptr)
            pool_val = torch.from_numpy(np.repeat(1.0 / np.maximum(sizes, 1), sizes).astype(np.float32)).to(device)
        return GraphBatch(torch.from_numpy(arrays["x"]).to(device), _i64(rowptr, device), _i32(dst, device),
                          _i64(ptr, device), _i32(np.arange(n), device), pool_val,
                          _i64(arrays["batch"], device), _i64(arrays["y"], device))


class GinAggregate(torch.autograd.Function):
    """Z = (1 + eps) H + A H for a symmetric 0/1 adjacency A: dH = (1 + eps) dZ + A dZ."""

    @staticmethod
    def forward(ctx, H, b: GraphBatch, lib, eps: float):
        ctx.cfg = (b, lib, eps)
        R = H if eps == 0.0 else (1.0 + eps) * H
        return lib.spmm(b.rowptr, b.col, None, H, R.contiguous(), None, ACT_NONE, 0.0, 0, 0, None)

    @staticmethod
    def backward(ctx, gZ):
        b, lib, eps = ctx.cfg
        gZ = gZ.contiguous()
        R = gZ if eps == 0.0 else (1.0 + eps) * gZ
        return lib.spmm(b.rowptr, b.col, None, gZ, R.contiguous(), None, ACT_NONE, 0.0, 0, 0, None), None, None, None


class GinReadout(torch.autograd.Function):
    """Sum (or mean) of each graph's node rows, as an SpMM with the graph -> node CSR."""

    @staticmethod
    def forward(ctx, H, b: GraphBatch, lib):
        ctx.b = b
        return lib.spmm(b.ptr, b.members, b.pool_val, H.contiguous(), None, None, ACT_NONE, 0.0, 0, 0, None)

    @staticmethod
    def backward(ctx, gR):
        b = ctx.b
        dH = gR.index_select(0, b.batch)
        if b.pool_val is not None:
            dH = dH * b.pool_val[:, None]
        return dH, None, None


def gin_aggregate(H, b: GraphBatch, lib, eps: float = 0.0):
    return GinAggregate.apply(H, b, lib, float(eps))


def gin_readout(H, b: GraphBatch, lib):
    return GinReadout.apply(H, b, lib)


# ---- neighbour-sampled GraphSAGE: bipartite blocks ---------------------------------------------

@dataclass
class Block:
    """One sampled layer: ``n_dst`` destinations (the first ``n_dst`` of ``src_nodes``), CSR by
    destination over local source ids with mean weights 1/deg, and its transpose."""
    n_dst: int
    src_nodes: torch.Tensor
    rowptr: torch.Tensor
    col: torch.Tensor
    val: torch.Tensor
    trowptr: torch.Tensor
    tcol: torch.Tensor
    tval: torch.Tensor

    @staticmethod
    def from_sampler(parts, n_dst: int) -> "Block":
        rowptr, col, src_nodes, trowptr, tcol, tperm = parts
        deg = rowptr[1:] - rowptr[:-1]
        val = torch.repeat_interleave(1.0 / deg.clamp(min=1).float(), deg)
        return Block(n_dst, src_nodes, rowptr, col, val, trowptr, tcol, val[tperm].contiguous())

    @property
    def num_edges(self) -> int:
        return int(self.col.numel())


class SageBlockMean(torch.autograd.Function):
    """P = [P_neigh | P_root] over the block's source nodes (n_src x 2F):
    Y = act(mean over sampled neighbours of P_neigh + P_root[:n_dst] + bias)."""

    @staticmethod
    def forward(ctx, P, bias, b: Block, lib, act: int):
        f = P.shape[1] // 2
        Y = lib.spmm(b.rowptr, b.col, b.val, P[:, :f], P[:b.n_dst, f:], bias, act, 0.0, 0, 0, None)
        ctx.save_for_backward(Y)
        ctx.cfg = (b, lib, act, P.shape[0])
        return Y

    @staticmethod
    def backward(ctx, gY):
        (Y,) = ctx.saved_tensors
        b, lib, act, n_src = ctx.cfg
        gz = lib.epilogue_bwd(Y, gY.contiguous(), act, 0.0, 0, 0) if act != ACT_NONE else gY.contiguous()
        f = gz.shape[1]
        dP = gz.new_zeros((n_src, 2 * f))
        lib.spmm(b.trowptr, b.tcol, b.tval, gz, None, None, ACT_NONE, 0.0, 0, 0, dP[:, :f])
        dP[:b.n_dst, f:] = gz
        return dP, gz.sum(0), None, None, None


def sage_block_mean(P, b: Block, lib, bias=None, act=ACT_NONE):
    return SageBlockMean.apply(P, bias, b, lib, act)
