"""The ``graph`` task (graph classification in mini-batches) on TensorFlow, shared by the
Spektral and Graph Nets adapters: the training step compiled once for batches of any size
(``tf.function`` with an input signature), evaluation, and the canonical-weight helpers.

A library adapter supplies ``build_gin(tf, gs, spec, weights, seed)`` (a callable
``model(batch, training) -> logits`` with ``.train_vars`` (trainable variables) and ``.canonical() -> dict``),
``collate(ids)`` (its own batching), ``batch_y(batch)``, ``batch_arrays(batch)``,
``batch_signature(tf)``, ``make_optimizer(tf, spec)`` and ``apply_gradients(grads, variables)``.
"""
from __future__ import annotations

import numpy as np


def assign(var, array) -> None:
    array = np.asarray(array, dtype=np.float32)
    if tuple(var.shape) != array.shape:
        array = array.reshape(tuple(var.shape))
    var.assign(array)


class TFGraphTaskMixin:
    def prepare_graphs(self, gs, spec, device, seed, weights):
        if device != "cpu":
            raise ValueError(f"{self.name} adapter runs on cpu only, not '{device}'")
        if spec.name != "gin":
            raise ValueError(f"{self.name} adapter has no graph-task model '{spec.name}'")
        import random
        tf = self.tf_module()
        random.seed(seed)
        np.random.seed(seed % 2**32)
        tf.random.set_seed(seed)
        tf.config.experimental.enable_op_determinism()
        self.gs, self.spec, self._tf = gs, spec, tf
        self.model = self.build_gin(tf, gs, spec, weights, seed)
        self.variables = list(self.model.train_vars)
        self.all_batch = self.collate(np.arange(gs.num_graphs))     # evaluation only, not timed
        self.test_batch = self.collate(gs.test_idx)
        self.optimizer = self.make_optimizer(tf, spec)
        wd = float(spec.weight_decay)
        model, variables = self.model, self.variables

        def step(batch):
            with tf.GradientTape() as tape:
                logits = model(batch, True)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=self.batch_y(batch), logits=logits))
            grads = tape.gradient(loss, variables)
            if wd:  # L2 added to the gradient, as torch.optim.Adam(weight_decay=...)
                grads = [tf.convert_to_tensor(g) + wd * v for g, v in zip(grads, variables)]
            self.apply_gradients(grads, variables)
            return loss

        sig = [self.batch_signature(tf)]
        # compiled once for every batch size; traced on the first call (the harness's warm-up)
        self._gstep = tf.function(step, input_signature=sig, autograph=False)
        self._geval = tf.function(lambda b: model(b, False), input_signature=sig, autograph=False)
        self._loss = None

    def train_batch(self, batch) -> None:
        self._loss = self._gstep(batch)

    def evaluate_graphs(self) -> dict[str, float]:
        pred = self._geval(self.all_batch).numpy().argmax(axis=1)
        return {k: float((pred[i] == self.gs.y[i]).mean())
                for k, i in (("train", self.gs.train_idx), ("test", self.gs.test_idx))}

    def infer_graphs(self) -> None:
        self._geval(self.test_batch)

    def logits_graphs(self):
        return self._geval(self.all_batch).numpy()
