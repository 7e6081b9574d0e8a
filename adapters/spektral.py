"""Spektral (TensorFlow, legacy tf.keras): GCNConv, GATConv and GraphSAGE in
single mode with a sparse adjacency, trained by a ``tf.function``-compiled step.

Spektral 1.3 is written against Keras 2: TensorFlow must load ``tf_keras``
(``TF_USE_LEGACY_KERAS=1``) before it is first imported, so the parent puts the
variable into the child's environment (``child_env``) and ``_tf.import_tf`` sets
it again before importing TensorFlow.

One class per task: ``SpektralAdapter`` (registered; the library-level parts and the node task:
GCN, GAT, SAGE) and ``SpektralGraphAdapter`` (the graph task: GIN, on ``_tf_graphtask``);
``for_task`` maps the task to its class. The library has no neighbour sampler: no class for the
sampled task. Each class maps the canonical weights onto its variables with one table
(``_tf.Slot``), which ``_tf.load_weights`` loads and ``_tf.read_weights`` reads back.

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

import numpy as np

from gnnbench.protocol import Availability

from ._tf import (Slot, TFAdapter, canonical_attention_edges, check_masks, cross_entropy, edge_permutation,
                  load_weights, optimizer_note)
from ._tf_graphtask import TFGraphTask

_TF_KERAS_NOTE = "TensorFlow with tf_keras (TF_USE_LEGACY_KERAS=1); Spektral 1.3 does not run on Keras 3"


def _uses_tf_keras(tf) -> bool:
    """True when ``tf.keras`` is the legacy tf_keras (Keras 2), which Spektral needs."""
    return type.__getattribute__(tf.keras.layers.Layer, "__module__").startswith("tf_keras")


class SpektralAdapter(TFAdapter):
    """The library (registered name ``spektral``) and its node task: GCN, GAT, SAGE in single mode."""
    name = "spektral"
    library = "spektral"
    install_hint = "pip install 'gnnbench[spektral]'"
    models = ("gcn", "gat", "sage", "gin")
    # Spektral's GCNConv and GATConv multiply the node features with K.dot, which takes a tf.SparseTensor
    # (tf.sparse.sparse_dense_matmul), and its data containers/loaders document Scipy-sparse / SparseTensor
    # node features; its message passing (propagate: tf.gather of x per edge), which GraphSageConv and
    # GINConv aggregate with, does not take one.
    feature_layouts = ("dense", "sparse")
    sparse_models = ("gcn", "gat")
    sparse_features_why = ("Spektral's message passing (MessagePassing.propagate, used by GraphSageConv and "
                           "GINConv) gathers x per edge with tf.gather, which takes no tf.SparseTensor")

    # ---- parent -----------------------------------------------------------------
    @classmethod
    def for_task(cls, task: str):
        return {"node": SpektralAdapter, "graph": SpektralGraphAdapter}.get(task)

    missing_tasks = {"sampled": "the library has no neighbour sampler"}

    # ---- child: the library -----------------------------------------------------------
    def available(self) -> Availability:
        try:
            tf = self.tf_module()
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
        tf = self.tf_module()
        import spektral
        import tf_keras
        return {"spektral": spektral.__version__, "tensorflow": tf.__version__, "tf_keras": tf_keras.__version__}

    def unsupported_spec(self, spec) -> str | None:
        if getattr(spec, "features", "dense") == "sparse" and spec.name not in self.sparse_models:
            return f"{self.name}: features=sparse not offered for {spec.name}: {self.sparse_features_why}"
        return super().unsupported_spec(spec)

    def dropout_call(self, layer, x):
        """A tf.keras Dropout layer of this library in training mode."""
        return layer(x, training=True)

    # ---- child: the node task -------------------------------------------------------
    def prepare(self, graph, spec, device, seed, weights):
        if device != "cpu":
            raise ValueError(f"spektral adapter supports only cpu, not '{device}'")
        tf = self.tf_module()

        from gnnbench.weights import gat_heads, layer_dims

        self._notes = []
        self.spec = spec
        self._tf = tf
        # Seeds: Python, NumPy, TensorFlow's global seed; every dropout layer
        # below also gets its own explicit seed (a seeded tf.random.Generator),
        # and ops are deterministic, so the same seed gives the same run.
        self.seed(tf, seed)

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
        self.params = self._table()
        load_weights(self.params, weights)
        self.variables = self._variables()

        self.y = graph.y
        train = np.flatnonzero(graph.train_mask)
        self.train_idx = tf.constant(train, dtype=tf.int64)
        self.train_y = tf.constant(graph.y[train], dtype=tf.int64)

        self._apply = self.make_optimizer(tf, spec, self.variables)
        # Compiled, but traced on first call (the harness's warm-up), not here.
        self._step = self._node_step(record=False)
        self._eval = tf.function(lambda: self._forward(training=False), autograph=False)
        self._loss = None
        self._record_notes(spec, cached)

    def _node_step(self, record: bool):
        tf = self._tf
        return self.compile_step(lambda: cross_entropy(tf, self.train_y,
                                                       tf.gather(self._forward(training=True), self.train_idx)),
                                 record)

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

    def _table(self) -> list:
        """Canonical name -> the layer's variable. GATConv's kernel is [in, heads, channels] and its
        attention kernels [channels, heads, 1] (``attn_kernel_self`` scores the target: att_dst,
        ``attn_kernel_neighs`` the source: att_src); SAGE's kernel is [weight_root; weight_neigh]."""
        table = []
        for k, conv in enumerate(self.layers_):
            p = f"layers.{k}."
            if self.spec.name == "gcn":
                table.append(Slot(p + "weight", conv.kernel))
            elif self.spec.name == "gat":
                table += [Slot(p + "weight", conv.kernel, split=True),
                          Slot(p + "att_src", conv.attn_kernel_neighs, transpose=True, split=True),
                          Slot(p + "att_dst", conv.attn_kernel_self, transpose=True, split=True)]
            else:
                din = conv.kernel.shape[0] // 2
                table += [Slot(p + "weight_root", conv.kernel, rows=slice(0, din)),
                          Slot(p + "weight_neigh", conv.kernel, rows=slice(din, 2 * din))]
            table.append(Slot(p + "bias", conv.bias))
        return table

    # ---- verify-only hooks (see gnnbench.protocol) ---------------------------------------------
    def num_parameters(self) -> int:
        """Trainable scalars of the Spektral layers themselves (every trainable weight they own)."""
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

    def dropout_sample(self, site: str, shape: tuple):
        """Spektral's own training-mode dropout layer of ``site`` (the seeded tf.keras Dropout the
        step calls there, same rate) applied to ones(shape)."""
        tf = self._tf
        kind, _, k = site.partition(".")
        if kind == "input" and k.isdigit() and int(k) < len(self._own_drops):
            layer = self._own_drops[int(k)]
        elif kind == "attn" and k.isdigit() and int(k) < len(self._own_attn):
            layer = self._own_attn[int(k)]
        else:
            raise ValueError(f"unknown dropout site '{site}'")
        return self.dropout_call(layer, tf.ones(tuple(shape), tf.float32)).numpy()

    def _record_notes(self, spec, cached):
        add = self._notes.append
        add(_TF_KERAS_NOTE)
        add(optimizer_note(self.optimizer_api, spec))
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

    def infer(self) -> None:
        self._eval()

    def logits(self):
        return self._eval().numpy()


class SpektralGraphAdapter(TFGraphTask, SpektralAdapter):
    """Spektral's graph task (GIN): disjoint mode, batches collated as DisjointLoader.collate does."""

    def gin_notes(self, spec) -> list[str]:
        return [_TF_KERAS_NOTE, optimizer_note(self.optimizer_api, spec),
                "features=dense: the collated x of each batch is a dense tensor; the head dropout is a seeded "
                "tf.keras Dropout",
                "gin: Spektral's GINConv (its sum propagate) with the spec's MLP: Spektral's own MLP is "
                "Dense+ReLU -> BatchNorm -> Dense, so build()/call() are overridden to Dense (no bias) -> "
                "BatchNorm -> ReLU -> Dense -> ReLU; GlobalSumPool/GlobalAvgPool readout; batches collated as "
                "DisjointLoader.collate does (to_disjoint + sp_matrices_to_sp_tensors)",
                "gin: Keras BatchNormalization(momentum=0.9, epsilon=1e-5) = torch's momentum 0.1 and eps; Keras "
                "updates the moving variance with the biased batch variance (torch: unbiased), which only "
                "touches eval-mode outputs after training"]

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

    model = Model()
    model(sample, False)                   # builds every layer
    drop._random_generator._maybe_init()   # the seeded generator is created here, not in the step
    table = []
    for k, c in enumerate(convs):
        p = f"layers.{k}."
        table.append(Slot(p + "weight1", c.dense1.kernel))
        if c.bn is None:
            table.append(Slot(p + "bias1", c.dense1.bias))
        else:
            table += [Slot(p + "bn_weight", c.bn.gamma), Slot(p + "bn_bias", c.bn.beta)]
        table += [Slot(p + "weight2", c.dense2.kernel), Slot(p + "bias2", c.dense2.bias)]
    table += [Slot("head.weight1", head1.kernel), Slot("head.bias1", head1.bias),
              Slot("head.weight2", head2.kernel), Slot("head.bias2", head2.bias)]
    load_weights(table, weights)
    model.params = table
    model.train_vars = [v for layer in (*convs, head1, head2) for v in layer.trainable_variables]
    return model
