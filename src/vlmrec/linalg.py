"""Small array helpers that every stage may use (numpy only, no vlmrec imports): the one row
L2-normalisation of features, content models, attribute clustering and the serving index."""

from __future__ import annotations

import numpy as np


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows (the last axis) scaled to unit L2 norm, as float32; all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), np.float32(1e-12))
