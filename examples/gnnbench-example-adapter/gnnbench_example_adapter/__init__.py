"""A gnnbench plug-in adapter: GCN as dense matrix products in plain torch (docs/adapters.md).

H' = A_hat H W + b with A_hat = D^-1/2 (A + I) D^-1/2 as a dense [N, N] matrix, ReLU between
layers, dropout on every layer's input. It loads gnnbench's canonical weights, returns them in
the same layout, and implements the verify hooks, so ``gnnbench verify --libs dense-gcn --models
gcn --datasets cora`` passes. Importing this module imports nothing heavy (gnnbench imports it in
its own process too, to check that it loads); torch is imported in the methods, in the child process.

It implements one task, the full-batch node task (``gnnbench.protocol.NodeTask``), so the default
``Adapter.for_task`` (this class for the tasks of its ``models``) is all it needs; a library with a
graph or sampled model too adds one class per task and returns them from ``for_task``.
"""
from __future__ import annotations

import numpy as np

from gnnbench.protocol import Adapter, Availability

__version__ = "0.1.0"


class DenseGCNAdapter(Adapter):
    name = "dense-gcn"          # the entry point's name
    library = "torch"           # whose version is reported
    install_hint = "pip install torch"
    models = ("gcn",)
    devices = ("cpu", "cuda")

    def available(self):
        try:
            import torch
        except ImportError as exc:
            return Availability(False, reason=str(exc), install_hint=self.install_hint)
        return Availability(True, torch.__version__)

    def versions(self):
        import torch
        return {"torch": torch.__version__, "gnnbench-example-adapter": __version__}

    def notes(self):
        return ["dense [N, N] normalised adjacency, built once in prepare"]

    def unsupported_spec(self, spec):     # a variant this adapter does not offer is 'skipped' with the reason
        if spec.norm_policy != "cached":
            return f"{self.name}: builds the normalised adjacency once in prepare (norm_policy=cached only)"
        return super().unsupported_spec(spec)

    def set_threads(self, n):
        import torch
        torch.set_num_threads(n)

    def prepare(self, graph, spec, device, seed, weights):
        import torch
        torch.manual_seed(seed)
        self.spec, self.device = spec, torch.device(device)
        n = graph.num_nodes
        src, dst = (torch.from_numpy(np.asarray(e, np.int64)) for e in graph.edge_index)
        a = torch.zeros(n, n)           # a[i, j] = 1 for the message j -> i; duplicates sum, as in the reference
        a.index_put_((dst, src), torch.ones(src.numel()), accumulate=True)
        a += torch.eye(n)
        d = a.sum(1).rsqrt()
        self.adj = (d[:, None] * a * d[None, :]).to(self.device)
        self.x = torch.from_numpy(np.asarray(graph.x, np.float32)).to(self.device)
        self.train_idx = torch.from_numpy(np.flatnonzero(graph.train_mask)).to(self.device)
        self.train_y = torch.from_numpy(np.asarray(graph.y, np.int64)).to(self.device)[self.train_idx]
        # the canonical layout as it is: weight [in, out], bias [out]
        self.params = {k: torch.tensor(v, device=self.device, requires_grad=True) for k, v in weights.items()}
        self.layers = len(weights) // 2
        opt = torch.optim.Adam if spec.optimizer == "adam" else torch.optim.SGD
        # fused, as gnnbench's own torch adapters (PyG, DGL, native): nobody gets a faster optimiser
        self.opt = opt(self.params.values(), lr=spec.lr, weight_decay=spec.weight_decay, fused=True)
        self.masks, self.loss = None, None

    def forward(self, training):
        import torch.nn.functional as F
        h = self.x
        for i in range(self.layers):
            if training and self.masks is not None:       # verify's masks instead of our own dropout
                h = h * self.masks[f"input.{i}"] / (1 - self.spec.dropout)
            else:
                h = F.dropout(h, self.spec.dropout, training)
            h = self.adj @ (h @ self.params[f"layers.{i}.weight"]) + self.params[f"layers.{i}.bias"]
            if i < self.layers - 1:
                h = h.relu()
        return h

    def train_step(self):
        import torch.nn.functional as F
        self.opt.zero_grad()
        loss = F.cross_entropy(self.forward(True)[self.train_idx], self.train_y)
        loss.backward()
        self.opt.step()
        self.loss = loss

    def last_loss(self):
        return float(self.loss)

    def logits(self):
        import torch
        with torch.no_grad():
            return self.forward(False).cpu().numpy()

    def infer(self):
        import torch
        with torch.no_grad():
            self.forward(False)

    def sync(self):
        if self.device.type == "cuda":
            import torch
            torch.cuda.synchronize(self.device)

    def parameters(self):
        return {k: p.detach().cpu().numpy().copy() for k, p in self.params.items()}

    def num_parameters(self):
        return sum(p.numel() for p in self.params.values() if p.requires_grad)

    # ---- verify-only hooks
    def gradients(self):
        return {k: p.grad.detach().cpu().numpy().copy() for k, p in self.params.items()}

    def set_dropout_masks(self, masks):
        import torch
        self.masks = None if masks is None else {
            k: torch.from_numpy(np.asarray(m, np.float32)).to(self.device) for k, m in masks.items()}

    def dropout_sample(self, site, shape):
        import torch
        import torch.nn.functional as F
        return F.dropout(torch.ones(shape, device=self.device), self.spec.dropout, True).cpu().numpy()
