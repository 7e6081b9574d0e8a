"""Neighbour-sampled GraphSAGE on the native kernels (the ``sampled`` task, ``SampledTask`` in
``gnnbench.protocol``): our own sampler (``csrc/sampler.cpp``, C++/OpenMP, uniform without
replacement, counter-based RNG), blocks in CSR with their transposes, the bipartite mean
aggregation in our SpMM, torch for the GEMMs and Adam. CPU only (the sampler has no CUDA
version yet).
"""
from __future__ import annotations

import numpy as np

from . import _SITES, HASH_DROPOUT_NOTE, NativeAdapter


class NativeSampledAdapter(NativeAdapter):
    models = ("sage-sampled",)
    feature_layouts = ("dense",)
    sparse_features_why = ("the sparse input path (CSR features, sparse x dense first layer) is the full-graph node "
                           "models' (gcn, gat, sage); the sampled task gathers dense feature rows per batch")

    def prepare(self, graph, spec, device, seed, weights):
        import torch

        from gnnbench.specs import fanouts

        from .._torch import make_optimizer
        from .ops import Block
        if torch.device(device).type != "cpu":
            raise ValueError("native neighbour sampler is CPU-only")
        torch.manual_seed(seed)
        self.device = torch.device("cpu")
        self.lib = self._lib or self._load("cpu")
        self.spec, self.graph = spec, graph
        self.seed = int(seed) & (2**63 - 1)
        self.step_count = 0
        self.batch_count = 0
        self.fanouts = fanouts(spec)
        n = graph.num_nodes
        src, dst = graph.edge_index       # symmetric, sorted by source: row i lists i's neighbours
        rowptr = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(src, minlength=n), out=rowptr[1:])
        self.rowptr = torch.from_numpy(rowptr)
        self.col = torch.from_numpy(dst.astype(np.int32))
        self.pos = torch.full((n,), -1, dtype=torch.int32)
        self.x = torch.from_numpy(graph.x)
        self.y = torch.from_numpy(graph.y)
        self.params = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in weights.items()}
        self.optimizer = make_optimizer(self.params.values(), spec)
        everyone = torch.arange(n, dtype=torch.int64)
        self.full = Block.from_sampler(self.lib.sample_layer(self.rowptr, self.col, everyone, -1, 0, 0, self.pos), n)
        self._loss = None

    # the harness's batch of seed nodes -> blocks (output layer sampled first) + gathered features
    def collate(self, ids):
        import torch

        from .ops import Block
        seeds = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
        frontier, blocks = seeds, []
        self.batch_count += 1
        for layer in reversed(range(len(self.fanouts))):
            parts = self.lib.sample_layer(self.rowptr, self.col, frontier, self.fanouts[layer], self.seed,
                                          self.batch_count * _SITES + layer, self.pos)
            blocks.insert(0, Block.from_sampler(parts, frontier.numel()))
            frontier = parts[2]
        return self.x.index_select(0, frontier), blocks, self.y.index_select(0, seeds)

    def _sage(self, h, blocks, training: bool):
        import torch

        from .ops import ACT_NONE, ACT_RELU, dropout, sage_block_mean
        last = len(blocks) - 1
        for k, b in enumerate(blocks):
            p = f"layers.{k}."
            if training and self.spec.dropout > 0:
                h = dropout(h.contiguous(), self.lib, self.spec.dropout, self.seed, self.step_count * _SITES + k)
            P = h @ torch.cat([self.params[p + "weight_neigh"], self.params[p + "weight_root"]], 1)
            h = sage_block_mean(P, b, self.lib, self.params[p + "bias"], ACT_NONE if k == last else ACT_RELU)
        return h

    def train_batch(self, batch):
        import torch.nn.functional as F
        x, blocks, y = batch
        self.optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self._sage(x, blocks, True), y)
        loss.backward()
        self.optimizer.step()
        self.step_count += 1
        self._loss = loss.detach()

    def batch_stats(self, batch) -> dict:
        x, blocks, y = batch
        return {"seed_nodes": int(y.numel()), "input_nodes": int(x.shape[0]),
                "edges": int(sum(b.num_edges for b in blocks))}

    def _eval_logits(self):
        """Full-graph inference: every node's whole neighbourhood, one block per layer."""
        import torch
        with torch.no_grad():
            return self._sage(self.x, [self.full] * len(self.fanouts), False)

    def _task_notes(self, spec) -> list[str]:
        from .._torch import optimizer_note
        return ["features: dense rows gathered per batch, dropout on every element",
                "sampled SAGE 1/deg: computed per sampled block (it depends on the sample)",
                HASH_DROPOUT_NOTE, optimizer_note(spec)]

    # --- verify-only hooks: verify compares the full-graph logits only (samples differ by library) ----
    def set_dropout_masks(self, masks):
        raise NotImplementedError("native sage-sampled: samples differ by library, only full-graph logits are "
                                  "verified")

    def dropout_sample(self, site, shape):
        """The timed dropout (``ops.dropout``: the epilogue kernel, no activation) at ``input.<i>``."""
        import torch

        from .ops import ACT_NONE
        kind, _, num = site.partition(".")
        if kind != "input" or not num.isdigit() or int(num) >= self.spec.layers:
            raise ValueError(f"native: unknown dropout site '{site}'")
        with torch.no_grad():
            ones = torch.ones(tuple(int(s) for s in shape))
            return self.lib.epilogue(ones, None, ACT_NONE, float(self.spec.dropout), self.seed,
                                     self._next_sample_ctr()).numpy()
