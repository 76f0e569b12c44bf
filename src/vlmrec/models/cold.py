"""The cold-item rule shared by the models.

A cold item has no training interaction. A model that cannot know anything about it (an ID-only
model) gives it the lowest score, below every warm item, never an untrained random value; cold
items tie among themselves and the evaluator orders ties by item index. Content models score it
from its features instead (each model's docstring says how; docs/cold_start.md has the table).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vlmrec.data.dataset import Dataset


def cold_items_of(dataset: Dataset) -> np.ndarray:
    """Item ids (int64, ascending) with no interaction in the training split."""
    train = dataset.matrix("train")
    return np.flatnonzero(np.bincount(train.indices, minlength=dataset.n_items) == 0).astype(np.int64)


def demote_cold_scores(scores: np.ndarray, cold: np.ndarray) -> np.ndarray:
    """`scores` (users x items) with the cold columns set below every warm score of their row
    (in place; returned). The value is finite: masked items (-inf) stay below it."""
    if not len(cold) or not scores.size:
        return scores
    warm = np.ones(scores.shape[1], dtype=bool)
    warm[cold] = False
    if warm.any():
        floor = np.nanmin(np.where(np.isfinite(scores[:, warm]), scores[:, warm], np.inf), axis=1)
        floor = np.where(np.isfinite(floor), floor, 0.0)
    else:
        floor = np.zeros(len(scores))
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
