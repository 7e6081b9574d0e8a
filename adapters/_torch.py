"""What every torch-based adapter (PyG, DGL, native) shares: the training loop
body, evaluation, device handling. ``TorchAdapter`` is the full-batch node task
(``NodeTask``): a library's registered class subclasses it and builds its model;
its graph-task class adds ``_graphtask.TorchGraphTask`` (or ``GraphTaskMixin``),
its sampled-task class sets ``batched_task = "sampled"`` and its own batching."""
from __future__ import annotations

import numpy as np

from gnnbench.protocol import Adapter


class TorchAdapter(Adapter):
    devices = ("cpu", "cuda")
    compiles = True          # spec.compile: torch.compile of the full-batch node model (see compile_model)
    compiled = None          # that compiled model, else None (then self.model runs, as in every other task)
    batched_task: str | None = None   # the mini-batch task a subclass runs ('graph', 'sampled'): no compile there

    def unsupported_spec(self, spec) -> str | None:
        why = super().unsupported_spec(spec)
        if why or not getattr(spec, "compile", False):
            return why
        if self.batched_task:
            return (f"{self.name}: compile=true is offered for the full-batch node models (gcn, gat, sage) only, "
                    f"not task '{self.batched_task}'")
        if spec.features != "dense":
            return f"{self.name}: compile=true is offered with dense features only"
        return None

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

    def weight_table(self) -> dict:
        """canonical name -> (attribute path in ``self``, transpose[, canonical shape]) for the node model."""
        raise NotImplementedError

    def load_weights(self, weights: dict) -> None:
        load_table(self, self.weight_table(), weights)

    def parameters(self) -> dict:
        return dump_table(self, self.weight_table())

    # --- shared ---------------------------------------------------------------
    def prepare(self, graph, spec, device, seed, weights):
        import torch
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        self.device = torch.device(device)
        self.spec = spec
        self.model, self.inputs = self.build(graph, spec, self.device)
        self.model.to(self.device)
        self.load_weights(weights)
        self.y = torch.from_numpy(graph.y).to(self.device)
        self.train_idx = torch.from_numpy(np.flatnonzero(graph.train_mask)).to(self.device)
        self.train_y = self.y[self.train_idx]
        self.optimizer = make_optimizer(self.model.parameters(), spec)
        self._loss = None
        self.compiled = compile_model(self, seed) if getattr(spec, "compile", False) else None
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def train_step(self):
        import torch.nn.functional as F
        self.model.train()
        self.optimizer.zero_grad()
        out = self.forward(*self.inputs)
        loss = F.cross_entropy(out[self.train_idx], self.train_y)
        loss.backward()
        self.optimizer.step()
        self._loss = loss

    def forward(self, *inputs):
        """The node model's forward: compiled where spec.compile asked for it."""
        return (self.model if self.compiled is None else self.compiled)(*inputs)

    def last_loss(self) -> float:
        return float(self._loss.detach().cpu())

    def _eval_logits(self):
        import torch
        self.model.eval()
        with torch.no_grad():
            return self.forward(*self.inputs)

    def infer(self):
        self._eval_logits()

    def logits(self):
        return self._eval_logits().detach().cpu().numpy()

    def sync(self):
        if self.device.type == "cuda":
            import torch
            torch.cuda.synchronize(self.device)

    def peak_memory(self):
        if self.device.type == "cuda":
            import torch
            return int(torch.cuda.max_memory_allocated(self.device))
        return None


COMPILE_NOTE = ("compile=true: torch.compile(model) (inductor, default mode, dynamic=False) of the model's forward; "
                "loss, backward (AOTAutograd, compiled too) and the fused Adam step as in eager. Compiled in prepare() "
                "by one training-mode forward + backward and one eval forward, no optimiser step (weights, optimiser "
                "state and the RNG seed as before): the compile time is in setup_s, never in an epoch")


def recompile(model):
    """A fresh ``torch.compile`` of ``model`` with dynamo's caches cleared (verify only: after its hooks
    or dropout ops changed), compiled lazily at its next call."""
    import torch
    torch._dynamo.reset()
    return torch.compile(model, dynamic=False)


def compile_notes(spec) -> list[str]:
    return [COMPILE_NOTE] if getattr(spec, "compile", False) else []


def compile_model(adapter, seed: int):
    """``torch.compile`` of ``adapter.model``, compiled here (in prepare, so in setup_s) for both modes
    the run uses: training (forward + backward) and eval under no_grad. No optimiser step is taken and
    the gradients are cleared, so the weights and Adam's state are the canonical initial ones; the
    torch seed is set again, so the compile's own dropout draws do not shift the run's seeded stream."""
    import torch
    import torch.nn.functional as F
    fwd = torch.compile(adapter.model, dynamic=False)
    adapter.model.train()
    out = fwd(*adapter.inputs)
    F.cross_entropy(out[adapter.train_idx], adapter.train_y).backward()
    adapter.optimizer.zero_grad(set_to_none=True)
    adapter.model.eval()
    with torch.no_grad():
        fwd(*adapter.inputs)
    torch.manual_seed(seed)
    return fwd


def copy_(param, array, transpose: bool = False) -> None:
    """Copy a canonical numpy array into a torch parameter (shapes must match)."""
    import torch
    t = torch.from_numpy(np.ascontiguousarray(array.T if transpose else array))
    if tuple(param.shape) != tuple(t.shape):
        t = t.reshape(param.shape)
    with torch.no_grad():
        param.copy_(t)


def numpy_(param, transpose: bool = False, grad: bool = False) -> np.ndarray:
    """A parameter (or, with ``grad``, its gradient) as a numpy array; a parameter that took no part
    in the last backward pass has gradient zero."""
    if grad:
        if param.grad is None:
            import torch
            a = torch.zeros_like(param).detach().cpu().numpy()
        else:
            a = param.grad.detach().cpu().numpy()
    else:
        a = param.detach().cpu().numpy()
    return np.ascontiguousarray(a.T if transpose else a)


# ---- canonical weights <-> a library's model, as a table ----------------------------------------------
# A library's mapping is a table {canonical name: (attribute path, transpose[, shape])}: the path is dotted
# from a root object (the adapter: ``convs.0.lin.weight``; digits index lists and ModuleLists), ``transpose``
# says the library stores the matrix ``out x in``, and ``shape`` (optional) is the canonical shape of a
# parameter the library stores in another (GAT's attention vectors, [1, heads, out] -> [heads, out]).

def resolve(root, path: str):
    """The object at the dotted ``path`` under ``root``."""
    obj = root
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


def load_table(model, table: dict, weights: dict) -> None:
    """Copy the canonical ``weights`` into ``model``'s parameters as ``table`` maps them."""
    for name, (path, transpose, *_) in table.items():
        copy_(resolve(model, path), weights[name], transpose)


def dump_table(model, table: dict, grad: bool = False) -> dict:
    """``model``'s parameters (``grad``: their gradients) in the canonical layout, as ``table`` maps them."""
    out = {}
    for name, (path, transpose, *shape) in table.items():
        a = numpy_(resolve(model, path), transpose, grad)
        out[name] = a.reshape(shape[0]) if shape else a
    return out


# One optimiser implementation for every torch adapter (PyG, DGL, native, their graph and sampled
# tasks): torch.optim offers a for-loop, a multi-tensor ("foreach") and a fused kernel; the same
# choice everywhere, so no library is credited with a faster optimiser. Recorded in every record's notes.
# Fused: one Adam step on the GCN/GAT/SAGE parameters of Cora and PubMed took 151-270 us fused against
# 501-24,232 us for-loop/foreach (benchmarks/optimizer_impl.py, 2 threads); native alone used it before.
OPTIMIZER_IMPL = "fused"


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


# ---- verify-only hooks (gnnbench.protocol) shared by the PyG and DGL adapters -----------------------
# Nothing here runs in a timed step unless ``set_dropout_masks`` swapped it in: the models call their
# dropout through a per-layer list of callables (``drops``) that holds the library's own op, and a
# mask swaps one element of it (or one dropout module) for ``x * mask / (1 - p)``.

def sparse_dropout(x, p: float, training: bool):
    """Dropout on a sparse COO feature matrix: the stored values are dropped out (the zeros stay zero,
    the same distribution as dense dropout), with ``F.dropout`` at rate ``p``."""
    if not training:
        return x
    import torch
    import torch.nn.functional as F
    return torch.sparse_coo_tensor(x.indices(), F.dropout(x.values(), p=p, training=True), x.shape,
                                   is_coalesced=True, check_invariants=False)


def _apply_mask(x, mask, p: float, site: str):
    if x.dim() > mask.dim():                       # e.g. DGL's attention [E, heads, 1]
        mask = mask.reshape(tuple(mask.shape) + (1,) * (x.dim() - mask.dim()))
    if tuple(x.shape) != tuple(mask.shape):
        raise ValueError(f"dropout mask for site '{site}' has shape {tuple(mask.shape)}, "
                         f"the tensor there {tuple(x.shape)}")
    return x * mask / (1.0 - p) if p < 1 else x * 0.0


def masked_dropout(mask, site: str):
    """Stands in for ``F.dropout(x, p=p, training=t)`` (dense or sparse COO ``x``) with a fixed keep-mask."""
    def drop(x, p, training):
        if not training:
            return x
        if x.is_sparse:                            # sparse features: the mask at the stored entries
            import torch
            if tuple(x.shape) != tuple(mask.shape):
                raise ValueError(f"dropout mask for site '{site}' has shape {tuple(mask.shape)}, "
                                 f"the features {tuple(x.shape)}")
            idx = x.indices()
            vals = x.values() * mask[idx[0], idx[1]] / (1.0 - p) if p < 1 else x.values() * 0.0
            return torch.sparse_coo_tensor(idx, vals, x.shape, is_coalesced=True, check_invariants=False)
        return _apply_mask(x, mask, p, site)
    return drop


def masked_dropout_module(mask, p: float, site: str):
    """An ``nn.Module`` that replaces a library's ``nn.Dropout(p)`` module: ``x * mask / (1 - p)`` in
    training mode, the identity in eval mode (as ``nn.Dropout``)."""
    import torch

    class MaskedDropout(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p, self.site = p, site
            self.mask = mask                       # a plain attribute: no buffer, no parameter

        def forward(self, x):
            return _apply_mask(x, self.mask, self.p, self.site) if self.training else x

    return MaskedDropout()


def mask_tensors(masks: dict, expected: dict, device, name: str) -> dict:
    """Checks ``masks`` against this model's sites ``{site: shape}`` (None in a shape: any size) and
    returns them as float32 tensors on ``device``. Unknown or missing sites and wrong shapes are errors."""
    import torch
    unknown, missing = sorted(set(masks) - set(expected)), sorted(set(expected) - set(masks))
    if unknown:
        raise ValueError(f"{name}: unknown dropout site(s) {', '.join(unknown)}; this model has "
                         f"{', '.join(expected) or 'none'}")
    if missing:     # the protocol hands every site (all ones where p = 0): a missing one is a caller's error
        raise ValueError(f"{name}: no dropout mask for site(s) {', '.join(missing)}")
    out = {}
    for site, m in masks.items():
        a = np.asarray(m, dtype=np.float32)
        want = expected[site]
        if a.ndim != len(want) or any(w is not None and w != s for w, s in zip(want, a.shape)):
            raise ValueError(f"{name}: dropout mask for '{site}' has shape {a.shape}, expected "
                             f"{tuple('*' if w is None else w for w in want)}")
        out[site] = torch.from_numpy(np.ascontiguousarray(a)).to(device)
    return out


def canonical_attention_edges(edge_index: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(src, dst) of GAT's attention edges in the canonical order of the ``attn.<i>`` masks: the columns
    of ``edge_index``, then one self-loop per node in node order."""
    loops = np.arange(n, dtype=np.int64)
    return (np.concatenate([np.asarray(edge_index[0], np.int64), loops]),
            np.concatenate([np.asarray(edge_index[1], np.int64), loops]))


def edge_permutation(src, dst, canon_src, canon_dst, n: int) -> np.ndarray:
    """``perm`` with library edge ``e`` == canonical edge ``perm[e]`` (a canonical mask permuted to the
    library's edge order is ``mask[perm]``). Both lists must hold the same edges, each once."""
    src, dst = np.asarray(src, np.int64), np.asarray(dst, np.int64)
    ckey = np.asarray(canon_dst, np.int64) * n + np.asarray(canon_src, np.int64)
    key = dst * n + src
    order = np.argsort(ckey, kind="stable")
    sk = ckey[order]
    if sk.size > 1 and bool((sk[1:] == sk[:-1]).any()):
        raise ValueError("the canonical edge list has duplicate edges: attention masks cannot be mapped")
    pos = np.minimum(np.searchsorted(sk, key), max(sk.size - 1, 0))
    if key.size != ckey.size or (key.size and not bool((sk[pos] == key).all())):
        raise ValueError(f"the library's {key.size} attention edges are not the {ckey.size} canonical ones")
    perm = order[pos]
    if np.bincount(perm, minlength=ckey.size).max(initial=0) > 1:
        raise ValueError("the library's attention edges repeat an edge")
    return perm


class TorchHooks:
    """The verify hooks of the PyG and DGL node models (native has its own; GIN's are in
    ``_graphtask.TorchGraphTask``): the library model's own trainable count, gradients from ``.grad``
    after the last backward pass (the optimiser steps of ``torch.optim`` add weight decay to a copy,
    never to ``.grad``), ``set_dropout_masks`` / ``dropout_sample`` at the input and attention sites.

    An adapter using it provides ``weight_table()`` (its canonical layout of the node models),
    ``drops`` / ``drop_ops`` (the per-layer input-dropout callables its forward calls, and the
    library's own ones), ``attn_sites()`` / ``set_attn_masks(masks)`` / ``attn_dropout_sample(i, x)``
    for GAT."""

    def num_parameters(self) -> int:
        return int(sum(p.numel() for p in self.model.parameters() if p.requires_grad))

    def gradients(self) -> dict:
        if getattr(self, "_loss", None) is None:
            raise RuntimeError(f"{self.name}: gradients() before any training step")
        return dump_table(self, self.weight_table(), grad=True)

    def dropout_sites(self) -> dict:
        """{site: shape} of this model (None: any size)."""
        n = self.num_nodes
        sites = {f"input.{i}": (n, d) for i, d in enumerate(self.layer_inputs)}
        if self.spec.name == "gat":
            sites.update(self.attn_sites())
        return sites

    def set_dropout_masks(self, masks: dict | None) -> None:
        # the library's own dropout again everywhere, then the masks where given
        self.drops[:] = self.drop_ops
        if self.spec.name == "gat":
            self.set_attn_masks(None)
        if masks:
            self._set_masks(masks)
        if getattr(self.spec, "compile", False):
            # traced anew with the swapped dropout callables (and PyG's wrapped edge_update) in place, rather
            # than relying on dynamo's guards to notice them (verify only; a timed run never gets here)
            self.compiled = recompile(self.model)

    def _set_masks(self, masks: dict) -> None:
        t = mask_tensors(masks, self.dropout_sites(), self.device, self.name)
        for site, m in t.items():
            kind, _, i = site.partition(".")
            if kind == "input":
                self.drops[int(i)] = masked_dropout(m, site)
        attn = {int(s.partition(".")[2]): m for s, m in t.items() if s.startswith("attn.")}
        if attn:
            self.set_attn_masks(attn)

    def dropout_sample(self, site: str, shape):
        sites = self.dropout_sites()
        if site not in sites:
            raise ValueError(f"{self.name}: unknown dropout site '{site}'; this model has {', '.join(sites)}")
        import torch
        ones = torch.ones(tuple(int(s) for s in shape), dtype=torch.float32, device=self.device)
        kind, _, i = site.partition(".")
        if kind == "input":
            op = self.drop_ops[int(i)]
            if op is sparse_dropout:               # the sparse-feature op takes a sparse matrix
                return op(ones.to_sparse(), p=self.spec.dropout, training=True).to_dense().cpu().numpy()
            sample = lambda x: op(x, p=self.spec.dropout, training=True)   # noqa: E731
        else:
            sample = lambda x: self.attn_dropout_sample(int(i), x)         # noqa: E731
        if getattr(self.spec, "compile", False):   # the compiled model's dropout is inductor's lowering of the op
            import torch
            sample = torch.compile(sample, dynamic=False)
        return sample(ones).detach().cpu().numpy()
