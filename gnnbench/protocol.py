"""The adapter protocol: what every library wrapper implements.

The harness owns the clock. An adapter only does work; it never times itself. Every timed interval
is ``perf_counter_ns(); adapter.<work>(); adapter.sync(); perf_counter_ns()`` in ``gnnbench.child``.

A model fixes its **task** (``spec.task``, ``gnnbench.specs``), and each task is a contract, declared
below as a ``typing.Protocol``: ``NodeTask`` ('node': full-batch gcn, gat, sage), ``GraphTask``
('graph': GIN graph classification in mini-batches), ``SampledTask`` ('sampled': neighbour-sampled
SAGE in mini-batches); ``Task`` holds what the three share. A library implements a task by one class
per task: the registered class (``gnnbench.adapters.ADAPTERS``) is the library's ``Adapter`` and
answers ``for_task(task)`` with the class that runs it (itself by default), or None (the cell is
then ``skipped``). The child process calls, in order::

    adapter = registered.for_task(spec.task)()
    adapter.available(); adapter.set_threads(n)           # before prepare, once
    adapter.prepare(graph, spec, device, seed, weights)   # timed as setup_s
    ... the task's training epochs (NodeTask / GraphTask / SampledTask) ...
    adapter.logits()                                      # not timed: the harness scores them (gnnbench.metrics)
    adapter.infer(); adapter.sync()                       # timed
    adapter.peak_memory()                                 # device peak bytes (CUDA) or None

Everything library-specific is imported inside these methods, so importing an adapter module is
free of ML libraries.

Canonical weights (``gnnbench.weights``) are a ``dict[str, np.ndarray]`` with names
``layers.<i>.<param>``; ``weight*`` matrices are ``in x out``. Every adapter loads exactly these in
``prepare`` and returns the same layout from ``parameters()``, which is what ``gnnbench verify``
compares.

The verify-only hooks (``set_dropout_masks``, ``gradients``, ``dropout_sample``,
``num_parameters``) are never called in a timed run: ``gnnbench verify`` uses them to compare the
configuration that is timed, dropout included, with the float64 NumPy reference (``NodeTask`` and
``GraphTask``; a sampled model is compared by its full-graph logits only).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass
class Availability:
    ok: bool
    version: str | None = None
    reason: str = ""          # why not, when ok is False
    install_hint: str = ""


# ---- the task contracts ---------------------------------------------------------------------------
@runtime_checkable
class Task(Protocol):
    """What every task's class implements (the parts the harness calls whatever the task)."""

    name: str

    def prepare(self, graph, spec, device: str, seed: int, weights: dict) -> None:
        """Build the model and load ``weights`` (canonical layout); everything that depends only on
        the graph goes here (``norm_policy: cached``). Timed as ``setup_s``."""

    def last_loss(self) -> float:
        """Loss of the last training step (may synchronise; never called while timing)."""

    def infer(self) -> None:
        """One forward pass in eval mode (timed by the harness)."""

    def logits(self) -> Any:
        """Eval-mode logits as a float numpy array: [N, C] for node tasks (full-graph inference for
        the sampled task), [G, C] for all graphs of a graph task. The harness computes accuracy from
        them with its own masks (``gnnbench.metrics``), and ``verify`` compares them."""

    def parameters(self) -> dict:
        """Current parameters in the canonical layout, as numpy arrays."""

    def sync(self) -> None:
        """Wait for queued device work (CUDA); a no-op on CPU."""

    def peak_memory(self) -> int | None:
        """Peak device memory in bytes on accelerators; None on CPU (the harness measures the
        child's peak RSS itself)."""

    def num_parameters(self) -> int:
        """The number of trainable scalars in the library's own model (its trainable variables /
        ``requires_grad`` parameters), not the size of the canonical dict: ``verify`` requires it to
        equal the canonical count, so an extra trainable parameter fails."""


@runtime_checkable
class VerifyHooks(Protocol):
    """The verify-only hooks of the node and graph tasks (never called in a timed run)."""

    def set_dropout_masks(self, masks: dict | None) -> None:
        """``masks`` maps each dropout site to a float32 0/1 keep-mask (1 = kept), or is None (the
        library's own dropout again). While masks are set, every dropout site in training mode
        computes ``x * mask / (1 - p)`` with the rate ``p`` the adapter uses at that site
        (``spec.dropout``, ``spec.attn_dropout``), instead of drawing its own mask. Every site is in
        ``masks``, also one whose rate is 0 (its mask is all ones). Sites (``dropout_sites(spec, ...)``
        in ``gnnbench.verify`` builds them):

        * ``input.<i>``: the input of layer ``i`` of a node model (gcn, gat, sage), shape [N, d_in(i)];
        * ``attn.<i>``: GAT's attention coefficients of layer ``i`` (after the softmax), shape
          [E + N, heads(i)], edges in the canonical order: the columns of ``graph.edge_index``, then
          one self-loop per node in node order (as ``gnnbench.reference`` adds them). An adapter that
          reorders edges permutes the mask to its own order;
        * ``head``: GIN's dropout before the classifier's last linear layer, shape [G, hidden] for a
          batch of G graphs, in the order of the ids given to ``collate``."""

    def gradients(self) -> dict:
        """The gradients of the last ``train_step`` / ``train_batch`` loss (mean cross-entropy over
        the training nodes / the batch's graphs), taken before the optimiser step, in the canonical
        layout, **without** weight decay (the reference adds it in the optimiser step, as
        ``torch.optim`` does); a library that adds weight decay to its loss reports the
        cross-entropy gradient alone."""

    def dropout_sample(self, site: str, shape: tuple) -> Any:
        """The library's own training-mode dropout, exactly as the adapter calls it at ``site``
        (same op, same rate), applied to ``ones(shape)``; returned as a numpy array. ``verify``
        checks the share of zeros against a binomial bound of ``p`` and that survivors are scaled
        by ``1 / (1 - p)``."""


@runtime_checkable
class NodeTask(Task, VerifyHooks, Protocol):
    """'node': full-batch node classification (gcn, gat, sage). Each epoch the harness times
    ``train_step(); sync()``."""

    def train_step(self) -> None:
        """One full-batch training step (forward in training mode, mean cross-entropy over the
        training nodes, backward, optimiser step: ``spec.optimizer``, ``spec.lr``,
        ``spec.weight_decay`` as ``torch.optim`` applies it)."""


@runtime_checkable
class MiniBatchTask(Task, Protocol):
    """What the two mini-batch tasks share: per batch of ids the harness chose (``gnnbench.batching``),
    ``batch = collate(ids); sync()`` (the library's own batching, timed on its own too) and
    ``train_batch(batch); sync()``."""

    def collate(self, ids) -> Any:
        """The library's own batch of ``ids`` (graph ids, or seed node ids), on the device."""

    def train_batch(self, batch) -> None:
        """One training step on ``batch`` (forward, mean cross-entropy, backward, optimiser step)."""


@runtime_checkable
class GraphTask(MiniBatchTask, VerifyHooks, Protocol):
    """'graph': graph classification (GIN). ``collate(ids)`` batches the graphs ``ids`` (in that
    order); ``logits()`` are [G, C] for all graphs."""

    def batch_arrays(self, batch) -> dict:
        """The batch as numpy (``x``, ``edge_index``, ``batch``), so that ``verify`` checks every
        library saw the graphs the harness chose (``batching.fingerprint``)."""


@runtime_checkable
class SampledTask(MiniBatchTask, Protocol):
    """'sampled': neighbour-sampled node classification (sage-sampled). ``collate(ids)`` samples the
    neighbourhoods of the seed nodes ``ids`` and gathers their features; ``logits()`` are full-graph
    [N, C]."""

    def batch_stats(self, batch) -> dict:
        """What was sampled for ``batch`` (``seed_nodes``, ``input_nodes``, ``edges``), read
        between the timed intervals and recorded as per-batch means."""


class Adapter:
    """Base class of a library's task classes, with defaults. Subclasses set ``name``, ``library``,
    ``install_hint``, ``models``. The registered class is the library's; ``for_task`` names the
    class that implements each task's contract (``NodeTask``, ``GraphTask``, ``SampledTask``)."""

    name: str = ""
    library: str = ""            # distribution name whose version is reported
    install_hint: str = ""
    models: tuple[str, ...] = ("gcn", "gat", "sage")
    devices: tuple[str, ...] = ("cpu",)
    # input feature layouts (spec.features) the adapter trains on; the harness skips the others
    feature_layouts: tuple[str, ...] = ("dense",)
    sparse_features_why: str = "trains on dense features only"   # the skip reason for 'sparse'
    # spec.compile (torch.compile): offered by the torch adapters that accept it; the skip reason elsewhere
    compiles: bool = False
    compile_why: str = "compile=true is torch.compile, offered by the torch adapters (pyg, dgl)"

    # ---- run in the parent (must not import the library) -------------------
    @classmethod
    def for_task(cls, task: str) -> "type[Adapter] | None":
        """The class that runs ``task`` ('node', 'graph' or 'sampled': ``spec.task``, fixed by the
        model) for this library, or None when the library does not implement it (the harness then
        records the cell as ``skipped``). The default: this class, for every task one of its
        ``models`` belongs to. A library with one class per task overrides this with its table."""
        from .specs import MODELS
        return cls if any(m in MODELS and MODELS[m].task == task for m in cls.models) else None

    # why the library has no class for a task (task -> reason), shown in the ``skipped`` record
    missing_tasks: dict[str, str] = {}

    @classmethod
    def child_env(cls, threads: int) -> dict[str, str]:
        """Extra environment for the child process (set before any import)."""
        return {}

    # ---- run in the child ----------------------------------------------------
    def available(self) -> Availability:
        raise NotImplementedError

    def versions(self) -> dict[str, str]:
        """Versions of the library and its backend, for the record."""
        return {}

    def notes(self) -> list[str]:
        """Facts about this run worth recording (workarounds, unavoidable differences)."""
        return []

    def set_threads(self, n: int) -> None:
        pass

    def unsupported(self, model: str) -> str | None:
        """Why this adapter cannot run ``model`` (the cell is then ``skipped`` with it), or None."""
        return None if model in self.models else f"{self.name} does not implement model '{model}'"

    def unsupported_spec(self, spec) -> str | None:
        """Why this adapter cannot run ``spec`` as given (checked by the harness after ``unsupported``)."""
        layout = getattr(spec, "features", "dense")
        if layout not in self.feature_layouts:
            return f"{self.name}: features={layout} not offered: {self.sparse_features_why}"
        if getattr(spec, "compile", False) and not self.compiles:
            return f"{self.name}: {self.compile_why}"
        return None

    def prepare(self, graph, spec, device: str, seed: int, weights: dict) -> None:
        raise NotImplementedError

    def train_step(self) -> None:
        """One full-batch training step (forward, loss, backward, optimiser step)."""
        raise NotImplementedError

    def last_loss(self) -> float:
        """Loss of the last train_step (may synchronise; never called while timing)."""
        raise NotImplementedError

    def infer(self) -> None:
        """One forward pass in eval mode (timed by the harness)."""
        raise NotImplementedError

    def logits(self):
        """Eval-mode logits as a float numpy array: [N, C] for node tasks (full-graph inference for
        the sampled task), [G, C] for all graphs of a graph task. The harness computes accuracy from
        them with its own masks (``gnnbench.metrics``), and ``verify`` compares them."""
        raise NotImplementedError

    def parameters(self) -> dict:
        """Current parameters in the canonical layout, as numpy arrays."""
        raise NotImplementedError

    def sync(self) -> None:
        """Wait for queued device work (CUDA); a no-op on CPU."""

    def peak_memory(self) -> int | None:
        """Peak device memory in bytes on accelerators; None on CPU (the harness
        measures the child's peak RSS itself)."""
        return None

    def num_parameters(self) -> int:
        """Trainable scalars of the library's model (``Task.num_parameters``). This default counts
        the canonical layout; every real adapter overrides it with its library's own count."""
        return int(sum(v.size for v in self.parameters().values()))

    # ---- verify-only hooks (``VerifyHooks``) -------------------------------------
    def set_dropout_masks(self, masks: dict | None) -> None:
        raise NotImplementedError(f"{self.name}: no dropout-mask hook")

    def gradients(self) -> dict:
        raise NotImplementedError(f"{self.name}: no gradients hook")

    def dropout_sample(self, site: str, shape: tuple) -> "object":
        raise NotImplementedError(f"{self.name}: no dropout_sample hook")
