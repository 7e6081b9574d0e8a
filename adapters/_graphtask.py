"""The ``graph`` task (graph classification in mini-batches) for the torch-based adapters:
the GIN pieces every torch library shares (its users write GIN's MLPs and classifier as plain
``torch.nn`` modules), the canonical-weight mapping, and the per-batch training step.

A library's graph-task class (``GraphTask``) is ``TorchGraphTask`` over the library's
``TorchAdapter`` (``class PyGGraphAdapter(TorchGraphTask, PyGAdapter)``) and supplies
``build_gin(gs, spec, mlps, head)`` (its model, fed its own batch), ``collate(ids)`` (its own
batching: PyG ``Batch``, ``dgl.batch``, native collation), ``batch_y(batch)`` and
``batch_arrays(batch)`` (the batch as numpy, to check that every library saw the same graphs).
``GraphTaskMixin`` is the training, evaluation, parameters and verify hooks (GIN's one dropout
site); ``TorchGraphTask`` adds ``prepare``; native uses the mixin with its own ``prepare`` (its kernels first).
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ._torch import dump_table, load_table, make_optimizer, mask_tensors, masked_dropout_module


def gin_mlp(spec, din: int):
    """Linear -> [BatchNorm] -> ReLU -> Linear -> ReLU (GIN's outer ReLU included); the first
    Linear has no bias when batch norm follows (it would cancel it)."""
    import torch.nn as nn
    mods = [nn.Linear(din, spec.hidden, bias=not spec.batch_norm)]
    if spec.batch_norm:
        mods.append(nn.BatchNorm1d(spec.hidden))
    mods += [nn.ReLU(), nn.Linear(spec.hidden, spec.hidden), nn.ReLU()]
    return nn.Sequential(*mods)


HEAD_DROPOUT = 2      # index of the classifier's nn.Dropout in gin_head


def gin_head(spec, num_classes: int):
    import torch.nn as nn
    return nn.Sequential(nn.Linear(spec.hidden, spec.hidden), nn.ReLU(), nn.Dropout(spec.dropout),
                         nn.Linear(spec.hidden, num_classes))


def gin_net(convs, head, forward):
    """A torch module holding a library's GIN layers and the classifier; ``forward(module, batch)``
    is the library-specific part (how its layers read its batch)."""
    import torch

    class GIN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = torch.nn.ModuleList(convs)
            self.head = head

        def forward(self, batch):
            return forward(self, batch)

    return GIN()


def gin_table(spec, layers: int) -> dict:
    """GIN's canonical names -> (path, transpose) under an object with ``mlps`` (the ``gin_mlp`` of each
    layer) and ``head`` (``gin_head``): Linear -> [BatchNorm] -> ReLU -> Linear -> ReLU, and the classifier
    Linear -> ReLU -> Dropout -> Linear."""
    t = {}
    for i in range(layers):
        p, m = f"layers.{i}.", f"mlps.{i}."
        t[p + "weight1"] = (m + "0.weight", True)
        if spec.batch_norm:
            t[p + "bn_weight"] = (m + "1.weight", False)
            t[p + "bn_bias"] = (m + "1.bias", False)
        else:
            t[p + "bias1"] = (m + "0.bias", False)
        lin2 = 3 if spec.batch_norm else 2
        t[p + "weight2"] = (f"{m}{lin2}.weight", True)
        t[p + "bias2"] = (f"{m}{lin2}.bias", False)
    t.update({"head.weight1": ("head.0.weight", True), "head.bias1": ("head.0.bias", False),
              "head.weight2": ("head.3.weight", True), "head.bias2": ("head.3.bias", False)})
    return t


def load_gin(spec, mlps, head, w: dict) -> None:
    load_table(SimpleNamespace(mlps=mlps, head=head), gin_table(spec, len(mlps)), w)


def gin_parameters(spec, mlps, head, grad: bool = False) -> dict:
    """The canonical layout of GIN's parameters (with ``grad``: of their gradients)."""
    return dump_table(SimpleNamespace(mlps=mlps, head=head), gin_table(spec, len(mlps)), grad)


class GraphTaskMixin:
    """Mini-batch graph classification on top of TorchAdapter (same optimiser, devices, sync); listed
    before the library's TorchAdapter class in the bases, so its ``infer`` / ``logits`` are the ones run."""

    batched_task = "graph"

    def prepare_graphs(self, gs, spec, device, seed, weights):
        import torch
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        self.device = torch.device(device)
        self.spec = spec
        self.gs = gs
        if spec.name != "gin":
            raise ValueError(f"{self.name} adapter has no graph-task model '{spec.name}'")
        self.mlps = [gin_mlp(spec, gs.num_features if i == 0 else spec.hidden) for i in range(spec.layers)]
        self.head = gin_head(spec, gs.num_classes)
        self._head_dropout = self.head[HEAD_DROPOUT]      # the library's own dropout module (verify hooks)
        self.model = self.build_gin(gs, spec, self.mlps, self.head)
        self.model.to(self.device)
        load_gin(spec, self.mlps, self.head, weights)
        self.optimizer = make_optimizer(self.model.parameters(), spec)
        self._loss = None
        self.all_batch = self.collate(np.arange(gs.num_graphs))     # evaluation only, not timed
        self.test_batch = self.collate(gs.test_idx)                  # what infer() runs on
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def train_batch(self, batch) -> None:
        import torch.nn.functional as F
        self.model.train()
        self.optimizer.zero_grad()
        out = self.model(batch)
        loss = F.cross_entropy(out, self.batch_y(batch))
        loss.backward()
        self.optimizer.step()
        self._loss = loss

    def _graph_logits(self, batch):
        import torch
        self.model.eval()
        with torch.no_grad():
            return self.model(batch)

    def infer(self):
        self._graph_logits(self.test_batch)

    def logits(self):
        return self._graph_logits(self.all_batch).detach().cpu().numpy()

    # ---- the GraphTask's parameters and verify hooks ------------------------------------------------------
    def parameters(self) -> dict:
        return gin_parameters(self.spec, self.mlps, self.head)

    def gradients(self) -> dict:
        if getattr(self, "_loss", None) is None:
            raise RuntimeError(f"{self.name}: gradients() before any training step")
        return gin_parameters(self.spec, self.mlps, self.head, grad=True)

    def num_parameters(self) -> int:
        return int(sum(p.numel() for p in self.model.parameters() if p.requires_grad))

    # ---- verify hooks of GIN's one dropout site, ``head`` (the classifier's nn.Dropout, head[HEAD_DROPOUT]):
    # a mask swaps that module for x * mask / (1 - p) until masks are cleared; the timed path is untouched
    def set_dropout_masks(self, masks) -> None:
        orig = self._head_dropout
        self.head[HEAD_DROPOUT] = orig
        if not masks:
            return
        t = mask_tensors(masks, {"head": (None, self.spec.hidden)}, self.device, self.name)
        self.head[HEAD_DROPOUT] = masked_dropout_module(t["head"], orig.p, "head")

    def dropout_sample(self, site: str, shape):
        import torch
        if site != "head":
            raise ValueError(f"{self.name}: unknown dropout site '{site}'; GIN has head")
        op = self._head_dropout                    # the library's own module, even while a mask is set
        was = op.training
        op.train()
        try:
            out = op(torch.ones(tuple(int(s) for s in shape), dtype=torch.float32, device=self.device))
        finally:
            op.train(was)
        return out.detach().cpu().numpy()


class TorchGraphTask(GraphTaskMixin):
    """The graph task (``GraphTask``) of a torch library whose model is ``gin_net`` (PyG, DGL): prepare,
    training, evaluation and the verify hooks, on GIN's canonical layout and its one dropout site."""

    def prepare(self, gs, spec, device, seed, weights):
        self.prepare_graphs(gs, spec, device, seed, weights)
