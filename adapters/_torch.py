"""What every torch-based adapter (PyG, DGL, native) shares: the training loop
body, evaluation, device handling. Subclasses build the library's model."""
from __future__ import annotations

import numpy as np

from gnnbench.protocol import Adapter


def _graph_task(self) -> bool:
    spec = getattr(self, "spec", None)
    return spec is not None and spec.task == "graph"


class TorchAdapter(Adapter):
    devices = ("cpu", "cuda")

    def set_threads(self, n: int) -> None:
        import torch
        torch.set_num_threads(n)
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:  # already set (parallel work ran before)
            pass

    def torch_versions(self) -> dict[str, str]:
        import torch
        v = {"torch": torch.__version__}
        if torch.version.cuda:
            v["cuda"] = torch.version.cuda
        return v

    # --- subclasses implement -------------------------------------------------
    def build(self, graph, spec, device):
        """Return (model, inputs): ``model(*inputs)`` gives logits [N, C]."""
        raise NotImplementedError

    def load_weights(self, weights: dict) -> None:
        raise NotImplementedError

    def parameters(self) -> dict:
        raise NotImplementedError

    # --- shared ---------------------------------------------------------------
    def prepare(self, graph, spec, device, seed, weights):
        import torch
        if spec.task == "graph":
            return self.prepare_graphs(graph, spec, device, seed, weights)
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        self.device = torch.device(device)
        self.spec = spec
        self.model, self.inputs = self.build(graph, spec, self.device)
        self.model.to(self.device)
        self.load_weights(weights)
        self.y = torch.from_numpy(graph.y).to(self.device)
        self.idx = {k: torch.from_numpy(np.flatnonzero(m)).to(self.device)
                    for k, m in (("train", graph.train_mask), ("val", graph.val_mask), ("test", graph.test_mask))}
        self.train_idx, self.train_y = self.idx["train"], self.y[self.idx["train"]]
        opt = torch.optim.Adam if spec.optimizer == "adam" else torch.optim.SGD
        self.optimizer = opt(self.model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
        self._loss = None
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def train_step(self):
        import torch.nn.functional as F
        self.model.train()
        self.optimizer.zero_grad()
        out = self.model(*self.inputs)
        loss = F.cross_entropy(out[self.train_idx], self.train_y)
        loss.backward()
        self.optimizer.step()
        self._loss = loss

    def last_loss(self) -> float:
        return float(self._loss.detach().cpu())

    def _eval_logits(self):
        import torch
        self.model.eval()
        with torch.no_grad():
            return self.model(*self.inputs)

    def evaluate(self):
        if _graph_task(self):
            return self.evaluate_graphs()
        pred = self._eval_logits().argmax(dim=1)
        return {k: float((pred[i] == self.y[i]).float().mean().cpu()) for k, i in self.idx.items()}

    def infer(self):
        if _graph_task(self):
            self._graph_logits(self.test_batch)
        else:
            self._eval_logits()

    def logits(self):
        out = self._graph_logits(self.all_batch) if _graph_task(self) else self._eval_logits()
        return out.detach().cpu().numpy()

    def sync(self):
        if self.device.type == "cuda":
            import torch
            torch.cuda.synchronize(self.device)

    def peak_memory(self):
        if self.device.type == "cuda":
            import torch
            return int(torch.cuda.max_memory_allocated(self.device))
        return None


def copy_(param, array, transpose: bool = False) -> None:
    """Copy a canonical numpy array into a torch parameter (shapes must match)."""
    import torch
    t = torch.from_numpy(np.ascontiguousarray(array.T if transpose else array))
    if tuple(param.shape) != tuple(t.shape):
        t = t.reshape(param.shape)
    with torch.no_grad():
        param.copy_(t)


def numpy_(param, transpose: bool = False) -> np.ndarray:
    a = param.detach().cpu().numpy()
    return np.ascontiguousarray(a.T if transpose else a)


# One optimiser implementation for every torch adapter (PyG, DGL, native, their graph and sampled
# tasks): torch.optim offers a for-loop, a multi-tensor ("foreach") and a fused kernel; the same
# choice everywhere, so no library is credited with a faster optimiser. Recorded in every record's notes.
OPTIMIZER_IMPL = "foreach"


def make_optimizer(params, spec):
    """The spec's optimiser (adam | sgd) with the one implementation all torch adapters use."""
    import torch
    params = list(params)
    kwargs = {"lr": spec.lr, "weight_decay": spec.weight_decay}
    if OPTIMIZER_IMPL == "fused":
        kwargs["fused"] = True
    else:
        kwargs["foreach"] = OPTIMIZER_IMPL == "foreach"
    cls = torch.optim.Adam if spec.optimizer == "adam" else torch.optim.SGD
    return cls(params, **kwargs)


def optimizer_note(spec) -> str:
    return f"optimiser: torch.optim.{'Adam' if spec.optimizer == 'adam' else 'SGD'}({OPTIMIZER_IMPL}), as in every torch adapter"
