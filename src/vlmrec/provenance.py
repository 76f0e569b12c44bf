"""Seeds, thread counts, code version and content fingerprints: what makes a result reproducible."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import subprocess
from pathlib import Path

import numpy as np

from vlmrec import __version__


def seed_everything(seed: int) -> np.random.Generator:
    """Seed python, numpy and torch; return a numpy Generator for explicit use."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # torch is a core dependency, but keep data-only use importable
        pass
    return np.random.default_rng(seed)


def set_threads(n: int) -> None:
    """Pin torch and BLAS threads. An unpinned BLAS on 2 cores costs an order of magnitude.

    The environment variables only reach a BLAS loaded later (worker processes); the BLAS that
    numpy has already loaded is limited through threadpoolctl."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:  # pragma: no cover - installed with scikit-learn (sentence-transformers)
        pass
    import torch

    torch.set_num_threads(n)


def code_version() -> str:
    """Package version plus git commit (and '-dirty') when run from a checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return f"{__version__}+g{sha}{'-dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def hash_arrays(*arrays: np.ndarray) -> str:
    """A sha256 over the bytes, shapes and dtypes of numpy arrays (first 16 hex chars)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def hash_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """The sha256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def hash_text(text: str) -> str:
    """A short sha256 (16 hex chars) of a string."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def hash_json(obj: object) -> str:
    """A short sha256 of an object's canonical JSON (sorted keys)."""
    return hash_text(json.dumps(obj, sort_keys=True, default=str))


@functools.cache
def code_hash(*parts: str) -> str:
    """Content hash of the source of parts of the package ("data", "models", "experiments/cell.py"),
    so a cache keyed by it notices a code change even without git. All of vlmrec when no part."""
    root = Path(__file__).resolve().parent
    files: list[Path] = []
    for part in parts or (".",):
        p = root / part
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    h = hashlib.sha256(__version__.encode())
    for f in files:
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def path_signature(path: str | Path, content: bool = True) -> dict:
    """What a cache key needs to notice that an input changed.

    A file: its sha256 (`content=True`) or its size and mtime. A folder: the relative name, size
    and modification time (ns) of every file in it, recursively (cheap for image folders; an
    edited file gets a new mtime). A missing path: {"missing": True}.
    """
    p = Path(path)
    if not p.exists():
        return {"path": str(p), "missing": True}
    if p.is_file():
        st = p.stat()
        sig: dict = {"path": str(p), "size": st.st_size}
        if content:
            sig["sha256"] = hash_file(p)
        else:
            sig["mtime_ns"] = st.st_mtime_ns
        return sig
    entries = []
    for f in sorted(q for q in p.rglob("*") if q.is_file()):
        st = f.stat()
        entries.append((str(f.relative_to(p)), st.st_size, st.st_mtime_ns))
    return {"path": str(p), "files": len(entries), "stat_hash": hash_json(entries)}
