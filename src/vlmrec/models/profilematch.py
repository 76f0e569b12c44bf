"""ProfileMatch (VLM4Rec): training-free content matching.

p_u = sum_{i in H_u} w_ui x_i / sum w_ui   (x_i: L2-normalised item embedding; several FeatureSets
                                           are normalised and concatenated)
score(u, j) = cos(p_u, x_j)
Weights: `mean` w = 1; `last` the user's last N train items (by timestamp when known);
`recency` w = decay^(age rank), newest item rank 0.
Cold item (no training interaction): scored like any item, cos(p_u, x_j) from its features.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from vlmrec.models.base import FactorModel
from vlmrec.models.content import concat_normalised, l2_rows
from vlmrec.models.registry import register

Aggregation = Literal["mean", "last", "recency"]


@register("profilematch")
class ProfileMatch(FactorModel):
    uses_features = True

    def __init__(
        self,
        aggregation: Annotated[
            Aggregation,
            Field(description="user profile: mean of the history, its last N items, or recency-weighted"),
        ] = "mean",
        last_n: Annotated[int, Field(ge=1, description="history items used by aggregation=last")] = 5,
        decay: Annotated[
            float,
            Field(
                ge=0, le=1, description="aggregation=recency: weight decay ** (age rank), newest item rank 0"
            ),
        ] = 0.8,
    ) -> None:
        self.aggregation = aggregation
        self.last_n = last_n
        self.decay = decay

    def fit(self, dataset, features=None, *, seed=0, validator=None):
        x = l2_rows(concat_normalised(self._require_features(features, dataset)))
        train = dataset.train
        order = ["user", "timestamp"] if "timestamp" in train.columns else ["user"]
        train = train.sort_values(order, kind="stable")
        users = train["user"].to_numpy()
        items = train["item"].to_numpy()
        # rank from the newest: 0 = last interaction of the user
        size = np.bincount(users, minlength=dataset.n_users)
        pos = train.groupby("user", sort=False).cumcount().to_numpy()
        age = size[users] - 1 - pos
        if self.aggregation == "mean":
            w = np.ones(len(items), np.float32)
        elif self.aggregation == "last":
            w = (age < self.last_n).astype(np.float32)
        else:
            w = (self.decay**age).astype(np.float32)
        profiles = np.zeros((dataset.n_users, x.shape[1]), np.float32)
        np.add.at(profiles, users, w[:, None] * x[items])
        self.user_factors_ = l2_rows(profiles)
        self.item_factors_ = x
        return self
