"""`gnnbench kernels`: micro-benchmarks of the sparse kernels under the models (the CLI command in
gnnbench/cli.py is the only entry point; this module sits beside the native kernels it measures and
imports PyG and DGL only inside its functions).

SpMM (out[i] = sum_j w_ij X[j], the GCN aggregation over the normalised
adjacency with self-loops) and SDDMM (per edge <U[src], V[dst]>, the attention
score pattern), each timed for

- native: our kernels (gnnbench.adapters.native, C++/OpenMP; CUDA on a GPU);
- pyg: PyG's message passing as GCNConv runs it (index_select of the sources,
  times the edge weight, torch_geometric.utils.scatter sum) and, for SDDMM,
  gather + multiply + sum as GATConv's attention does;
- dgl: dgl.ops.u_mul_e_sum / dgl.ops.u_dot_v (DGL's gSpMM / gSDDMM);
- torch.sparse: CSR @ dense, torch.sparse.sampled_addmm.

Each row reports the median time of ``repeats`` calls after two warm-up calls
and the achieved bandwidth: compulsory bytes / time, where compulsory bytes are
the CSR (int64 row pointers, int32 columns, fp32 edge values), the dense
inputs read once and the outputs written once (a lower bound on the traffic of
every implementation).  The machine's copy bandwidth (a large tensor copy,
read + write bytes / time) is measured once and shown next to it.
"""
from __future__ import annotations

import statistics
import time
import warnings

DEFAULT_DATASETS = ["cora", "citeseer", "pubmed", "synthetic:nodes=10000,avg_degree=10",
                    "synthetic:nodes=100000,avg_degree=10", "synthetic:nodes=1000000,avg_degree=10"]
OPS = ("spmm", "sddmm")
IMPLS = ("native", "pyg", "dgl", "torch.sparse")


def _timeit(fn, repeats: int, sync) -> float:
    """Median seconds of `repeats` calls after two warm-up calls."""
    for _ in range(2):
        fn()
    sync()
    ts = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def copy_bandwidth(device: str = "cpu", nbytes: int = 256 << 20, repeats: int = 5) -> float:
    """Bytes per second of a large tensor copy (counting the read and the write)."""
    import torch
    n = nbytes // 4
    a = torch.ones(n, dtype=torch.float32, device=device)
    b = torch.empty_like(a)
    sync = (lambda: torch.cuda.synchronize()) if device.startswith("cuda") else (lambda: None)
    t = _timeit(lambda: b.copy_(a), repeats, sync)
    return 2.0 * n * 4 / t


def _load_edges(name: str, data_dir):
    """(display name, num_nodes, src, dst) without self-loops; synthetic graphs are
    generated with one feature column (their features are not used here)."""
    from gnnbench.datasets import canonical_dataset_name, load_graph
    canon = canonical_dataset_name(name)            # validates the name
    display = canon
    if canon.startswith("synthetic"):
        display = name.strip()
        if "features=" not in name:
            name = name + (",features=1" if ":" in name else ":features=1")
    g = load_graph(name, data_dir)
    return display, g.num_nodes, g.edge_index[0], g.edge_index[1]


class _Impls:
    """The implementations available here (and why the others are not)."""

    def __init__(self, device: str):
        self.device = device
        self.missing: dict[str, str] = {}
        self.native = None
        try:
            from gnnbench.adapters.native import build
            self.native = build.load("cuda" if device.startswith("cuda") else "cpu")[0]
        except Exception as exc:
            self.missing["native"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self.pyg_scatter = None
        try:
            from torch_geometric.utils import scatter
            self.pyg_scatter = scatter
        except Exception as exc:
            self.missing["pyg"] = f"torch_geometric not importable: {exc}"
        self.dgl = None
        try:
            from gnnbench.adapters.dgl._import import import_dgl
        except Exception:
            self.missing["dgl"] = "gnnbench.adapters.dgl._import not present"
        else:
            try:
                self.dgl = import_dgl()[0]
            except Exception as exc:
                self.missing["dgl"] = f"dgl not importable: {type(exc).__name__}: {exc}"


def run_kernels(datasets: list[str], widths: list[int], data_dir=None, repeats: int = 10, *, threads=None,
                device: str = "cpu", ops=OPS, impls=IMPLS, copy_bw: float | None = None) -> list[dict]:
    """Time every (op, dataset, width, implementation); one dict per measurement. The datasets are
    found and hash-checked first (``datasets.preflight``), before any measurement or build."""
    from gnnbench.datasets import preflight
    preflight(datasets, data_dir)
    import numpy as np
    import torch

    from gnnbench.adapters.native.ops import Csr
    from gnnbench.reference import gcn_norm

    if threads:
        torch.set_num_threads(int(threads))
    nthreads = torch.get_num_threads()
    dev = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    if copy_bw is None:
        copy_bw = copy_bandwidth(device)
    avail = _Impls(device)
    rows: list[dict] = []
    for name in datasets:
        canon, n, ei_src, ei_dst = _load_edges(name, data_dir)
        src, dst, w = gcn_norm(np.stack([ei_src, ei_dst]), n)     # with self-loops, as GCN aggregates
        e = len(src)
        g = Csr.build(src, dst, n, w.astype(np.float32), dev)
        src_t = torch.from_numpy(src).to(dev)
        dst_t = torch.from_numpy(dst).to(dev)
        w_t = torch.from_numpy(w.astype(np.float32)).to(dev)
        order = np.lexsort((src, dst))
        with warnings.catch_warnings():       # "sparse CSR support is in beta"
            warnings.simplefilter("ignore")
            a_csr = torch.sparse_csr_tensor(g.rowptr, g.col, torch.from_numpy(w.astype(np.float32)[order]).to(dev),
                                            (n, n))
        dgl_graph = None
        if avail.dgl is not None and "dgl" in impls:
            dgl_graph = avail.dgl.graph((src_t, dst_t), num_nodes=n)
        del order
        for f in widths:
            gen = torch.Generator().manual_seed(0)
            X = torch.randn(n, f, generator=gen).to(dev)
            V = torch.randn(n, f, generator=gen).to(dev)
            index_bytes = 8 * (n + 1) + 4 * e
            for op in ops:
                if op == "spmm":
                    nbytes = index_bytes + 4 * e + 2 * 4 * n * f
                    cands = {
                        "native": (lambda: avail.native.spmm(g.rowptr, g.col, g.val, X, None, None, 0, 0.0, 0, 0, None))
                        if avail.native is not None else None,
                        "pyg": (lambda: avail.pyg_scatter(X.index_select(0, src_t) * w_t.view(-1, 1), dst_t, 0,
                                                          dim_size=n, reduce="sum"))
                        if avail.pyg_scatter is not None else None,
                        "dgl": (lambda: avail.dgl.ops.u_mul_e_sum(dgl_graph, X, w_t))
                        if dgl_graph is not None else None,
                        "torch.sparse": lambda: a_csr @ X,
                    }
                else:
                    nbytes = index_bytes + 2 * 4 * n * f + 4 * e
                    cands = {
                        "native": (lambda: avail.native.sddmm(g.rowptr, g.col, X, V))
                        if avail.native is not None else None,
                        "pyg": lambda: (X.index_select(0, src_t) * V.index_select(0, dst_t)).sum(-1),
                        "dgl": (lambda: avail.dgl.ops.u_dot_v(dgl_graph, X, V)) if dgl_graph is not None else None,
                        "torch.sparse": lambda: torch.sparse.sampled_addmm(a_csr, V, X.t(), beta=0.0),
                    }
                for impl in impls:
                    row = {"op": op, "dataset": canon, "nodes": n, "edges": e, "width": f, "impl": impl,
                           "device": device, "threads": nthreads, "median_ms": None, "gbps": None,
                           "copy_gbps": copy_bw / 1e9, "bytes": nbytes, "error": ""}
                    fn = cands.get(impl)
                    if fn is None:
                        row["error"] = avail.missing.get(impl, "not available")
                    else:
                        try:
                            t = _timeit(fn, repeats, sync)
                            row.update(median_ms=t * 1e3, gbps=nbytes / t / 1e9)
                        except Exception as exc:  # e.g. out of memory, unsupported op
                            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                    rows.append(row)
            del X, V
    return rows


def format_table(rows: list[dict]) -> str:
    """A markdown table; bandwidth also as a share of the measured copy bandwidth."""
    if not rows:
        return "(no measurements)"
    r0 = rows[0]
    head = (f"device {r0['device']}, {r0['threads']} thread(s); copy bandwidth {r0['copy_gbps']:.1f} GB/s "
            "(read + write of a 256 MiB tensor).\nGB/s = compulsory bytes (CSR indices and fp32 values, dense "
            "inputs read once, outputs written once) / median time; above 100 % of the copy bandwidth the "
            "graph fits in cache.\n\n")
    lines = ["| op | dataset | nodes | edges | width | impl | median ms | GB/s | % of copy | vs native |",
             "|---|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    native = {(r["op"], r["dataset"], r["width"]): r["median_ms"] for r in rows if r["impl"] == "native"}
    for r in rows:
        if r["median_ms"] is None:
            lines.append(f"| {r['op']} | {r['dataset']} | {r['nodes']} | {r['edges']} | {r['width']} | {r['impl']} "
                         f"| - | - | - | {r['error'] or 'n/a'} |")
            continue
        nat = native.get((r["op"], r["dataset"], r["width"]))
        ratio = f"{r['median_ms'] / nat:.2f}x" if nat else "-"
        lines.append(f"| {r['op']} | {r['dataset']} | {r['nodes']} | {r['edges']} | {r['width']} | {r['impl']} "
                     f"| {r['median_ms']:.3f} | {r['gbps']:.2f} | {100 * r['gbps'] / r['copy_gbps']:.0f}% "
                     f"| {ratio} |")
    return head + "\n".join(lines)
