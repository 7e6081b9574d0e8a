"""DeepMind Graph Nets (TF2 / Sonnet 2): GCN, GAT and SAGE built from Graph Nets' blocks.

Graph Nets ships no GCN, GAT or SAGE layer; its users write them from the
library's pieces, and so does this adapter:

- the graph is a ``graphs.GraphsTuple`` made by ``utils_tf.data_dicts_to_graphs_tuple``;
- GCN: the edges carry the symmetric normalisation ``1/sqrt(d_i d_j)`` (self-loops
  included, computed once in ``prepare`` under ``norm_policy='cached'``); an
  ``EdgeBlock`` (edges + sender nodes) scales the sender's ``h_j W`` by it and a
  ``NodeBlock`` sums the received edges (``tf.math.unsorted_segment_sum``) and adds
  the bias (``snt.Bias``);
- GAT: the pattern of ``graph_nets.modules.SelfAttention`` (broadcast sender /
  receiver nodes to edges, softmax over each node's received edges with
  ``modules._unsorted_segment_softmax``, weighted sender values summed by a
  ``ReceivedEdgesToNodesAggregator``), with GAT's additive LeakyReLU scores and
  attention dropout, which ``SelfAttention`` itself cannot express (it uses
  dot-product logits with no nonlinearity and no dropout);
- SAGE: an ``EdgeBlock`` puts the sender's features on each edge and a
  ``NodeBlock`` concatenates their ``tf.math.unsorted_segment_mean`` with the node's
  own features into one ``snt.Linear`` whose ``w`` is ``[W_neigh; W_root]``.

The training step is a ``tf.function``; the optimiser is ``snt.optimizers.Adam``
(same update as ``torch.optim.Adam``) with weight decay added to the gradient.

Features are dense only: a GraphsTuple's NODES is one dense tensor and ``snt.Linear`` is
``tf.matmul`` (``features: sparse`` cells are skipped with that reason).

Verify hooks (``gnnbench.protocol``): ``set_dropout_masks`` swaps each ``snt.Dropout`` (input of
layer k, GAT attention, GIN head) for ``x * mask / (1 - rate)`` with that module's own rate (the
attention edges are the GraphsTuple's senders/receivers, already the canonical order; the
permutation is computed anyway) and compiles a second step that also returns the cross-entropy
gradients; the timed step is never changed.

TF_USE_LEGACY_KERAS=1 must be set before TensorFlow is first imported: it is in
``child_env`` and set (if missing) by ``_import`` before anything is imported.

One class per task: ``GraphNetsAdapter`` (registered; the library-level parts and the node task:
GCN, GAT, SAGE) and ``GraphNetsGraphAdapter`` (the graph task: GIN, on ``_tf_graphtask``);
``for_task`` maps the task to its class. The library has no neighbour sampler: no class for the
sampled task. Each model maps the canonical weights onto its variables with one table
(``_tf.Slot``), which ``_tf.load_weights`` loads and ``_tf.read_weights`` reads back.
"""
from __future__ import annotations

import numpy as np

from gnnbench.protocol import Availability

from ._tf import (Slot, TFAdapter, canonical_attention_edges, check_masks, cross_entropy, edge_permutation,
                  import_tf, load_weights, optimizer_note)
from ._tf_graphtask import TFGraphTask

_FEATURE_DROPOUT_SEED = 1000    # op-level seed of the input dropout of layer k: 1000 + k
_ATTN_DROPOUT_SEED = 2000       # op-level seed of the attention dropout of layer k: 2000 + k
_TF_ENV = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}


def _import():
    """Import TensorFlow, Sonnet and Graph Nets (legacy Keras switched on first)."""
    tf = import_tf(_TF_ENV)
    import sonnet as snt
    from graph_nets import blocks, modules, utils_tf
    return tf, snt, blocks, modules, utils_tf


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


class GraphNetsAdapter(TFAdapter):
    """The library (registered name ``graphnets``) and its node task: GCN, GAT, SAGE on one GraphsTuple."""
    name = "graphnets"
    library = "graph-nets"
    install_hint = "pip install 'gnnbench[graphnets]'"
    models = ("gcn", "gat", "sage", "gin")
    feature_layouts = ("dense",)
    sparse_features_why = (
        "Graph Nets' GraphsTuple holds NODES as one dense tensor [n_nodes] + node_shape "
        "(utils_tf.data_dicts_to_graphs_tuple converts every field with tf.convert_to_tensor, the blocks "
        "tf.gather and tf.concat the nodes) and snt.Linear is tf.matmul on a dense input: its public API "
        "takes no tf.SparseTensor node features")
    tf_env = _TF_ENV
    optimizer_api = "sonnet"

    # ---- parent side ----------------------------------------------------------
    @classmethod
    def for_task(cls, task: str):
        return {"node": GraphNetsAdapter, "graph": GraphNetsGraphAdapter}.get(task)

    missing_tasks = {"sampled": "the library has no neighbour sampler"}

    # ---- child side: the library ------------------------------------------------
    def available(self):
        try:
            _import()
        except Exception as exc:  # ImportError, or a broken TF / numpy combination
            return Availability(False, reason=f"{type(exc).__name__}: {exc}", install_hint=self.install_hint)
        return Availability(True, _dist_version("graph_nets"))

    def versions(self):
        tf, snt, *_ = _import()
        return {"graph_nets": _dist_version("graph_nets"), "sonnet": snt.__version__,
                "tensorflow": tf.__version__}

    def dropout_call(self, module, x):
        """An snt.Dropout module of this library in training mode."""
        return module(x, is_training=True)

    # ---- child side: the node task -------------------------------------------------
    def prepare(self, graph, spec, device, seed, weights):
        tf, snt, blocks, modules, utils_tf = _import()
        if spec.name not in ("gcn", "gat", "sage"):
            raise ValueError(f"graphnets adapter has no node-task model '{spec.name}'")
        if device != "cpu":
            raise ValueError(f"graphnets adapter runs on cpu only, not '{device}'")
        # global seeds; every dropout op also has an op seed. Op determinism is not turned on here (the
        # graph task turns it on): it changes float rounding, so the node runs would no longer repeat
        # the numbers they have always given
        self.seed(tf, seed, deterministic=False)
        self.spec = spec
        self._notes = []
        n = graph.num_nodes
        cached = spec.norm_policy == "cached"
        src, dst = graph.edge_index.astype(np.int32)

        data = {"nodes": graph.x.astype(np.float32), "globals": None}
        if spec.name in ("gcn", "gat") and cached:
            loops = np.arange(n, dtype=np.int32)
            src, dst = np.concatenate([src, loops]), np.concatenate([dst, loops])
        data.update(senders=src, receivers=dst)
        if spec.name == "gcn" and cached:
            deg = np.bincount(dst, minlength=n).astype(np.float64)
            data["edges"] = (1.0 / np.sqrt(deg[src] * deg[dst])).astype(np.float32)[:, None]
        self.graph = utils_tf.data_dicts_to_graphs_tuple([data])
        self.graph_ = graph

        self.model = _build_model(tf, snt, blocks, modules, spec, weights, n, cached)
        self.params = self.model.params                 # the weight table (canonical name -> variable)
        load_weights(self.params, weights)
        self.variables = self.model.variables_in_order

        self.y = graph.y
        train_idx = tf.constant(np.flatnonzero(graph.train_mask).astype(np.int32))
        train_y = tf.constant(graph.y[graph.train_mask].astype(np.int32))

        self._apply = self.make_optimizer(tf, spec, self.variables)
        model, g = self.model, self.graph
        self._tf = tf
        # the timed step (record=False); set_dropout_masks compiles the verify one (record=True)
        self._node_step = lambda record: self.compile_step(
            lambda: cross_entropy(tf, train_y, tf.gather(model(g, training=True), train_idx)), record)
        self._step = self._node_step(False)
        self._eval = tf.function(lambda: model(g, training=False))
        self._loss = None

        self._notes += _model_notes(spec)

    def train_step(self):
        self._loss = self._step()

    def logits(self):
        return self._eval().numpy()

    def infer(self):
        self._eval()

    # ---- verify-only hooks (see gnnbench.protocol) ---------------------------------------------
    def num_parameters(self) -> int:
        """Trainable scalars of the Sonnet module (every trainable tf.Variable it owns)."""
        return int(sum(int(np.prod(v.shape)) for v in self.model.trainable_variables))

    def _mask_shapes(self) -> dict:
        from gnnbench.weights import gat_heads, layer_dims
        g, spec = self.graph_, self.spec
        dims = layer_dims(spec, g.num_features, g.num_classes)
        shapes = {f"input.{k}": (g.num_nodes, din) for k, (din, _) in enumerate(dims)}
        if spec.name == "gat":
            e = g.edge_index.shape[1] + g.num_nodes
            shapes.update({f"attn.{k}": (e, gat_heads(spec, k)) for k in range(len(dims))})
        return shapes

    def _attention_order(self):
        """(senders, receivers) of the attention edges, in the order the GAT layers see them: the
        GraphsTuple's own (self-loops appended in prepare), or, under 'recompute', the edges with the
        self-loops the forward appends."""
        s, r = self.graph.senders.numpy(), self.graph.receivers.numpy()
        if self.spec.norm_policy != "cached":
            loops = np.arange(self.graph_.num_nodes)
            s, r = np.concatenate([s, loops]), np.concatenate([r, loops])
        return s, r

    def set_dropout_masks(self, masks) -> None:
        """Swap each snt.Dropout named in ``masks`` for ``x * mask / (1 - rate)`` (its own rate) in
        training mode, or restore the library's modules (None); then compile the verify step, which
        also records the gradients. The timed step is untouched."""
        net = self.model
        net.dropouts = list(net.own_dropouts)
        for layer in net.layers:
            if hasattr(layer, "own_attn_dropout"):
                layer.attn_dropout = layer.own_attn_dropout
        if masks is not None:
            masks = check_masks(masks, self._mask_shapes())
            perm = None
            for site, m in masks.items():
                kind, k = site.split(".")
                k = int(k)
                if kind == "input":
                    net.dropouts[k] = _MaskedDropout(m, net.own_dropouts[k]._rate)
                else:
                    if perm is None:
                        n = self.graph_.num_nodes
                        cs, cd = canonical_attention_edges(self.graph_.edge_index, n)
                        perm = edge_permutation(cs, cd, *self._attention_order(), n)
                    layer = net.layers[k]
                    layer.attn_dropout = _MaskedDropout(m[perm], layer.own_attn_dropout._rate)
        self._step = self._node_step(True)

    def dropout_sample(self, site: str, shape: tuple):
        """The snt.Dropout module the step calls at ``site`` (tf.nn.dropout, its rate and op seed) in
        training mode, applied to ones(shape)."""
        tf = self._tf
        kind, _, k = site.partition(".")
        if kind == "input" and k.isdigit() and int(k) < len(self.model.own_dropouts):
            module = self.model.own_dropouts[int(k)]
        elif (kind == "attn" and k.isdigit() and int(k) < len(self.model.layers)
              and hasattr(self.model.layers[int(k)], "own_attn_dropout")):
            module = self.model.layers[int(k)].own_attn_dropout
        else:
            raise ValueError(f"unknown dropout site '{site}'")
        return self.dropout_call(module, tf.ones(tuple(shape), tf.float32)).numpy()


class GraphNetsGraphAdapter(TFGraphTask, GraphNetsAdapter):
    """Graph Nets' graph task (GIN): one data dict per graph, batched by utils_tf.data_dicts_to_graphs_tuple."""

    def gin_notes(self, spec) -> list[str]:
        return [optimizer_note(self.optimizer_api, spec), _DENSE_NOTE + "; head dropout: snt.Dropout",
                "gin: EdgeBlock (sender nodes onto edges) + ReceivedEdgesToNodesAggregator(unsorted_segment_sum) "
                "for the neighbour sum, snt.Linear MLP, NodesToGlobalsAggregator readout; batches made by "
                "utils_tf.data_dicts_to_graphs_tuple from one data dict per graph",
                "gin: batch norm is a small snt.Module with torch's semantics (running mean 0 / variance 1 at "
                "start, momentum 0.1, unbiased running variance): snt.BatchNorm's moving averages are "
                "zero-debiased EMAs created empty, so an eval pass before the first training step would divide "
                "by sqrt(eps) instead of sqrt(1 + eps)"]

    def build_gin(self, tf, gs, spec, weights, seed):
        self.dicts = []
        for g in range(gs.num_graphs):
            n0 = int(gs.node_ptr[g])
            e = (gs.edge_index[:, gs.edge_ptr[g]:gs.edge_ptr[g + 1]] - n0).astype(np.int32)
            self.dicts.append({"nodes": gs.x[n0:gs.node_ptr[g + 1]], "senders": e[0], "receivers": e[1],
                               "globals": None, "edges": None})
        self.num_features = gs.num_features
        return _graphnets_gin(spec, gs.num_classes, weights, seed)
    def collate(self, ids):
        tf, _, _, _, utils_tf = _import()
        ids = np.asarray(ids)
        g = utils_tf.data_dicts_to_graphs_tuple([self.dicts[k] for k in ids])
        # zero-width edge/global features instead of None, as Graph Nets asks for a tf.function signature
        g = utils_tf.set_zero_global_features(utils_tf.set_zero_edge_features(g, 0), 0)
        return g, tf.constant(self.gs.y[ids], tf.int64)

    def batch_y(self, batch):
        return batch[1]

    def batch_signature(self, tf):
        from graph_nets import utils_tf
        sample = self.collate(np.arange(min(2, len(self.dicts))))[0]
        return (utils_tf.specs_from_graphs_tuple(sample, dynamic_num_graphs=True, dynamic_num_nodes=True,
                                                 dynamic_num_edges=True), tf.TensorSpec([None], tf.int64))

    def batch_arrays(self, batch) -> dict:
        g = batch[0]
        n_node = g.n_node.numpy()
        return {"x": g.nodes.numpy(), "edge_index": np.stack([g.senders.numpy(), g.receivers.numpy()]).astype(np.int64),
                "batch": np.repeat(np.arange(n_node.size), n_node)}


_DENSE_NOTE = ("features=dense: node features are the GraphsTuple's dense NODES tensor (Graph Nets has no "
               "sparse node-feature path)")


def _model_notes(spec) -> list[str]:
    cached = spec.norm_policy == "cached"
    notes = [optimizer_note("sonnet", spec), _DENSE_NOTE + "; input dropout on every element",
             "dropout: snt.Dropout (tf.nn.dropout) with tf.random.set_seed(seed) and a fixed op-level "
             "seed per dropout layer"]
    if spec.name == "gcn":
        notes.append("gcn: normalisation 1/sqrt(d_i d_j) with self-loops as edge features "
                     + ("computed once in prepare (numpy)" if cached else
                        "recomputed every forward with a ReceivedEdgesToNodesAggregator over ones")
                     + "; X W before propagation; EdgeBlock(edges, sender nodes) + NodeBlock(sum, snt.Bias)")
    elif spec.name == "gat":
        notes.append("gat: SelfAttention's broadcast/normalise/aggregate pattern with GAT's LeakyReLU "
                     "additive scores; softmax is graph_nets.modules._unsorted_segment_softmax (private "
                     "helper; gradient also flows through its segment max); modules.SelfAttention itself "
                     "has dot-product logits, no LeakyReLU and no attention dropout"
                     + ("" if cached else "; self-loops concatenated every forward"))
    elif spec.name == "sage":
        notes.append("sage: EdgeBlock(sender nodes) + NodeBlock(unsorted_segment_mean of received "
                     "edges, own features) -> one snt.Linear with w = [W_neigh; W_root]; the mean "
                     "is taken over the layer's input features (before the linear); "
                     f"SAGE 1/deg (norm_policy={spec.norm_policy}): unsorted_segment_mean recounts the "
                     "in-degrees every forward under both norm policies (no cached-degree path in the "
                     "library's reducer)")
    return notes


class _MaskedDropout:
    """Stands in for an snt.Dropout with an injected keep-mask (verify only): ``x * mask / (1 - rate)``
    when training, ``x`` otherwise -- called exactly where the snt.Dropout was, with the same arguments."""

    def __init__(self, mask, rate):
        import tensorflow as tf
        self.rate = float(rate)
        self.mask = tf.constant(np.asarray(mask, np.float32))

    def __call__(self, x, is_training):
        return x * self.mask / (1.0 - self.rate) if is_training else x


def _build_model(tf, snt, blocks, modules, spec, weights, num_nodes, cached):
    """The Sonnet module for ``spec``, its variables zero; ``.params`` is its weight table, which
    ``load_weights`` fills with the canonical weights (only their shapes are read here)."""
    from gnnbench.weights import gat_heads, num_layers

    nlayers = num_layers(weights)
    if nlayers != spec.layers:
        raise ValueError(f"weights have {nlayers} layers, spec {spec.layers}")

    zeros = snt.initializers.Zeros()

    def built(module, in_dim):
        module(tf.zeros([1, in_dim], tf.float32))   # creates the variables (zeros until loaded)
        return module

    class ScaleSenders(snt.Module):
        """Edge model: the edge's normalisation weight times the sender's features."""

        def __call__(self, collected):                 # [E, 1 + F] = [edges, sender nodes]
            return collected[:, :1] * collected[:, 1:]

    class GCNLayer(snt.Module):
        def __init__(self, din, dout, name=None):
            super().__init__(name=name)
            self.linear = built(snt.Linear(dout, with_bias=False, w_init=zeros), din)
            bias = built(snt.Bias(b_init=zeros), dout)
            self.bias = bias
            self.edge_block = blocks.EdgeBlock(
                edge_model_fn=ScaleSenders, use_edges=True, use_receiver_nodes=False,
                use_sender_nodes=True, use_globals=False)
            self.node_block = blocks.NodeBlock(
                node_model_fn=lambda: bias, use_received_edges=True, use_sent_edges=False,
                use_nodes=False, use_globals=False, received_edges_reducer=tf.math.unsorted_segment_sum)

        def __call__(self, graph):
            graph = graph.replace(nodes=self.linear(graph.nodes))
            return self.node_block(self.edge_block(graph)).nodes

    class GATLayer(snt.Module):
        def __init__(self, din, hf, dbias, heads, concat, layer, name=None):
            super().__init__(name=name)
            self.heads, self.out, self.concat, self.layer = heads, hf // heads, concat, layer
            self.linear = built(snt.Linear(hf, with_bias=False, w_init=zeros), din)
            self.att_src = tf.Variable(tf.zeros([heads, hf // heads]), name="att_src")
            self.att_dst = tf.Variable(tf.zeros([heads, hf // heads]), name="att_dst")
            self.bias = built(snt.Bias(b_init=zeros), dbias)
            self.aggregator = blocks.ReceivedEdgesToNodesAggregator(reducer=tf.math.unsorted_segment_sum)
            self.attn_dropout = snt.Dropout(spec.attn_dropout, seed=_ATTN_DROPOUT_SEED + layer)
            self.own_attn_dropout = self.attn_dropout   # restored after injected masks (verify)

        def __call__(self, graph, training):
            n = graph.nodes.shape[0]
            values = tf.reshape(self.linear(graph.nodes), [n, self.heads, self.out])   # [N, H, F]
            score_src = tf.reduce_sum(values * self.att_src, axis=-1)                 # [N, H]
            score_dst = tf.reduce_sum(values * self.att_dst, axis=-1)
            logits = (blocks.broadcast_sender_nodes_to_edges(graph.replace(nodes=score_src))
                      + blocks.broadcast_receiver_nodes_to_edges(graph.replace(nodes=score_dst)))
            logits = tf.nn.leaky_relu(logits, alpha=spec.negative_slope)              # [E, H]
            attention = modules._received_edges_normalizer(                             # noqa: SLF001
                graph.replace(edges=logits), normalizer=modules._unsorted_segment_softmax)
            if spec.attn_dropout > 0:
                attention = self.attn_dropout(attention, is_training=training)
            sender_values = blocks.broadcast_sender_nodes_to_edges(graph.replace(nodes=values))
            attended = sender_values * attention[..., None]                           # [E, H, F]
            out = self.aggregator(graph.replace(nodes=values, edges=attended))         # [N, H, F]
            out = tf.reshape(out, [n, -1]) if self.concat else tf.reduce_mean(out, axis=1)
            return self.bias(out)

    class SAGELayer(snt.Module):
        def __init__(self, din, dout, name=None):
            super().__init__(name=name)
            self.din = din
            # NodeBlock concatenates [aggregated received edges, own nodes]: w = [W_neigh; W_root]
            linear = built(snt.Linear(dout, with_bias=True, w_init=zeros, b_init=zeros), 2 * din)
            self.linear = linear
            self.edge_block = blocks.EdgeBlock(
                edge_model_fn=lambda: tf.identity, use_edges=False, use_receiver_nodes=False,
                use_sender_nodes=True, use_globals=False)
            self.node_block = blocks.NodeBlock(
                node_model_fn=lambda: linear, use_received_edges=True, use_sent_edges=False,
                use_nodes=True, use_globals=False, received_edges_reducer=tf.math.unsorted_segment_mean)

        def __call__(self, graph):
            return self.node_block(self.edge_block(graph)).nodes

    class Net(snt.Module):
        def __init__(self):
            super().__init__(name=f"graphnets_{spec.name}")
            self.layers = []
            self.params = []          # the weight table: canonical name -> variable (rows)
            for k in range(nlayers):
                p = f"layers.{k}."
                last = k == nlayers - 1
                if spec.name == "gcn":
                    layer = GCNLayer(*weights[p + "weight"].shape, name=f"gcn_{k}")
                    self.params += [Slot(p + "weight", layer.linear.w), Slot(p + "bias", layer.bias.b)]
                elif spec.name == "gat":
                    layer = GATLayer(*weights[p + "weight"].shape, weights[p + "bias"].shape[0], gat_heads(spec, k),
                                     not last, k, name=f"gat_{k}")
                    self.params += [Slot(p + "weight", layer.linear.w), Slot(p + "att_src", layer.att_src),
                                    Slot(p + "att_dst", layer.att_dst), Slot(p + "bias", layer.bias.b)]
                else:
                    din, dout = weights[p + "weight_neigh"].shape
                    layer = SAGELayer(din, dout, name=f"sage_{k}")
                    self.params += [Slot(p + "weight_neigh", layer.linear.w, rows=slice(0, din)),
                                    Slot(p + "weight_root", layer.linear.w, rows=slice(din, 2 * din)),
                                    Slot(p + "bias", layer.linear.b)]
                self.layers.append(layer)
            self.dropouts = [snt.Dropout(spec.dropout, seed=_FEATURE_DROPOUT_SEED + k) for k in range(nlayers)]
            self.own_dropouts = tuple(self.dropouts)    # restored after injected masks (verify)
            self.variables_in_order = list(self.trainable_variables)

        def _graph_for_forward(self, graph):
            """Under norm_policy='recompute' the library work that 'cached' did in prepare."""
            if cached or spec.name == "sage":
                return graph
            loops = tf.range(num_nodes, dtype=graph.senders.dtype)
            g = graph.replace(senders=tf.concat([graph.senders, loops], 0),
                              receivers=tf.concat([graph.receivers, loops], 0),
                              n_edge=graph.n_edge + num_nodes)
            if spec.name == "gcn":
                ones = tf.ones_like(g.senders, dtype=tf.float32)[:, None]
                deg = blocks.ReceivedEdgesToNodesAggregator(tf.math.unsorted_segment_sum)(g.replace(edges=ones))
                dinv = tf.math.rsqrt(deg)
                norm = (blocks.broadcast_sender_nodes_to_edges(g.replace(nodes=dinv))
                        * blocks.broadcast_receiver_nodes_to_edges(g.replace(nodes=dinv)))
                g = g.replace(edges=norm)
            return g

        def __call__(self, graph, training):
            graph = self._graph_for_forward(graph)
            h = graph.nodes
            for k, layer in enumerate(self.layers):
                if spec.dropout > 0:
                    h = self.dropouts[k](h, is_training=training)
                g = graph.replace(nodes=h)
                h = layer(g, training) if spec.name == "gat" else layer(g)
                if k < len(self.layers) - 1:
                    h = tf.nn.elu(h) if spec.name == "gat" else tf.nn.relu(h)
            return h

    return Net()


def _graphnets_gin(spec, num_classes, weights, seed):
    tf, snt, blocks, _, _ = _import()

    class TorchBatchNorm(snt.Module):
        """BatchNorm1d as torch defines it (see the note above)."""

        def __init__(self, size, name=None):
            super().__init__(name=name)
            self.scale = tf.Variable(tf.zeros([size]), name="scale")      # loaded from the table
            self.offset = tf.Variable(tf.zeros([size]), name="offset")
            self.mean = tf.Variable(tf.zeros_like(self.scale), trainable=False, name="running_mean")
            self.var = tf.Variable(tf.ones_like(self.scale), trainable=False, name="running_var")

        def __call__(self, x, training):
            if training:
                mean, var = tf.nn.moments(x, axes=[0])
                n = tf.cast(tf.shape(x)[0], x.dtype)
                self.mean.assign(0.9 * self.mean + 0.1 * mean)
                self.var.assign(0.9 * self.var + 0.1 * var * n / tf.maximum(n - 1.0, 1.0))
            else:
                mean, var = self.mean, self.var
            return tf.nn.batch_normalization(x, mean, var, self.offset, self.scale, 1e-5)

    table = []          # the weight table: canonical name -> variable, loaded once the model is built

    def linear(w, b=None, name=None):
        """snt.Linear for the canonical weight ``w`` (and bias ``b``): names, shapes from ``weights``."""
        din, dout = weights[w].shape
        lin = snt.Linear(dout, with_bias=b is not None, name=name)
        lin._initialize(tf.zeros([1, din]))       # create w (and b) now; the table loads the canonical ones
        table.append(Slot(w, lin.w))
        if b is not None:
            table.append(Slot(b, lin.b))
        return lin

    class GINLayer(snt.Module):
        def __init__(self, k):
            super().__init__(name=f"gin_{k}")
            p = f"layers.{k}."
            self.p = p
            self.lin1 = linear(p + "weight1", None if spec.batch_norm else p + "bias1", "lin1")
            self.bn = TorchBatchNorm(spec.hidden) if spec.batch_norm else None
            if self.bn is not None:
                table.extend([Slot(p + "bn_weight", self.bn.scale), Slot(p + "bn_bias", self.bn.offset)])
            self.lin2 = linear(p + "weight2", p + "bias2", "lin2")
            self.to_edges = blocks.EdgeBlock(edge_model_fn=lambda: tf.identity, use_edges=False,
                                             use_receiver_nodes=False, use_sender_nodes=True, use_globals=False)
            self.aggregate = blocks.ReceivedEdgesToNodesAggregator(tf.math.unsorted_segment_sum)

        def __call__(self, graph, training):
            z = (1.0 + spec.eps) * graph.nodes + self.aggregate(self.to_edges(graph))
            u = self.lin1(z)
            if self.bn is not None:
                u = self.bn(u, training)
            return tf.nn.relu(self.lin2(tf.nn.relu(u)))

    class GIN(snt.Module):
        def __init__(self):
            super().__init__(name="graphnets_gin")
            self.layers = [GINLayer(k) for k in range(spec.layers)]
            reducer = tf.math.unsorted_segment_sum if spec.readout == "sum" else tf.math.unsorted_segment_mean
            self.readout = blocks.NodesToGlobalsAggregator(reducer)
            self.head1 = linear("head.weight1", "head.bias1", "head1")
            self.drop = snt.Dropout(spec.dropout, seed=_FEATURE_DROPOUT_SEED)
            self.own_drop = self.drop                 # restored after an injected mask (verify)
            self.head2 = linear("head.weight2", "head.bias2", "head2")

        def set_head_mask(self, mask):
            self.drop = self.own_drop if mask is None else _MaskedDropout(mask, self.own_drop._rate)

        def __call__(self, batch, training):
            graph = batch[0]
            for layer in self.layers:
                graph = graph.replace(nodes=layer(graph, training))
            r = tf.nn.relu(self.head1(self.readout(graph)))
            if spec.dropout > 0:
                r = self.drop(r, is_training=training)
            return self.head2(r)

        def trainable_weights(self):
            return list(self.trainable_variables)

    model = GIN()
    load_weights(table, weights)
    model.params = table
    model.train_vars = list(model.trainable_variables)
    return model
