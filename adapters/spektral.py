"""Spektral (TensorFlow, legacy tf.keras): GCNConv, GATConv and GraphSAGE in
single mode with a sparse adjacency, trained by a ``tf.function``-compiled step.

Spektral 1.3 is written against Keras 2: TensorFlow must load ``tf_keras``
(``TF_USE_LEGACY_KERAS=1``) before it is first imported, so the parent puts the
variable into the child's environment (``child_env``) and ``_import_tf`` sets
it again before importing TensorFlow.

How each model maps onto Spektral (and where it cannot):

- GCN: ``spektral.layers.GCNConv`` on ``D^-1/2 (A+I) D^-1/2`` as a
  ``tf.SparseTensor`` built once in ``prepare``. Spektral has no per-forward
  normalisation: with ``norm_policy='recompute'`` the adjacency comes from
  Spektral's own preprocessing (``GCNConv.preprocess`` = ``gcn_filter``,
  SciPy, still once in ``prepare``).
- GAT: ``spektral.layers.GATConv`` (sparse single mode: gather/segment-softmax/
  segment-sum). ``cached``: self-loops added once in ``prepare`` and
  ``add_self_loops=False``; ``recompute``: the layer adds them every forward.
  Its ``dropout_rate`` is the attention dropout. Its LeakyReLU slope is fixed
  at 0.2; another ``negative_slope`` needs the small subclass below (noted).
- SAGE: ``spektral.layers.GraphSageConv`` always adds self-loops to the mean
  and L2-normalises its output, which is not the spec (neither can be switched
  off). The adapter subclasses it and overrides only ``call``: Spektral's own
  ``propagate`` with its ``mean`` aggregation over the raw adjacency (isolated
  node -> 0), then ``[x || mean] @ kernel + bias``. The kernel is
  ``[weight_root; weight_neigh]`` stacked, exactly as Spektral lays it out.

Features: ``features: dense`` hands the layers one dense ``tf.constant``; ``features: sparse``
(GCN and GAT only) a ``tf.SparseTensor`` of the non-zeros, which ``GCNConv``/``GATConv``'s ``K.dot``
multiplies with ``tf.sparse.sparse_dense_matmul``; layer 0's input dropout is then the same seeded
Dropout applied to the stored values (zeros stay zero). SAGE and GIN aggregate with Spektral's
``propagate``, whose ``tf.gather`` of x per edge takes no SparseTensor: those cells are skipped.

Verify hooks (``gnnbench.protocol``): ``set_dropout_masks`` swaps each Dropout layer (input of
layer k, ``GATConv.dropout``, GIN's head) for a layer computing ``x * mask / (1 - rate)`` with that
layer's own rate, attention masks permuted from the canonical edge order to the order of GATConv's
coefficients (the reordered adjacency's indices, or ``ops.add_self_loops_indices`` of them under
'recompute'), and compiles a second step that also returns the cross-entropy gradients; the timed
step is never changed.

Optimiser: ``tf.keras.optimizers.Adam(epsilon=1e-8, adaptive_epsilon=True)``,
which is torch's Adam update exactly (Keras' default puts epsilon on the
bias-uncorrected sqrt(v)); weight decay is added to the gradient (g + wd*w) as
in ``torch.optim.Adam`` -- Keras' own ``weight_decay`` is decoupled (AdamW).
"""
from __future__ import annotations

import os

import numpy as np

from gnnbench.protocol import Adapter, Availability

from ._tf_graphtask import (TFGraphTaskMixin, assign, canonical_attention_edges, check_masks, edge_permutation,
                            grads_by_variable, step_fn)

LEGACY_KERAS_ENV = {"TF_USE_LEGACY_KERAS": "1"}


def _import_tf():
    """Import TensorFlow with the legacy (tf_keras) Keras that Spektral needs."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf
    return tf


def _uses_tf_keras(tf) -> bool:
    """True when ``tf.keras`` is the legacy tf_keras (Keras 2), which Spektral needs."""
    return type.__getattribute__(tf.keras.layers.Layer, "__module__").startswith("tf_keras")


class SpektralAdapter(TFGraphTaskMixin, Adapter):
    name = "spektral"
    library = "spektral"
    install_hint = "pip install 'gnnbench[spektral]'"
    models = ("gcn", "gat", "sage", "gin")
    devices = ("cpu",)
    # Spektral's GCNConv and GATConv multiply the node features with K.dot, which takes a tf.SparseTensor
    # (tf.sparse.sparse_dense_matmul), and its data containers/loaders document Scipy-sparse / SparseTensor
    # node features; its message passing (propagate: tf.gather of x per edge), which GraphSageConv and
    # GINConv aggregate with, does not take one.
    feature_layouts = ("dense", "sparse")
    sparse_models = ("gcn", "gat")
    sparse_features_why = ("Spektral's message passing (MessagePassing.propagate, used by GraphSageConv and "
                           "GINConv) gathers x per edge with tf.gather, which takes no tf.SparseTensor")

    def __init__(self):
        self._notes: list[str] = []
        self._threads_note: str | None = None

    # ---- parent -----------------------------------------------------------------
    @classmethod
    def child_env(cls, threads: int) -> dict[str, str]:
        return dict(LEGACY_KERAS_ENV)

    # ---- child ------------------------------------------------------------------
    def available(self) -> Availability:
        try:
            tf = _import_tf()
            import spektral
        except Exception as exc:  # ImportError, or a broken binary / numpy mismatch
            return Availability(False, reason=f"{type(exc).__name__}: {exc}", install_hint=self.install_hint)
        try:
            legacy = _uses_tf_keras(tf)
        except Exception as exc:
            return Availability(False, reason=f"tf.keras unusable ({type(exc).__name__}: {exc})",
                                install_hint=self.install_hint)
        if not legacy:
            return Availability(False, reason=(
                "TensorFlow was imported with Keras 3; Spektral needs tf_keras: "
                "set TF_USE_LEGACY_KERAS=1 before TensorFlow is first imported"),
                install_hint=self.install_hint)
        return Availability(True, spektral.__version__)

    def versions(self) -> dict[str, str]:
        tf = _import_tf()
        import spektral
        import tf_keras
        return {"spektral": spektral.__version__, "tensorflow": tf.__version__, "tf_keras": tf_keras.__version__}

    def notes(self) -> list[str]:
        out = list(self._notes)
        if self._threads_note:
            out.append(self._threads_note)
        return out

    def unsupported(self, model: str) -> str | None:
        if model == "sage-sampled":
            return f"{self.name}: the library has no neighbour sampler (not supported)"
        return super().unsupported(model)

    def unsupported_spec(self, spec) -> str | None:
        if getattr(spec, "features", "dense") == "sparse" and spec.name not in self.sparse_models:
            return f"{self.name}: features=sparse not offered for {spec.name}: {self.sparse_features_why}"
        return super().unsupported_spec(spec)

    def set_threads(self, n: int) -> None:
        tf = _import_tf()
        try:
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(n)
        except RuntimeError as exc:  # the TF runtime was already initialised
            self._threads_note = f"could not set TensorFlow threads to {n}: {exc}"

    def prepare(self, graph, spec, device, seed, weights):
        if spec.task == "graph":
            self._notes = _gin_notes(spec)
            return self.prepare_graphs(graph, spec, device, seed, weights)
        if device != "cpu":
            raise ValueError(f"spektral adapter supports only cpu, not '{device}'")
        tf = _import_tf()
        import random

        from gnnbench.weights import gat_heads, layer_dims

        self._notes = []
        self.spec = spec
        self._tf = tf
        # Seeds: Python, NumPy, TensorFlow's global seed; every dropout layer
        # below also gets its own explicit seed (a seeded tf.random.Generator),
        # and ops are deterministic, so the same seed gives the same run.
        random.seed(seed)
        np.random.seed(seed % 2**32)
        tf.random.set_seed(seed)
        tf.config.experimental.enable_op_determinism()

        self._sparse_x = spec.features == "sparse"
        if self._sparse_x:
            # the non-zeros of X as a tf.SparseTensor (row-major, the canonical SparseTensor order):
            # GCNConv/GATConv's K.dot multiplies it with tf.sparse.sparse_dense_matmul; layer 0's input
            # dropout acts on its stored values (zeros stay zero: dense dropout's distribution)
            rows, cols = np.nonzero(graph.x)
            self._x_nz = (rows, cols)
            self.x = tf.SparseTensor(np.stack([rows, cols], 1).astype(np.int64),
                                     graph.x[rows, cols].astype(np.float32), graph.x.shape)
        else:
            self.x = tf.constant(graph.x, dtype=tf.float32)
        self.graph_ = graph
        dims = layer_dims(spec, graph.num_features, graph.num_classes)
        self.dims = dims
        cached = spec.norm_policy == "cached"
        self.a = self._adjacency(tf, graph, spec, cached)
        self.layers_ = []
        last = len(dims) - 1
        for k, (din, dout) in enumerate(dims):
            self.layers_.append(self._make_layer(tf, spec, k, k == last, dout, gat_heads))
        self.drops = [tf.keras.layers.Dropout(spec.dropout, seed=_sub_seed(seed, 1, k), rng_type="stateful")
                      for k in range(len(dims))]
        # build every layer once (eager, eval mode), then load the canonical weights
        h = self.x
        for k, conv in enumerate(self.layers_):
            h = conv([h, self.a], training=False)
            if spec.name == "gat":  # Spektral's GATConv builds an unseeded Dropout; give it a seed
                conv.dropout = tf.keras.layers.Dropout(spec.attn_dropout, seed=_sub_seed(seed, 2, k),
                                                       rng_type="stateful")
        for drop in self.drops + [c.dropout for c in self.layers_ if spec.name == "gat"]:
            drop._random_generator._maybe_init()   # create the seeded generators eagerly, here
        # the library's own dropout layers, kept for dropout_sample and to restore after injected masks
        self._own_drops = list(self.drops)
        self._own_attn = [c.dropout for c in self.layers_] if spec.name == "gat" else []
        self._load(weights)
        self.variables = self._variables()

        self.y = graph.y
        train = np.flatnonzero(graph.train_mask)
        self.train_idx = tf.constant(train, dtype=tf.int64)
        self.train_y = tf.constant(graph.y[train], dtype=tf.int64)

        if spec.optimizer == "adam":
            self.optimizer = tf.keras.optimizers.Adam(
                learning_rate=spec.lr, beta_1=0.9, beta_2=0.999, epsilon=1e-8, adaptive_epsilon=True)
        else:
            self.optimizer = tf.keras.optimizers.SGD(learning_rate=spec.lr)
        self.optimizer.build(self.variables)   # slots created here, not inside the traced step
        # Compiled, but traced on first call (the harness's warm-up), not here.
        self._step = self._node_step(record=False)
        self._eval = tf.function(lambda: self._forward(training=False), autograph=False)
        self._loss = None
        self._record_notes(spec, cached)

    def _node_step(self, record: bool):
        tf = self._tf

        def loss_fn():
            out = self._forward(training=True)
            return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=self.train_y, logits=tf.gather(out, self.train_idx)))

        return step_fn(tf, loss_fn, self.variables, float(self.spec.weight_decay),
                       lambda g, v: self.optimizer.apply_gradients(zip(g, v)), record)

    # ---- model pieces -----------------------------------------------------------
    def _adjacency(self, tf, graph, spec, cached):
        from gnnbench.reference import _with_self_loops, gcn_norm

        n = graph.num_nodes
        src, dst = graph.edge_index
        if spec.name == "gcn":
            if cached:
                s, d, w = gcn_norm(graph.edge_index, n)
                # GCNConv computes A @ (XW): row = target, column = source
                a = tf.SparseTensor(np.stack([d, s], 1), w.astype(np.float32), (n, n))
            else:
                import scipy.sparse as sp
                from spektral.layers import GCNConv
                raw = sp.csr_matrix((np.ones(len(src), np.float32), (dst, src)), shape=(n, n))
                filt = GCNConv.preprocess(raw).tocoo()
                a = tf.SparseTensor(np.stack([filt.row, filt.col], 1).astype(np.int64),
                                    filt.data.astype(np.float32), (n, n))
        elif spec.name == "gat" and cached:
            # Spektral's message passing reads indices[:, 0] as the source, [:, 1] as the target
            s, d = _with_self_loops(graph.edge_index, n)
            a = tf.SparseTensor(np.stack([s, d], 1), np.ones(len(s), np.float32), (n, n))
        else:  # gat (recompute: the layer adds self-loops) and sage (raw adjacency)
            a = tf.SparseTensor(np.stack([src, dst], 1), np.ones(len(src), np.float32), (n, n))
        return tf.sparse.reorder(a)

    def _make_layer(self, tf, spec, k, last, dout, gat_heads):
        from spektral.layers import GATConv, GCNConv

        init = {"kernel_initializer": "zeros"}   # overwritten by the canonical weights
        if spec.name == "gcn":
            return GCNConv(dout, **init)
        if spec.name == "gat":
            cls = GATConv if spec.negative_slope == 0.2 else _gat_with_slope(spec.negative_slope)
            return cls(dout, attn_heads=gat_heads(spec, k), concat_heads=not last,
                       dropout_rate=spec.attn_dropout, add_self_loops=spec.norm_policy != "cached",
                       attn_kernel_initializer="zeros", **init)
        if spec.name == "sage":
            if spec.aggregator != "mean" or not spec.root_weight:
                raise ValueError("spektral adapter implements SAGE with aggregator=mean, root_weight=True only")
            return _sage_layer()(dout, aggregate="mean", **init)
        raise ValueError(f"spektral adapter has no model '{spec.name}'")

    def _forward(self, training: bool):
        tf = self._tf
        h = self.x
        last = len(self.layers_) - 1
        for k, conv in enumerate(self.layers_):
            if k == 0 and self._sparse_x:   # dropout on the stored values of the sparse features
                h = tf.SparseTensor(h.indices, self.drops[0](h.values, training=training), h.dense_shape)
            else:
                h = self.drops[k](h, training=training)
            h = conv([h, self.a], training=training)
            if k < last:
                h = tf.nn.elu(h) if self.spec.name == "gat" else tf.nn.relu(h)
        return h

    def _variables(self):
        out = []
        for conv in self.layers_:
            if self.spec.name == "gat":
                out += [conv.kernel, conv.attn_kernel_self, conv.attn_kernel_neighs, conv.bias]
            else:
                out += [conv.kernel, conv.bias]
        return out

    def _load(self, w):
        for k, conv in enumerate(self.layers_):
            p = f"layers.{k}."
            if self.spec.name == "gcn":
                _assign(conv.kernel, w[p + "weight"])
            elif self.spec.name == "gat":
                heads, ch = conv.attn_heads, conv.channels
                _assign(conv.kernel, w[p + "weight"].reshape(-1, heads, ch))
                # attn_kernel_self scores the target (att_dst), attn_kernel_neighs the source (att_src)
                _assign(conv.attn_kernel_self, w[p + "att_dst"].T[:, :, None])
                _assign(conv.attn_kernel_neighs, w[p + "att_src"].T[:, :, None])
            else:
                _assign(conv.kernel, np.concatenate([w[p + "weight_root"], w[p + "weight_neigh"]], 0))
            _assign(conv.bias, w[p + "bias"])

    def parameters(self) -> dict:
        if self.spec.task == "graph":
            return self.model.canonical(_numpy)
        return self._canonical(_numpy)

    def _canonical(self, read) -> dict:
        """The canonical layout of the node model, each variable read through ``read`` (its value or
        its gradient)."""
        out = {}
        for k, conv in enumerate(self.layers_):
            p = f"layers.{k}."
            kernel = np.asarray(read(conv.kernel))
            if self.spec.name == "gcn":
                out[p + "weight"] = kernel
            elif self.spec.name == "gat":
                out[p + "weight"] = kernel.reshape(kernel.shape[0], -1)
                out[p + "att_src"] = np.ascontiguousarray(np.asarray(read(conv.attn_kernel_neighs))[:, :, 0].T)
                out[p + "att_dst"] = np.ascontiguousarray(np.asarray(read(conv.attn_kernel_self))[:, :, 0].T)
            else:
                din = kernel.shape[0] // 2
                out[p + "weight_root"] = kernel[:din].copy()
                out[p + "weight_neigh"] = kernel[din:].copy()
            out[p + "bias"] = np.asarray(read(conv.bias))
        return out

    # ---- verify-only hooks (see gnnbench.protocol) ---------------------------------------------
    def num_parameters(self) -> int:
        """Trainable scalars of the Spektral layers themselves (every trainable weight they own)."""
        if self.spec.task == "graph":
            return int(sum(int(np.prod(v.shape)) for v in self.model.trainable_weights()))
        return int(sum(int(np.prod(v.shape)) for conv in self.layers_ for v in conv.trainable_weights))

    def _mask_shapes(self) -> dict:
        n = self.graph_.num_nodes
        shapes = {f"input.{k}": (n, din) for k, (din, _) in enumerate(self.dims)}
        if self.spec.name == "gat":
            e = self.graph_.edge_index.shape[1] + n
            shapes.update({f"attn.{k}": (e, conv.attn_heads) for k, conv in enumerate(self.layers_)})
        return shapes

    def _attention_order(self):
        """(sources, targets) of GATConv's attention coefficients, in its order: the indices of the
        (reordered) sparse adjacency, or, when the layer adds self-loops itself, what its
        ops.add_self_loops_indices makes of them (drops any diagonal, appends one per node, reorders)."""
        from spektral.layers import ops
        idx = self.a.indices
        if self.spec.norm_policy != "cached":
            idx = ops.add_self_loops_indices(idx, self._tf.constant(self.graph_.num_nodes, idx.dtype))
        idx = np.asarray(idx)
        return idx[:, 0], idx[:, 1]

    def set_dropout_masks(self, masks) -> None:
        """Swap each dropout layer named in ``masks`` for a layer computing ``x * mask / (1 - rate)``
        (the library layer's own rate) in training mode, or restore Spektral's own layers (None); then
        compile the verify step, which also records the gradients. The timed step is untouched."""
        if self.spec.task == "graph":
            return self.set_dropout_masks_graphs(masks)
        tf = self._tf
        self.drops = list(self._own_drops)
        for conv, own in zip(self.layers_, self._own_attn):
            conv.dropout = own
        if masks is not None:
            masks = check_masks(masks, self._mask_shapes())
            masked = _masked_dropout_class(tf)
            perm = None
            for site, m in masks.items():
                kind, k = site.split(".")
                k = int(k)
                if kind == "input":
                    if k == 0 and self._sparse_x:
                        m = m[self._x_nz]            # the mask of the stored values, in their order
                    self.drops[k] = masked(m, self._own_drops[k].rate)
                else:
                    if perm is None:
                        n = self.graph_.num_nodes
                        cs, cd = canonical_attention_edges(self.graph_.edge_index, n)
                        ls, ld = self._attention_order()
                        perm = edge_permutation(cs, cd, ls, ld, n)
                    self.layers_[k].dropout = masked(m[perm], self._own_attn[k].rate)
        self._step = self._node_step(record=True)

    def gradients(self) -> dict:
        """Cross-entropy gradients of the last (verify) step, canonical layout; weight decay, which
        the step adds to the gradient, is not in them."""
        if self.spec.task == "graph":
            return self.gradients_graphs()
        grads = grads_by_variable(self._step, self.variables)
        return self._canonical(lambda v: grads[v.ref()])

    def dropout_sample(self, site: str, shape: tuple):
        """Spektral's own training-mode dropout layer of ``site`` (the seeded tf.keras Dropout the
        step calls there, same rate) applied to ones(shape)."""
        tf = self._tf
        kind, _, k = site.partition(".")
        if self.spec.task == "graph":
            if site != "head":
                raise ValueError(f"unknown dropout site '{site}' (GIN has only 'head')")
            layer = self.model.own_drop
        elif kind == "input" and k.isdigit() and int(k) < len(self._own_drops):
            layer = self._own_drops[int(k)]
        elif kind == "attn" and k.isdigit() and int(k) < len(self._own_attn):
            layer = self._own_attn[int(k)]
        else:
            raise ValueError(f"unknown dropout site '{site}'")
        return layer(tf.ones(tuple(shape), tf.float32), training=True).numpy()

    def _record_notes(self, spec, cached):
        add = self._notes.append
        add("TensorFlow with tf_keras (TF_USE_LEGACY_KERAS=1); Spektral 1.3 does not run on Keras 3")
        add(_optimizer_note(spec))
        if self._sparse_x:
            add("features=sparse: X as a tf.SparseTensor of its non-zeros; GCNConv/GATConv's K.dot "
                "multiplies it with tf.sparse.sparse_dense_matmul; layer 0's input dropout (the same seeded "
                "tf.keras Dropout) acts on the stored values only, so zeros stay zero")
        else:
            add("features=dense: X as one dense tf.constant [N, F]; input dropout on every element")
        add("repeatable: Python/NumPy/TF global seeds set, every dropout (input and GATConv attention) "
            "has its own seeded generator, tf.config.experimental.enable_op_determinism() is on")
        if spec.name == "gcn" and not cached:
            add("norm_policy=recompute: Spektral has no per-forward GCN normalisation; its own "
                "preprocessing (GCNConv.preprocess/gcn_filter, SciPy) runs once in prepare")
        if spec.name == "gat":
            if spec.negative_slope != 0.2:
                add(f"GATConv fixes LeakyReLU slope 0.2; a subclass re-implements its sparse call with "
                    f"slope {spec.negative_slope}")
            if cached:
                add("GAT: self-loops added once in prepare (GATConv add_self_loops=False)")
        if spec.name == "sage":
            add("SAGE: Spektral's GraphSageConv adds self-loops to the mean and L2-normalises its output "
                "(not switchable), so its call() is overridden: Spektral propagate() with mean over the raw "
                "adjacency, [x || mean] @ kernel + bias, no normalisation")
            add(f"SAGE 1/deg (norm_policy={spec.norm_policy}): Spektral's mean aggregation "
                "(ops.scatter_mean = tf.math.unsorted_segment_mean) counts the in-degrees every forward under "
                "both norm policies; the library has no cached-degree path")

    # ---- protocol ---------------------------------------------------------------
    def train_step(self) -> None:
        self._loss = self._step()

    def last_loss(self) -> float:
        return float(self._loss.numpy())

    def infer(self) -> None:
        if self.spec.task == "graph":
            return self.infer_graphs()
        self._eval()

    def logits(self):
        if self.spec.task == "graph":
            return self.logits_graphs()
        return self._eval().numpy()

    # ---- graph task: disjoint mode, as Spektral's DisjointLoader.collate does it -----------
    def tf_module(self):
        return _import_tf()

    def build_gin(self, tf, gs, spec, weights, seed):
        import scipy.sparse as sp
        self.x_list = [gs.x[gs.node_ptr[g]:gs.node_ptr[g + 1]] for g in range(gs.num_graphs)]
        self.a_list = []
        for g in range(gs.num_graphs):
            n0, n = int(gs.node_ptr[g]), int(gs.node_ptr[g + 1] - gs.node_ptr[g])
            e = gs.edge_index[:, gs.edge_ptr[g]:gs.edge_ptr[g + 1]] - n0
            self.a_list.append(sp.csr_matrix((np.ones(e.shape[1], np.float32), (e[0], e[1])), shape=(n, n)))
        self.num_features = gs.num_features
        return _spektral_gin(tf, spec, gs.num_classes, weights, seed, self.collate(np.arange(min(4, gs.num_graphs))))

    def collate(self, ids):
        from spektral.data.utils import sp_matrices_to_sp_tensors, to_disjoint
        tf = self._tf
        x, a, i = to_disjoint([self.x_list[k] for k in ids], [self.a_list[k] for k in ids])
        x, a, i = sp_matrices_to_sp_tensors((x, a, i))
        return (tf.convert_to_tensor(x, tf.float32), a, tf.convert_to_tensor(i, tf.int64),
                tf.constant(self.gs.y[np.asarray(ids)], tf.int64))

    def batch_y(self, batch):
        return batch[3]

    def batch_signature(self, tf):
        return (tf.TensorSpec([None, self.num_features], tf.float32), tf.SparseTensorSpec([None, None], tf.float32),
                tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.int64))

    def batch_arrays(self, batch) -> dict:
        x, a, i, _ = batch
        idx = a.indices.numpy().T          # rows (targets), cols (sources) of the symmetric adjacency
        return {"x": x.numpy(), "edge_index": idx[::-1].astype(np.int64), "batch": i.numpy()}

    def make_optimizer(self, tf, spec):
        if spec.optimizer == "adam":
            opt = tf.keras.optimizers.Adam(learning_rate=spec.lr, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                                           adaptive_epsilon=True)
        else:
            opt = tf.keras.optimizers.SGD(learning_rate=spec.lr)
        opt.build(self.variables)
        return opt

    def apply_gradients(self, grads, variables):
        self.optimizer.apply_gradients(zip(grads, variables))


def _numpy(var):
    return var.numpy()


def _optimizer_note(spec) -> str:
    if spec.optimizer == "adam":
        return ("optimiser: tf.keras Adam(epsilon=1e-8, adaptive_epsilon=True) = torch.optim.Adam's update; "
                "weight decay added to the gradient (g + wd*w), not Keras' decoupled weight_decay")
    return "optimiser: tf.keras SGD (no momentum); weight decay added to the gradient (g + wd*w)"


def _masked_dropout_class(tf):
    """A tf.keras layer that replaces a Dropout layer with an injected keep-mask (verify only): in
    training mode ``x * mask / (1 - rate)``, in eval mode ``x``; ``training`` reaches it as it reaches
    the Dropout it replaces (argument, or the Keras call context inside GATConv)."""

    class MaskedDropout(tf.keras.layers.Layer):
        def __init__(self, mask, rate):
            super().__init__(trainable=False)
            self.rate = float(rate)
            self.mask = tf.constant(np.asarray(mask, np.float32))

        def call(self, inputs, training=None):
            from tf_keras.src.utils import control_flow_util
            if training is None:                     # as tf.keras Dropout.call resolves it
                training = tf.keras.backend.learning_phase()
            return control_flow_util.smart_cond(
                training, lambda: inputs * self.mask / (1.0 - self.rate), lambda: tf.identity(inputs))

    return MaskedDropout


def _sub_seed(seed: int, kind: int, layer: int) -> int:
    """A distinct, reproducible int seed per (seed, dropout kind, layer)."""
    return int(np.random.SeedSequence([seed, kind, layer]).generate_state(1)[0] % (2**31 - 1))


def _assign(var, array) -> None:
    array = np.asarray(array, dtype=np.float32)
    if tuple(var.shape) != array.shape:
        raise ValueError(f"{var.name}: shape {tuple(var.shape)} != canonical {array.shape}")
    var.assign(array)


def _sage_layer():
    """GraphSageConv with the spec's update (see module docstring)."""
    from spektral.layers import GraphSageConv
    from tensorflow.keras import backend as K

    class SpecGraphSageConv(GraphSageConv):
        def call(self, inputs):
            x, a, _ = self.get_inputs(inputs)
            aggregated = self.propagate(x, a)      # mean over in-neighbours, no self-loops
            output = K.dot(K.concatenate([x, aggregated]), self.kernel)
            if self.use_bias:
                output = K.bias_add(output, self.bias)
            if self.activation is not None:
                output = self.activation(output)
            return output

    return SpecGraphSageConv


def _gat_with_slope(slope: float):
    """GATConv whose sparse single-mode call uses LeakyReLU(slope) instead of 0.2."""
    import tensorflow as tf
    from spektral.layers import GATConv, ops

    class SlopeGATConv(GATConv):
        def _call_single(self, x, a):
            kernel = tf.reshape(self.kernel, (-1, self.attn_heads * self.channels))
            attn_kernel_self = ops.transpose(self.attn_kernel_self, (2, 1, 0))
            attn_kernel_neighs = ops.transpose(self.attn_kernel_neighs, (2, 1, 0))
            indices = a.indices
            N = tf.shape(x, out_type=indices.dtype)[-2]
            if self.add_self_loops:
                indices = ops.add_self_loops_indices(indices, N)
            targets, sources = indices[:, 1], indices[:, 0]
            x = tf.reshape(tf.matmul(x, kernel), (-1, self.attn_heads, self.channels))
            attn = tf.gather(tf.reduce_sum(x * attn_kernel_self, -1), targets) + \
                tf.gather(tf.reduce_sum(x * attn_kernel_neighs, -1), sources)
            attn = tf.nn.leaky_relu(attn, alpha=slope)
            attn = ops.unsorted_segment_softmax(attn, targets, N)
            attn = self.dropout(attn)[..., None]
            output = tf.math.unsorted_segment_sum(attn * tf.gather(x, sources), targets, N)
            return output, attn

    return SlopeGATConv


def _gin_notes(spec) -> list[str]:
    return ["TensorFlow with tf_keras (TF_USE_LEGACY_KERAS=1); Spektral 1.3 does not run on Keras 3",
            _optimizer_note(spec),
            "features=dense: the collated x of each batch is a dense tensor; the head dropout is a seeded "
            "tf.keras Dropout",
            "gin: Spektral's GINConv (its sum propagate) with the spec's MLP: Spektral's own MLP is "
            "Dense+ReLU -> BatchNorm -> Dense, so build()/call() are overridden to Dense (no bias) -> "
            "BatchNorm -> ReLU -> Dense -> ReLU; GlobalSumPool/GlobalAvgPool readout; batches collated as "
            "DisjointLoader.collate does (to_disjoint + sp_matrices_to_sp_tensors)",
            "gin: Keras BatchNormalization(momentum=0.9, epsilon=1e-5) = torch's momentum 0.1 and eps; Keras "
            "updates the moving variance with the biased batch variance (torch: unbiased), which only "
            "touches eval-mode outputs after training"]


def _spektral_gin(tf, spec, num_classes, weights, seed, sample):
    """GIN from Spektral layers; ``model(batch, training)`` on a disjoint batch (x, a, i, y)."""
    from spektral.layers import GINConv, GlobalAvgPool, GlobalSumPool
    from tensorflow.keras.layers import BatchNormalization, Dense, Dropout

    class SpecGINConv(GINConv):
        def build(self, input_shape):
            self.dense1 = Dense(self.channels, use_bias=not self.mlp_batchnorm)
            self.bn = BatchNormalization(momentum=0.9, epsilon=1e-5) if self.mlp_batchnorm else None
            self.dense2 = Dense(self.channels, activation="relu")
            self.eps = tf.cast(self.epsilon, self.dtype)
            self.one = tf.cast(1, self.dtype)
            self.built = True

        def call(self, inputs, training=None):
            x, a, _ = self.get_inputs(inputs)
            u = self.dense1((self.one + self.eps) * x + self.propagate(x, a))
            if self.bn is not None:
                u = self.bn(u, training=training)
            return self.dense2(tf.nn.relu(u))

    convs = [SpecGINConv(spec.hidden, epsilon=spec.eps, mlp_batchnorm=spec.batch_norm, aggregate="sum")
             for _ in range(spec.layers)]
    pool = GlobalSumPool() if spec.readout == "sum" else GlobalAvgPool()
    head1 = Dense(spec.hidden, activation="relu")
    drop = Dropout(spec.dropout, seed=_sub_seed(seed, 3, 0), rng_type="stateful")
    head2 = Dense(num_classes)

    class Model:
        own_drop = drop          # the library's Dropout (dropout_sample); self.drop is what the step calls

        def __init__(self):
            self.drop = drop

        def __call__(self, batch, training):
            x, a, i, _ = batch
            h = x
            for conv in convs:
                h = conv([h, a], training=training)
            r = head1(pool([h, i]))
            return head2(self.drop(r, training=training))

        def set_head_mask(self, mask):
            """Verify only: the head dropout becomes ``r * mask / (1 - rate)`` (None: Spektral's own)."""
            self.drop = drop if mask is None else _masked_dropout_class(tf)(mask, drop.rate)

        def trainable_weights(self):
            return [v for layer in (*convs, head1, head2) for v in layer.trainable_weights]

        def canonical(self, read) -> dict:
            out = {}
            for k, c in enumerate(convs):
                p = f"layers.{k}."
                out[p + "weight1"] = read(c.dense1.kernel)
                if c.bn is None:
                    out[p + "bias1"] = read(c.dense1.bias)
                else:
                    out[p + "bn_weight"], out[p + "bn_bias"] = read(c.bn.gamma), read(c.bn.beta)
                out[p + "weight2"], out[p + "bias2"] = read(c.dense2.kernel), read(c.dense2.bias)
            out["head.weight1"], out["head.bias1"] = read(head1.kernel), read(head1.bias)
            out["head.weight2"], out["head.bias2"] = read(head2.kernel), read(head2.bias)
            return {k: np.asarray(v) for k, v in out.items()}

    model = Model()
    model(sample, False)                   # builds every layer
    drop._random_generator._maybe_init()   # the seeded generator is created here, not in the step
    for k, c in enumerate(convs):
        p = f"layers.{k}."
        assign(c.dense1.kernel, weights[p + "weight1"])
        if c.bn is None:
            assign(c.dense1.bias, weights[p + "bias1"])
        else:
            assign(c.bn.gamma, weights[p + "bn_weight"])
            assign(c.bn.beta, weights[p + "bn_bias"])
        assign(c.dense2.kernel, weights[p + "weight2"])
        assign(c.dense2.bias, weights[p + "bias2"])
    assign(head1.kernel, weights["head.weight1"])
    assign(head1.bias, weights["head.bias1"])
    assign(head2.kernel, weights["head.weight2"])
    assign(head2.bias, weights["head.bias2"])
    model.train_vars = [v for layer in (*convs, head1, head2) for v in layer.trainable_variables]
    return model
