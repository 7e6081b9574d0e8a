"""`gnnbench verify`: prove every adapter computes the reference model, in the configuration
that is timed (dropout and attention dropout as the spec says).

For one cell (library, model, dataset, device), in the child process, against the float64
NumPy reference (``gnnbench.reference``):

1. eval-mode logits after loading the canonical weights;
2. the library's own trainable-parameter count (``num_parameters``) equals the canonical count;
3. the harness draws seeded dropout masks for every site (``dropout_sites`` / ``draw_masks``)
   and hands them to the adapter (``set_dropout_masks``); one training step with plain **SGD**:
   the loss, the **gradients** (``gradients``, per tensor relative to its largest reference
   entry) and the parameters after the step;
4. a fresh ``prepare`` with **Adam**, the same masks, one step, the parameters (an extra check:
   Adam's first step is about lr * sign(g), blind to a gradient's scale);
5. the library's own dropout op at every site with p > 0 (``dropout_sample``): the share of
   zeros within DROPOUT_SIGMAS binomial standard deviations of p, survivors scaled by 1/(1-p).

``sage-sampled``: only the full-graph eval logits (each library samples with its own generator).
GIN (graph task): logits of all graphs in one batch, then steps 2-5 on the first batch of
epoch 0, which must hold exactly the graphs the harness chose. An adapter without a hook fails
with a message naming the hook. ``result["error"]`` names every quantity that differs.
"""
from __future__ import annotations

import dataclasses
import math
import zlib

import numpy as np

from .protocol import GraphTask, NodeTask, SampledTask

# float32 libraries against a float64 reference
LOGITS_ATOL = 1e-4          # eval logits, |diff| (GIN: x the largest reference logit)
LOSS_RTOL = 1e-5            # training loss with the injected masks, relative
PARAMS_ATOL = 1e-4          # parameters after one SGD / Adam step, |diff|
# Gradients, per tensor: max |g - g_ref| / max(max |g_ref|, GRAD_FLOOR x the largest |g_ref| of any
# tensor) <= GRAD_RTOL (node models) or GRAPH_GRAD_RTOL (GIN). Measured with the hooks of PyG (Cora,
# CiteSeer, PubMed), DGL, Spektral, Graph Nets (Cora) and native (Cora, CiteSeer GCN), masks injected,
# seed 0: node models at most 4.0e-05
# (Graph Nets GCN on Cora; PyG GAT on CiteSeer 3.6e-05), always the last layer's bias, whose reference
# gradient is a sum of 1/|train| terms that nearly cancel. GIN (one thread, as verify runs it): Spektral and
# Graph Nets at most 1.8e-05 (PROTEINS); PyG, DGL, native 8.9e-05 (MUTAG), 1.5e-03 (PROTEINS), 2.7e-03 (ENZYMES):
# torch's single-thread float32 kernels, not the adapters (the same GIN in plain torch: 1.48e-03 on PROTEINS
# with 1 thread, 3.2e-05 with 2; float64 torch agrees with the reference to 3.5e-14). Batch norm's training
# backward divides rounding by the batch standard deviation. A gradient off by 1 % in a node model, or by a
# factor 0.5 anywhere, fails.
GRAD_RTOL = 1e-3
GRAPH_GRAD_RTOL = 1e-2
# A tensor whose gradient is (nearly) zero in exact arithmetic, e.g. GAT's last att_dst when every LeakyReLU
# of a softmax group has one slope (the softmax is shift-invariant), holds only float32 rounding of terms
# as large as the other tensors' gradients: it is judged against GRAD_FLOOR of the largest one instead.
GRAD_FLOOR = 1e-3
DROPOUT_SIGMAS = 6.0        # share of zeros within 6 binomial standard deviations of p
DROPOUT_SAMPLE_MIN = 10**6  # elements drawn per site (bound at p = 0.5: +-0.30 %)
DROPOUT_SCALE_RTOL = 1e-6   # survivors equal 1 / (1 - p)

MASK_SEED = 0x6D61736B


# ---- dropout sites and masks ---------------------------------------------------------------------
def grad_rtol(spec) -> float:
    return GRAPH_GRAD_RTOL if spec.task == "graph" else GRAD_RTOL


def dropout_rate(spec, site: str) -> float:
    return float(spec.attn_dropout if site.startswith("attn.") else spec.dropout)


def dropout_sites(spec, graph_or_batch) -> dict[str, tuple[int, ...]]:
    """Every dropout site of ``spec`` in training mode and its shape (see ``gnnbench.protocol``).

    Node models (a ``Graph``): ``input.<i>`` [N, d_in(i)]; GAT also ``attn.<i>`` [E + N, heads(i)].
    GIN (a collated batch from ``batching.collate``, or anything with ``num_graphs``): ``head``
    [G, hidden]. Sites whose rate is 0 are listed too (their masks are all ones)."""
    from .weights import gat_heads, layer_dims
    if spec.name == "gin":
        g = int(np.asarray(graph_or_batch["y"]).shape[0]) if isinstance(graph_or_batch, dict) \
            else int(graph_or_batch.num_graphs)
        return {"head": (g, int(spec.hidden))}
    n, e = graph_or_batch.num_nodes, graph_or_batch.num_edges
    sites: dict[str, tuple[int, ...]] = {}
    for i, (din, _) in enumerate(layer_dims(spec, graph_or_batch.num_features, graph_or_batch.num_classes)):
        sites[f"input.{i}"] = (n, din)
        if spec.name == "gat":
            sites[f"attn.{i}"] = (e + n, gat_heads(spec, i))
    return sites


def draw_masks(spec, sites: dict, seed: int) -> dict[str, np.ndarray]:
    """A float32 0/1 keep-mask per site (1 = kept, with probability 1 - p of that site), from
    (seed, site name) alone, so a site's mask does not depend on the others. A site with p = 0
    gets an all-ones mask (every adapter can then apply every mask unconditionally)."""
    out = {}
    for site, shape in sites.items():
        rng = np.random.default_rng(np.random.SeedSequence([seed, MASK_SEED, zlib.crc32(site.encode())]))
        out[site] = (rng.random(shape) >= dropout_rate(spec, site)).astype(np.float32)
    return out


# ---- the checks ------------------------------------------------------------------------------------
class _Missing(Exception):
    pass


class _OtherBatch(Exception):
    pass


def _hook(adapter, name, *args):
    try:
        return getattr(adapter, name)(*args)
    except NotImplementedError as exc:
        raise _Missing(f"hook {name}() missing ({exc})" if str(exc) else f"hook {name}() missing") from None


class _Result:
    def __init__(self):
        self.d: dict = {"loss": None, "ref_loss": None, "loss_rel_diff": None, "grads_max_rel": None,
                        "grads_worst": None, "params_max_abs_diff": None, "params_adam_max_abs_diff": None,
                        "adam_elements_excluded": None, "dropout": {}, "num_parameters": None,
                        "canonical_parameters": None}
        self.failures: list[str] = []

    def fail(self, msg: str) -> None:
        self.failures.append(msg)

    def out(self) -> dict:
        self.d["failures"] = list(self.failures)
        self.d["passed"] = not self.failures
        if self.failures:
            self.d["error"] = "; ".join(self.failures)
        return self.d


def _logits(r: _Result, adapter, ref_logits, scale: float = 1.0) -> None:
    logits = np.asarray(adapter.logits(), dtype=np.float64)
    if logits.shape != ref_logits.shape:
        r.d["logits_max_abs_diff"], r.d["logits_scale"] = None, scale
        r.fail(f"logits shape {logits.shape} != reference {ref_logits.shape}")
        return
    diff = float(np.abs(logits - ref_logits).max())
    r.d["logits_max_abs_diff"], r.d["logits_scale"] = diff, scale
    if not diff <= LOGITS_ATOL * scale:
        r.fail(f"logits differ (max |diff| {diff:.2e} > {LOGITS_ATOL * scale:.2g})")


def _count(r: _Result, adapter, weights) -> None:
    canonical = int(sum(v.size for v in weights.values()))
    r.d["canonical_parameters"] = canonical
    try:
        got = int(_hook(adapter, "num_parameters"))
    except _Missing as exc:
        r.fail(str(exc))
        return
    r.d["num_parameters"] = got
    if got != canonical:
        r.fail(f"trainable parameters {got:,} != canonical {canonical:,}")


def _canonical(name: str, got: dict, ref: dict) -> None:
    missing = sorted(set(ref) ^ set(got))
    if missing:
        raise AssertionError(f"{name} names differ from the canonical layout: {missing}")


def _params_diff(got: dict, ref: dict, keep: dict | None = None) -> tuple[float, str]:
    _canonical("parameter", got, ref)
    worst, name = -1.0, ""
    for k in sorted(ref):
        g = np.asarray(got[k], np.float64)
        if g.size != ref[k].size:
            raise AssertionError(f"parameter {k}: shape {g.shape} != canonical {ref[k].shape}")
        d = np.abs(g.reshape(ref[k].shape) - ref[k])
        if keep is not None:
            d = d[keep[k]]
        v = float(d.max()) if d.size else 0.0
        if v > worst:
            worst, name = v, k
    return worst, name


def grad_rel_diffs(grads: dict, ref: dict) -> dict[str, float]:
    """Per tensor max |g - g_ref| / max(max |g_ref|, GRAD_FLOOR x max over tensors of max |g_ref|)."""
    _canonical("gradient", grads, ref)
    top = max((float(np.abs(v).max()) for v in ref.values() if v.size), default=0.0)
    out = {}
    for k in sorted(ref):
        g = np.asarray(grads[k], np.float64)
        if g.size != ref[k].size:
            raise AssertionError(f"gradient {k}: shape {g.shape} != canonical {ref[k].shape}")
        scale = max(float(np.abs(ref[k]).max()) if ref[k].size else 0.0, GRAD_FLOOR * top, 1e-300)
        out[k] = float(np.abs(g.reshape(ref[k].shape) - ref[k]).max()) / scale
    return out


def _train_checks(r: _Result, adapter, step, spec, weights, ref_loss, ref_grads, masks) -> None:
    """``step()`` prepares and runs one training step (SGD spec); compares loss, gradients, params."""
    from . import reference
    w64 = {k: np.asarray(v, np.float64) for k, v in weights.items()}
    try:
        _hook(adapter, "set_dropout_masks", masks)
    except _Missing as exc:
        r.fail(f"{exc}: loss, gradients and parameters with dropout cannot be compared")
        return
    try:
        loss = float(step())
    except _OtherBatch as exc:
        r.fail(str(exc))
        return
    r.d["loss"], r.d["ref_loss"] = loss, ref_loss
    rel = abs(loss - ref_loss) / max(abs(ref_loss), 1e-12)
    r.d["loss_rel_diff"] = rel
    if not rel <= LOSS_RTOL:
        r.fail(f"loss differs ({loss:.7g} vs reference {ref_loss:.7g}, rel {rel:.2e} > {LOSS_RTOL:g})")
    try:
        grads = _hook(adapter, "gradients")
        rels = grad_rel_diffs(grads, ref_grads)
    except (_Missing, AssertionError) as exc:
        r.fail(str(exc))
    else:
        worst = max(rels, key=rels.get)
        r.d["grads_max_rel"], r.d["grads_worst"], r.d["grads_rel"] = rels[worst], worst, rels
        tol = grad_rtol(spec)
        r.d["grad_rtol"] = tol
        bad = [k for k in rels if not rels[k] <= tol]
        if bad:
            more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
            r.fail(f"gradient of {worst} differs (max rel {rels[worst]:.2g} > {tol:g}){more}")
    ref_params = reference.optimizer_step(spec, "sgd", w64, ref_grads)
    try:
        diff, name = _params_diff(adapter.parameters(), ref_params)
    except AssertionError as exc:
        r.fail(str(exc))
        return
    r.d["params_max_abs_diff"] = diff
    if not diff <= PARAMS_ATOL:
        r.fail(f"parameters after one SGD step differ ({name}: max |diff| {diff:.2e} > {PARAMS_ATOL:g})")


def _adam_check(r: _Result, adapter, step, spec, weights, ref_grads, masks) -> None:
    """One Adam step from a fresh prepare, same masks. Elements whose reference gradient (weight decay
    included) is below the gradient tolerance x that tensor's largest are left out: there the gradient
    check does not vouch for the sign that Adam's first step (about lr * sign(g)) turns into +-lr."""
    from . import reference
    w64 = {k: np.asarray(v, np.float64) for k, v in weights.items()}
    try:
        _hook(adapter, "set_dropout_masks", masks)
    except _Missing:
        return       # already reported by the SGD step
    try:
        step()
    except _OtherBatch:
        return       # already reported by the SGD step
    ref_params = reference.optimizer_step(spec, "adam", w64, ref_grads)
    keep, excluded = {}, 0
    for k, g in ref_grads.items():
        gt = np.abs(g + spec.weight_decay * w64[k])
        keep[k] = gt >= grad_rtol(spec) * (float(gt.max()) if gt.size else 0.0)
        excluded += int((~keep[k]).sum())
    try:
        diff, name = _params_diff(adapter.parameters(), ref_params, keep)
    except AssertionError as exc:
        r.fail(f"after the Adam step: {exc}")
        return
    r.d["params_adam_max_abs_diff"], r.d["adam_elements_excluded"] = diff, excluded
    if not diff <= PARAMS_ATOL:
        r.fail(f"parameters after one Adam step differ ({name}: max |diff| {diff:.2e} > {PARAMS_ATOL:g})")


def _dropout_checks(r: _Result, adapter, spec, sites: dict) -> None:
    try:
        _hook(adapter, "set_dropout_masks", None)
    except _Missing:
        pass
    for site, shape in sites.items():
        p = dropout_rate(spec, site)
        if p <= 0.0 or p >= 1.0:
            continue
        cols = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        rows = max(int(shape[0]), math.ceil(DROPOUT_SAMPLE_MIN / cols))
        want = (rows,) + tuple(shape[1:])
        try:
            s = np.asarray(_hook(adapter, "dropout_sample", site, want), np.float64)
        except _Missing as exc:
            r.fail(str(exc))
            return
        if s.shape != want:
            r.fail(f"dropout at {site}: sample shape {s.shape} != requested {want}")
            continue
        n = s.size
        zeros = float((s == 0).mean())
        bound = DROPOUT_SIGMAS * math.sqrt(p * (1 - p) / n)
        scale = 1.0 / (1.0 - p)
        kept = s[s != 0]
        scale_dev = float(np.abs(kept / scale - 1.0).max()) if kept.size else 0.0
        r.d["dropout"][site] = {"p": p, "zeros": zeros, "bound": bound, "n": n, "scale_max_rel_dev": scale_dev,
                                "dev_sigma": abs(zeros - p) / math.sqrt(p * (1 - p) / n)}
        if not abs(zeros - p) <= bound:
            r.fail(f"dropout at {site}: {100 * zeros:.1f}% zeros, expected {100 * p:.0f}% ± {100 * bound:.2f}%")
        if not scale_dev <= DROPOUT_SCALE_RTOL:
            off = kept[np.argmax(np.abs(kept / scale - 1.0))]
            r.fail(f"dropout at {site}: survivors scaled {off:.6g}, expected 1/(1-p) = {scale:.6g}")


def check(adapter: NodeTask | GraphTask | SampledTask, spec, graph, device: str = "cpu", seed: int = 0) -> dict:
    """Run the checks on an adapter instance (in this process) for its model's task; returns a result
    dict with ``passed`` and, when it fails, ``error`` naming every quantity that differs."""
    return CHECKS[spec.task](adapter, spec, graph, device, seed)


def check_nodes(adapter: NodeTask, spec, graph, device: str = "cpu", seed: int = 0) -> dict:
    """The node task: eval logits, the trainable count, one SGD and one Adam step with the injected
    masks, the library's own dropout."""
    from . import reference
    from .weights import init_weights

    weights = init_weights(spec, graph.num_features, graph.num_classes, seed)
    ref_logits = reference.forward(spec, weights, graph.x, graph.edge_index)
    r = _Result()
    sites = dropout_sites(spec, graph)
    masks = draw_masks(spec, sites, seed)
    ref_loss, ref_grads = reference.node_loss_and_grads(spec, weights, graph, masks)
    sgd, adam = (dataclasses.replace(spec, optimizer=o) for o in ("sgd", "adam"))

    adapter.prepare(graph, sgd, device, seed, weights)
    _logits(r, adapter, ref_logits)
    _count(r, adapter, weights)

    def step():
        adapter.train_step()
        return adapter.last_loss()
    _train_checks(r, adapter, step, spec, weights, ref_loss, ref_grads, masks)
    adapter.prepare(graph, adam, device, seed, weights)
    _adam_check(r, adapter, step, spec, weights, ref_grads, masks)
    _dropout_checks(r, adapter, spec, sites)
    return r.out()


def check_sampled(adapter: SampledTask, spec, graph, device: str = "cpu", seed: int = 0) -> dict:
    """The sampled task: each library samples with its own generator, so only the full-graph model
    is compared (its eval logits after loading the weights)."""
    from . import reference
    from .weights import init_weights

    weights = init_weights(spec, graph.num_features, graph.num_classes, seed)
    ref_logits = reference.forward(spec, weights, graph.x, graph.edge_index)
    r = _Result()
    adapter.prepare(graph, spec, device, seed, weights)
    _logits(r, adapter, ref_logits)
    r.d["note"] = "sampled: full-graph logits only (samples differ by library)"
    return r.out()


def check_graphs(adapter: GraphTask, spec, gs, device: str = "cpu", seed: int = 0) -> dict:
    """The graph task: eval logits of every graph (one batch of all graphs), then the training
    checks on the first batch of epoch 0, which must also hold exactly the graphs the harness chose."""
    from . import batching, reference
    from .weights import init_weights

    weights = init_weights(spec, gs.num_features, gs.num_classes, seed)
    full = batching.collate(gs, np.arange(gs.num_graphs))
    ref_logits = reference.gin_forward(spec, weights, full["x"], full["edge_index"], full["batch"], gs.num_graphs)
    ids = batching.epoch_batches(gs.train_idx, spec.batch_size, seed, 0)[0]
    arrays = batching.collate(gs, ids)
    sites = dropout_sites(spec, arrays)
    masks = draw_masks(spec, sites, seed)
    ref_loss, ref_grads = reference.gin_loss_and_grads(spec, weights, arrays, masks)
    sgd, adam = (dataclasses.replace(spec, optimizer=o) for o in ("sgd", "adam"))

    r = _Result()
    adapter.prepare(gs, sgd, device, seed, weights)
    # sum readout: logits grow with graph size (PROTEINS: ~4000 at initialisation), so float32 agreement is
    # judged relative to the largest reference logit (the absolute diff is reported as is)
    _logits(r, adapter, ref_logits, max(1.0, float(np.abs(ref_logits).max())))
    _count(r, adapter, weights)
    same = []

    def step():
        batch = adapter.collate(ids)
        same.append(batching.fingerprint(adapter.batch_arrays(batch)) == batching.fingerprint(arrays))
        if not same[-1]:   # the injected masks and the reference are for the harness's batch
            raise _OtherBatch("the library's batch holds other graphs (or another order) than the harness chose")
        adapter.train_batch(batch)
        return adapter.last_loss()
    _train_checks(r, adapter, step, spec, weights, ref_loss, ref_grads, masks)
    adapter.prepare(gs, adam, device, seed, weights)
    _adam_check(r, adapter, step, spec, weights, ref_grads, masks)
    _dropout_checks(r, adapter, spec, sites)
    r.d["batch_matches"] = bool(same) and all(same)
    return r.out()


CHECKS = {"node": check_nodes, "graph": check_graphs, "sampled": check_sampled}
