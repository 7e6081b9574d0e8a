"""Where a torch-based library's training step spends its time: torch.profiler over N steps.

    python benchmarks/profile_step.py LIB MODEL DATASET [--steps 20] [--threads 2] [--top 8]

LIB is pyg, dgl or native. Prints the ops with the most self CPU time as a share of the
profiled steps. (For the TensorFlow libraries, compare runs with `--set dropout=0.0`: see
README, "What dominates an epoch".)
"""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lib", choices=["pyg", "dgl", "native"])
    ap.add_argument("model")
    ap.add_argument("dataset")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--data-dir", default=os.environ.get("GNNBENCH_DATA"))
    a = ap.parse_args()
    os.environ.setdefault("DGLBACKEND", "pytorch")
    import torch
    from torch.profiler import ProfilerActivity, profile

    from gnnbench.adapters import adapter_class
    from gnnbench.datasets import load_graph
    from gnnbench.specs import get_spec
    from gnnbench.weights import init_weights

    adapter = adapter_class(a.lib)()
    assert adapter.available().ok
    adapter.set_threads(a.threads)
    spec = get_spec(a.model, a.dataset)
    g = load_graph(a.dataset, a.data_dir, normalize_features=spec.normalize_features)
    adapter.prepare(g, spec, "cpu", 0, init_weights(spec, g.num_features, g.num_classes, 0))
    for _ in range(5):
        adapter.train_step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(a.steps):
            adapter.train_step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: -e.self_cpu_time_total)
    print(f"{a.lib} {a.model} {a.dataset}: {total / 1e3 / a.steps:.2f} ms self CPU per step "
          f"(profiled, {a.threads} threads)")
    print("| op | ms per step | share |")
    print("|---|---|---|")
    for e in events[: a.top]:
        print(f"| {e.key} | {e.self_cpu_time_total / 1e3 / a.steps:.2f} | {100 * e.self_cpu_time_total / total:.0f}% |")


if __name__ == "__main__":
    main()
