"""Helpers shared by models that read item content."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vlmrec.features.featureset import FeatureSet
from vlmrec.linalg import l2_normalise

l2_rows = l2_normalise
"""Rows scaled to unit L2 norm (`vlmrec.linalg.l2_normalise`, under the name the models use)."""


def modality_matrices(features: list[FeatureSet]) -> list[np.ndarray]:
    """One float32 matrix per FeatureSet, in a stable (name) order."""
    return [np.asarray(fs.vectors, dtype=np.float32) for fs in sorted(features, key=lambda f: f.name)]


def image_first(features: list[FeatureSet]) -> list[FeatureSet]:
    """The sets with the image ones (manifest `modality == "image"`) first, each group in name
    order: for models whose modalities play different roles (MMRec's v before t), so that the
    roles follow the content, not the names (`bert`/`clip` would otherwise put text first).
    `modality_matrices` keeps its name order for the models that do not depend on it."""
    return sorted(features, key=lambda f: (str(f.manifest.get("modality", "")) != "image", f.name))


def image_first_matrices(features: list[FeatureSet]) -> list[np.ndarray]:
    """One float32 matrix per FeatureSet, in `image_first` order."""
    return [np.asarray(fs.vectors, dtype=np.float32) for fs in image_first(features)]


def concat_normalised(features: list[FeatureSet]) -> np.ndarray:
    """Row-L2-normalise each set, then concatenate (each modality weighs the same)."""
    return np.hstack([l2_rows(x) for x in modality_matrices(features)])


class MultimodalNet(nn.Module):
    """The parameters LATTICE, FREEDOM and BM3 share: user and item ID embeddings
    (Xavier-uniform), the raw item features as parameters (trainable by default, as in the
    references) and one linear projection per modality."""

    def __init__(
        self, n_users: int, mats: list[np.ndarray], dim: int, project_dim: int, train_features: bool
    ) -> None:
        super().__init__()
        n_items = mats[0].shape[0]
        self.user = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_users, dim)))
        self.item = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_items, dim)))
        # torch.tensor copies: training must not edit the FeatureSet's vectors
        self.features = nn.ParameterList(
            [nn.Parameter(torch.tensor(x), requires_grad=train_features) for x in mats]
        )
        self.project = nn.ModuleList([nn.Linear(x.shape[1], project_dim) for x in mats])
