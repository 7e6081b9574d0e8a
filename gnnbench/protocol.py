"""The adapter protocol: what every library wrapper implements.

The harness owns the clock. An adapter only does work; it never times itself.
The child process calls, in order::

    adapter.set_threads(n)                      # before prepare, once
    adapter.prepare(graph, spec, device, seed, weights)   # timed as setup_s
    adapter.train_step(); adapter.sync()        # warm-up, then timed epochs
    adapter.evaluate()                          # not timed
    adapter.infer(); adapter.sync()             # timed
    adapter.peak_memory()                       # device peak bytes (CUDA) or None

Mini-batch tasks (``spec.task`` 'graph': graph classification; 'sampled': neighbour-sampled
node classification) replace ``train_step`` by, per batch of ids the harness chose,
``batch = adapter.collate(ids)`` (the library's own batching: collating graphs, or sampling
neighbourhoods and gathering features; timed separately too) and ``adapter.train_batch(batch)``;
``batch_arrays(batch)`` (graph) / ``batch_stats(batch)`` (sampled) describe what was batched.

Everything library-specific is imported inside these methods, so importing an
adapter module is free of ML libraries.

Canonical weights (``gnnbench.weights``) are a ``dict[str, np.ndarray]`` with
names ``layers.<i>.<param>``; ``weight*`` matrices are ``in x out``. Every
adapter loads exactly these in ``prepare`` and returns the same layout from
``parameters()``, which is what ``gnnbench verify`` compares.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Availability:
    ok: bool
    version: str | None = None
    reason: str = ""          # why not, when ok is False
    install_hint: str = ""


class Adapter:
    """Base class. Subclasses set ``name``, ``library``, ``install_hint``, ``models``."""

    name: str = ""
    library: str = ""            # distribution name whose version is reported
    install_hint: str = ""
    models: tuple[str, ...] = ("gcn", "gat", "sage")
    devices: tuple[str, ...] = ("cpu",)

    # ---- run in the parent (must not import the library) -------------------
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

    def prepare(self, graph, spec, device: str, seed: int, weights: dict) -> None:
        raise NotImplementedError

    def train_step(self) -> None:
        """One full-batch training step (forward, loss, backward, optimiser step)."""
        raise NotImplementedError

    def last_loss(self) -> float:
        """Loss of the last train_step (may synchronise; never called while timing)."""
        raise NotImplementedError

    def evaluate(self) -> dict[str, float]:
        """Accuracies {'train':…, 'val':…, 'test':…} in eval mode."""
        raise NotImplementedError

    def infer(self) -> None:
        """One forward pass in eval mode (timed by the harness)."""
        raise NotImplementedError

    def logits(self):
        """Eval-mode logits as a float numpy array [N, C] (for verify)."""
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
        return int(sum(v.size for v in self.parameters().values()))
