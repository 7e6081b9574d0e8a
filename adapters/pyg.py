"""PyTorch Geometric: GCNConv, GATConv, SAGEConv, GINConv, written as PyG's own examples do."""
from __future__ import annotations

from gnnbench.protocol import Availability

from ._graphtask import GraphTaskMixin, gin_net
from ._torch import TorchAdapter, copy_, numpy_


class PyGAdapter(GraphTaskMixin, TorchAdapter):
    name = "pyg"
    library = "torch-geometric"
    install_hint = "pip install 'gnnbench[pyg]'"
    models = ("gcn", "gat", "sage", "gin")

    def available(self):
        try:
            import torch_geometric
        except Exception as exc:  # ImportError, or a broken binary
            return Availability(False, reason=f"{type(exc).__name__}: {exc}", install_hint=self.install_hint)
        return Availability(True, torch_geometric.__version__)

    def unsupported(self, model: str) -> str | None:
        if model == "sage-sampled":
            import torch_geometric.typing as t
            if not (t.WITH_PYG_LIB or t.WITH_TORCH_SPARSE):
                return ("pyg: NeighborLoader needs pyg-lib or torch-sparse, and neither is installed (pyg-lib "
                        "publishes its wheels on data.pyg.org, not PyPI; torch-sparse on PyPI is a source package); "
                        "gnnbench's PyG sampled-training path is not written yet either")
            return "pyg: gnnbench's PyG sampled-training path (NeighborLoader) is not written yet"
        return super().unsupported(model)

    def versions(self):
        import torch_geometric
        return {"torch_geometric": torch_geometric.__version__, **self.torch_versions()}

    def build(self, graph, spec, device):
        import torch
        from torch_geometric.nn import GATConv, GCNConv, SAGEConv
        from torch_geometric.nn.conv.gcn_conv import gcn_norm
        from torch_geometric.utils import add_self_loops

        from gnnbench.weights import gat_heads, layer_dims

        x = torch.from_numpy(graph.x).to(device)
        edge_index = torch.from_numpy(graph.edge_index).to(device)
        dims = layer_dims(spec, graph.num_features, graph.num_classes)
        cached = spec.norm_policy == "cached"
        self.notes_ = []
        if spec.name == "gcn":
            if cached:  # normalised adjacency computed once, here, as an edge weight
                ei, ew = gcn_norm(edge_index, None, graph.num_nodes, add_self_loops=True)
                inputs = (x, ei, ew)
            else:
                inputs = (x, edge_index, None)
            convs = [GCNConv(i, o, normalize=not cached) for i, o in dims]
        elif spec.name == "gat":
            ei = add_self_loops(edge_index, num_nodes=graph.num_nodes)[0] if cached else edge_index
            inputs = (x, ei, None)
            convs = [GATConv(i, o, heads=gat_heads(spec, k), concat=k < len(dims) - 1,
                             dropout=spec.attn_dropout, negative_slope=spec.negative_slope,
                             add_self_loops=not cached)
                     for k, (i, o) in enumerate(dims)]
        elif spec.name == "sage":
            inputs = (x, edge_index, None)
            convs = [SAGEConv(i, o, aggr="mean", root_weight=True) for i, o in dims]
        else:
            raise ValueError(f"pyg adapter has no model '{spec.name}'")
        self.convs = convs
        return Net(convs, spec), inputs

    def _lin(self, conv):
        return conv.lin if getattr(conv, "lin", None) is not None else conv.lin_src

    def load_weights(self, w):
        for k, conv in enumerate(self.convs):
            p = f"layers.{k}."
            if self.spec.name == "gcn":
                copy_(conv.lin.weight, w[p + "weight"], transpose=True)
                copy_(conv.bias, w[p + "bias"])
            elif self.spec.name == "gat":
                copy_(self._lin(conv).weight, w[p + "weight"], transpose=True)
                copy_(conv.att_src, w[p + "att_src"])
                copy_(conv.att_dst, w[p + "att_dst"])
                copy_(conv.bias, w[p + "bias"])
            else:
                copy_(conv.lin_l.weight, w[p + "weight_neigh"], transpose=True)
                copy_(conv.lin_l.bias, w[p + "bias"])
                copy_(conv.lin_r.weight, w[p + "weight_root"], transpose=True)

    # ---- graph task: one Data per graph (as TUDataset gives them), batched by Batch.from_data_list,
    # which is what PyG's DataLoader calls per batch
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

    def collate(self, ids):
        from torch_geometric.data import Batch
        return Batch.from_data_list([self.data[int(i)] for i in ids]).to(self.device)

    def batch_y(self, batch):
        return batch.y

    def batch_arrays(self, batch) -> dict:
        return {"x": batch.x.cpu().numpy(), "edge_index": batch.edge_index.cpu().numpy(),
                "batch": batch.batch.cpu().numpy()}

    def parameters(self):
        if self.spec.task == "graph":
            return self.gin_params()
        out = {}
        for k, conv in enumerate(self.convs):
            p = f"layers.{k}."
            if self.spec.name == "gcn":
                out[p + "weight"] = numpy_(conv.lin.weight, True)
                out[p + "bias"] = numpy_(conv.bias)
            elif self.spec.name == "gat":
                out[p + "weight"] = numpy_(self._lin(conv).weight, True)
                out[p + "att_src"] = numpy_(conv.att_src).reshape(conv.heads, -1)
                out[p + "att_dst"] = numpy_(conv.att_dst).reshape(conv.heads, -1)
                out[p + "bias"] = numpy_(conv.bias)
            else:
                out[p + "weight_neigh"] = numpy_(conv.lin_l.weight, True)
                out[p + "bias"] = numpy_(conv.lin_l.bias)
                out[p + "weight_root"] = numpy_(conv.lin_r.weight, True)
        return out


def Net(convs, spec):
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
                x = F.dropout(x, p=spec.dropout, training=self.training)
                x = conv(x, edge_index) if edge_weight is None else conv(x, edge_index, edge_weight)
                if k < last:
                    x = act(x)
            return x

    return _Net()
