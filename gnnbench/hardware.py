"""Which hardware a record was measured on: its CPU model and core count, and for CUDA cells the GPU.

Times measured on different hardware are never ranked against or divided by each other: report,
compare, history and native-ratios give each hardware its own table, headed by it. Records read
their hardware from their own ``env`` (with the Ray executor: the node the run ran on).
"""
from __future__ import annotations


def hardware_of(record: dict) -> str:
    """A label naming the record's hardware: 'CPU MODEL, N cores' (+ ', GPU NAME' for CUDA cells)."""
    env = record.get("env") or {}
    label = f"{env.get('cpu_model') or '?'}, {env.get('cores') or '?'} cores"
    device = str((record.get("cell") or {}).get("device") or "")
    if device.startswith("cuda"):
        label += f", GPU {env.get('gpu') or '?'}"
    return label


def hardware_set(records: list[dict]) -> list[str]:
    """The distinct hardware of ``records``, in first-seen order."""
    return list(dict.fromkeys(hardware_of(r) for r in records))
