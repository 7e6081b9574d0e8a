"""PyTorch Geometric: GCNConv, GATConv, SAGEConv, GINConv, written as PyG's own examples do.

One class per task: ``PyGAdapter`` (registered; the full-batch node models), ``PyGGraphAdapter``
(GIN) and ``PyGSampledAdapter`` (sage-sampled with NeighborLoader)."""
from __future__ import annotations

import numpy as np

from gnnbench.protocol import Availability

from ._graphtask import TorchGraphTask, gin_net
from ._torch import (TorchAdapter, TorchHooks, _apply_mask, canonical_attention_edges, compile_notes,
                     edge_permutation, make_optimizer, optimizer_note, sparse_dropout)

SAGE_NOTE = ("sage: SAGEConv(aggr='mean') divides the neighbour sum by the in-degree count in every forward, "
             "under both norm_policy values: it cannot take a precomputed 1/deg (its message takes no edge "
             "weight, and its SparseTensor path drops the values, set_value(None))")
SPARSE_WHY = ("PyG's public layers take a torch.sparse feature matrix only in GCNConv (PyG's own test_gcn_conv_with_"
              "sparse_input_feature; 'not the case for all GNN operators', rusty1s, pyg#1635): SAGEConv aggregates "
              "the raw features (NotImplementedError: aten::fill_ on SparseCPU), GATConv has no documented or "
              "tested sparse-x path, GIN's MLP and the sampled loader gather dense rows")


class PyGAdapter(TorchHooks, TorchAdapter):
    """PyG, and its full-batch node models (``NodeTask``): gcn, gat, sage."""
    name = "pyg"
    library = "torch-geometric"
    install_hint = "pip install 'gnnbench[pyg]'"
    models = ("gcn", "gat", "sage", "gin", "sage-sampled")
    sampling_hint = ("run `make install-sampling` (builds torch-scatter and torch-sparse from source, ~7 min on "
                     "2 cores, once; pip caches the wheels)")

    @classmethod
    def for_task(cls, task: str):
        return {"node": PyGAdapter, "graph": PyGGraphAdapter, "sampled": PyGSampledAdapter}.get(task)

    def available(self):
        try:
            import torch_geometric
        except Exception as exc:  # ImportError, or a broken binary
            return Availability(False, reason=f"{type(exc).__name__}: {exc}", install_hint=self.install_hint)
        return Availability(True, torch_geometric.__version__)

    feature_layouts = ("dense", "sparse")
    sparse_features_why = SPARSE_WHY

    def unsupported_spec(self, spec) -> str | None:
        if getattr(spec, "features", "dense") == "sparse" and spec.name != "gcn":
            return f"pyg: features=sparse not offered for {spec.name}: {SPARSE_WHY}"
        return super().unsupported_spec(spec)

    def notes(self):
        spec = getattr(self, "spec", None)
        if spec is None:
            return []
        out = [optimizer_note(spec), *compile_notes(spec),
               "features=sparse: x is a coalesced torch.sparse_coo_tensor fed to GCNConv; input dropout is "
               "F.dropout on its stored values only (the zeros stay zero)"
               if spec.features == "sparse" else "features=dense: x is a dense float32 tensor"]
        out += self.task_notes()
        out += [n for n in (getattr(self, "_note", None), getattr(self, "_model_note", None)) if n]
        return out

    def task_notes(self) -> list[str]:
        """What the task's class adds to the notes (after the library's)."""
        return []

    def versions(self):
        import torch_geometric
        out = {"torch_geometric": torch_geometric.__version__, **self.torch_versions()}
        for mod in ("pyg_lib", "torch_sparse", "torch_scatter"):
            try:
                out[mod] = __import__(mod).__version__
            except Exception:   # not installed, or a binary that does not load
                pass
        return out

    def build(self, graph, spec, device):
        import torch
        from torch_geometric.nn import GATConv, GCNConv, SAGEConv
        from torch_geometric.nn.conv.gcn_conv import gcn_norm
        from torch_geometric.utils import add_self_loops

        from gnnbench.weights import gat_heads, layer_dims

        x = torch.from_numpy(graph.x)
        # features=sparse: a coalesced COO matrix, what GCNConv's Linear multiplies (PyG's own sparse-x test)
        x = (x.to_sparse().coalesce() if spec.features == "sparse" else x).to(device)
        edge_index = torch.from_numpy(graph.edge_index).to(device)
        dims = layer_dims(spec, graph.num_features, graph.num_classes)
        cached = spec.norm_policy == "cached"
        if spec.name == "gcn":
            if cached:  # normalised adjacency computed once, here, as an edge weight
                ei, ew = gcn_norm(edge_index, None, graph.num_nodes, add_self_loops=True)
                inputs = (x, ei, ew)
            else:
                inputs = (x, edge_index, None)
            convs = [GCNConv(i, o, normalize=not cached) for i, o in dims]
            self._model_note = ("gcn: norm_policy=cached: gcn_norm once in prepare, GCNConv(normalize=False) with "
                                "the edge weights" if cached else
                                "gcn: norm_policy=recompute: GCNConv(normalize=True) recomputes gcn_norm every forward")
        elif spec.name == "gat":
            ei = add_self_loops(edge_index, num_nodes=graph.num_nodes)[0] if cached else edge_index
            inputs = (x, ei, None)
            convs = [GATConv(i, o, heads=gat_heads(spec, k), concat=k < len(dims) - 1,
                             dropout=spec.attn_dropout, negative_slope=spec.negative_slope,
                             add_self_loops=not cached)
                     for k, (i, o) in enumerate(dims)]
            self._model_note = ("gat: attention dropout is GATConv(dropout=attn_dropout), F.dropout in edge_update; "
                                + ("self-loops added once in prepare (norm_policy=cached)" if cached else
                                   "GATConv adds the self-loops every forward (norm_policy=recompute)"))
        elif spec.name == "sage":
            inputs = (x, edge_index, None)
            convs = [SAGEConv(i, o, aggr="mean", root_weight=True) for i, o in dims]
            self._model_note = SAGE_NOTE
        else:
            raise ValueError(f"pyg adapter has no model '{spec.name}'")
        self.convs = convs
        self._dropout_layout(spec, graph)
        self._attn = None
        return Net(convs, spec, self.drops), inputs

    def _dropout_layout(self, spec, graph):
        """The input-dropout op of each layer (the library's: F.dropout; on sparse features, F.dropout of
        the stored values) in the list the model calls, and what the verify hooks need to know."""
        import torch.nn.functional as F
        from gnnbench.weights import layer_dims
        dims = layer_dims(spec, graph.num_features, graph.num_classes)
        self.drop_ops = [sparse_dropout if (k == 0 and spec.features == "sparse") else F.dropout
                         for k in range(len(dims))]
        self.drops = list(self.drop_ops)
        self.num_nodes, self.layer_inputs = graph.num_nodes, [i for i, _ in dims]
        self._edge_index_np = graph.edge_index

    # ---- verify hooks of GAT's attention dropout: while a mask is set, GATConv's own dropout is 0 and the
    # conv's edge_update (which returns the softmax, then F.dropout at p = 0) is wrapped to multiply its output
    # by mask / (1 - p), the same place in the computation; alpha's edges are permuted from the canonical order
    # to PyG's. A wrapper on the instance, not register_edge_update_forward_hook: PyG's generated edge_updater
    # skips those hooks under torch.compile (`not is_compiling()`), measured: compile=true then failed verify.
    def attn_sites(self):
        e = self._edge_index_np.shape[1] + self.num_nodes
        return {f"attn.{k}": (e, conv.heads) for k, conv in enumerate(self.convs)}

    def _attn_state(self):
        if self._attn is None:
            self._attn = {"p": [conv.dropout for conv in self.convs], "perm": None}
        return self._attn

    def _attn_permutation(self):
        """Canonical position of each edge of alpha, in the order PyG's GATConv sees them."""
        import torch
        from torch_geometric.utils import add_self_loops, remove_self_loops
        ei = self.inputs[1]
        if self.spec.norm_policy != "cached":      # what GATConv(add_self_loops=True) does every forward
            ei = add_self_loops(remove_self_loops(ei)[0], num_nodes=self.num_nodes)[0]
        src, dst = ei.cpu().numpy()
        csrc, cdst = canonical_attention_edges(self._edge_index_np, self.num_nodes)
        return torch.from_numpy(edge_permutation(src, dst, csrc, cdst, self.num_nodes)).to(self.device)

    def set_attn_masks(self, masks):
        st = self._attn_state()
        for conv, p in zip(self.convs, st["p"]):
            conv.dropout = p
            conv.__dict__.pop("edge_update", None)     # the class's edge_update again
        if not masks:
            return
        if st["perm"] is None:
            st["perm"] = self._attn_permutation()
        for k, m in masks.items():
            conv, p, mk = self.convs[k], st["p"][k], m[st["perm"]]
            conv.dropout = 0.0
            own = type(conv).edge_update

            def edge_update(*args, conv=conv, own=own, mk=mk, p=p, site=f"attn.{k}", **kwargs):
                out = own(conv, *args, **kwargs)
                return _apply_mask(out, mk, p, site) if conv.training else out
            conv.edge_update = edge_update

    def attn_dropout_sample(self, k, ones):
        import torch.nn.functional as F
        return F.dropout(ones, p=self._attn_state()["p"][k], training=True)    # as GATConv.edge_update

    def weight_table(self) -> dict:
        """The node models' canonical names -> (path under this adapter, transpose[, canonical shape])."""
        t = {}
        for k, conv in enumerate(self.convs):
            p, c = f"layers.{k}.", f"convs.{k}."
            if self.spec.name == "gcn":
                t[p + "weight"] = (c + "lin.weight", True)
                t[p + "bias"] = (c + "bias", False)
            elif self.spec.name == "gat":
                lin = "lin" if getattr(conv, "lin", None) is not None else "lin_src"
                t[p + "weight"] = (f"{c}{lin}.weight", True)
                t[p + "att_src"] = (c + "att_src", False, (conv.heads, -1))
                t[p + "att_dst"] = (c + "att_dst", False, (conv.heads, -1))
                t[p + "bias"] = (c + "bias", False)
            else:            # sage, sage-sampled
                t[p + "weight_neigh"] = (c + "lin_l.weight", True)
                t[p + "bias"] = (c + "lin_l.bias", False)
                t[p + "weight_root"] = (c + "lin_r.weight", True)
        return t



class PyGGraphAdapter(TorchGraphTask, PyGAdapter):
    """GIN graph classification (``GraphTask``): one Data per graph (as TUDataset gives them), batched by
    Batch.from_data_list, which is what PyG's DataLoader calls per batch."""

    def task_notes(self) -> list[str]:
        return ["gin: GINConv(mlp, train_eps=False) on Batch.from_data_list batches (what PyG's DataLoader "
                "calls); the classifier's dropout is torch.nn.Dropout"]

    def build_gin(self, gs, spec, mlps, head):
        import torch
        from torch_geometric.data import Data
        from torch_geometric.nn import GINConv, global_add_pool, global_mean_pool

        x, ei = torch.from_numpy(gs.x), torch.from_numpy(gs.edge_index)
        self.data = [Data(x=x[gs.node_ptr[g]:gs.node_ptr[g + 1]],
                          edge_index=ei[:, gs.edge_ptr[g]:gs.edge_ptr[g + 1]] - int(gs.node_ptr[g]),
                          y=torch.tensor([int(gs.y[g])]))
                     for g in range(gs.num_graphs)]
        convs = [GINConv(mlp, eps=spec.eps, train_eps=False) for mlp in mlps]
        pool = global_add_pool if spec.readout == "sum" else global_mean_pool

        def forward(m, batch):
            x = batch.x
            for conv in m.convs:
                x = conv(x, batch.edge_index)        # the MLP ends in ReLU
            return m.head(pool(x, batch.batch, size=batch.num_graphs))

        return gin_net(convs, head, forward)

    def batch_y(self, batch):
        return batch.y

    def batch_arrays(self, batch) -> dict:
        return {"x": batch.x.cpu().numpy(), "edge_index": batch.edge_index.cpu().numpy(),
                "batch": batch.batch.cpu().numpy()}

    def collate(self, ids):
        from torch_geometric.data import Batch
        return Batch.from_data_list([self.data[int(i)] for i in ids]).to(self.device)


class PyGSampledAdapter(PyGAdapter):
    """Neighbour-sampled SAGE (``SampledTask``), as PyG's examples train it: NeighborLoader batches (its
    collate_fn samples around the seed nodes, filter_fn gathers their features into a Data), SAGEConv over
    the whole sampled subgraph, loss on the first batch_size rows (the seeds)."""
    batched_task = "sampled"

    def unsupported(self, model: str) -> str | None:
        if model == "sage-sampled":
            import torch_geometric.typing as t
            if not (t.WITH_PYG_LIB or t.WITH_TORCH_SPARSE):
                return ("pyg: NeighborLoader needs pyg-lib or torch-sparse, and neither is installed (pyg-lib "
                        "publishes its wheels on data.pyg.org, not PyPI; torch-sparse on PyPI is a source package): "
                        + self.sampling_hint)
        return super().unsupported(model)

    def prepare(self, graph, spec, device, seed, weights):
        import torch
        from torch_geometric.data import Data
        from torch_geometric.loader import NeighborLoader
        from torch_geometric.nn import SAGEConv

        from gnnbench.specs import fanouts
        from gnnbench.weights import layer_dims
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        self.device = torch.device(device)
        self.spec = spec
        x, ei, y = (torch.from_numpy(a) for a in (graph.x, graph.edge_index, graph.y))
        data = Data(x=x, edge_index=ei, y=y, num_nodes=graph.num_nodes)
        # input_nodes=None: the loader indexes all nodes, so the harness's seed ids index it directly;
        # num_neighbors runs from the seeds outwards (the spec's fanouts are input layer first)
        self.loader = NeighborLoader(data, num_neighbors=fanouts(spec)[::-1], batch_size=spec.batch_size)
        self.convs = [SAGEConv(i, o, aggr="mean", root_weight=True)
                      for i, o in layer_dims(spec, graph.num_features, graph.num_classes)]
        self._dropout_layout(spec, graph)
        self.model = Net(self.convs, spec, self.drops).to(self.device)
        self.load_weights(weights)
        self.inputs = (x.to(self.device), ei.to(self.device), None)     # full graph: logits / infer
        self.y = y.to(self.device)
        self.optimizer = make_optimizer(self.model.parameters(), spec)
        self._loss = None
        self._model_note = SAGE_NOTE
        import torch_geometric.typing as t
        backend = "pyg-lib" if t.WITH_PYG_LIB else "torch-sparse"
        self._note = (f"sage-sampled: NeighborLoader.collate_fn + filter_fn on the harness's seed nodes (what "
                      f"iterating the loader runs per batch; sampler from {backend}); SAGEConv runs on every "
                      "sampled node at every layer (PyG's usual subgraph form, no per-hop trimming); "
                      "evaluation on the full graph")

    def collate(self, ids):
        import torch
        seeds = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
        out = self.loader.collate_fn(seeds)         # samples; also gathers when filter_per_worker
        if not self.loader.filter_per_worker:       # else the loader's iterator applies filter_fn
            out = self.loader.filter_fn(out)
        return out.to(self.device)

    def train_batch(self, batch):
        import torch.nn.functional as F
        self.model.train()
        self.optimizer.zero_grad()
        n = batch.batch_size
        loss = F.cross_entropy(self.model(batch.x, batch.edge_index)[:n], batch.y[:n])
        loss.backward()
        self.optimizer.step()
        self._loss = loss

    def batch_stats(self, batch) -> dict:
        return {"seed_nodes": int(batch.batch_size), "input_nodes": int(batch.num_nodes),
                "edges": int(batch.edge_index.size(1))}


def Net(convs, spec, drops):
    """PyG's example model; ``drops[k]`` is layer k's input dropout (F.dropout, called as PyG's examples do;
    a list so that verify can swap in a fixed mask without touching the timed path)."""
    import torch
    import torch.nn.functional as F

    act = F.elu if spec.name == "gat" else F.relu

    class _Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = torch.nn.ModuleList(convs)

        def forward(self, x, edge_index, edge_weight=None):
            last = len(self.convs) - 1
            for k, conv in enumerate(self.convs):
                x = drops[k](x, p=spec.dropout, training=self.training)
                x = conv(x, edge_index) if edge_weight is None else conv(x, edge_index, edge_weight)
                if k < last:
                    x = act(x)
            return x

    return _Net()
