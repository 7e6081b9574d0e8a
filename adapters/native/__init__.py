"""Native baseline: GCN, GAT and GraphSAGE on our own sparse kernels.

One class per task (``for_task``): ``NativeAdapter`` here is the registered class, with what
belongs to the library (building and loading the kernels, versions, the build notes) and the
full-batch node task (gcn, gat, sage; ``NodeTask`` in ``gnnbench.protocol``);
``graph.NativeGraphAdapter`` runs GIN graph classification and ``sampled.NativeSampledAdapter``
neighbour-sampled GraphSAGE, both subclasses of it.

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
- Input features (``spec.features``): ``dense`` (the default, as every library gets them):
  the float32 N x F matrix, dropout on every element, the first layer a dense GEMM
  (torch.mm); ``sparse``: kept in CSR, dropout on the non-zeros only (the zeros stay
  zero, so this is dense dropout's distribution) and the first layer a sparse x dense
  product in our kernel.

Weights: the node and sampled tasks keep their parameters under the canonical names and in the
canonical layout (``gnnbench.weights``: weights in x out), one leaf tensor per entry, so loading
and ``parameters()`` are copies with no name table; GIN's are torch modules, mapped by
``_graphtask.load_gin`` / ``gin_parameters`` as in PyG and DGL.

Dropout is counter-based (hash of seed, step, site and element index), so
masks are reproducible per seed and never stored: every element is kept with
probability 1 - p, survivors scaled by 1 / (1 - p).

Verify hooks (``set_dropout_masks``) swap in a second build of the same CPU sources
(``build.load('cpu_masked')``, -DGNB_MASKED) whose kernels read the injected masks instead of
hashing; the timed build and the timed ``train_step`` are untouched.

Importing this module imports no torch; the kernels are compiled once
(``build``) and cached under the user cache.
"""
from __future__ import annotations

import numpy as np

from gnnbench.protocol import Availability

from .._torch import TorchAdapter, make_optimizer

_SITES = 16                        # dropout sites per step (ctr = step * _SITES + site)
SAMPLE_CTR = 1 << 40               # dropout_sample's counters start here: no training step uses them
HASH_DROPOUT_NOTE = ("dropout: our counter-based hash RNG (csrc/rng.h: splitmix64 key per seed/step/site, "
                     "lowbias32 hash per element, kept iff u32 >= round(p 2^32): Bernoulli(1-p), survivors x "
                     "1/(1-p)), fused into the kernels' epilogues, masks recomputed in backward")


def site_offset(site: str, layers: int) -> int:
    """The counter offset (ctr mod _SITES) of a node model's dropout site, as ``_forward`` numbers
    them: input.0 -> 0, input.<i+1> (layer i's output epilogue) -> 1 + 2i, attn.<i> -> 2 + 2i."""
    kind, _, num = site.partition(".")
    if not num.isdigit() or kind not in ("input", "attn"):
        raise ValueError(f"native: unknown dropout site '{site}'")
    i = int(num)
    if i >= layers:
        raise ValueError(f"native: dropout site '{site}' is beyond the model's {layers} layers")
    off = (0 if i == 0 else 2 * i - 1) if kind == "input" else 2 + 2 * i
    if off >= _SITES:
        raise ValueError(f"native: dropout site '{site}' beyond the {_SITES} counters of a step")
    return off


class NativeAdapter(TorchAdapter):
    """The library and its node task: full-batch gcn, gat, sage."""

    name = "native"
    library = "torch"
    install_hint = "needs a C++ compiler (g++/clang++), ninja (pip install ninja) and torch; nvcc for CUDA"
    models = ("gcn", "gat", "sage", "gin", "sage-sampled")
    feature_layouts = ("dense", "sparse")
    compiles = False
    compile_why = ("compile=true (torch.compile) not offered: native's forward is already our own fused C++ kernels "
                   "(dropout, SpMM/attention, bias and activation in one pass) behind torch.autograd.Function; "
                   "the row stands for those kernels, not for what inductor makes of the torch ops around them")

    @classmethod
    def for_task(cls, task):
        from .graph import NativeGraphAdapter
        from .sampled import NativeSampledAdapter
        return {"node": NativeAdapter, "graph": NativeGraphAdapter, "sampled": NativeSampledAdapter}.get(task)

    def __init__(self):
        self._lib = None
        self._build_info: list[str] = []

    # --- the library: availability, build, versions (every task) ---------------------------
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
        """The kernels' build, then what the task class says about the prepared model (``_task_notes``)."""
        spec = getattr(self, "spec", None)
        return list(self._build_info) + ([] if spec is None else self._task_notes(spec))

    def _task_notes(self, spec) -> list[str]:
        from .._torch import optimizer_note
        if self._sparse_x is not None:
            out = [f"features: sparse: X kept in CSR ({self._density:.2%} non-zero), dropout on the non-zeros "
                   "only (zeros stay zero: dense dropout's distribution), first layer sparse x dense in our kernel"]
        else:
            out = [f"features: dense: the float32 {self.x.shape[0]}x{self.x.shape[1]} matrix every library "
                   f"gets ({self._density:.2%} non-zero), dropout on every element, first layer a dense "
                   "GEMM (torch.mm)"]
        if spec.name == "sage":
            out.append("SAGE computed as mean(H W_neigh) + H W_root (linearity; one GEMM with [W_neigh|W_root])")
            out.append("SAGE 1/deg: " + ("recomputed from the CSR degrees every forward (norm_policy recompute, as "
                                         "the libraries do)" if spec.norm_policy == "recompute" else
                                         "precomputed once in prepare as edge weights (norm_policy cached: what "
                                         "depends on the graph only)"))
        if spec.name == "gcn":
            out.append("GCN 1/sqrt(d_i d_j): " + ("recomputed from the CSR degrees every forward (norm_policy "
                                                  "recompute)" if spec.norm_policy == "recompute" else
                                                  "precomputed once in prepare (norm_policy cached)"))
        if spec.norm_policy == "recompute" and spec.name == "gat":
            out.append("GAT has no normalisation to recompute; self-loops are part of the CSR built in prepare")
        return out + [HASH_DROPOUT_NOTE, optimizer_note(spec)]

    def _kernels(self, device):
        """The timed build of our kernels for ``device`` (CUDA or CPU)."""
        import torch
        return self._load("cuda") if torch.device(device).type == "cuda" else (self._lib or self._load("cpu"))

    def _next_sample_ctr(self) -> int:
        """A fresh dropout counter for ``dropout_sample`` (one no training step uses)."""
        self._sample_ctr = getattr(self, "_sample_ctr", 0) + 1
        return SAMPLE_CTR + self._sample_ctr

    # --- node task: setup ---------------------------------------------------------------
    def prepare(self, graph, spec, device, seed, weights):
        import torch

        from gnnbench.reference import gcn_norm
        from gnnbench.weights import gat_heads, layer_dims

        from .ops import Csr, SparseFeatures

        torch.manual_seed(seed)
        self.device = torch.device(device)
        self.spec = spec
        self.seed = int(seed) & (2**63 - 1)
        self.step_count = 0
        self.lib = self._kernels(self.device)
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
            raise ValueError(f"native adapter has no node model '{spec.name}'")
        if self.recompute and spec.name in ("gcn", "sage"):
            self.g = self.g.with_weights(None, None)            # weights derived from degrees every step

        self._density = float(np.count_nonzero(graph.x)) / max(graph.x.size, 1)
        self._graph_ref = graph          # verify hooks only (mask layouts); no copy
        if getattr(spec, "features", "dense") == "sparse":
            self._sparse_x = SparseFeatures.build(graph.x, dev)
            self.x = None
        else:                             # the dense float32 matrix every library is handed
            self._sparse_x = None
            self.x = torch.from_numpy(np.ascontiguousarray(graph.x, dtype=np.float32)).to(dev)

        # parameters in the canonical layout (weights in x out), as leaf tensors
        self.params: dict[str, torch.Tensor] = {}
        for k, v in weights.items():
            self.params[k] = torch.tensor(np.asarray(v), dtype=torch.float32, device=dev).requires_grad_(True)
        self.dims = layer_dims(spec, graph.num_features, graph.num_classes)
        self.heads = [gat_heads(spec, i) if spec.name == "gat" else 1 for i in range(spec.layers)]

        self.y = torch.from_numpy(graph.y).to(dev)
        self.train_idx = torch.from_numpy(np.flatnonzero(graph.train_mask)).to(dev)
        self.train_y = self.y[self.train_idx]
        self.optimizer = make_optimizer(self.params.values(), spec)
        self._timed_lib = self.lib
        self._loss = None
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    # --- node task: model ---------------------------------------------------------------
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

    # --- node task: protocol ------------------------------------------------------------
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
        with torch.no_grad():
            return self._forward(training=False)

    def parameters(self):
        return {k: v.detach().cpu().numpy().copy() for k, v in self.params.items()}

    # --- verify-only hooks (gnnbench.protocol); nothing here runs in a timed step -----------------
    def set_dropout_masks(self, masks):
        """Swap in the verify build of our kernels (the same sources, -DGNB_MASKED) with the masks as
        its draws, in each kernel's own element order; None: back to the timed build."""
        import torch
        spec = self.spec
        if masks is None:
            self.lib = self._timed_lib
            return
        if self.device.type != "cpu":
            raise NotImplementedError("native: injected dropout masks need the CPU kernels (verify runs on the CPU)")
        lib = self._load("cpu_masked")
        bits = {}
        for site, m in masks.items():
            off = site_offset(site, spec.layers)
            m = np.asarray(m)
            want = self._site_shape(site)
            if m.shape != want:
                raise ValueError(f"native: mask for '{site}' has shape {m.shape}, the site is {want}")
            keep = m != 0
            if site == "input.0" and self._sparse_x is not None:
                rows, cols = np.nonzero(self._graph_ref.x)          # the CSR order of SparseFeatures.build
                keep = keep[rows, cols]
            elif site.startswith("attn."):
                keep = keep[self._csr_order()]                      # canonical edge order -> our CSR order
            bits[off] = torch.from_numpy(np.where(keep, -1, 0).astype(np.int32).reshape(-1))
        lib.set_masks(bits, _SITES)
        self._mask_bits = bits                                      # keeps the tensors the kernels read alive
        self.lib = lib

    def _site_shape(self, site):
        kind, _, num = site.partition(".")
        i = int(num)
        n = self._graph_ref.num_nodes
        if kind == "input":
            return (n, self.dims[i][0])
        return (self._graph_ref.edge_index.shape[1] + n, self.heads[i])

    def _csr_order(self):
        """For each of our CSR edge positions, its index in the canonical order (edge_index columns,
        then one self-loop per node), as Csr.build sorts them."""
        ei, n = self._graph_ref.edge_index, self._graph_ref.num_nodes
        loops = np.arange(n, dtype=np.int64)
        src, dst = np.concatenate([ei[0], loops]), np.concatenate([ei[1], loops])
        return np.lexsort((src, dst))

    def gradients(self):
        """Gradients of the last step's cross-entropy (the optimiser adds weight decay itself and
        leaves .grad as it is), in the canonical layout."""
        out = {}
        for k, v in self.params.items():
            out[k] = (np.zeros(tuple(v.shape), np.float32) if v.grad is None
                      else v.grad.detach().cpu().numpy().copy())
        return out

    def num_parameters(self):
        return int(sum(v.numel() for v in self.params.values() if v.requires_grad))

    def dropout_sample(self, site, shape):
        """The timed build's own dropout at ``site`` (same kernel, same rate) applied to ones(shape)."""
        import torch

        from . import ops
        spec, lib = self.spec, self._timed_lib
        shape = tuple(int(s) for s in shape)
        kind, _, num = site.partition(".")
        if kind not in ("input", "attn") or not num.isdigit() or int(num) >= spec.layers:
            raise ValueError(f"native: unknown dropout site '{site}'")
        i = int(num)
        seed, ctr = self.seed, self._next_sample_ctr()
        dev = self.device
        with torch.no_grad():
            if kind == "attn":
                if spec.name != "gat":
                    raise ValueError(f"native {spec.name}: no attention dropout site '{site}'")
                m, h = shape                                        # one self-loop per row: alpha = 1
                rowptr = torch.arange(m + 1, dtype=torch.int64, device=dev)
                col = torch.arange(m, dtype=torch.int32, device=dev)
                hw = torch.ones((m, h, 1), device=dev)
                z = torch.zeros(h, device=dev)
                out = lib.gat_fwd(rowptr, col, hw, z, z, float(spec.negative_slope), float(spec.attn_dropout),
                                  seed, ctr)[0]
                return out.reshape(shape).cpu().numpy()
            p = float(spec.dropout)
            if i == 0 and self._sparse_x is not None:
                total = int(np.prod(shape))                         # CSR of ones, one non-zero per row
                rowptr = torch.arange(total + 1, dtype=torch.int64, device=dev)
                col = torch.zeros(total, dtype=torch.int32, device=dev)
                val = torch.ones(total, device=dev)
                return lib.csr_mm(rowptr, col, val, torch.ones((1, 1), device=dev), p, seed, ctr).reshape(
                    shape).cpu().numpy()
            ones = torch.ones(shape, device=dev)
            if i == 0:
                return lib.epilogue(ones, None, ops.ACT_NONE, p, seed, ctr).cpu().numpy()   # = ops.dropout
            if spec.name == "gat":                                  # hidden GAT layers: ELU epilogue
                return lib.epilogue(ones, None, ops.ACT_ELU, p, seed, ctr).cpu().numpy()
            n = shape[0]                                            # GCN/SAGE: the SpMM's ReLU epilogue
            rowptr = torch.arange(n + 1, dtype=torch.int64, device=dev)
            col = torch.arange(n, dtype=torch.int32, device=dev)
            return lib.spmm(rowptr, col, None, ones, None, None, ops.ACT_RELU, p, seed, ctr, None).cpu().numpy()
