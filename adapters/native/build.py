"""Compile (once) and load the native kernels with torch.utils.cpp_extension.load.

Builds live under ``$GNNBENCH_CACHE/native`` (else ``$XDG_CACHE_HOME/gnnbench/native``,
else ``~/.cache/gnnbench/native``), never in the repository, in a folder named
by a hash of everything that changes the binary: the sources, the flags, the
compiler, torch and Python versions and the CPU model (``-march=native``).
A second process finds the finished build there and only loads it.

A failed build leaves ``FAILED`` (its one-line reason) in that folder, so the
next process answers at once instead of compiling again.
"""
from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

CSRC = Path(__file__).resolve().parent / "csrc"
CPU_SOURCES = ("cpu_kernels.cpp", "native_cpu.cpp", "sampler.cpp")
CPU_HEADERS = ("rng.h", "kernels.h")
CUDA_SOURCES = ("native_cuda.cu", "native_cuda_bind.cpp")
CUDA_HEADERS = ("rng.h", "kernels.h", "native_cuda.h")
CPU_CFLAGS = ["-O3", "-march=native", "-fopenmp", "-fno-math-errno"]
# kind 'cpu_masked': the same CPU sources built for verify only, with dropout draws read from the
# masks the harness injects (rng.h GNB_DRAW) instead of hashed; never used in a timed run
MASKED_CFLAGS = ["-DGNB_MASKED"]
CPU_LDFLAGS = ["-fopenmp"]
CUDA_CFLAGS = ["-O3"]
CUDA_NVCC_FLAGS = ["-O3", "--use_fast_math"]      # + -gencode for the device found (sm_90 on an H200)
STALE_LOCK_S = 300.0    # a compile takes well under a minute; an older lock is a killed build's


class NativeBuildError(RuntimeError):
    """The kernels could not be built; ``str(err)`` is one line."""


def cache_root() -> Path:
    env = os.environ.get("GNNBENCH_CACHE")
    if env:
        return Path(env) / "native"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gnnbench" / "native"


def cxx_compiler() -> str:
    return os.environ.get("CXX", "c++")


def check_toolchain(cuda: bool = False) -> str | None:
    """None when a build can be attempted, else a one-line reason."""
    cxx = cxx_compiler()
    if shutil.which(cxx) is None:
        return f"C++ compiler '{cxx}' not found (set CXX or install g++)"
    try:
        subprocess.run([cxx, "--version"], capture_output=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"C++ compiler '{cxx}' does not run: {exc}"
    try:
        import torch.utils.cpp_extension as ce
        ce.verify_ninja_availability()
    except Exception as exc:  # RuntimeError when ninja is missing
        return f"ninja not available ({exc}); pip install ninja"
    if cuda:
        nvcc = _nvcc()
        if nvcc is None:
            return "nvcc not found (set CUDA_HOME or put nvcc on PATH)"
    return None


def _nvcc() -> str | None:
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if home and Path(home, "bin", "nvcc").exists():
        return str(Path(home, "bin", "nvcc"))
    return shutil.which("nvcc") or (str(Path("/usr/local/cuda/bin/nvcc"))
                                    if Path("/usr/local/cuda/bin/nvcc").exists() else None)


def _cuda_arch_flags() -> list[str]:
    """-gencode for the current CUDA device (sm_90 on H100/H200); sm_90 when none is visible."""
    try:
        import torch
        major, minor = torch.cuda.get_device_capability()
    except Exception:
        major, minor = 9, 0
    return [f"-gencode=arch=compute_{major}{minor},code=sm_{major}{minor}"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build_tag(kind: str, csrc: Path, sources, headers, flags) -> str:
    import torch
    h = hashlib.sha256()
    for name in (*sources, *headers):
        p = csrc / name
        h.update(name.encode())
        h.update(p.read_bytes() if p.exists() else b"<missing>")
    h.update(repr((kind, [list(f) for f in flags], cxx_compiler(), torch.__version__, sys.version_info[:2],
                   platform.machine(), _cpu_model())).encode())
    return f"{kind}-{h.hexdigest()[:16]}"


def _one_line(text: str) -> str:
    """The first compiler error line of a build log (else its last line)."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(("FAILED:", "ninja:", "Error building extension"))] or lines
    for pattern in (r"error:", r"\berror\b"):
        for ln in lines:
            if re.search(pattern, ln, re.IGNORECASE):
                return ln[:300]
    return (lines[-1] if lines else "unknown build error")[:300]


_LOADED: dict[str, tuple[object, float, bool]] = {}


def load(kind: str = "cpu", csrc: Path | None = None, build_root: Path | None = None, verbose: bool = False):
    """Build (if needed) and import the extension; returns (module, seconds, compiled_now).

    Raises NativeBuildError with a one-line reason on any failure.
    """
    csrc = Path(csrc) if csrc else CSRC
    if kind not in ("cpu", "cpu_masked", "cuda"):
        raise NativeBuildError(f"unknown native build kind '{kind}'")
    cuda = kind == "cuda"
    sources = CUDA_SOURCES if cuda else CPU_SOURCES
    headers = CUDA_HEADERS if cuda else CPU_HEADERS
    nvcc_flags = CUDA_NVCC_FLAGS + _cuda_arch_flags() if cuda else []
    cpu_cflags = CPU_CFLAGS + (MASKED_CFLAGS if kind == "cpu_masked" else [])
    flags = (CUDA_CFLAGS, nvcc_flags) if cuda else (cpu_cflags, CPU_LDFLAGS)
    why = check_toolchain(cuda)
    if why:
        raise NativeBuildError(why)
    tag = build_tag(kind, csrc, sources, headers, flags)
    key = f"{csrc}|{build_root}|{tag}"
    if key in _LOADED:
        return _LOADED[key]
    root = Path(build_root) if build_root else cache_root()
    bdir = root / tag
    failed = bdir / "FAILED"
    if failed.exists():
        raise NativeBuildError(f"native {kind} kernels failed to build earlier: "
                               f"{failed.read_text().strip()} (delete {bdir} to retry)")
    bdir.mkdir(parents=True, exist_ok=True)
    lock = bdir / "lock"
    if lock.exists() and time.time() - lock.stat().st_mtime > STALE_LOCK_S:
        lock.unlink(missing_ok=True)   # left by a build that was killed
    name = f"gnnbench_native_{kind}_{tag.split('-')[1][:8]}"
    def so_stamp():
        return sorted((p.name, p.stat().st_mtime_ns) for p in bdir.glob(f"{name}*.so"))
    before = so_stamp()
    import torch.utils.cpp_extension as ce
    t0 = time.perf_counter()
    try:
        kwargs = dict(name=name, sources=[str(csrc / s) for s in sources], build_directory=str(bdir),
                      verbose=verbose, extra_include_paths=[str(csrc)])
        # copies: cpp_extension.load appends to the lists it is given
        if cuda:
            mod = ce.load(extra_cflags=list(CUDA_CFLAGS), extra_cuda_cflags=list(nvcc_flags), with_cuda=True,
                          **kwargs)
        else:
            mod = ce.load(extra_cflags=list(cpu_cflags), extra_ldflags=list(CPU_LDFLAGS), with_cuda=False, **kwargs)
    except Exception as exc:  # build or import failure
        reason = _one_line(str(exc))
        if isinstance(exc, (RuntimeError, subprocess.CalledProcessError, OSError)) and "Error building" in str(exc):
            failed.write_text(reason + "\n")
        raise NativeBuildError(f"native {kind} kernels failed to build: {reason}") from exc
    result = (mod, time.perf_counter() - t0, so_stamp() != before)   # compiled now, or only loaded
    _LOADED[key] = result
    return result
