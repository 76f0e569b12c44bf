"""MostPop and Random: the floors every other model must clear."""

from __future__ import annotations

import numpy as np

from vlmrec.models.base import Recommender
from vlmrec.models.cold import cold_items_of, demote_cold_scores
from vlmrec.models.registry import register


@register("mostpop")
class MostPop(Recommender):
    """Score = number of training interactions of the item, same for every user.

    Cold item (no training interaction): the lowest score, below every warm item."""

    def fit(self, dataset, features=None, *, seed=0, validator=None):
        self.popularity_ = np.asarray(dataset.matrix("train").sum(0), dtype=np.float32).ravel()
        self.cold_items_ = cold_items_of(dataset)
        return self

    def score(self, user_ids):
        scores = np.broadcast_to(self.popularity_, (len(user_ids), len(self.popularity_))).copy()
        return demote_cold_scores(scores, self.cold_items_)


@register("random")
class RandomRec(Recommender):
    """Seeded random scores: a fixed random ranking per user (reproducible).

    Cold item: a random score like every other item (the floor, by design)."""

    def fit(self, dataset, features=None, *, seed=0, validator=None):
        self.seed_ = seed
        self.n_items_ = dataset.n_items
        return self

    def score(self, user_ids):
        out = np.empty((len(user_ids), self.n_items_), dtype=np.float32)
        for row, u in enumerate(np.asarray(user_ids)):
            out[row] = np.random.default_rng([self.seed_, int(u)]).random(self.n_items_)
        return out
