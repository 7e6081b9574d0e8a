"""Download raw dataset files from their canonical public location into the cache."""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

from ..errors import DataError
from .checksums import PLANETOID_SHA256, TU_SHA256, read_checked
from .planetoid import raw_paths

PLANETOID_URL = "https://github.com/kimiyoung/planetoid/raw/master/data/ind.{name}.{file}"


def _fetch(url: str, timeout: float = 30.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (fixed https URL)
        return resp.read()


TU_URL = "https://www.chrsmrrs.com/graphkerneldatasets/{upper}.zip"   # what PyG's TUDataset fetches


def download_tu(name: str, cache: Path) -> None:
    import io
    import shutil
    import zipfile

    from .tu import TU
    from .tu import raw_paths as tu_paths
    upper = TU[name]
    url = TU_URL.format(upper=upper)
    try:
        data = _fetch(url, timeout=60.0)
    except Exception as exc:
        raise DataError(f"downloading {url} failed ({type(exc).__name__}: {exc}); are you offline? Set "
                        f"--data-dir or GNNBENCH_DATA to a folder holding {upper}/raw/") from None
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache, prefix=".part-"))
    try:
        raw = staging / upper / "raw"
        raw.mkdir(parents=True)
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for member in zf.namelist():
                base = os.path.basename(member)
                if base in TU_SHA256 and base.startswith(upper + "_"):   # the files gnnbench reads
                    (raw / base).write_bytes(zf.read(member))
        for path in {*tu_paths(staging, name).values(), *raw.iterdir()}:   # each present and published
            read_checked(path)
        dest = cache / upper / "raw"
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(raw, dest)
    except zipfile.BadZipFile:
        raise DataError(f"downloaded {url} is not a zip archive; not saved") from None
    except DataError as exc:   # a file missing or not the published one
        raise DataError(f"downloaded {url}: {exc}; not saved") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def download_planetoid(name: str, cache: Path) -> None:
    for file, dest in raw_paths(cache, name).items():
        if dest.exists():
            continue
        url = PLANETOID_URL.format(name=name, file=file)
        try:
            data = _fetch(url)
        except Exception as exc:
            raise DataError(f"downloading {url} failed ({type(exc).__name__}: {exc}); are you offline? Set "
                            f"--data-dir or GNNBENCH_DATA to a folder holding {dest.parent.parent.name}/raw/") from None
        digest = hashlib.sha256(data).hexdigest()
        want = PLANETOID_SHA256[dest.name]
        if digest != want:
            raise DataError(f"downloaded {url} has sha256 {digest}, expected {want}; not saved")
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, dest)
