"""Native's dense input dropout into a fresh tensor, with glibc's default allocator and with its mmap
threshold raised, side by side (each in a fresh process, alternating).

    python benchmarks/dropout_alloc.py [--rows 19717] [--cols 500] [--threads 2] [--rounds 2]

A tensor above glibc's mmap threshold (dynamic, 32 MB at most) is mapped anew on every allocation
and page-faulted when first written; PubMed's 19717x500 float32 input is 39 MB.
"""
import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import sys, time, torch
sys.path.insert(0, sys.argv[1])
rows, cols, threads = map(int, sys.argv[2:5])
torch.set_num_threads(threads)
from gnnbench.adapters.native import build
lib = build.load("cpu")[0]
X = torch.rand(rows, cols)
def ms(f, n=20):
    f()
    t0 = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t0) / n * 1e3
print(f"{ms(lambda: lib.epilogue(X, None, 0, 0.5, 1, 3)):.2f} {ms(lambda: X.clone()):.2f}")
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=19717)
    ap.add_argument("--cols", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    ways = {"default allocator": {}, "MALLOC_MMAP_THRESHOLD_=256 MiB": {"MALLOC_MMAP_THRESHOLD_": str(256 << 20),
                                                                       "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}}
    print(f"{a.rows}x{a.cols} float32 ({a.rows * a.cols * 4 / 2**20:.1f} MiB), {a.threads} threads")
    print("| round | allocator | dropout into a new tensor ms | clone ms |\n|---|---|---|---|")
    for r in range(1, a.rounds + 1):
        for name, extra in ways.items():
            out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), str(a.rows), str(a.cols), str(a.threads)],
                                 env={**os.environ, **extra}, capture_output=True, text=True, check=True).stdout.split()
            print(f"| {r} | {name} | {out[0]} | {out[1]} |")


if __name__ == "__main__":
    main()
