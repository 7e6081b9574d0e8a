"""A bare PyG GCN training loop on Cora, as PyG's own examples write it (no gnnbench in the loop).

    python benchmarks/bare_pyg_gcn.py DATA_DIR THREADS WARMUP EPOCHS  -> JSON list of epoch ms
"""
import json
import sys
import time

import torch
import torch.nn.functional as F
from torch_geometric.nn import GCNConv

from gnnbench.datasets import load_graph  # same input arrays as gnnbench

data_dir, threads, warmup, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)
g = load_graph("cora", data_dir, normalize_features=True)
x, y = torch.from_numpy(g.x), torch.from_numpy(g.y)
edge_index = torch.from_numpy(g.edge_index)
train = torch.from_numpy(g.train_mask)


class GCN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = GCNConv(g.num_features, 16, cached=True)
        self.conv2 = GCNConv(16, g.num_classes, cached=True)

    def forward(self, x, edge_index):
        x = F.dropout(x, p=0.5, training=self.training)
        x = F.relu(self.conv1(x, edge_index))
        x = F.dropout(x, p=0.5, training=self.training)
        return self.conv2(x, edge_index)


model = GCN()
# the optimiser implementation every torch adapter uses (adapters/_torch.py: OPTIMIZER_IMPL = "fused"):
# with torch's default (foreach) the bare loop would be the slower one, and the ratio no overhead measure
opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4, fused=True)


def step():
    model.train()
    opt.zero_grad()
    loss = F.cross_entropy(model(x, edge_index)[train], y[train])
    loss.backward()
    opt.step()


for _ in range(warmup):
    step()
times = []
for _ in range(epochs):
    t0 = time.perf_counter_ns()
    step()
    times.append((time.perf_counter_ns() - t0) / 1e6)
print(json.dumps(times))
