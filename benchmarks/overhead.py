"""Harness overhead: PyG GCN on Cora timed by a bare loop and through gnnbench, interleaved.

Each round runs both, in fresh processes, with the same threads, warm-up and
epochs; the order alternates between rounds. Prints the ratio of the median
epoch times (gnnbench / bare). Goal: <= 1.03.

    python benchmarks/overhead.py [--rounds 6] [--epochs 200] [--threads N]
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gnnbench.config import Cell, RunConfig  # noqa: E402
from gnnbench.envinfo import cpu_count  # noqa: E402
from gnnbench.runner import THREAD_VARS, new_run_id, run_one  # noqa: E402
from gnnbench.specs import get_spec  # noqa: E402


def bare(data_dir, threads, warmup, epochs):
    env = dict(os.environ, **{v: str(threads) for v in THREAD_VARS})
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bare_pyg_gcn.py"), data_dir, str(threads),
                        str(warmup), str(epochs)], capture_output=True, text=True, env=env, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def harness(data_dir, threads, warmup, epochs, run_id):
    import dataclasses
    cell = Cell("pyg", "gcn", "cora", "cpu", dataclasses.asdict(get_spec("gcn", "cora")), 0)
    rec = run_one(cell, RunConfig(epochs=epochs, warmup=warmup, threads=threads, infer_reps=1), run_id, data_dir)
    if rec["status"] not in ("ok", "accuracy_mismatch"):
        raise SystemExit(f"gnnbench run failed: {rec['status']}: {rec.get('error')}")
    return rec["times"]["epoch_ms"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=cpu_count())
    ap.add_argument("--data-dir", default=os.environ.get("GNNBENCH_DATA", str(ROOT.parent / "shared" / "datasets")))
    a = ap.parse_args()
    run_id = new_run_id()
    samples = {"bare": [], "gnnbench": []}
    print(f"PyG GCN on Cora, {a.threads} threads, {a.warmup} warm-up + {a.epochs} timed epochs, {a.rounds} rounds")
    print("| round | bare median ms | gnnbench median ms | ratio |")
    print("|---|---|---|---|")
    for r in range(a.rounds):
        order = ("bare", "gnnbench") if r % 2 == 0 else ("gnnbench", "bare")
        got = {}
        for who in order:
            got[who] = (bare if who == "bare" else lambda *x: harness(*x, run_id))(a.data_dir, a.threads, a.warmup, a.epochs)
            samples[who].extend(got[who])
        mb, mg = np.median(got["bare"]), np.median(got["gnnbench"])
        print(f"| {r + 1} | {mb:.2f} | {mg:.2f} | {mg / mb:.3f} |")
    mb, mg = np.median(samples["bare"]), np.median(samples["gnnbench"])
    ratio = mg / mb
    print(f"\nall rounds pooled: bare {mb:.2f} ms, gnnbench {mg:.2f} ms per epoch; "
          f"ratio of medians {ratio:.3f} (goal <= 1.03): {'MET' if ratio <= 1.03 else 'MISSED'}")


if __name__ == "__main__":
    main()
