"""One torch.optim.Adam step with each implementation (for-loop, foreach, fused) on the canonical
parameter shapes of GCN, GAT and SAGE on Cora and PubMed: the figures behind ``OPTIMIZER_IMPL``.

    python benchmarks/optimizer_impl.py [--threads 2] [--steps 300] [--repeats 5]

Prints the median time of one ``optimizer.step()`` (gradients already set) per implementation,
the best of ``--repeats`` medians. CPU only; a benchmark, not a test.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATASETS = {"cora": (1433, 7), "pubmed": (500, 3)}     # (features, classes)
IMPLS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    import torch

    from gnnbench.specs import get_spec
    from gnnbench.weights import init_weights
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {a.threads} threads; median us per Adam step (best of {a.repeats})")
    print(f"{'model':5} {'dataset':7} {'tensors':>7} {'scalars':>8}  " + "  ".join(f"{k:>9}" for k in IMPLS))
    for ds, (f, c) in DATASETS.items():
        for model in ("gcn", "gat", "sage"):
            spec = get_spec(model, ds)
            w = init_weights(spec, f, c, 0)
            row = []
            for kw in IMPLS.values():
                params = [torch.tensor(v, requires_grad=True) for v in w.values()]
                gen = torch.Generator().manual_seed(0)
                for p in params:
                    p.grad = torch.randn(p.shape, generator=gen) * 1e-2
                opt = torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay, **kw)
                for _ in range(20):
                    opt.step()
                best = float("inf")
                for _ in range(a.repeats):
                    ts = []
                    for _ in range(a.steps):
                        t0 = time.perf_counter()
                        opt.step()
                        ts.append(time.perf_counter() - t0)
                    best = min(best, statistics.median(ts))
                row.append(best * 1e6)
            print(f"{model:5} {ds:7} {len(w):7d} {sum(v.size for v in w.values()):8d}  "
                  + "  ".join(f"{t:9.1f}" for t in row))


if __name__ == "__main__":
    main()
