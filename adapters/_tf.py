"""What the TensorFlow adapters (Spektral, Graph Nets) share, beside ``_torch.py`` for the torch ones:

- ``import_tf``: TensorFlow with the legacy Keras (``tf_keras``): ``TF_USE_LEGACY_KERAS=1`` must be
  in the environment before TensorFlow is first imported, so it is in ``child_env`` (the parent sets
  it for the child) and set again, if missing, before the import;
- ``TFAdapter``: threads, seeding, the optimiser, the one compiled training step (weight decay added
  to the gradient, as ``torch.optim`` does), the loss, and ``parameters``/``gradients`` read through
  the adapter's weight table;
- the weight table (``Slot``: canonical name -> variable, rows, transpose) with one loader
  (``load_weights``) and one reader (``read_weights``), and ``assign``, which refuses a shape mismatch;
- what both libraries' verify hooks share: ``check_masks``, ``canonical_attention_edges``,
  ``edge_permutation``, ``grads_by_variable``.

Importing this module imports no ML library.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from gnnbench.protocol import Adapter

LEGACY_KERAS_ENV = {"TF_USE_LEGACY_KERAS": "1"}


def import_tf(env: dict[str, str] = LEGACY_KERAS_ENV):
    """Import TensorFlow with the legacy (tf_keras) Keras; ``env`` is set first where not already set."""
    for key, value in env.items():
        os.environ.setdefault(key, value)
    import tensorflow as tf
    return tf


# ---- the canonical weights ----------------------------------------------------------------------
def assign(var, array, name: str, rows: slice | None = None) -> None:
    """``var`` (or its ``rows``) := the canonical weight ``name``; the shapes must match."""
    array = np.asarray(array, dtype=np.float32)
    if rows is not None:
        full = np.array(var.numpy())
        if full[rows].shape != array.shape:
            raise ValueError(f"canonical weight '{name}' {array.shape} does not fit rows "
                             f"{rows.start}:{rows.stop} of {var.name} {tuple(var.shape)}")
        full[rows] = array
        array = full
    elif tuple(var.shape) != array.shape:
        raise ValueError(f"canonical weight '{name}' {array.shape} does not fit {var.name} {tuple(var.shape)}")
    var.assign(array)


@dataclass(frozen=True)
class Slot:
    """Where the canonical weight ``name`` lives in the library's model: ``var`` (a tf.Variable), or
    its ``rows`` (one part of a stacked kernel); ``transpose``: the variable holds the canonical
    matrix transposed; ``split``: the variable holds the (transposed) matrix with its second axis
    split into more axes (GAT heads x channels, a trailing axis of 1), so loading reshapes it to the
    variable's shape and reading flattens every axis after the first."""
    name: str
    var: object
    rows: slice | None = None
    transpose: bool = False
    split: bool = False


def load_weights(table, weights: dict) -> None:
    """Load the canonical ``weights`` into the variables of ``table`` (a list of ``Slot``)."""
    for s in table:
        a = np.asarray(weights[s.name], np.float32)
        if s.transpose:
            a = a.T
        if s.split:
            a = a.reshape(tuple(s.var.shape))
        assign(s.var, a, s.name, s.rows)


def read_weights(table, read) -> dict:
    """The canonical layout of ``table``, each variable read through ``read`` (its value, or its gradient)."""
    out = {}
    for s in table:
        a = np.asarray(read(s.var))
        if s.rows is not None:
            a = a[s.rows]
        if s.split:
            a = a.reshape(a.shape[0], -1)
        if s.transpose:
            a = a.T
        out[s.name] = np.ascontiguousarray(a)
    return out


def numpy_(var):
    return var.numpy()


# ---- the optimiser and the training step ----------------------------------------------------------
def optimizer_note(api: str, spec) -> str:
    if api == "keras":
        if spec.optimizer == "adam":
            return ("optimiser: tf.keras Adam(epsilon=1e-8, adaptive_epsilon=True) = torch.optim.Adam's update; "
                    "weight decay added to the gradient (g + wd*w), not Keras' decoupled weight_decay")
        return "optimiser: tf.keras SGD (no momentum); weight decay added to the gradient (g + wd*w)"
    if spec.optimizer == "adam":
        return ("optimiser: snt.optimizers.Adam (bias-corrected, eps outside the sqrt: torch.optim.Adam's "
                "update); weight decay added to the gradient (g + wd*w) before apply")
    return "optimiser: snt.optimizers.SGD; weight decay added to the gradient (g + wd*w) before apply"


def make_optimizer(tf, api: str, spec, variables):
    """``apply(grads, variables)`` of torch.optim's Adam or SGD (no momentum) at ``spec.lr``, from
    tf.keras (``api='keras'``: ``adaptive_epsilon=True`` puts epsilon on the bias-corrected sqrt(v),
    as torch does; its slots are built here, not inside the traced step) or Sonnet 2 (``'sonnet'``:
    its Adam already is torch's update). Weight decay is not the optimiser's: the step adds it to
    the gradient (``compile_step``)."""
    if spec.optimizer not in ("adam", "sgd"):
        raise ValueError(f"unknown optimizer '{spec.optimizer}'")
    if api == "keras":
        if spec.optimizer == "adam":
            opt = tf.keras.optimizers.Adam(learning_rate=spec.lr, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                                           adaptive_epsilon=True)
        else:
            opt = tf.keras.optimizers.SGD(learning_rate=spec.lr)
        opt.build(variables)
        return lambda grads, vs: opt.apply_gradients(zip(grads, vs))
    import sonnet as snt
    if spec.optimizer == "adam":
        return snt.optimizers.Adam(learning_rate=spec.lr, beta1=0.9, beta2=0.999, epsilon=1e-8).apply
    return snt.optimizers.SGD(learning_rate=spec.lr).apply


def compile_step(tf, loss_fn, variables, wd: float, apply, record: bool, input_signature=None):
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
    """{variable.ref(): gradient array} of the last recorded step (see ``compile_step``)."""
    sink = getattr(step, "sink", None)
    if sink is None:
        raise RuntimeError("gradients(): call set_dropout_masks(...) (masks or None) before the training step: "
                           "only the verify step records gradients")
    if not sink:
        raise RuntimeError("gradients(): no training step since set_dropout_masks(...)")
    return {v.ref(): g for v, g in zip(variables, sink)}


def cross_entropy(tf, labels, logits):
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))


# ---- dropout masks (verify hooks) ---------------------------------------------------------------
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


# ---- the base class -------------------------------------------------------------------------------
class TFAdapter(Adapter):
    """The parts of a TensorFlow adapter that do not depend on the library or the task. A task class
    sets, in ``prepare``: ``self._tf``, ``self.spec``, ``self.variables`` (the trainable variables
    the step updates, in a fixed order), ``self.params`` (its weight table, a list of ``Slot``),
    ``self._apply`` (``make_optimizer``) and ``self._step`` (``self.compile_step(...)``)."""

    devices = ("cpu",)
    tf_env: dict[str, str] = LEGACY_KERAS_ENV      # set before TensorFlow is imported (child_env, import_tf)
    optimizer_api = "keras"                        # make_optimizer's api: 'keras' or 'sonnet'

    def __init__(self):
        self._notes: list[str] = []
        self._threads_note: str | None = None
        self._loss = None

    @classmethod
    def child_env(cls, threads: int) -> dict[str, str]:
        return dict(cls.tf_env)

    def tf_module(self):
        return import_tf(self.tf_env)

    def notes(self) -> list[str]:
        return list(self._notes) + ([self._threads_note] if self._threads_note else [])

    def set_threads(self, n: int) -> None:
        tf = self.tf_module()
        try:
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(n)
        except RuntimeError as exc:  # the TF runtime was already initialised
            self._threads_note = f"could not set TensorFlow threads to {n}: {exc}"

    def seed(self, tf, seed: int, deterministic: bool = True) -> None:
        """Python, NumPy and TensorFlow's global seed (every dropout also has its own op-level seed or
        seeded generator); ``deterministic``: ``tf.config.experimental.enable_op_determinism()``, for
        the rest of the process."""
        import random
        random.seed(seed)
        np.random.seed(seed % 2**32)
        tf.random.set_seed(seed)
        if deterministic:
            tf.config.experimental.enable_op_determinism()

    def make_optimizer(self, tf, spec, variables):
        return make_optimizer(tf, self.optimizer_api, spec, variables)

    def compile_step(self, loss_fn, record: bool, input_signature=None):
        """The step (``compile_step``) over ``self.variables`` with ``self._apply``: the timed one
        (``record=False``), or the verify one that also records the gradients."""
        return compile_step(self._tf, loss_fn, self.variables, float(self.spec.weight_decay), self._apply,
                            record, input_signature)

    def last_loss(self) -> float:
        return float(self._loss.numpy())

    def parameters(self) -> dict:
        return read_weights(self.params, numpy_)

    def gradients(self) -> dict:
        """Cross-entropy gradients of the last (verify) step, canonical layout; weight decay, which the
        step adds to the gradient, is not in them."""
        grads = grads_by_variable(self._step, self.variables)
        return read_weights(self.params, lambda v: grads[v.ref()])

    def sync(self) -> None:
        pass
