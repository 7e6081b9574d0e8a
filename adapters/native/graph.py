"""GIN graph classification on the native kernels (the ``graph`` task, ``GraphTask`` in
``gnnbench.protocol``): our own collation (numpy, straight into the kernels' CSR:
``ops.GraphBatch``), our SpMM for the neighbour sum and the readout, torch for the MLPs and the
classifier (the same modules as PyG's and DGL's, from ``_graphtask``), torch.optim for the step.

The per-batch training step, the canonical weight mapping and the verify hooks of GIN's one
dropout site (``head``: the classifier's torch.nn.Dropout) are ``_graphtask.GraphTaskMixin``'s,
as in PyG and DGL.
"""
from __future__ import annotations

import numpy as np

from .._graphtask import GraphTaskMixin, gin_net
from . import NativeAdapter


class NativeGraphAdapter(GraphTaskMixin, NativeAdapter):
    models = ("gin",)
    feature_layouts = ("dense",)
    sparse_features_why = ("the sparse input path (CSR features, sparse x dense first layer) is the full-graph node "
                           "models' (gcn, gat, sage); GIN trains on dense collated batches")

    def prepare(self, graph, spec, device, seed, weights):
        self.lib = self._kernels(device)
        self.prepare_graphs(graph, spec, device, seed, weights)

    def build_gin(self, gs, spec, mlps, head):
        from .ops import gin_aggregate, gin_readout
        lib = self.lib

        def forward(m, b):
            h = b.x
            for mlp in m.convs:
                h = mlp(gin_aggregate(h, b, lib, spec.eps))
            return m.head(gin_readout(h, b, lib))

        return gin_net(mlps, head, forward)

    def collate(self, ids):
        from gnnbench.batching import collate

        from .ops import GraphBatch
        return GraphBatch.build(collate(self.gs, ids), self.spec.readout == "mean", self.device)

    def batch_y(self, batch):
        return batch.y

    def batch_arrays(self, batch) -> dict:
        rowptr = batch.rowptr.cpu().numpy()
        src = np.repeat(np.arange(rowptr.size - 1), np.diff(rowptr))
        return {"x": batch.x.cpu().numpy(), "edge_index": np.stack([src, batch.col.cpu().numpy().astype(np.int64)]),
                "batch": batch.batch.cpu().numpy()}

    def _task_notes(self, spec) -> list[str]:
        return ["dropout (GIN head): torch.nn.Dropout (torch's Bernoulli), as PyG and DGL"]
