"""gnnbench: honest, reproducible training-speed comparisons of GNN libraries."""

__version__ = "0.1.0"
