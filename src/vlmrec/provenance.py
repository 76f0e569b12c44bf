"""Seeds, thread counts, code version and content fingerprints: what makes a result reproducible."""

from __future__ import annotations

import hashlib
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
    """Pin torch and BLAS threads. An unpinned BLAS on 2 cores costs an order of magnitude."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
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
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def hash_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
