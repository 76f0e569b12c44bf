"""Helpers shared by models that read item content."""

from __future__ import annotations

import numpy as np

from vlmrec.features.featureset import FeatureSet


def l2_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def modality_matrices(features: list[FeatureSet]) -> list[np.ndarray]:
    """One float32 matrix per FeatureSet, in a stable (name) order."""
    return [np.asarray(fs.vectors, dtype=np.float32) for fs in sorted(features, key=lambda f: f.name)]


def concat_normalised(features: list[FeatureSet]) -> np.ndarray:
    """Row-L2-normalise each set, then concatenate (each modality weighs the same)."""
    return np.hstack([l2_rows(x) for x in modality_matrices(features)])
