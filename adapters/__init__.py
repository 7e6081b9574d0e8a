"""Adapter registry: library name -> "module:Class", imported only when needed.

Importing this package imports no ML library; each adapter imports its library
inside its methods, in the child process.
"""
from __future__ import annotations

import importlib
import os

from gnnbench.errors import UsageError

ADAPTERS: dict[str, str] = {
    "pyg": "gnnbench.adapters.pyg:PyGAdapter",
    "graphnets": "gnnbench.adapters.graphnets:GraphNetsAdapter",
    "dgl": "gnnbench.adapters.dgl:DGLAdapter",
    "spektral": "gnnbench.adapters.spektral:SpektralAdapter",
    "jraph": "gnnbench.adapters.jraph:JraphAdapter",
    "native": "gnnbench.adapters.native:NativeAdapter",
}

# Adapters that exist to test the harness itself (crash, hang, slow). Enabled by
# GNNBENCH_TEST_ADAPTERS=1 so users never see them.
TEST_ADAPTERS: dict[str, str] = {
    "test-ok": "gnnbench.adapters.testing:FakeAdapter",
    "test-crash": "gnnbench.adapters.testing:CrashAdapter",
    "test-hang": "gnnbench.adapters.testing:HangAdapter",
    "test-raise": "gnnbench.adapters.testing:RaiseAdapter",
    "test-missing": "gnnbench.adapters.testing:MissingAdapter",
    "test-memhog": "gnnbench.adapters.testing:MemoryHogAdapter",
    "test-nan": "gnnbench.adapters.testing:NanAdapter",
    # verify's own tests: a correct NumPy model and deliberately wrong variants (tests/test_verify_mutations.py)
    "test-ref": "gnnbench.adapters.testing:RefAdapter",
    "test-mut-grad": "gnnbench.adapters.testing:GradScaleMutant",
    "test-mut-gcn-nonorm": "gnnbench.adapters.testing:NoNormMutant",
    "test-mut-droprate": "gnnbench.adapters.testing:WrongRateMutant",
    "test-mut-nodrop": "gnnbench.adapters.testing:NoDropoutLayerMutant",
    "test-mut-extra": "gnnbench.adapters.testing:ExtraParamMutant",
    "test-mut-sage-sum": "gnnbench.adapters.testing:SageSumMutant",
    "test-mut-nohook": "gnnbench.adapters.testing:NoGradientsHook",
    "test-mut-lr": "gnnbench.adapters.testing:WrongStepMutant",
    "test-mut-batch": "gnnbench.adapters.testing:OtherBatchMutant",
}


def registry() -> dict[str, str]:
    reg = dict(ADAPTERS)
    if os.environ.get("GNNBENCH_TEST_ADAPTERS") == "1":
        reg.update(TEST_ADAPTERS)
    return reg


def adapter_names() -> list[str]:
    return list(registry())


def adapter_class(name: str):
    reg = registry()
    if name not in reg:
        raise UsageError(f"unknown library '{name}'; valid libraries: {', '.join(reg)}")
    module, _, cls = reg[name].partition(":")
    return getattr(importlib.import_module(module), cls)
