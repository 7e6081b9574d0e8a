"""Native baseline: GCN, GAT and GraphSAGE on our own sparse kernels.

Dense parts are torch (GEMMs, cross-entropy, torch.optim.Adam); every sparse
part runs in our kernels (``csrc/``: C++/OpenMP on the CPU, CUDA C++ for
sm_90 on GPUs), wrapped as torch.autograd.Functions in ``ops``:

- GCN: H' = drop(relu(Â (H W) + b)), Â the normalised adjacency with
  self-loops (edge weights computed once in prepare, cached policy); SpMM with
  the bias, activation and the next layer's dropout fused into its epilogue.
- GAT: fused scores (a rank-1 SDDMM), LeakyReLU, edge softmax, attention
  dropout and attention-weighted SpMM in one kernel, and one for its backward.
- SAGE: mean_nbrs(H) W_neigh + H W_root + b computed as
  mean_nbrs(H W_neigh) + H W_root + b (the same by linearity; one GEMM with
  [W_neigh | W_root]), the mean aggregation fused with the root term and epilogue.
- Sparse input features (density below 25 %, e.g. Cora 1.3 %) stay in CSR:
  dropout acts on the non-zeros (zeros stay zero, so this is dense dropout's
  distribution) and the first layer is a sparse x dense product in our kernel.

Dropout is counter-based (hash of seed, step, site and element index), so
masks are reproducible per seed and never stored.

Importing this module imports no torch; the kernels are compiled once
(``build``) and cached under the user cache.
"""
from __future__ import annotations

import numpy as np

from gnnbench.protocol import Availability

from .._graphtask import GraphTaskMixin, gin_net
from .._torch import TorchAdapter
from .sampled import SampledSAGEMixin

SPARSE_FEATURE_DENSITY = 0.25     # below this, input features are kept in CSR
_SITES = 16                        # dropout sites per step (ctr = step * _SITES + site)


class NativeAdapter(SampledSAGEMixin, GraphTaskMixin, TorchAdapter):
    name = "native"
    library = "torch"
    install_hint = "needs a C++ compiler (g++/clang++), ninja (pip install ninja) and torch; nvcc for CUDA"
    models = ("gcn", "gat", "sage", "gin", "sage-sampled")

    def __init__(self):
        self._lib = None
        self._build_info: list[str] = []

    # --- availability and build -------------------------------------------------
    def available(self):
        """Builds (or loads the cached build of) the CPU kernels: a failed build
        makes the cell 'skipped' with the compiler's one-line reason."""
        try:
            import torch
        except Exception as exc:
            return Availability(False, reason=f"torch not importable: {exc}", install_hint=self.install_hint)
        try:
            self._load("cpu")
        except Exception as exc:
            return Availability(False, torch.__version__, reason=str(exc).splitlines()[0] if str(exc) else
                                type(exc).__name__, install_hint=self.install_hint)
        return Availability(True, torch.__version__)

    def _load(self, kind: str):
        from .build import load
        mod, seconds, compiled = load(kind)
        what = "compiled" if compiled else "loaded cached build"
        line = f"native {kind} kernels: {what} in {seconds:.2f} s"
        if line not in self._build_info:
            self._build_info.append(line)
        return mod

    def versions(self):
        v = self.torch_versions()
        try:
            import subprocess
            from .build import cxx_compiler
            out = subprocess.run([cxx_compiler(), "--version"], capture_output=True, text=True, timeout=30).stdout
            v["cxx"] = out.splitlines()[0].strip() if out else cxx_compiler()
        except Exception:
            pass
        return v

    def notes(self):
        out = list(self._build_info)
        spec = getattr(self, "spec", None)
        if getattr(self, "_sparse_x", None) is not None:
            out.append(f"input features kept in CSR ({self._density:.2%} non-zero): dropout on the non-zeros, "
                       "sparse x dense first layer")
        if spec is not None and spec.name == "sage":
            out.append("SAGE computed as mean(H W_neigh) + H W_root (linearity; one GEMM with [W_neigh|W_root])")
        if spec is not None and spec.norm_policy == "recompute" and spec.name == "gat":
            out.append("GAT has no normalisation to recompute; self-loops are part of the CSR built in prepare")
        out.append("dropout: counter-based hash RNG (seeded from prepare's seed), masks recomputed in backward")
        return out

    # --- setup ------------------------------------------------------------------------
    def prepare(self, graph, spec, device, seed, weights):
        import torch

        from gnnbench.reference import gcn_norm
        from gnnbench.weights import gat_heads, layer_dims

        from .ops import Csr, SparseFeatures

        if spec.task == "sampled":
            return self.prepare_sampled(graph, spec, device, seed, weights)
        if spec.task == "graph":
            self.lib = self._load("cuda") if torch.device(device).type == "cuda" else (self._lib or self._load("cpu"))
            return self.prepare_graphs(graph, spec, device, seed, weights)
        torch.manual_seed(seed)
        self.device = torch.device(device)
        self.spec = spec
        self.seed = int(seed) & (2**63 - 1)
        self.step_count = 0
        if self.device.type == "cuda":
            self.lib = self._load("cuda")
        else:
            self.lib = self._lib or self._load("cpu")
        dev, n = self.device, graph.num_nodes
        ei = graph.edge_index
        self.recompute = spec.norm_policy == "recompute"
        if spec.name == "gcn":
            src, dst, w = gcn_norm(ei, n)                       # self-loops + 1/sqrt(d_i d_j), float64
            self.g = Csr.build(src, dst, n, w, dev)
        elif spec.name == "gat":
            loops = np.arange(n, dtype=np.int64)
            self.g = Csr.build(np.concatenate([ei[0], loops]), np.concatenate([ei[1], loops]), n, None, dev)
        elif spec.name == "sage":
            deg = np.bincount(ei[1], minlength=n).astype(np.float64)
            w = 1.0 / np.maximum(deg, 1.0)[ei[1]]
            self.g = Csr.build(ei[0], ei[1], n, w, dev)
        else:
            raise ValueError(f"native adapter has no model '{spec.name}'")
        if self.recompute and spec.name in ("gcn", "sage"):
            self.g = self.g.with_weights(None, None)            # weights derived from degrees every step

        self._density = float(np.count_nonzero(graph.x)) / max(graph.x.size, 1)
        if self._density < SPARSE_FEATURE_DENSITY:
            self._sparse_x = SparseFeatures.build(graph.x, dev)
            self.x = None
        else:
            self._sparse_x = None
            self.x = torch.from_numpy(graph.x).to(dev)

        # parameters in the canonical layout (weights in x out), as leaf tensors
        self.params: dict[str, torch.Tensor] = {}
        for k, v in weights.items():
            self.params[k] = torch.tensor(np.asarray(v), dtype=torch.float32, device=dev).requires_grad_(True)
        self.dims = layer_dims(spec, graph.num_features, graph.num_classes)
        self.heads = [gat_heads(spec, i) if spec.name == "gat" else 1 for i in range(spec.layers)]

        self.y = torch.from_numpy(graph.y).to(dev)
        self.idx = {k: torch.from_numpy(np.flatnonzero(m)).to(dev)
                    for k, m in (("train", graph.train_mask), ("val", graph.val_mask), ("test", graph.test_mask))}
        self.train_idx, self.train_y = self.idx["train"], self.y[self.idx["train"]]
        plist = list(self.params.values())
        if spec.optimizer == "adam":
            try:
                self.optimizer = torch.optim.Adam(plist, lr=spec.lr, weight_decay=spec.weight_decay, fused=True)
            except (RuntimeError, TypeError, ValueError):
                self.optimizer = torch.optim.Adam(plist, lr=spec.lr, weight_decay=spec.weight_decay)
        else:
            self.optimizer = torch.optim.SGD(plist, lr=spec.lr, weight_decay=spec.weight_decay)
        self._loss = None
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    # --- model ------------------------------------------------------------------------
    def _graph(self):
        """The graph with its weights; under norm_policy 'recompute' they are derived
        from the degrees here, every forward (GCN: 1/sqrt(d_i d_j); SAGE: 1/d_i)."""
        g = self.g
        if not self.recompute or self.spec.name == "gat":
            return g
        import torch
        deg = (g.rowptr[1:] - g.rowptr[:-1]).to(torch.float32)
        if self.spec.name == "gcn":
            dis = deg.clamp(min=1).rsqrt()
            val = dis[g.row] * dis[g.col.long()]
        else:
            inv = 1.0 / deg.clamp(min=1)
            val = inv[g.row]
        return g.with_weights(val, val[g.tperm.long()])   # the transposed order is a permutation

    def _forward(self, training: bool):
        import torch

        from . import ops
        spec, lib, P = self.spec, self.lib, self.params
        p = spec.dropout if training else 0.0
        pa = getattr(spec, "attn_dropout", 0.0) if training else 0.0
        base = self.step_count * _SITES
        seed = self.seed
        g = self._graph()
        nl = spec.layers
        h = None
        for i in range(nl):
            last = i == nl - 1
            pre = f"layers.{i}."
            p_next = 0.0 if last else p
            if spec.name == "sage":
                W = torch.cat([P[pre + "weight_neigh"], P[pre + "weight_root"]], 1)
            else:
                W = P[pre + "weight"]
            # the layer's input transform (dropout of the input already applied, except layer 0)
            if i == 0:
                if self._sparse_x is not None:
                    hw = ops.sparse_input_mm(W, self._sparse_x, lib, p, seed, base)
                else:
                    x = ops.dropout(self.x, lib, p, seed, base) if p > 0 else self.x
                    hw = x @ W
            else:
                hw = ops.dense_mm(h, W, lib)
            act = ops.ACT_NONE if last else (ops.ACT_ELU if spec.name == "gat" else ops.ACT_RELU)
            ctr_next = base + 1 + 2 * i
            if spec.name == "gcn":
                h = ops.spmm(hw, g, lib, P[pre + "bias"], act, p_next, seed, ctr_next)
            elif spec.name == "sage":
                h = ops.sage_mean(hw, g, lib, P[pre + "bias"], act, p_next, seed, ctr_next)
            else:
                heads = self.heads[i]
                fo = self.dims[i][1]
                out = ops.gat_attention(hw.view(-1, heads, fo), P[pre + "att_src"], P[pre + "att_dst"], g, lib,
                                        spec.negative_slope, pa, seed, base + 2 + 2 * i)
                if last:
                    h = ops.head_mean(out, P[pre + "bias"], lib)
                else:
                    h = ops.epilogue(out.view(-1, heads * fo), lib, P[pre + "bias"], act, p_next, seed, ctr_next)
        return h

    # --- protocol -----------------------------------------------------------------------
    def train_step(self):
        import torch.nn.functional as F
        self.optimizer.zero_grad(set_to_none=True)
        out = self._forward(training=True)
        loss = F.cross_entropy(out[self.train_idx], self.train_y)
        loss.backward()
        self.optimizer.step()
        self.step_count += 1
        self._loss = loss.detach()

    def _eval_logits(self):
        import torch
        if self.spec.task == "sampled":
            return self.full_logits()
        with torch.no_grad():
            return self._forward(training=False)

    def parameters(self):
        if self.spec.task == "graph":
            return self.gin_params()
        if self.spec.task == "sampled":
            return {k: v.detach().numpy().copy() for k, v in self.params.items()}
        return {k: v.detach().cpu().numpy().copy() for k, v in self.params.items()}

    # --- graph task: our own collation (numpy, straight into the kernels' CSR), our SpMM for the
    # neighbour sum and the readout, torch for the MLPs (the same modules as PyG's and DGL's)
    def build_gin(self, gs, spec, mlps, head):
        import torch

        from .ops import gin_aggregate, gin_readout
        lib = self.lib

        def forward(m, b):
            h = b.x
            for mlp in m.convs:
                h = mlp(gin_aggregate(h, b, lib, spec.eps))
            return m.head(gin_readout(h, b, lib))

        return gin_net(mlps, head, forward)

    def train_batch(self, batch):
        if self.spec.task == "sampled":
            return self.train_sampled(batch)
        return super().train_batch(batch)

    def batch_stats(self, batch) -> dict:
        return self.sampled_stats(batch)

    def collate(self, ids):
        if self.spec.task == "sampled":
            return self.sample(ids)
        from gnnbench.batching import collate

        from .ops import GraphBatch
        return GraphBatch.build(collate(self.gs, ids), self.spec.readout == "mean", self.device)

    def batch_y(self, batch):
        return batch.y

    def batch_arrays(self, batch) -> dict:
        import numpy as np
        rowptr = batch.rowptr.cpu().numpy()
        src = np.repeat(np.arange(rowptr.size - 1), np.diff(rowptr))
        return {"x": batch.x.cpu().numpy(), "edge_index": np.stack([src, batch.col.cpu().numpy().astype(np.int64)]),
                "batch": batch.batch.cpu().numpy()}
