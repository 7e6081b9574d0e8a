"""Adapters that test the harness itself (enabled by GNNBENCH_TEST_ADAPTERS=1).

``FakeAdapter`` does real but tiny NumPy work (a logistic regression on the
node features) and can sleep a configurable time per step
(``GNNBENCH_TEST_SLEEP_MS``), so runs are fast and slowdowns are controlled.
"""
from __future__ import annotations

import functools
import os
import signal
import time

import numpy as np

from gnnbench.protocol import Adapter, Availability


class FakeAdapter(Adapter):
    name = "test-ok"
    library = "numpy"

    def available(self):
        return Availability(True, np.__version__)

    def versions(self):
        return {"numpy": np.__version__}

    def prepare(self, graph, spec, device, seed, weights):
        rng = np.random.default_rng(seed)
        self.x, self.y = graph.x, graph.y
        self.train = np.flatnonzero(graph.train_mask)
        self.w = rng.normal(0, 0.01, (graph.num_features, graph.num_classes)).astype(np.float32)
        self.sleep = float(os.environ.get("GNNBENCH_TEST_SLEEP_MS", "0")) / 1e3
        self.loss = None

    def train_step(self):
        z = self.x[self.train] @ self.w
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        self.loss = float(-np.log(p[np.arange(len(self.train)), self.y[self.train]] + 1e-12).mean())
        p[np.arange(len(self.train)), self.y[self.train]] -= 1
        self.w -= 0.5 * (self.x[self.train].T @ p) / len(self.train)
        if self.sleep:
            time.sleep(self.sleep)

    def last_loss(self):
        return self.loss

    def infer(self):
        self.x @ self.w

    def logits(self):
        return self.x @ self.w

    def parameters(self):
        return {"w": self.w}


class CrashAdapter(FakeAdapter):
    name = "test-crash"

    def train_step(self):
        os.abort()


class HangAdapter(FakeAdapter):
    name = "test-hang"

    def train_step(self):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        pidfile = os.environ.get("GNNBENCH_TEST_PIDFILE")
        if pidfile:   # lets a test check that this process dies with its parent
            with open(pidfile, "w") as fh:
                fh.write(str(os.getpid()))
        while True:
            time.sleep(1)


class RaiseAdapter(FakeAdapter):
    name = "test-raise"

    def prepare(self, graph, spec, device, seed, weights):
        raise RuntimeError("deliberate failure in prepare")


class MissingAdapter(FakeAdapter):
    name = "test-missing"
    install_hint = "pip install some-missing-library"

    def available(self):
        try:
            import gnnbench_no_such_library  # noqa: F401
        except ImportError as exc:
            return Availability(False, reason=str(exc), install_hint=self.install_hint)
        return Availability(True, "?")


class MemoryHogAdapter(FakeAdapter):
    name = "test-memhog"

    def train_step(self):
        self.hog = [np.ones(2**27, np.uint8) for _ in range(64)]   # 8 GiB, touched


class NanAdapter(FakeAdapter):
    """A model that diverged: its loss and logits are NaN, and a library-reported figure (the device
    peak memory) is NaN too."""
    name = "test-nan"

    def train_step(self):
        super().train_step()
        self.loss = float("nan")

    def logits(self):
        return np.full((self.x.shape[0], self.w.shape[1]), np.nan, np.float32)

    def peak_memory(self):
        return float("nan")


# ---- a correct NumPy model on the float64 reference, and deliberately wrong variants of it --------------
class RefAdapter(FakeAdapter):
    """A correct adapter: the reference model (``gnnbench.reference``) with float32 parameters, its
    own seeded dropout, every verify hook. The mutations below each change one thing and must fail
    ``gnnbench verify`` with a message naming it. This class is the node task; ``for_task('graph')``
    is the same class (mutation included) with ``RefGraphTask``'s GIN methods in front."""

    name = "test-ref"
    models = ("gcn", "gat", "sage", "gin")
    dtype = np.float32

    @classmethod
    def for_task(cls, task):
        return {"node": super().for_task("node"), "graph": _graph_variant(cls) if "gin" in cls.models else None}.get(task)
    no_dropout: frozenset = frozenset()    # sites this adapter ignores (mask and its own dropout)
    extra_parameters = 0                   # trainable scalars outside the canonical layout

    # ---- what a mutation changes -------------------------------------------------------------
    def model_spec(self, spec):
        """The spec this adapter's model computes (the rates its dropout uses)."""
        return spec

    def structure(self, graph):
        from gnnbench.reference import Structure
        return Structure(graph.edge_index, graph.num_nodes)

    def adjust_gradients(self, grads: dict) -> dict:
        return grads

    # ---- the protocol --------------------------------------------------------------------------
    def prepare(self, graph, spec, device, seed, weights):
        self.spec, self.mspec, self.graph = spec, self.model_spec(spec), graph
        self.w = {k: np.array(v, dtype=self.dtype) for k, v in weights.items()}
        self.extra = np.zeros(self.extra_parameters, self.dtype)     # trained by nobody, counted
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7265]))
        self.masks = None
        self.state = None
        self.loss = self.grads = None
        self.st = self.structure(graph)

    def set_dropout_masks(self, masks):
        self.masks = None if masks is None else dict(masks)

    def _masks(self, sites: dict) -> dict:
        from gnnbench.verify import dropout_rate
        out = {}
        for site, shape in sites.items():
            if site in self.no_dropout:
                continue
            if self.masks is not None:
                out[site] = self.masks[site]
            else:
                out[site] = (self.rng.random(shape) >= dropout_rate(self.mspec, site)).astype(np.float32)
        return out

    def _step(self, loss, grads):
        from gnnbench import reference
        self.loss, self.grads = loss, self.adjust_gradients(grads)
        s = self.spec
        if s.optimizer == "adam":
            new, self.state = reference.adam_step(self.w, self.grads, s.lr, s.weight_decay, self.state)
        else:
            new = reference.sgd_step(self.w, self.grads, s.lr, s.weight_decay)
        self.w = {k: v.astype(self.dtype) for k, v in new.items()}

    def train_step(self):
        from gnnbench import reference
        from gnnbench.verify import dropout_sites
        masks = self._masks(dropout_sites(self.mspec, self.graph))
        self._step(*reference.node_loss_and_grads(self.mspec, self.w, self.graph, masks, self.st))

    def gradients(self):
        return {k: np.asarray(v, self.dtype) for k, v in self.grads.items()}

    def dropout_sample(self, site, shape):
        from gnnbench.verify import dropout_rate
        if site in self.no_dropout:
            return np.ones(shape, np.float32)
        p = dropout_rate(self.mspec, site)
        keep = self.rng.random(shape) >= p
        return (keep / np.float32(1 - p)).astype(np.float32)

    def num_parameters(self):
        return int(sum(v.size for v in self.w.values()) + self.extra.size)

    def parameters(self):
        return {k: v.copy() for k, v in self.w.items()}

    def logits(self):
        from gnnbench import reference
        return reference.forward(self.mspec, self.w, self.graph.x, self.graph.edge_index,
                                 structure=self.st).astype(self.dtype)

    def infer(self):
        self.logits()


class RefGraphTask:
    """The graph task (GIN) of ``RefAdapter`` and its mutants: listed in front of one of them
    (``_graph_variant``), it replaces the node-task parts only, so the mutation still applies."""

    def prepare(self, graph, spec, device, seed, weights):
        from gnnbench import batching
        super().prepare(graph, spec, device, seed, weights)
        self.all_batch = batching.collate(graph, np.arange(graph.num_graphs))

    def structure(self, graph):
        return None

    def logits(self):
        from gnnbench import reference
        b = self.all_batch
        return reference.gin_forward(self.mspec, self.w, b["x"], b["edge_index"], b["batch"],
                                     self.graph.num_graphs).astype(self.dtype)

    def collate(self, ids):
        from gnnbench import batching
        return batching.collate(self.graph, ids)

    def batch_arrays(self, batch):
        return batch

    def train_batch(self, batch):
        from gnnbench import reference
        from gnnbench.verify import dropout_sites
        masks = self._masks(dropout_sites(self.mspec, batch))
        self._step(*reference.gin_loss_and_grads(self.mspec, self.w, batch, masks))


@functools.lru_cache(maxsize=None)
def _graph_variant(cls):
    return type(f"{cls.__name__}Graph", (RefGraphTask, cls), {"__module__": __name__})


class GradScaleMutant(RefAdapter):
    """Layer 0's first weight gets half its gradient (and the step uses it)."""
    name = "test-mut-grad"

    def adjust_gradients(self, grads):
        k = sorted(n for n in grads if n.startswith("layers.0.weight"))[0]
        return dict(grads, **{k: grads[k] * 0.5})


class NoNormMutant(RefAdapter):
    """GCN without D^-1/2 (A + I) D^-1/2: plain A + I."""
    name = "test-mut-gcn-nonorm"
    models = ("gcn",)

    def structure(self, graph):
        from gnnbench.reference import Structure

        class Unnormalised(Structure):
            def gcn_weights(self):
                return np.ones(self.loop_src.size)
        return Unnormalised(graph.edge_index, graph.num_nodes)


class WrongRateMutant(RefAdapter):
    """Dropout at half the spec's rate (its own op and the 1/(1-p) it scales injected masks by)."""
    name = "test-mut-droprate"

    def model_spec(self, spec):
        import dataclasses
        return dataclasses.replace(spec, dropout=spec.dropout / 2)


class NoDropoutLayerMutant(RefAdapter):
    """No dropout on layer 1's input: ignores its mask and never drops there."""
    name = "test-mut-nodrop"
    no_dropout = frozenset({"input.1"})


class ExtraParamMutant(RefAdapter):
    """One trainable scalar beyond the canonical layout."""
    name = "test-mut-extra"
    extra_parameters = 1


class SageSumMutant(RefAdapter):
    """SAGE with the neighbour sum instead of the mean."""
    name = "test-mut-sage-sum"
    models = ("sage",)

    def structure(self, graph):
        from gnnbench.reference import Structure

        class Summed(Structure):
            def sage_scales(self):
                return np.ones(self.n)
        return Summed(graph.edge_index, graph.num_nodes)


class NoGradientsHook(RefAdapter):
    """An adapter without the gradients hook (the protocol's default raises NotImplementedError)."""
    name = "test-mut-nohook"

    def gradients(self):
        return Adapter.gradients(self)


class WrongStepMutant(RefAdapter):
    """Right gradients, but the optimiser step uses twice the learning rate."""
    name = "test-mut-lr"

    def _step(self, loss, grads):
        import dataclasses
        spec, self.spec = self.spec, dataclasses.replace(self.spec, lr=2 * self.spec.lr)
        try:
            super()._step(loss, grads)
        finally:
            self.spec = spec


class OtherBatchMutant(RefGraphTask, RefAdapter):
    """Its batches hold the harness's graphs in reverse order (a graph-task class alone: GIN only)."""
    name = "test-mut-batch"
    models = ("gin",)

    @classmethod
    def for_task(cls, task):
        return cls if task == "graph" else None

    def collate(self, ids):
        return super().collate(ids[::-1])
