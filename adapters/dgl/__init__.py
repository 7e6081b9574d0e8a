"""DGL (PyTorch backend): GraphConv, GATConv and SAGEConv('mean') on a
``dgl.graph`` built from the canonical edge list, written as DGL's own
examples do (self-loops added to the graph once, ``dgl.add_self_loop``).

DGL is imported through ``_import.import_dgl`` (GraphBolt workaround, see
there); the child process gets ``DGLBACKEND=pytorch``.

``norm_policy`` (graph-only work):

- GCN ``cached``: the symmetric normalisation 1/sqrt(d_i d_j) (with self-loops)
  is computed once in ``prepare`` with DGL's ``EdgeWeightNorm(norm='both')``
  and passed as ``edge_weight`` to ``GraphConv(norm='none')``.
  ``recompute``: ``GraphConv(norm='both')``, which recomputes degrees and
  their inverse square roots in every forward pass.
- GAT / GCN ``cached``: the graph was checked once in ``prepare`` to have no
  zero-in-degree node, so the convs get ``allow_zero_in_degree=True``;
  ``recompute`` keeps DGL's default (``False``), which re-checks
  ``graph.in_degrees() == 0`` in every forward pass.
- GAT self-loops are added once in ``prepare`` under both policies: DGL's
  ``GATConv`` has no option to add them per forward.
- SAGE: ``SAGEConv('mean')`` has no graph-only precomputation; both policies
  run the same code: its ``fn.mean`` reduce divides by the in-degree in every
  forward, and an ``edge_weight`` only multiplies the messages before that mean,
  so a precomputed 1/deg cannot replace the division.

One class per task: ``DGLAdapter`` (registered; the full-batch node models),
``DGLGraphAdapter`` (GIN on ``dgl.batch``) and ``DGLSampledAdapter`` (sage-sampled with
``NeighborSampler``).

Features are dense (``features: sparse`` is not offered, see ``SPARSE_WHY``).
Input dropout is ``F.dropout`` in the model, called through a per-layer list
(``drops``) so that ``gnnbench verify`` can swap a fixed mask in; GAT's attention
dropout is ``GATConv.attn_drop`` (an ``nn.Dropout``), swapped for a masked module
while verify's masks are set. Edge ids follow the order the graph was built in
(the canonical columns, then ``add_self_loop``'s loops in node order).

Mapping onto the canonical layout (``gnnbench.weights``):

- GraphConv: ``weight`` is already ``in x out``; ``bias``.
- GATConv: ``fc.weight`` is ``(heads*out) x in`` (transposed); ``attn_l`` is
  applied to the source node (``att_src``), ``attn_r`` to the target
  (``att_dst``), both ``(1, heads, out)``. Hidden layers use GATConv's bias
  (``heads*out``, added before the heads are concatenated, which is the same);
  the last layer is ``GATConv(bias=False)`` and the canonical ``[out]`` bias is
  added by the model after the head mean. ``attn_drop`` is the attention
  dropout; ``feat_drop`` is 0 (input dropout is done by the model).
- SAGEConv: ``fc_neigh.weight`` (no bias) = ``weight_neigh``ᵀ,
  ``fc_self.weight`` = ``weight_root``ᵀ, ``fc_self.bias`` = ``bias``.
"""
from __future__ import annotations

import numpy as np

from gnnbench.protocol import Availability

from .._graphtask import TorchGraphTask, gin_net
from .._torch import (TorchAdapter, TorchHooks, canonical_attention_edges, compile_notes, edge_permutation,
                      make_optimizer, masked_dropout_module, optimizer_note)
from . import _import

POLICIES = ("cached", "recompute")
SAGE_NOTE = ("sage: SAGEConv('mean') divides the neighbour sum by the in-degree (fn.mean) in every forward, "
             "under both norm_policy values: it cannot take a precomputed 1/deg (edge_weight only scales the "
             "messages before the mean)")
SPARSE_WHY = ("DGL's GraphConv, GATConv and SAGEConv document feat as a dense torch.Tensor of shape (N, D_in) and "
              "offer no sparse-feature input (GraphConv(norm='both') scales feat by a degree vector, GATConv "
              "passes it through feat_drop, SAGEConv message-passes it as node data); dgl.sparse is an "
              "adjacency API, not a layer input")


class DGLAdapter(TorchHooks, TorchAdapter):
    """DGL, and its full-batch node models (``NodeTask``): gcn, gat, sage."""
    name = "dgl"
    library = "dgl"
    install_hint = "pip install 'gnnbench[dgl]'"
    models = ("gcn", "gat", "sage", "gin", "sage-sampled")
    feature_layouts = ("dense",)
    sparse_features_why = SPARSE_WHY

    def __init__(self):
        self._stubbed: bool | None = None
        self._policy_note: str | None = None

    # ---- parent -----------------------------------------------------------------
    @classmethod
    def for_task(cls, task: str):
        return {"node": DGLAdapter, "graph": DGLGraphAdapter, "sampled": DGLSampledAdapter}.get(task)

    @classmethod
    def child_env(cls, threads: int) -> dict[str, str]:
        return {**super().child_env(threads), "DGLBACKEND": "pytorch"}

    # ---- child ------------------------------------------------------------------
    def _dgl(self):
        dgl, stubbed = _import.import_dgl()
        self._stubbed = stubbed
        return dgl

    def available(self):
        try:
            dgl = self._dgl()
        except Exception as exc:  # ImportError, or a broken binary
            return Availability(False, reason=f"{type(exc).__name__}: {exc}", install_hint=self.install_hint)
        return Availability(True, dgl.__version__)

    def versions(self):
        dgl = self._dgl()
        return {"dgl": dgl.__version__, **self.torch_versions()}

    def notes(self):
        out = []
        if self._stubbed:
            reason = _import.stub_reason()
            out.append(_import.STUB_NOTE + (f": {reason}" if reason else ""))
        spec = getattr(self, "spec", None)
        if spec is not None:
            out.append(optimizer_note(spec))
            out += compile_notes(spec)
            out.append("features=dense: feat is a dense float32 tensor (sparse features not offered)")
            out += self.task_notes()
        if self._policy_note:
            out.append(self._policy_note)
        if spec is not None and spec.name in ("sage", "sage-sampled"):
            out.append(SAGE_NOTE)
        return out

    def task_notes(self) -> list[str]:
        """What the task's class adds to the notes (after the features)."""
        return []

    def set_threads(self, n: int) -> None:
        super().set_threads(n)
        dgl = self._dgl()
        dgl.utils.set_num_threads(n)  # DGL's own OpenMP kernels

    def prepare(self, graph, spec, device, seed, weights):
        self._dgl().seed(seed)
        super().prepare(graph, spec, device, seed, weights)

    def build(self, graph, spec, device):
        import torch
        from dgl.nn.pytorch import EdgeWeightNorm, GATConv, GraphConv, SAGEConv

        from gnnbench.weights import gat_heads, layer_dims

        dgl = self._dgl()
        if spec.norm_policy not in POLICIES:
            raise ValueError(f"unknown norm_policy '{spec.norm_policy}' (valid: {', '.join(POLICIES)})")
        cached = spec.norm_policy == "cached"
        ei = torch.from_numpy(graph.edge_index)
        g = dgl.graph((ei[0], ei[1]), num_nodes=graph.num_nodes)
        dims = layer_dims(spec, graph.num_features, graph.num_classes)
        edge_weight = None
        if spec.name == "gcn":
            g = dgl.add_self_loop(g)
            if cached:
                ones = torch.ones(g.num_edges(), dtype=torch.float64)
                edge_weight = EdgeWeightNorm(norm="both")(g, ones).float()
                self._policy_note = ("norm_policy=cached: D^-1/2 (A+I) D^-1/2 edge weights from "
                                     "EdgeWeightNorm once in prepare; GraphConv(norm='none')")
            else:
                self._policy_note = ("norm_policy=recompute: GraphConv(norm='both') recomputes the "
                                     "degree normalisation every forward")
            convs = [GraphConv(i, o, norm="none" if cached else "both", allow_zero_in_degree=cached)
                     for i, o in dims]
        elif spec.name == "gat":
            g = dgl.add_self_loop(g)
            convs = [GATConv(i, o, num_heads=gat_heads(spec, k), feat_drop=0.0, attn_drop=spec.attn_dropout,
                             negative_slope=spec.negative_slope, allow_zero_in_degree=cached,
                             bias=k < len(dims) - 1)
                     for k, (i, o) in enumerate(dims)]
            self._policy_note = (f"norm_policy={spec.norm_policy}: self-loops added once in prepare "
                                 "(DGL's GATConv cannot add them per forward)"
                                 + ("" if cached else "; zero-in-degree check every forward"))
        elif spec.name == "sage":
            convs = [SAGEConv(i, o, "mean") for i, o in dims]
            self._policy_note = None        # SAGE_NOTE, added by notes()
        else:
            raise ValueError(f"dgl adapter has no model '{spec.name}'")
        if cached and spec.name in ("gcn", "gat") and bool((g.in_degrees() == 0).any()):
            raise ValueError("graph has zero-in-degree nodes after adding self-loops")
        try:
            g = g.to(device)
        except Exception as exc:
            raise RuntimeError(f"DGL cannot place the graph on {device}: {exc} "
                               "(is this DGL build CUDA-enabled?)") from exc
        x = torch.from_numpy(graph.x).to(device)
        if edge_weight is not None:
            edge_weight = edge_weight.to(device)
        self.convs = convs
        self._dropout_layout(spec, graph)
        self._attn_drop = [conv.attn_drop for conv in convs] if spec.name == "gat" else []
        self._attn_perm = None
        self.net = Net(convs, spec, graph.num_classes, self.drops)
        return self.net, (g, x, edge_weight)

    def _dropout_layout(self, spec, graph):
        """Layer k's input dropout (F.dropout, as DGL's examples call it) in the list the forward reads."""
        import torch.nn.functional as F
        from gnnbench.weights import layer_dims
        dims = layer_dims(spec, graph.num_features, graph.num_classes)
        self.drop_ops = [F.dropout] * len(dims)
        self.drops = list(self.drop_ops)
        self.num_nodes, self.layer_inputs = graph.num_nodes, [i for i, _ in dims]
        self._edge_index_np = graph.edge_index

    # ---- verify hooks of GAT's attention dropout: GATConv applies self.attn_drop (nn.Dropout) to the edge
    # softmax [E, heads, 1]; a mask swaps that module for a masked one, permuted to DGL's edge ids
    def attn_sites(self):
        e = self._edge_index_np.shape[1] + self.num_nodes
        return {f"attn.{k}": (e, conv._num_heads) for k, conv in enumerate(self.convs)}

    def set_attn_masks(self, masks):
        import torch
        for conv, orig in zip(self.convs, self._attn_drop):
            conv.attn_drop = orig
        if not masks:
            return
        if self._attn_perm is None:
            src, dst = (t.cpu().numpy() for t in self.inputs[0].edges(order="eid"))
            csrc, cdst = canonical_attention_edges(self._edge_index_np, self.num_nodes)
            perm = edge_permutation(src, dst, csrc, cdst, self.num_nodes)
            self._attn_perm = torch.from_numpy(perm).to(self.device)
        for k, m in masks.items():
            self.convs[k].attn_drop = masked_dropout_module(m[self._attn_perm], self._attn_drop[k].p, f"attn.{k}")

    def attn_dropout_sample(self, k, ones):
        op = self._attn_drop[k]                    # DGL's own nn.Dropout of that layer
        was = op.training
        op.train()
        try:
            return op(ones)
        finally:
            op.train(was)

    def weight_table(self) -> dict:
        """The node models' canonical names -> (path under this adapter, transpose[, canonical shape]);
        GAT's last bias is the model's own ``out_bias`` (added after the head mean)."""
        t, last = {}, len(self.convs) - 1
        for k, conv in enumerate(self.convs):
            p, c = f"layers.{k}.", f"convs.{k}."
            if self.spec.name == "gcn":
                t[p + "weight"] = (c + "weight", False)
                t[p + "bias"] = (c + "bias", False)
            elif self.spec.name == "gat":
                heads = conv.attn_l.shape[1]
                t[p + "weight"] = (c + "fc.weight", True)
                t[p + "att_src"] = (c + "attn_l", False, (heads, -1))
                t[p + "att_dst"] = (c + "attn_r", False, (heads, -1))
                t[p + "bias"] = ("net.out_bias" if k == last else c + "bias", False)
            else:            # sage, sage-sampled
                t[p + "weight_neigh"] = (c + "fc_neigh.weight", True)
                t[p + "weight_root"] = (c + "fc_self.weight", True)
                t[p + "bias"] = (c + "fc_self.bias", False)
        return t



class DGLGraphAdapter(TorchGraphTask, DGLAdapter):
    """GIN graph classification (``GraphTask``): one DGLGraph per graph with its features in ndata,
    batched by dgl.batch (what DGL's GraphDataLoader does per batch)."""

    def prepare(self, gs, spec, device, seed, weights):
        self._dgl().seed(seed)
        self.prepare_graphs(gs, spec, device, seed, weights)

    def task_notes(self) -> list[str]:
        return ["gin: GINConv(mlp, 'sum', learn_eps=False) on dgl.batch batches (what GraphDataLoader "
                "does); the classifier's dropout is torch.nn.Dropout"]

    def build_gin(self, gs, spec, mlps, head):
        import torch
        from dgl.nn.pytorch import AvgPooling, GINConv, SumPooling

        dgl = self._dgl()
        x, ei = torch.from_numpy(gs.x), torch.from_numpy(gs.edge_index)
        self.graphs = []
        for k in range(gs.num_graphs):
            n0, n1 = int(gs.node_ptr[k]), int(gs.node_ptr[k + 1])
            e = ei[:, gs.edge_ptr[k]:gs.edge_ptr[k + 1]] - n0
            g = dgl.graph((e[0], e[1]), num_nodes=n1 - n0)
            g.ndata["x"] = x[n0:n1]
            self.graphs.append(g)
        self.labels = torch.from_numpy(gs.y)
        convs = [GINConv(mlp, "sum", init_eps=spec.eps, learn_eps=False) for mlp in mlps]
        pool = SumPooling() if spec.readout == "sum" else AvgPooling()

        def forward(m, batch):
            bg, _ = batch
            h = bg.ndata["x"]
            for conv in m.convs:
                h = conv(bg, h)                      # the MLP ends in ReLU
            return m.head(pool(bg, h))

        return gin_net(convs, head, forward)

    def collate(self, ids):
        dgl = self._dgl()
        return dgl.batch([self.graphs[int(i)] for i in ids]).to(self.device), \
            self.labels[ids].to(self.device)

    def batch_y(self, batch):
        return batch[1]

    def batch_arrays(self, batch) -> dict:
        import numpy as np
        bg = batch[0]
        src, dst = bg.edges()
        sizes = bg.batch_num_nodes().cpu().numpy()
        return {"x": bg.ndata["x"].cpu().numpy(), "edge_index": np.stack([src.cpu().numpy(), dst.cpu().numpy()]),
                "batch": np.repeat(np.arange(sizes.size), sizes)}


class DGLSampledAdapter(DGLAdapter):
    """Neighbour-sampled SAGE (``SampledTask``): dgl.dataloading.NeighborSampler's sample_blocks on the
    harness's seed nodes (what DGL's DataLoader calls per batch), SAGEConv('mean') on the blocks."""
    batched_task = "sampled"

    def prepare(self, graph, spec, device, seed, weights):
        import torch
        from dgl.nn.pytorch import SAGEConv

        from gnnbench.specs import fanouts
        from gnnbench.weights import layer_dims
        dgl = self._dgl()
        dgl.seed(seed)
        torch.manual_seed(seed)
        self.device = torch.device(device)
        self.spec = spec
        ei = torch.from_numpy(graph.edge_index)
        self.g = dgl.graph((ei[0], ei[1]), num_nodes=graph.num_nodes)
        self.g_dev = self.g.to(self.device)
        self.x = torch.from_numpy(graph.x)
        self.y = torch.from_numpy(graph.y).to(self.device)
        self.convs = [SAGEConv(i, o, "mean") for i, o in layer_dims(spec, graph.num_features, graph.num_classes)]
        self.model = torch.nn.ModuleList(self.convs).to(self.device)
        self._dropout_layout(spec, graph)
        self.load_weights(weights)
        self.sampler = dgl.dataloading.NeighborSampler(fanouts(spec))
        self.optimizer = make_optimizer(self.model.parameters(), spec)
        self._loss = None
        self._policy_note = ("sage-sampled: dgl.dataloading.NeighborSampler(fanouts).sample_blocks on the "
                             "harness's seed nodes (what DGL's DataLoader calls per batch), features gathered per "
                             "batch; evaluation on the full graph")

    def _sage_forward(self, graphs, h, training: bool):
        import torch.nn.functional as F
        last, drops = len(self.convs) - 1, self.drops
        for k, (conv, blk) in enumerate(zip(self.convs, graphs)):
            h = drops[k](h, p=self.spec.dropout, training=training)
            h = conv(blk, h)
            if k < last:
                h = F.relu(h)
        return h

    def _eval_logits(self):
        import torch
        self.model.eval()
        with torch.no_grad():
            return self._sage_forward([self.g_dev] * len(self.convs), self.x.to(self.device), False)

    def batch_stats(self, batch) -> dict:
        x, blocks, y = batch
        return {"seed_nodes": int(y.numel()), "input_nodes": int(x.shape[0]),
                "edges": int(sum(b.num_edges() for b in blocks))}

    def train_batch(self, batch):
        import torch.nn.functional as F
        x, blocks, y = batch
        self.model.train()
        self.optimizer.zero_grad()
        loss = F.cross_entropy(self._sage_forward(blocks, x, True), y)
        loss.backward()
        self.optimizer.step()
        self._loss = loss

    def collate(self, ids):
        import torch
        seeds = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
        input_nodes, output_nodes, blocks = self.sampler.sample_blocks(self.g, seeds)
        return (self.x.index_select(0, input_nodes).to(self.device), [b.to(self.device) for b in blocks],
                self.y[output_nodes.to(self.device)])


def Net(convs, spec, num_classes, drops):
    import torch
    import torch.nn.functional as F

    act = F.elu if spec.name == "gat" else F.relu

    class _Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = torch.nn.ModuleList(convs)
            if spec.name == "gat":  # canonical last-layer bias, added after the head mean
                self.out_bias = torch.nn.Parameter(torch.zeros(num_classes))

        def forward(self, g, x, edge_weight=None):
            last = len(self.convs) - 1
            for k, conv in enumerate(self.convs):
                x = drops[k](x, p=spec.dropout, training=self.training)   # F.dropout (verify may swap it)
                if spec.name == "gcn":
                    x = conv(g, x, edge_weight=edge_weight)
                elif spec.name == "gat":
                    x = conv(g, x)                      # [N, heads, out]
                    x = x.mean(1) + self.out_bias if k == last else x.flatten(1)
                else:
                    x = conv(g, x)
                if k < last:
                    x = act(x)
            return x

    return _Net()
