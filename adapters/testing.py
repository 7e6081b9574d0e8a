"""Adapters that test the harness itself (enabled by GNNBENCH_TEST_ADAPTERS=1).

``FakeAdapter`` does real but tiny NumPy work (a logistic regression on the
node features) and can sleep a configurable time per step
(``GNNBENCH_TEST_SLEEP_MS``), so runs are fast and slowdowns are controlled.
"""
from __future__ import annotations

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
        self.masks = {"train": graph.train_mask, "val": graph.val_mask, "test": graph.test_mask}
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

    def evaluate(self):
        pred = (self.x @ self.w).argmax(1)
        return {k: float((pred[m] == self.y[m]).mean()) for k, m in self.masks.items()}

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
