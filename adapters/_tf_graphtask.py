"""The ``graph`` task (graph classification in mini-batches) on TensorFlow, shared by the Spektral
and Graph Nets graph-task classes: the training step compiled once for batches of any size
(``tf.function`` with an input signature), evaluation, and the verify hooks of GIN's one dropout
site, ``head`` [G, hidden].

The library's class (``TFGraphTask`` first, then the library's ``TFAdapter``) supplies
``build_gin(tf, gs, spec, weights, seed)``: a callable ``model(batch, training) -> logits`` with
``.train_vars`` (the trainable variables, in the step's order), ``.params`` (its weight table, the
canonical weights already loaded), ``.own_drop`` (the library's head dropout),
``.set_head_mask(mask | None)`` (swaps the head dropout for the injected mask, or back) and
``.trainable_weights()`` (every trainable variable the library's model owns); ``collate(ids)`` (its
own batching), ``batch_y(batch)``, ``batch_arrays(batch)``, ``batch_signature(tf)``,
``gin_notes(spec)`` and ``dropout_call(layer, x)`` (the library's dropout in training mode).
"""
from __future__ import annotations

import numpy as np

from ._tf import cross_entropy
# numpy-only verify helpers, re-exported: adapters/jraph.py imports them from here
from ._tf import canonical_attention_edges, check_masks, edge_permutation  # noqa: F401


class TFGraphTask:
    """The ``graph`` task of a TFAdapter (mixed in before it)."""

    models = ("gin",)

    def prepare(self, gs, spec, device, seed, weights):
        if device != "cpu":
            raise ValueError(f"{self.name} adapter runs on cpu only, not '{device}'")
        if spec.name != "gin":
            raise ValueError(f"{self.name} adapter has no graph-task model '{spec.name}'")
        tf = self.tf_module()
        self.seed(tf, seed)
        self._notes = self.gin_notes(spec)
        self.gs, self.spec, self._tf = gs, spec, tf
        self.model = self.build_gin(tf, gs, spec, weights, seed)
        self.variables = list(self.model.train_vars)
        self.params = self.model.params
        self.all_batch = self.collate(np.arange(gs.num_graphs))     # evaluation only, not timed
        self.test_batch = self.collate(gs.test_idx)
        self._apply = self.make_optimizer(tf, spec, self.variables)
        model = self.model
        self._gsig = [self.batch_signature(tf)]
        # compiled once for every batch size; traced on the first call (the harness's warm-up)
        self._step = self._graph_step(record=False)
        self._eval = tf.function(lambda b: model(b, False), input_signature=self._gsig, autograph=False)
        self._loss = None

    def _graph_step(self, record: bool):
        tf, model = self._tf, self.model
        return self.compile_step(lambda batch: cross_entropy(tf, self.batch_y(batch), model(batch, True)),
                                 record, input_signature=self._gsig)

    def train_step(self) -> None:
        raise NotImplementedError(f"{self.name}: the graph task trains per batch (train_batch)")

    def train_batch(self, batch) -> None:
        self._loss = self._step(batch)

    def infer(self) -> None:
        self._eval(self.test_batch)

    def logits(self):
        return self._eval(self.all_batch).numpy()

    # ---- verify hooks: the one dropout site is 'head' [G, hidden] -------------------------------
    def num_parameters(self) -> int:
        return int(sum(int(np.prod(v.shape)) for v in self.model.trainable_weights()))

    def set_dropout_masks(self, masks) -> None:
        if masks is None:
            self.model.set_head_mask(None)
        else:
            masks = dict(masks)
            head = masks.pop("head", None)
            if masks:
                raise ValueError(f"unknown dropout site(s) {sorted(masks)} (GIN has only 'head')")
            if head is not None:
                head = np.asarray(head, np.float32)
                if head.ndim != 2 or head.shape[1] != self.spec.hidden:
                    raise ValueError(f"dropout mask 'head': shape {head.shape} is not [G, {self.spec.hidden}]")
            self.model.set_head_mask(head)
        self._step = self._graph_step(record=True)

    def dropout_sample(self, site: str, shape: tuple):
        """The library's own head dropout (what the step calls there, same rate) in training mode,
        applied to ones(shape)."""
        if site != "head":
            raise ValueError(f"unknown dropout site '{site}' (GIN has only 'head')")
        tf = self._tf
        return self.dropout_call(self.model.own_drop, tf.ones(tuple(shape), tf.float32)).numpy()
