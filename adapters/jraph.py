"""jraph (DeepMind's GNN library for JAX): GCN, GAT, SAGE and GIN built from jraph's blocks,
trained with optax inside one ``jax.jit``-compiled step.

One class per task (``for_task``): ``JraphAdapter``, the registered class, holds the library-level
parts (imports, versions, threads, the jit-compiled step and the verify plumbing both tasks share)
and the full-batch node task (gcn, gat, sage); ``JraphGraphAdapter``, its subclass, runs GIN. jraph
has no neighbour sampler, so no class runs the sampled task (sage-sampled cells are skipped).

How each model maps onto jraph (jraph ships GraphConvolution and GAT layers, no SAGE or GIN):

- the graph is one ``jraph.GraphsTuple``: ``nodes`` the dense features, ``senders`` = edge_index[0],
  ``receivers`` = edge_index[1] (messages flow sender -> receiver, as the reference's j -> i);
- GCN: ``jraph.GraphConvolution(update_node_fn=X W)``, bias after. ``norm_policy='recompute'``:
  the layer's own ``add_self_edges=True, symmetric_normalization=True`` (it counts sender and
  receiver degrees every forward, pre-scales by the sender's D^-1/2, post-scales by the receiver's);
  ``'cached'``: the self-loops are put into the GraphsTuple and D^-1/2 computed once in prepare,
  the layer runs with ``symmetric_normalization=False`` and the cached D^-1/2 is applied at the
  same two places (in ``update_node_fn`` and after the aggregation);
- GAT: ``jraph.GAT(attention_query_fn=X W as [N, heads, F], attention_logit_fn=LeakyReLU(a_src . q_j
  + a_dst . q_i), node_update_fn=identity)`` on the graph with self-loops, heads concatenated or
  averaged, bias after. ``jraph.GAT`` has no attention dropout (its softmax weights go straight
  into ``segment_sum``), so a training step with ``attn_dropout > 0`` runs ``jraph.GAT``'s own body
  written out (``jraph.segment_softmax``, dropout on the weights, ``jraph.segment_sum``) with the
  same two functions; eval mode calls ``jraph.GAT`` itself (verify compares both);
- SAGE: ``jraph.GraphConvolution(update_node_fn=X W_neigh, aggregate_nodes_fn=mean, no self edges,
  no normalisation)`` + X W_root + b; the mean is ``jraph.segment_mean`` under 'recompute' (it
  counts the in-degrees every forward) and ``jraph.segment_sum`` x a cached 1/deg under 'cached'.
  The neighbour mean is taken after W_neigh (GraphConvolution's order: update, then aggregate);
- GIN (graph task): one GraphsTuple per graph, batched by ``jraph.batch_np`` and padded by
  ``jraph.pad_with_graphs`` to one fixed budget (the largest ``batch_size`` graphs' nodes + 1, their
  edges, ``batch_size`` + 1 graphs) so the step compiles once; the neighbour sum is
  ``GraphConvolution(identity, segment_sum, no normalisation)``, the readout ``jraph.segment_sum``
  (or ``segment_mean``) over node -> graph ids, and padding is masked with
  ``jraph.get_node_padding_mask`` / ``get_graph_padding_mask`` (batch-norm statistics and the loss
  see real nodes and graphs only). Batch norm is written with torch's semantics (jraph has none).

Training: parameters are a dict in the canonical layout (``gnnbench.weights``), the optimiser is
``optax.adam`` (or ``optax.sgd``) after ``optax.add_decayed_weights`` (g + wd * w: torch.optim's L2),
the loss ``optax.softmax_cross_entropy_with_integer_labels``. The step is ``jax.jit`` with the
parameters, optimiser state and PRNG key donated; it compiles on its first call (the harness's
first warm-up epoch). The eval forward is compiled ahead of time in ``prepare``
(``jit(...).lower(...).compile()``), so ``infer`` never compiles. ``sync`` is
``jax.block_until_ready`` on the last step's (or forward's) outputs. Dropout is
``jax.random.bernoulli`` keep-masks and ``x / (1 - p)`` (what ``hk.dropout`` and flax's ``Dropout``
do; jraph has no dropout), one key split per step.

Threads: XLA's CPU client sizes its intra-op pool ("XLAEigen") from ``PJRT_NPROC`` (else from the
CPUs the process may run on); ``child_env`` sets it to the harness's thread count before JAX
starts, and ``notes`` records the pool threads counted in /proc/self/task. The often quoted
``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=N`` does not size the
pool (measured with jaxlib 0.10.2: still one thread per allowed core; the flag only makes Eigen
single-threaded, whatever N) and is not set.

jraph 0.0.6.dev0 (2022) on current JAX: every jraph function used here works unchanged;
``jraph.zero_out_padding`` and ``get_fully_connected_graph`` call ``jax.tree_map`` /
``jax.tree_leaves``, removed from JAX, and are not used.

Verify hooks (``gnnbench.protocol``): ``set_dropout_masks`` makes the step take the harness's masks
(``x * mask / (1 - p)`` at every site) and compiles a second step that also returns the gradients;
the timed step is never changed.
"""
from __future__ import annotations

import os

import numpy as np

from gnnbench.protocol import Adapter, Availability

from ._tf_graphtask import canonical_attention_edges, check_masks, edge_permutation   # numpy only

BN_EPS = 1e-5
BN_MOMENTUM = 0.1
SPARSE_WHY = ("jraph's GraphsTuple holds nodes as dense jax arrays and its layers gather them by index "
              "(nodes[senders]); JAX's sparse arrays are jax.experimental.sparse, which jraph neither uses "
              "nor documents")


def _import():
    import jax
    import jax.numpy as jnp
    import jraph
    import optax
    return jax, jnp, jraph, optax


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def thread_env(threads: int) -> dict[str, str]:
    """Environment that bounds XLA's CPU thread pools (read when JAX creates its CPU client)."""
    return {"PJRT_NPROC": str(int(threads)), "JAX_PLATFORMS": "cpu"}


def xla_threads() -> dict[str, int]:
    """Threads of this process (/proc/self/task/*/comm): those of XLA's intra-op pool ("tf_XLAEigen")
    and all of them."""
    counts = {"XLAEigen": 0, "all": 0}
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return {}
    for t in tasks:
        try:
            with open(f"/proc/self/task/{t}/comm") as fh:
                name = fh.read().strip()
        except OSError:
            continue
        counts["all"] += 1
        counts["XLAEigen"] += "XLAEigen" in name
    return counts


def dropout(jax, jnp, key, x, rate: float):
    """Inverted dropout: keep each element with probability 1 - rate, survivors scaled by 1/(1 - rate)."""
    if rate <= 0.0:
        return x
    if rate >= 1.0:
        return jnp.zeros_like(x)
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


def _site(jax, jnp, x, site: str, rate: float, key, masks, training: bool, salt: int):
    """Dropout at one site: the injected keep-mask when verify set one, else the library's own."""
    if not training:
        return x
    if masks is not None:
        return x * masks[site] / (1.0 - rate)
    return dropout(jax, jnp, jax.random.fold_in(key, salt), x, rate)


def _optimizer(optax, spec):
    if spec.optimizer == "adam":
        base = optax.adam(spec.lr, b1=0.9, b2=0.999, eps=1e-8)
    elif spec.optimizer == "sgd":
        base = optax.sgd(spec.lr)
    else:
        raise ValueError(f"unknown optimizer '{spec.optimizer}'")
    return optax.chain(optax.add_decayed_weights(spec.weight_decay), base) if spec.weight_decay else base


def _optimizer_note(spec) -> str:
    what = ("optax.adam (b1 0.9, b2 0.999, eps 1e-8 outside the sqrt, bias-corrected: torch.optim.Adam's update)"
            if spec.optimizer == "adam" else "optax.sgd")
    return (f"optimiser: {what}" + (" after optax.add_decayed_weights (g + wd*w, torch.optim's L2)"
                                    if spec.weight_decay else ""))


# ---- node models -------------------------------------------------------------------------------
def node_forward_fn(spec, num_nodes: int, cached: bool):
    """``forward(params, data, key, masks, training) -> logits`` for gcn / gat / sage."""
    jax, jnp, jraph, _ = _import()
    from gnnbench.weights import gat_heads
    n = num_nodes
    act = jax.nn.elu if spec.name == "gat" else jax.nn.relu

    def with_loops(g):
        loops = jnp.arange(n, dtype=g.senders.dtype)
        return g._replace(senders=jnp.concatenate([g.senders, loops]),
                          receivers=jnp.concatenate([g.receivers, loops]), n_edge=g.n_edge + n)

    def gcn(params, p, g, h, data):
        w, b = params[p + "weight"], params[p + "bias"]
        if cached:
            dinv = data["dinv"]
            conv = jraph.GraphConvolution(update_node_fn=lambda x: (x @ w) * dinv, add_self_edges=False,
                                          symmetric_normalization=False)
            return conv(g._replace(nodes=h)).nodes * dinv + b
        conv = jraph.GraphConvolution(update_node_fn=lambda x: x @ w, add_self_edges=True,
                                      symmetric_normalization=True)
        return conv(g._replace(nodes=h)).nodes + b

    def sage(params, p, g, h, data):
        wn, wr, b = params[p + "weight_neigh"], params[p + "weight_root"], params[p + "bias"]
        if cached:
            inv_deg = data["inv_deg"]
            mean = lambda d, seg, num: jraph.segment_sum(d, seg, num) * inv_deg   # noqa: E731
        else:
            mean = jraph.segment_mean
        conv = jraph.GraphConvolution(update_node_fn=lambda x: x @ wn, aggregate_nodes_fn=mean,
                                      add_self_edges=False, symmetric_normalization=False)
        return conv(g._replace(nodes=h)).nodes + h @ wr + b

    def gat(params, p, i, g, h, key, masks, training, last):
        heads = gat_heads(spec, i)
        w, a_src, a_dst, b = (params[p + k] for k in ("weight", "att_src", "att_dst", "bias"))
        g = g if cached else with_loops(g)

        def query(x):                                       # [N, heads, F]
            return (x @ w).reshape(x.shape[0], heads, -1)

        def logit(sent, received, edges):                   # [E, heads, 1]
            e = jnp.sum(sent * a_src, axis=-1) + jnp.sum(received * a_dst, axis=-1)
            return jax.nn.leaky_relu(e, spec.negative_slope)[..., None]

        if training and (spec.attn_dropout > 0 or masks is not None):
            # jraph.GAT's body with dropout on the softmax weights, which jraph.GAT cannot take
            q = query(h)
            sent = q[g.senders]
            weights = jraph.segment_softmax(logit(sent, q[g.receivers], g.edges), g.receivers, n)
            weights = _site(jax, jnp, weights[..., 0], f"attn.{i}", spec.attn_dropout, key, masks,
                            training, 2 * i + 1)[..., None]
            out = jraph.segment_sum(sent * weights, g.receivers, n)
        else:
            out = jraph.GAT(query, logit, node_update_fn=lambda x: x)(g._replace(nodes=h)).nodes
        return (out.mean(axis=1) if last else out.reshape(n, -1)) + b

    def forward(params, data, key, masks, training):
        g = data["graph"]
        h = g.nodes
        for i in range(spec.layers):
            p = f"layers.{i}."
            last = i == spec.layers - 1
            if spec.dropout > 0 or masks is not None:
                h = _site(jax, jnp, h, f"input.{i}", spec.dropout, key, masks, training, 2 * i)
            if spec.name == "gcn":
                h = gcn(params, p, g, h, data)
            elif spec.name == "sage":
                h = sage(params, p, g, h, data)
            else:
                h = gat(params, p, i, g, h, key, masks, training, last)
            if not last:
                h = act(h)
        return h

    return forward


# ---- GIN (graph task) --------------------------------------------------------------------------
def gin_forward_fn(spec):
    """``forward(params, bn_state, graph, key, masks, training) -> (logits per graph, bn_state)`` on a
    padded GraphsTuple (``jraph.pad_with_graphs``)."""
    jax, jnp, jraph, _ = _import()
    relu = jax.nn.relu
    neighbours = jraph.GraphConvolution(update_node_fn=lambda v: v, aggregate_nodes_fn=jraph.segment_sum,
                                        add_self_edges=False, symmetric_normalization=False)
    readout = jraph.segment_sum if spec.readout == "sum" else jraph.segment_mean

    def forward(params, state, g, key, masks, training):
        n, ng = g.nodes.shape[0], g.n_node.shape[0]
        real = jraph.get_node_padding_mask(g).astype(g.nodes.dtype)[:, None]     # [n, 1]
        graph_of_node = jnp.repeat(jnp.arange(ng), g.n_node, total_repeat_length=n)
        h = g.nodes
        new_state = dict(state)
        for i in range(spec.layers):
            p = f"layers.{i}."
            z = (1.0 + spec.eps) * h + neighbours(g._replace(nodes=h)).nodes
            u = z @ params[p + "weight1"]
            if spec.batch_norm:
                if training:     # statistics of the real nodes (biased variance), torch's running update
                    count = jnp.sum(real)
                    mean = jnp.sum(u * real, axis=0) / count
                    var = jnp.sum(((u - mean) * real) ** 2, axis=0) / count
                    unbiased = var * count / jnp.maximum(count - 1.0, 1.0)
                    for k, v in (("running_mean", mean), ("running_var", unbiased)):
                        new_state[p + k] = (1 - BN_MOMENTUM) * state[p + k] + BN_MOMENTUM * v
                else:
                    mean, var = state[p + "running_mean"], state[p + "running_var"]
                u = (u - mean) * jax.lax.rsqrt(var + BN_EPS) * params[p + "bn_weight"] + params[p + "bn_bias"]
            else:
                u = u + params[p + "bias1"]
            h = relu(relu(u) @ params[p + "weight2"] + params[p + "bias2"])
        r = readout(h, graph_of_node, ng)
        q = relu(r @ params["head.weight1"] + params["head.bias1"])
        if spec.dropout > 0 or masks is not None:
            q = _site(jax, jnp, q, "head", spec.dropout, key, masks, training, 0)
        return q @ params["head.weight2"] + params["head.bias2"], new_state

    return forward


def _budget(sizes: np.ndarray, k: int) -> int:
    """The sum of the ``k`` largest ``sizes``: no batch of ``k`` graphs has more."""
    return int(np.sort(np.asarray(sizes, np.int64))[::-1][:k].sum())


class JraphAdapter(Adapter):
    """The library (imports, versions, threads, the jit-compiled step both tasks share) and its node
    task: full-batch gcn, gat, sage. ``for_task`` hands GIN to ``JraphGraphAdapter``; jraph has no
    neighbour sampler, so there is no class for the sampled task."""

    name = "jraph"
    library = "jraph"
    install_hint = "pip install 'gnnbench[jraph]'"
    models = ("gcn", "gat", "sage", "gin")
    devices = ("cpu",)
    feature_layouts = ("dense",)
    sparse_features_why = SPARSE_WHY
    compile_why = "compile=true is torch.compile; jraph's training step is always jax.jit-compiled (XLA)"

    def __init__(self):
        self._thread_notes: list[str] = []
        self._notes: list[str] = []
        self.spec = None

    # ---- parent side ----------------------------------------------------------
    @classmethod
    def for_task(cls, task):
        return {"node": JraphAdapter, "graph": JraphGraphAdapter}.get(task)

    @classmethod
    def child_env(cls, threads: int) -> dict[str, str]:
        return thread_env(threads)

    # ---- child side: the library ------------------------------------------------
    def available(self):
        try:
            _import()
        except Exception as exc:  # ImportError, or a jaxlib that does not load
            return Availability(False, reason=f"{type(exc).__name__}: {exc}", install_hint=self.install_hint)
        return Availability(True, _dist_version("jraph"))

    def versions(self):
        jax, _, jraph, optax = _import()
        import jaxlib
        return {"jraph": getattr(jraph, "__version__", _dist_version("jraph")), "jax": jax.__version__,
                "jaxlib": jaxlib.__version__, "optax": optax.__version__}

    def notes(self):
        return self._thread_notes + self._notes

    def unsupported(self, model: str) -> str | None:
        if model == "sage-sampled":
            return f"{self.name}: the library has no neighbour sampler (not supported)"
        return super().unsupported(model)

    def set_threads(self, n: int) -> None:
        """Set PJRT_NPROC before JAX creates its CPU client (child_env has already done it in a harness
        child), start the client, and count the threads of its pools."""
        from jax._src import xla_bridge
        env = thread_env(n)
        started = xla_bridge.backends_are_initialized()
        if started and os.environ.get("PJRT_NPROC") != env["PJRT_NPROC"]:
            self._thread_notes = [f"thread settings not applied: JAX's CPU client was already created "
                                  f"(PJRT_NPROC={os.environ.get('PJRT_NPROC')})"]
            return
        os.environ.update(env)
        jax = _import()[0]
        jax.devices()
        counts = xla_threads()
        self._thread_notes = [f"threads: PJRT_NPROC={n} sizes XLA's CPU pools (XLA_FLAGS "
                              "--xla_cpu_multi_thread_eigen / intra_op_parallelism_threads do not: measured, the "
                              "pool keeps one thread per allowed core); counted in /proc/self/task after the CPU "
                              f"client started: {counts.get('XLAEigen', 0)} XLAEigen (intra-op pool) threads"]

    def _check(self, spec, device) -> None:
        if device != "cpu":
            raise ValueError(f"jraph adapter runs on cpu only, not '{device}'")
        if spec.name not in self.models:
            raise ValueError(f"jraph adapter has no model '{spec.name}'")

    # ---- the training step, shared by both tasks ----------------------------------
    def _setup(self, jax, optax, spec, seed, weights, state, loss_fn):
        # private float32 copies: the step donates (overwrites) the parameter buffers
        self.params = jax.device_put({k: np.array(v, np.float32, copy=True) for k, v in weights.items()})
        self.state = jax.device_put(state)
        self.tx = _optimizer(optax, spec)
        self.opt_state = self.tx.init(self.params)
        self.key = jax.random.PRNGKey(seed)
        self._sample_key = jax.random.PRNGKey(seed + 0x5A5A)
        self._loss_fn = loss_fn
        self._masks = None
        self._grads = None
        self._loss = None
        self._pending = None
        self._step = self._make_step(record=False)

    def _make_step(self, record: bool):
        jax, _, _, optax = _import()
        loss_fn, tx = self._loss_fn, self.tx

        def step(params, state, opt_state, key, data, masks):
            key, sub = jax.random.split(key)
            (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state, data, sub, masks)
            updates, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            out = (params, state, opt_state, key, loss)
            return out + (grads,) if record else out

        return jax.jit(step, donate_argnums=(0, 1, 2, 3))

    def _run_step(self, data):
        out = self._step(self.params, self.state, self.opt_state, self.key, data, self._masks)
        self.params, self.state, self.opt_state, self.key, self._loss = out[:5]
        if len(out) > 5:
            self._grads = out[5]
        self._pending = (self.params, self.state, self._loss)

    def last_loss(self) -> float:
        return float(self._loss)

    def sync(self):
        if self._pending is not None:
            import jax
            jax.block_until_ready(self._pending)

    def parameters(self):
        return {k: np.array(v) for k, v in self.params.items()}

    # ---- node task ---------------------------------------------------------------
    def prepare(self, graph, spec, device, seed, weights):
        self._check(spec, device)
        jax, jnp, jraph, optax = _import()
        self.spec, self.graph_ = spec, graph
        n = graph.num_nodes
        cached = spec.norm_policy == "cached"
        src, dst = graph.edge_index.astype(np.int32)
        if spec.name in ("gcn", "gat") and cached:
            loops = np.arange(n, dtype=np.int32)
            src, dst = np.concatenate([src, loops]), np.concatenate([dst, loops])
        g = jraph.GraphsTuple(nodes=np.asarray(graph.x, np.float32), edges=None, senders=src, receivers=dst,
                              globals=None, n_node=np.array([n], np.int32), n_edge=np.array([src.size], np.int32))
        data = {"graph": g, "train_idx": np.flatnonzero(graph.train_mask).astype(np.int32),
                "train_y": np.asarray(graph.y[graph.train_mask], np.int32)}
        if cached and spec.name == "gcn":
            deg = np.bincount(dst, minlength=n).astype(np.float64)
            data["dinv"] = (1.0 / np.sqrt(deg)).astype(np.float32)[:, None]
        if cached and spec.name == "sage":
            deg = np.bincount(dst, minlength=n).astype(np.float64)
            data["inv_deg"] = np.where(deg > 0, 1.0 / np.maximum(deg, 1.0), 0.0).astype(np.float32)[:, None]
        self.data = jax.device_put(data)
        forward = node_forward_fn(spec, n, cached)
        self._forward = forward

        def loss_fn(params, state, data, key, masks):
            logits = forward(params, data, key, masks, True)
            ce = optax.softmax_cross_entropy_with_integer_labels(logits[data["train_idx"]], data["train_y"])
            return jnp.mean(ce), state

        def eval_fn(params, state, data):
            return forward(params, data, None, None, False)

        self._setup(jax, optax, spec, seed, weights, {}, loss_fn)
        self._eval = jax.jit(eval_fn).lower(self.params, self.state, self.data).compile()
        self._notes = self._model_notes(spec)

    def train_step(self):
        self._run_step(self.data)

    def logits(self):
        return np.asarray(self._eval(self.params, self.state, self.data))

    def infer(self):
        self._pending = self._eval(self.params, self.state, self.data)

    # ---- verify-only hooks (see gnnbench.protocol); the task classes check the masks and sites ----------
    def num_parameters(self) -> int:
        """Trainable scalars: every leaf of the parameter pytree that jax.grad and optax update."""
        import jax
        return int(sum(int(np.prod(v.shape)) for v in jax.tree_util.tree_leaves(self.params)))

    def gradients(self) -> dict:
        """Cross-entropy gradients of the last (verify) step: taken before optax adds weight decay."""
        if self._grads is None:
            raise RuntimeError("gradients(): call set_dropout_masks(...) (masks or None) and then run a training "
                               "step: only the verify step returns gradients")
        return {k: np.array(v) for k, v in self._grads.items()}

    def _use_masks(self, masks) -> None:
        """The step takes ``masks`` (checked, in the step's own layout) from the next call on, or the
        library's own dropout again (None), and is recompiled to return the gradients too."""
        import jax
        self._masks = None if masks is None else jax.device_put(masks)
        self._grads = None
        self._step = self._make_step(record=True)

    def _own_dropout(self, rate: float, shape) -> np.ndarray:
        """``dropout`` (bernoulli keep-mask, / (1 - p)) at ``rate``, on ones(shape), with its own key."""
        jax, jnp, _, _ = _import()
        self._sample_key, key = jax.random.split(self._sample_key)
        return np.asarray(dropout(jax, jnp, key, jnp.ones(tuple(int(s) for s in shape), jnp.float32), rate))

    def _mask_shapes(self) -> dict:
        from gnnbench.weights import gat_heads, layer_dims
        g, spec = self.graph_, self.spec
        dims = layer_dims(spec, g.num_features, g.num_classes)
        shapes = {f"input.{k}": (g.num_nodes, din) for k, (din, _) in enumerate(dims)}
        if spec.name == "gat":
            shapes.update({f"attn.{k}": (g.edge_index.shape[1] + g.num_nodes, gat_heads(spec, k))
                           for k in range(len(dims))})
        return shapes

    def set_dropout_masks(self, masks) -> None:
        """Dropout sites take ``masks`` (x * mask / (1 - p)) from the next step on, or the library's own
        dropout again (None); the step is recompiled to return the cross-entropy gradients too."""
        if masks is not None:
            masks = check_masks(masks, self._mask_shapes())
            if self.spec.name == "gat":
                g, n = self.graph_, self.graph_.num_nodes
                src, dst = np.asarray(self.data["graph"].senders), np.asarray(self.data["graph"].receivers)
                if self.spec.norm_policy != "cached":      # the forward appends one self-loop per node
                    src, dst = np.concatenate([src, np.arange(n)]), np.concatenate([dst, np.arange(n)])
                perm = edge_permutation(*canonical_attention_edges(g.edge_index, n), src, dst, n)
                masks = {k: (m[perm] if k.startswith("attn.") else m) for k, m in masks.items()}
        self._use_masks(masks)

    def dropout_sample(self, site: str, shape: tuple):
        """The dropout the step applies at ``site`` (``dropout``: bernoulli keep-mask, / (1 - p), its rate)
        in training mode, on ones(shape)."""
        kind, _, k = site.partition(".")
        spec = self.spec
        if kind == "input" and k.isdigit() and int(k) < spec.layers:
            rate = spec.dropout
        elif kind == "attn" and spec.name == "gat" and k.isdigit() and int(k) < spec.layers:
            rate = spec.attn_dropout
        else:
            raise ValueError(f"unknown dropout site '{site}'")
        return self._own_dropout(rate, shape)

    # ---- notes ------------------------------------------------------------------------------------
    @staticmethod
    def _model_notes(spec) -> list[str]:
        cached = spec.norm_policy == "cached"
        notes = [_optimizer_note(spec), _DENSE_NOTE + "; input dropout on every element", _DROPOUT_NOTE, _JIT_NOTE]
        if spec.name == "gcn":
            notes.append("gcn: jraph.GraphConvolution(update_node_fn=X W) + bias; " + (
                "norm_policy=cached: self-loops in the GraphsTuple and D^-1/2 computed once in prepare (numpy), "
                "the layer run with symmetric_normalization=False and D^-1/2 applied before and after its "
                "segment_sum (jraph's own two scalings, without recounting the degrees)" if cached else
                "norm_policy=recompute: the layer's add_self_edges=True, symmetric_normalization=True (degrees "
                "counted with segment_sum every forward)"))
        elif spec.name == "gat":
            notes.append("gat: jraph.GAT(query = X W as [N, heads, F], logit = LeakyReLU(a_src.q_j + a_dst.q_i), "
                         "identity node update) in eval; jraph.GAT has no attention dropout, so training with "
                         "attn_dropout > 0 runs its body written out (jraph.segment_softmax, dropout on the weights, "
                         "jraph.segment_sum); the attention dot products are per edge (jraph.GAT's logit function "
                         "sees the gathered sender/receiver queries)"
                         + ("; self-loops put into the GraphsTuple once" if cached
                            else "; self-loops concatenated every forward"))
        elif spec.name == "sage":
            notes.append("sage: jraph.GraphConvolution(update_node_fn=X W_neigh, mean aggregation, no self edges, no "
                         "normalisation) + X W_root + b (neighbour mean after W_neigh: GraphConvolution transforms, "
                         "then aggregates); " + (
                             "norm_policy=cached: mean = jraph.segment_sum x 1/deg computed once in prepare" if cached
                             else "norm_policy=recompute: mean = jraph.segment_mean (counts the in-degrees every "
                                  "forward, summing a ones array as wide as the messages)"))
        return notes


_DENSE_NOTE = ("features=dense: GraphsTuple.nodes is one dense float32 jax array (jraph has no sparse "
               "node-feature path)")
_DROPOUT_NOTE = ("dropout: jax.random.bernoulli keep-mask, x / (1 - p) (as hk.dropout and flax's Dropout; jraph "
                 "has none), a fresh key per step split from PRNGKey(seed), one fold_in per dropout site")
_JIT_NOTE = ("jit: the training step is one jax.jit (parameters, optimiser state and key donated), compiled on "
             "its first call (the first warm-up epoch); the eval forward is compiled ahead of time in prepare "
             "(jit(...).lower(...).compile()), so infer never compiles")


class JraphGraphAdapter(JraphAdapter):
    """GIN graph classification in mini-batches: per-graph GraphsTuples, ``jraph.batch_np`` and
    ``jraph.pad_with_graphs`` to one budget per training batch (see the module docstring)."""

    models = ("gin",)

    def prepare(self, gs, spec, device, seed, weights):
        self._check(spec, device)
        jax, jnp, jraph, optax = _import()
        self.spec, self.gs = spec, gs
        self._graphs = []
        for k in range(gs.num_graphs):
            n0, n1 = int(gs.node_ptr[k]), int(gs.node_ptr[k + 1])
            e = (gs.edge_index[:, gs.edge_ptr[k]:gs.edge_ptr[k + 1]] - n0).astype(np.int32)
            self._graphs.append(jraph.GraphsTuple(
                nodes=np.asarray(gs.x[n0:n1], np.float32), edges=None, senders=e[0], receivers=e[1], globals=None,
                n_node=np.array([n1 - n0], np.int32), n_edge=np.array([e.shape[1]], np.int32)))
        bs = min(int(spec.batch_size), gs.num_graphs)
        self._train_budget = (_budget(np.diff(gs.node_ptr), bs) + 1, _budget(np.diff(gs.edge_ptr), bs), bs + 1)
        forward = gin_forward_fn(spec)

        def loss_fn(params, state, batch, key, masks):
            g, y = batch
            logits, state = forward(params, state, g, key, masks, True)
            real = jraph.get_graph_padding_mask(g)
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
            return jnp.sum(jnp.where(real, ce, 0.0)) / jnp.sum(real), state

        def eval_fn(params, state, g):
            return forward(params, state, g, None, None, False)[0]

        state = {}
        if spec.batch_norm:
            for i in range(spec.layers):
                state[f"layers.{i}.running_mean"] = np.zeros(spec.hidden, np.float32)
                state[f"layers.{i}.running_var"] = np.ones(spec.hidden, np.float32)
        self._setup(jax, optax, spec, seed, weights, state, loss_fn)
        self._all_graph = self._pack(np.arange(gs.num_graphs))[0][0]     # evaluation only, not timed
        self._test_graph = self._pack(gs.test_idx)[0][0]                 # what infer() runs on
        ev = jax.jit(eval_fn)
        self._eval_all = ev.lower(self.params, self.state, self._all_graph).compile()
        self._eval_test = ev.lower(self.params, self.state, self._test_graph).compile()
        nodes, edges, graphs = self._train_budget
        self._notes = [_optimizer_note(spec), _DENSE_NOTE,
                       "gin: per-graph GraphsTuples batched by jraph.batch_np, padded by jraph.pad_with_graphs to one "
                       f"budget ({nodes} nodes, {edges} edges, {graphs} graphs: the largest batch_size graphs + one "
                       "padding graph) so the step compiles once; padded nodes and edges are computed and masked "
                       "(jraph.get_node_padding_mask / get_graph_padding_mask)",
                       "gin: neighbour sum jraph.GraphConvolution(identity, segment_sum, no normalisation), readout "
                       f"jraph.segment_{spec.readout}, MLP and classifier as plain jnp matmuls; batch norm written "
                       "with torch's semantics (statistics over the real nodes, biased variance; running mean 0 / "
                       "variance 1 at start, momentum 0.1, unbiased running variance)",
                       _DROPOUT_NOTE, _JIT_NOTE]

    def _pack(self, ids, budget=None):
        """``jraph.batch_np`` of graphs ``ids``, padded by ``jraph.pad_with_graphs``; labels padded with 0."""
        jraph = _import()[2]
        ids = np.asarray(ids, np.int64)
        graphs = [self._graphs[k] for k in ids]
        if budget is None:    # an evaluation batch: its own size + one padding graph (node)
            budget = (sum(int(g.n_node[0]) for g in graphs) + 1, sum(int(g.n_edge[0]) for g in graphs), ids.size + 1)
        g = jraph.pad_with_graphs(jraph.batch_np(graphs), *budget)
        y = np.zeros(budget[2], np.int32)
        y[:ids.size] = self.gs.y[ids]
        return (g, y), ids.size

    def collate(self, ids):
        return self._pack(ids, self._train_budget)

    def train_batch(self, batch) -> None:
        self._run_step(batch[0])

    def batch_arrays(self, batch) -> dict:
        (g, _), k = batch
        nn, ne = int(np.sum(g.n_node[:k])), int(np.sum(g.n_edge[:k]))
        return {"x": np.asarray(g.nodes[:nn]),
                "edge_index": np.stack([g.senders[:ne], g.receivers[:ne]]).astype(np.int64),
                "batch": np.repeat(np.arange(k), g.n_node[:k])}

    def logits(self):
        return np.asarray(self._eval_all(self.params, self.state, self._all_graph))[:self.gs.num_graphs]

    def infer(self):
        self._pending = self._eval_test(self.params, self.state, self._test_graph)

    # ---- verify-only hooks: GIN's one dropout site, 'head' (before the classifier's last matmul) ----
    def set_dropout_masks(self, masks) -> None:
        if masks is not None:
            masks = dict(masks)
            head = masks.pop("head", None)
            if masks or head is None:
                got = sorted(masks) + ([] if head is None else ["head"])
                raise ValueError(f"GIN has one dropout site, 'head'; got {got}")
            head = np.asarray(head, np.float32)
            if head.ndim != 2 or head.shape[1] != self.spec.hidden or head.shape[0] >= self._train_budget[2]:
                raise ValueError(f"dropout mask 'head': shape {head.shape} is not [G, {self.spec.hidden}]")
            masks = {"head": np.ones((self._train_budget[2], self.spec.hidden), np.float32)}   # padding: kept
            masks["head"][:head.shape[0]] = head
        self._use_masks(masks)

    def dropout_sample(self, site: str, shape: tuple):
        if site != "head":
            raise ValueError(f"unknown dropout site '{site}' (GIN has only 'head')")
        return self._own_dropout(self.spec.dropout, shape)
