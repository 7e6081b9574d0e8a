"""The ``graph`` task (graph classification in mini-batches) on TensorFlow, shared by the
Spektral and Graph Nets adapters: the training step compiled once for batches of any size
(``tf.function`` with an input signature), evaluation, and the canonical-weight helpers.

A library adapter supplies ``build_gin(tf, gs, spec, weights, seed)`` (a callable
``model(batch, training) -> logits`` with ``.train_vars`` (trainable variables) and ``.canonical() -> dict``),
``collate(ids)`` (its own batching), ``batch_y(batch)``, ``batch_arrays(batch)``,
``batch_signature(tf)``, ``make_optimizer(tf, spec)`` and ``apply_gradients(grads, variables)``;
for the verify hooks, the model also has ``set_head_mask(mask | None)`` (swaps its head dropout for the
injected mask, or back) and ``canonical(read)`` reads each variable through ``read``.

Also here: what the verify hooks of both TF adapters share (``edge_permutation``, ``check_masks``,
``CompiledStep``): the timed step is one ``tf.function``; the verify step, compiled only when
``set_dropout_masks`` is called, is a second one that also returns the cross-entropy gradients.
"""
from __future__ import annotations

import numpy as np


def assign(var, array) -> None:
    array = np.asarray(array, dtype=np.float32)
    if tuple(var.shape) != array.shape:
        array = array.reshape(tuple(var.shape))
    var.assign(array)


def check_masks(masks: dict, shapes: dict) -> dict:
    """``masks`` (site -> 0/1 array) as float32 arrays, every site known and of the expected shape."""
    out = {}
    for site, m in masks.items():
        if site not in shapes:
            raise ValueError(f"unknown dropout site '{site}' (this model has: {', '.join(sorted(shapes))})")
        m = np.asarray(m, np.float32)
        if m.shape != tuple(shapes[site]):
            raise ValueError(f"dropout mask '{site}': shape {m.shape} != {tuple(shapes[site])}")
        out[site] = m
    return out


def canonical_attention_edges(edge_index: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(sources, targets) of the ``attn.<i>`` masks: edge_index columns, then one self-loop per node."""
    loops = np.arange(n, dtype=np.int64)
    return (np.concatenate([edge_index[0].astype(np.int64), loops]),
            np.concatenate([edge_index[1].astype(np.int64), loops]))


def edge_permutation(canon_src, canon_dst, lib_src, lib_dst, n: int) -> np.ndarray:
    """``perm`` with library edge j == canonical edge perm[j], so ``mask[perm]`` is a canonical-order
    mask in the library's order. Every edge must appear once on both sides."""
    ck = np.asarray(canon_src, np.int64) * n + np.asarray(canon_dst, np.int64)
    lk = np.asarray(lib_src, np.int64) * n + np.asarray(lib_dst, np.int64)
    order = np.argsort(ck, kind="stable")
    sk = ck[order]
    if sk.size > 1 and np.any(sk[1:] == sk[:-1]):
        raise ValueError("duplicate edges in the canonical order: the attention mask order is ambiguous")
    if lk.size != ck.size:
        raise ValueError(f"library has {lk.size} attention edges, the canonical order {ck.size}")
    pos = np.minimum(np.searchsorted(sk, lk), sk.size - 1)
    if sk.size and not np.array_equal(sk[pos], lk):
        raise ValueError("a library edge is missing from the canonical edge order")
    perm = order[pos]
    if np.unique(perm).size != perm.size:
        raise ValueError("the library repeats an attention edge")
    return perm


def step_fn(tf, loss_fn, variables, wd: float, apply, record: bool, input_signature=None):
    """The compiled training step: ``loss_fn(*args)`` under a tape, gradients, weight decay added to
    them (g + wd*w, as torch.optim), ``apply(grads, variables)``. With ``record`` (verify only) the
    compiled function also returns the cross-entropy gradients (before weight decay) and a Python
    wrapper keeps them in ``sink`` (a list) -- the timed step (``record=False``) is the bare function."""
    def step(*args):
        with tf.GradientTape() as tape:
            loss = loss_fn(*args)
        grads = tape.gradient(loss, variables)
        ce = [tf.convert_to_tensor(g) for g in grads] if record else None
        if wd:
            grads = [tf.convert_to_tensor(g) + wd * v for g, v in zip(grads, variables)]
        apply(grads, variables)
        return (loss, ce) if record else loss

    compiled = tf.function(step, input_signature=input_signature, autograph=False)
    if not record:
        return compiled

    sink: list = []

    def recorded(*args):
        loss, ce = compiled(*args)
        sink[:] = [g.numpy() for g in ce]
        return loss

    recorded.sink = sink
    recorded.compiled = compiled
    return recorded


def grads_by_variable(step, variables) -> dict:
    """{variable.ref(): gradient array} of the last recorded step (see ``step_fn``)."""
    sink = getattr(step, "sink", None)
    if sink is None:
        raise RuntimeError("gradients(): call set_dropout_masks(...) (masks or None) before the training step: "
                           "only the verify step records gradients")
    if not sink:
        raise RuntimeError("gradients(): no training step since set_dropout_masks(...)")
    return {v.ref(): g for v, g in zip(variables, sink)}


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
        model = self.model
        self._gsig = [self.batch_signature(tf)]
        # compiled once for every batch size; traced on the first call (the harness's warm-up)
        self._gstep = self._graph_step(record=False)
        self._geval = tf.function(lambda b: model(b, False), input_signature=self._gsig, autograph=False)
        self._loss = None

    def _graph_step(self, record: bool):
        tf, model = self._tf, self.model

        def loss_fn(batch):
            return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=self.batch_y(batch), logits=model(batch, True)))

        return step_fn(tf, loss_fn, self.variables, float(self.spec.weight_decay), self.apply_gradients, record,
                       input_signature=self._gsig)

    # ---- verify hooks (graph task): the one dropout site is 'head' [G, hidden] ------------------
    def set_dropout_masks_graphs(self, masks) -> None:
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
        self._gstep = self._graph_step(record=True)

    def gradients_graphs(self) -> dict:
        grads = grads_by_variable(self._gstep, self.variables)
        return self.model.canonical(lambda v: grads[v.ref()])

    def train_batch(self, batch) -> None:
        self._loss = self._gstep(batch)

    def infer_graphs(self) -> None:
        self._geval(self.test_batch)

    def logits_graphs(self):
        return self._geval(self.all_batch).numpy()
