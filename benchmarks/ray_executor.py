"""The same suite three ways, --threads 1: the local executor; Ray with one node; Ray with two nodes
(a real ``ray.cluster_utils.Cluster`` on this machine, one CPU per node, shut down by its handle).

    python benchmarks/ray_executor.py [--suite quick] [--libs pyg,dgl] [--out-dir gnnbench-out/ray-bench] [-- RUN ARGS]

Prints each way's wall time, the per-run median epoch times side by side (Ray / local: goal, within
the run-to-run noise: nothing of Ray is in the timed region) and the two-node / one-node wall-time
ratio (goal <= 0.6). Extra arguments after ``--`` go to every ``gnnbench run``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gnnbench.results import read_records  # noqa: E402


def run(out: Path, common: list[str], extra: list[str]) -> float:
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "gnnbench", "run", *common, "--threads", "1", "--out", str(out), "--no-report", *extra]
    t0 = time.monotonic()
    p = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "RAY_ADDRESS": ""}, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    return wall


def on_cluster(nodes: int, out: Path, common: list[str]) -> float:
    from ray.cluster_utils import Cluster
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"bench_0": 1},
                                                      "include_dashboard": False})
    try:
        for i in range(1, nodes):
            c.add_node(num_cpus=1, resources={f"bench_{i}": 1})
        c.wait_for_nodes(timeout=120)
        return run(out, common, ["--executor", "ray", "--ray-address", c.address])
    finally:
        c.shutdown()


def medians(path: Path) -> dict[str, float]:
    return {r["key"]: r["times"]["median_ms"] for r in read_records(path) if r.get("times")}


def main(argv: list[str]) -> None:
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", default="quick")
    ap.add_argument("--libs")
    ap.add_argument("--out-dir", default="gnnbench-out/ray-bench")
    a = ap.parse_args(argv)
    d = Path(a.out_dir)
    d.mkdir(parents=True, exist_ok=True)
    common = ["--suite", a.suite, *(["--libs", a.libs] if a.libs else []), *extra]
    walls = {"local": run(d / "local.jsonl", common, []),
             "ray, 1 node": on_cluster(1, d / "ray1.jsonl", common),
             "ray, 2 nodes": on_cluster(2, d / "ray2.jsonl", common)}
    files = {"local": d / "local.jsonl", "ray, 1 node": d / "ray1.jsonl", "ray, 2 nodes": d / "ray2.jsonl"}
    med = {k: medians(p) for k, p in files.items()}
    print("| way | wall s | runs |\n|---|---|---|")
    for k, w in walls.items():
        print(f"| {k} | {w:.1f} | {len(med[k])} |")
    print("\n| run | local ms | ray 1 node ms | ray 2 nodes ms | 1 node / local | 2 nodes / local |\n|---|---|---|---|---|---|")
    ratios = []
    for key in med["local"]:
        loc, one, two = med["local"][key], med["ray, 1 node"].get(key), med["ray, 2 nodes"].get(key)
        r1 = one / loc if one else None
        r2 = two / loc if two else None
        ratios += [r for r in (r1, r2) if r]
        print(f"| {key} | {loc:.2f} | {one or float('nan'):.2f} | {two or float('nan'):.2f} | "
              f"{r1 or float('nan'):.3f} | {r2 or float('nan'):.3f} |")
    if ratios:
        print(f"\nmedian of ray/local per-run median ratios: {statistics.median(ratios):.3f}")
    print(f"two-node / one-node wall time: {walls['ray, 2 nodes'] / walls['ray, 1 node']:.3f} (goal <= 0.6)")


if __name__ == "__main__":
    main(sys.argv[1:])
