"""Adapter registry: library name -> "module:Class", imported only when needed.

Built-in adapters are listed here. An installed package adds its own through the entry-point group
``gnnbench.adapters`` (``name = "module:Class"``, docs/adapters.md); they are found on the first call
that needs the list of libraries (never for ``--help``), once per process, from package metadata:
nothing of theirs is imported until ``adapter_class`` is called for one. A plug-in cannot take a
built-in name: it is ignored, with a one-line warning on stderr. A plug-in whose entry point does not
load raises ``PluginError`` (a ``UsageError``: one line, exit 2) naming its package.

Importing this package imports no ML library; each adapter imports its library
inside its methods, in the child process.
"""
from __future__ import annotations

import functools
import importlib
import os
import re
import sys
from dataclasses import dataclass

from gnnbench.errors import UsageError

ENTRY_POINT_GROUP = "gnnbench.adapters"

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

# a library name ends up in record keys, file names and comma-separated --libs
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


class PluginError(UsageError):
    """A plug-in adapter's entry point does not load, or is not an Adapter."""


@dataclass(frozen=True)
class Plugin:
    name: str            # the library name: the entry point's name
    value: str           # "module:Class"
    distribution: str    # the package that registered it
    version: str
    location: str | None  # the sys.path entry its metadata was found in (handed to child processes)

    def describe(self) -> str:
        return f"{self.distribution} {self.version}"

    def record(self) -> dict:
        """What a result record says about it (``plugin``)."""
        return {"distribution": self.distribution, "version": self.version, "entry_point": self.value}


def _warn(msg: str) -> None:
    print(f"gnnbench: warning: {msg}", file=sys.stderr)


@functools.lru_cache(maxsize=None)
def plugins() -> dict[str, Plugin]:
    """The adapters installed packages register, by name (read from package metadata, nothing imported)."""
    from importlib.metadata import entry_points
    try:
        eps = list(entry_points(group=ENTRY_POINT_GROUP))
    except Exception as exc:   # a malformed entry_points.txt somewhere: no plug-ins rather than no gnnbench
        _warn(f"plug-in adapters not read: {type(exc).__name__}: {exc}")
        return {}
    found: dict[str, Plugin] = {}
    for ep in eps:
        dist = getattr(ep, "dist", None)
        try:
            location = str(dist.locate_file("")) if dist is not None else None
        except Exception:
            location = None
        p = Plugin(ep.name, ep.value, dist.name if dist else "unknown package", dist.version if dist else "?", location)
        if ep.name in ADAPTERS or ep.name in TEST_ADAPTERS:
            _warn(f"plug-in adapter '{ep.name}' from {p.describe()} ignored: '{ep.name}' is a built-in "
                  "adapter's name (give the entry point another name)")
        elif not _NAME.match(ep.name):
            _warn(f"plug-in adapter '{ep.name}' from {p.describe()} ignored: a library name is letters, "
                  "digits, '.', '_' and '-'")
        elif ep.name in found:
            _warn(f"plug-in adapter '{ep.name}' from {p.describe()} ignored: {found[ep.name].describe()} "
                  "registers that name too (the first on sys.path is used)")
        else:
            found[ep.name] = p
    return found


def registry() -> dict[str, str]:
    reg = dict(ADAPTERS)
    if os.environ.get("GNNBENCH_TEST_ADAPTERS") == "1":
        reg.update(TEST_ADAPTERS)
    reg.update({name: p.value for name, p in plugins().items()})
    return reg


def adapter_names() -> list[str]:
    return list(registry())


def plugin(name: str) -> Plugin | None:
    """The plug-in registered as ``name``, or None for a built-in (or unknown) name."""
    return plugins().get(name)


def adapter_class(name: str):
    reg = registry()
    if name not in reg:
        raise UsageError(f"unknown library '{name}'; valid libraries: {', '.join(reg)}")
    p = plugin(name)
    if p is not None:
        return _load_plugin(p)
    module, _, cls = reg[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def _load_plugin(p: Plugin):
    from gnnbench.protocol import Adapter
    where = f"plug-in adapter '{p.name}' from {p.describe()} (entry point {p.value})"
    module, _, attr = p.value.partition(":")
    try:
        obj = importlib.import_module(module.strip())
        for part in attr.strip().split(".") if attr.strip() else ():
            obj = getattr(obj, part)
    except (Exception, SystemExit) as exc:     # anything its import raises: one line, no traceback
        why = " ".join(str(exc).split())
        raise PluginError(f"{where} failed to load: {type(exc).__name__}" + (f": {why}" if why else "")
                          + f" (fix or uninstall {p.distribution})") from exc
    if not (isinstance(obj, type) and issubclass(obj, Adapter)):
        raise PluginError(f"{where} is not a subclass of gnnbench.protocol.Adapter")
    return obj
