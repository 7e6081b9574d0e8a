"""Every GPU check in one short run (`make gpu-check`), for a session that is lent a GPU.

1. environment (nvidia-smi, torch/CUDA versions), 2. the CUDA kernels compile with nvcc
(make native-cuda-check), 3. `gnnbench verify` on CUDA for native and PyG, 4. the suite
configs/gpu.yaml, with its report, 5. the SpMM/SDDMM micro-benchmarks at feature width 128
against the device-to-device copy bandwidth (target: native SpMM >= 60 %).

Everything is written under --out (default $OUT, else gnnbench-out/gpu-check). Each step runs
even if an earlier one failed; the exit code is 1 if any failed.

`--device cpu --quick` runs the same pipeline small on the CPU, so it is tested without a GPU.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="small sizes (for a CPU dry run of the pipeline)")
    ap.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "gnnbench-out" / "gpu-check"))
    ap.add_argument("--data-dir", default=os.environ.get("GNNBENCH_DATA"))
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    py = [sys.executable, "-m", "gnnbench"]
    data = ["--data-dir", a.data_dir] if a.data_dir else []
    if a.quick:
        suite = ["--suite", "gpu", "--datasets", "cora,synthetic:nodes=20000,avg_degree=10,features=32",
                 "--epochs", "5", "--warmup", "2", "--models", "gcn,sage"]
        verify_ds, kern_ds, widths = "cora", "cora,synthetic:nodes=20000,avg_degree=10", "16"
    else:
        suite = ["--suite", "gpu"]
        verify_ds, kern_ds = "cora,pubmed", "cora,pubmed,synthetic:nodes=2000000,avg_degree=10"
        widths = "128"
    steps = [
        ("env", [*py, "env"]),
        ("torch", [sys.executable, "-c", "import torch; print(torch.__version__, torch.version.cuda, "
                   "torch.cuda.is_available() and torch.cuda.get_device_name(0))"]),
        ("verify", [*py, "verify", "--libs", "native,pyg", "--datasets", verify_ds, "--device", a.device, *data]),
        ("suite", [*py, "run", *suite, "--devices", a.device, "--out", str(out / "gpu.jsonl"), *data]),
        ("kernels", [*py, "kernels", "--device", a.device, "--datasets", kern_ds, "--widths", widths,
                     "--repeats", "3" if a.quick else "20", "--json", str(out / "kernels.json"), *data]),
    ]
    if shutil.which("nvidia-smi"):
        steps.insert(0, ("nvidia-smi", ["nvidia-smi"]))
    if a.device.startswith("cuda") or shutil.which("nvcc"):
        steps.insert(1, ("nvcc", ["make", "-s", "native-cuda-check"]))
    failed = []
    with open(out / "gpu-check.log", "w") as log:
        for name, cmd in steps:
            t0 = time.monotonic()
            p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            took = time.monotonic() - t0
            head = f"\n===== {name}: exit {p.returncode} in {took:.1f} s: {' '.join(cmd)}\n"
            for stream in (sys.stdout, log):
                stream.write(head + p.stdout + (p.stderr[-4000:] if p.returncode else ""))
                stream.flush()
            (out / f"{name}.txt").write_text(p.stdout + "\n--- stderr ---\n" + p.stderr)
            if p.returncode != 0:
                failed.append(name)
    print(f"\ngpu-check: {len(steps) - len(failed)} of {len(steps)} steps passed"
          + (f"; failed: {', '.join(failed)}" if failed else "") + f"; files in {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
