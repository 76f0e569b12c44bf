"""The cold-item rule shared by the models.

A cold item has no training interaction. A model that cannot know anything about it (an ID-only
model) gives it the lowest score, below every warm item, never an untrained random value; cold
items tie among themselves and the evaluator orders ties by item index. Content models score it
from its features instead (each model's docstring says how; docs/cold_start.md has the table).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from vlmrec.data.dataset import Dataset
from vlmrec.linalg import l2_normalise


def cold_items_of(dataset: Dataset) -> np.ndarray:
    """Item ids (int64, ascending) with no interaction in the training split."""
    train = dataset.matrix("train")
    return np.flatnonzero(np.bincount(train.indices, minlength=dataset.n_items) == 0).astype(np.int64)


def demote_cold_scores(scores: np.ndarray, cold: np.ndarray) -> np.ndarray:
    """`scores` (users x items) with the cold columns set below every warm score of their row
    (in place; returned). The value is finite: masked items (-inf) stay below it."""
    if not len(cold) or not scores.size:
        return scores
    if len(cold) == scores.shape[1]:
        scores[:] = -1.0
        return scores
    # in place, no copy of the users x items block (this runs on every scored batch): the cold
    # columns are overwritten anyway, so they first hold +inf and drop out of the minimum;
    # fmin skips NaN
    scores[:, cold] = np.inf
    floor = np.fmin.reduce(scores, axis=1)
    odd = np.flatnonzero(~np.isfinite(floor))  # a row whose warm minimum is -inf (or no finite score)
    if len(odd):
        warm = np.ones(scores.shape[1], dtype=bool)
        warm[cold] = False
        block = scores[np.ix_(odd, np.flatnonzero(warm))]
        finite = np.where(np.isfinite(block), block, np.inf).min(axis=1)
        floor[odd] = np.where(np.isfinite(finite), finite, 0.0)
    scores[:, cold] = (floor - 1.0 - np.abs(floor))[:, None].astype(scores.dtype)
    return scores


def demote_cold_factors(user: Any, item: Any, cold: np.ndarray) -> tuple[Any, Any]:
    """Factor matrices (numpy or torch) whose dot product ranks every cold item below every warm
    one: the cold items' rows are zeroed and one column is appended, 1 for every user and -B for
    a cold item (0 for a warm one), with B = max ||p_u|| * max ||q_i|| + 1 > any |<p_u, q_i>|.
    Warm scores are unchanged; every cold item scores -B (ties ordered by item index)."""
    import torch

    if isinstance(user, torch.Tensor):
        item = item.clone()
        item[torch.as_tensor(cold, device=item.device)] = 0
        bound = float(user.norm(dim=1).max()) * float(item.norm(dim=1).max()) + 1.0
        extra = torch.zeros(len(item), 1, dtype=item.dtype, device=item.device)
        extra[torch.as_tensor(cold, device=item.device)] = -bound
        ones = torch.ones(len(user), 1, dtype=user.dtype, device=user.device)
        return torch.cat([user, ones], 1), torch.cat([item, extra], 1)
    item_np = np.array(item, copy=True)
    item_np[cold] = 0
    bound = float(np.linalg.norm(user, axis=1).max()) * float(np.linalg.norm(item_np, axis=1).max()) + 1.0
    extra_np = np.zeros((len(item_np), 1), dtype=item_np.dtype)
    extra_np[cold] = -bound
    return np.hstack([user, np.ones((len(user), 1), user.dtype)]), np.hstack([item_np, extra_np])


# ---- an option of the graph models: cold items from their warm content neighbours ----------

#: how many warm neighbours score a cold item under `cold_items="neighbours"`
COLD_NEIGHBOURS = 10

ColdRule = Annotated[
    Literal["reference", "neighbours"],
    Field(
        description="how a cold item is scored: the reference model's own rule (default), or the "
        "similarity-weighted mean of the final embeddings of its 10 most content-similar warm items"
    ),
]


def warm_neighbour_weights(
    features: list[np.ndarray], cold: np.ndarray, k: int = COLD_NEIGHBOURS, block: int = 1024
) -> sp.csr_matrix:
    """(len(cold) x n_items) weights: row r holds the k warm items most similar to cold item
    cold[r] by content (cosine of each modality's features, averaged over modalities), weighted by
    their positive similarity and summing to 1. A cold item with no positively similar warm item
    has an empty row (it keeps the reference rule). Blocks of `block` cold items bound memory."""
    n_items = len(features[0])
    warm = np.ones(n_items, dtype=bool)
    warm[cold] = False
    normed = [l2_normalise(x) for x in features]
    k = min(k, int(warm.sum()))
    rows, cols, vals = [], [], []
    for start in range(0, len(cold), block):
        part = cold[start : start + block]
        sim = sum(x[part] @ x.T for x in normed) / len(normed)
        sim[:, ~warm] = -np.inf
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k] if k > 0 else np.empty((len(part), 0), int)
        top_sim = np.take_along_axis(sim, top, axis=1)
        keep = top_sim > 0
        r = np.repeat(np.arange(start, start + len(part)), k).reshape(len(part), k)
        rows.append(r[keep])
        cols.append(top[keep])
        vals.append(top_sim[keep])
    weights = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(len(cold), n_items)
    )
    sums = np.asarray(weights.sum(1)).ravel()
    inv = np.where(sums > 0, 1.0 / np.where(sums > 0, sums, 1.0), 0.0)
    return (sp.diags(inv) @ weights).tocsr().astype(np.float32)


class NeighbourCold:
    """The `cold_items` option of a graph model: with "neighbours", a cold item's final embedding
    is the weighted mean of its warm content neighbours' final embeddings (`warm_neighbour_weights`),
    applied after the model's reference cold rule; "reference" changes nothing."""

    cold_items: str = "reference"
    cold_weights_: sp.csr_matrix | None = None

    def _prepare_cold_neighbours(self, features: list[np.ndarray], cold: np.ndarray) -> None:
        """Build the cold items' neighbour weights (fit time; only under "neighbours")."""
        use = self.cold_items == "neighbours" and len(cold) > 0
        self.cold_weights_ = warm_neighbour_weights(features, cold) if use else None

    def _neighbour_cold(self, user: Any, item: Any, cold: np.ndarray) -> tuple[Any, Any]:
        """(user, item) with each cold item that has warm neighbours re-embedded from them."""
        if self.cold_weights_ is None:
            return user, item
        import torch

        has = np.flatnonzero(np.diff(self.cold_weights_.indptr) > 0)
        if not len(has):
            return user, item
        from vlmrec.models.graph import to_torch_sparse

        w = to_torch_sparse(self.cold_weights_[has], item.device)
        item = item.clone()
        item[torch.as_tensor(cold[has], device=item.device)] = torch.sparse.mm(w, item)
        return user, item
