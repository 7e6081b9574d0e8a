"""Import DGL where its GraphBolt sub-package cannot load.

DGL 2.1.0's ``import dgl`` always imports ``dgl.graphbolt`` (through
``dgl.dataloading`` -> ``dgl.distributed``), and GraphBolt needs a C++ library
built for the exact torch version (``graphbolt/libgraphbolt_pytorch_<ver>.so``;
2.1.0 ships them up to torch 2.2.1) plus ``torchdata.datapipes`` (removed in
torchdata 0.10). With torch 2.13 neither exists, so ``import dgl`` fails
although nothing we use (``dgl.graph``, ``dgl.nn.pytorch``) needs GraphBolt.
DGL has no switch to skip it.

The workaround, kept here and nowhere else: when GraphBolt would not load,
put a stub module at ``sys.modules['dgl.graphbolt']`` before ``import dgl``.
DGL's own modules only reference ``graphbolt`` at import time (``from .. import
graphbolt as gb``) and use its attributes inside distributed-training
functions, which gnnbench never calls; touching any attribute of the stub
raises an ``AttributeError`` that says why GraphBolt is missing.

``DGLBACKEND=pytorch`` is set (if unset) before the import, so DGL does not
look for or write ``~/.dgl/config.json``.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import types

STUB_NOTE = "GraphBolt unavailable (stubbed)"

_state: dict = {"stubbed": None, "reason": ""}


class GraphBoltStub(types.ModuleType):
    """Stands in for ``dgl.graphbolt``; every attribute access explains why it is missing."""

    def __init__(self, reason: str):
        super().__init__("dgl.graphbolt", f"stub: GraphBolt unavailable ({reason})")
        self._gnnbench_reason = reason

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"dgl.graphbolt.{name}: GraphBolt is unavailable in this environment "
                             f"({self._gnnbench_reason}); gnnbench stubbed it to import DGL")


def _graphbolt_library_name(torch_version: str) -> str:
    v = torch_version.split("+", 1)[0]
    if sys.platform.startswith("darwin"):
        return f"libgraphbolt_pytorch_{v}.dylib"
    if sys.platform.startswith("win"):
        return f"graphbolt_pytorch_{v}.dll"
    return f"libgraphbolt_pytorch_{v}.so"


def graphbolt_problem() -> str | None:
    """Why ``dgl.graphbolt`` would fail to import here (None: it should import).

    Mirrors what ``dgl/graphbolt/__init__.py`` needs, without executing DGL.
    Raises ImportError when DGL itself is not installed.
    """
    spec = importlib.util.find_spec("dgl")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("No module named 'dgl'")
    import torch

    pkg_dir = list(spec.submodule_search_locations)[0]
    lib = os.path.join(pkg_dir, "graphbolt", _graphbolt_library_name(torch.__version__))
    if not os.path.exists(lib):
        return f"no GraphBolt build for torch {torch.__version__.split('+', 1)[0]} in this DGL"
    try:
        has_datapipes = importlib.util.find_spec("torchdata.datapipes") is not None
    except (ImportError, ValueError):
        has_datapipes = False
    if not has_datapipes:
        return "torchdata.datapipes is missing"
    return None


def _purge_dgl() -> None:
    for name in [m for m in sys.modules if m == "dgl" or m.startswith("dgl.")]:
        del sys.modules[name]


def import_dgl():
    """Import DGL, stubbing GraphBolt when it cannot load.

    Returns ``(dgl_module, stubbed)``. Raises ImportError (or whatever DGL
    raises) when DGL is not installed or is broken for another reason.
    """
    os.environ.setdefault("DGLBACKEND", "pytorch")
    if "dgl" in sys.modules and _state["stubbed"] is not None:
        return sys.modules["dgl"], _state["stubbed"]
    if "dgl" in sys.modules:  # imported before us (by someone else)
        stubbed = isinstance(sys.modules.get("dgl.graphbolt"), GraphBoltStub)
        _state.update(stubbed=stubbed, reason="")
        return sys.modules["dgl"], stubbed

    reason = graphbolt_problem()
    if reason is None:
        try:
            import dgl
            _state.update(stubbed=False, reason="")
            return dgl, False
        except Exception as exc:  # GraphBolt failed although its files are there
            if "graphbolt" not in _traceback_text(exc):
                raise
            reason = f"{type(exc).__name__}: {exc}"
            _purge_dgl()

    stub = GraphBoltStub(reason)
    sys.modules["dgl.graphbolt"] = stub
    try:
        import dgl
    except BaseException:
        _purge_dgl()
        raise
    dgl.graphbolt = stub  # what a real submodule import would have set
    _state.update(stubbed=True, reason=reason)
    return dgl, True


def stub_reason() -> str:
    """Why GraphBolt was stubbed (empty when it was not)."""
    return _state["reason"]


def _traceback_text(exc: BaseException) -> str:
    import traceback
    return "".join(traceback.format_exception(exc)).lower()
