"""Full-ranking evaluation: every model ranks the whole catalogue, the same way.

The evaluator, not the model, masks items the user already interacted with (train, and valid
when evaluating on test) and takes the top-K with `torch.topk` on batched score blocks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from vlmrec.data.dataset import Dataset
from vlmrec.evaluation.metrics import METRICS, ranking_metrics

log = logging.getLogger(__name__)


class Scorer(Protocol):
    def score(self, user_ids: np.ndarray) -> np.ndarray: ...


@dataclass
class EvalResult:
    per_user: pd.DataFrame  # columns user, metric, k, value

    def summary(self) -> pd.DataFrame:
        return self.per_user.groupby(["metric", "k"], as_index=False)["value"].mean()

    def mean(self, metric: str, k: int) -> float:
        sel = self.per_user[(self.per_user["metric"] == metric) & (self.per_user["k"] == k)]
        return float(sel["value"].mean()) if len(sel) else float("nan")


class Evaluator:
    """Evaluate any Scorer on one split of a Dataset.

    split="valid" masks train items; split="test" masks train and valid items (`mask` overrides,
    e.g. ("train",) to reproduce toolkits that leave validation items unmasked). Users with no
    relevant item in the split are skipped (they carry no signal).
    """

    def __init__(
        self,
        dataset: Dataset,
        split: str = "test",
        ks: Sequence[int] = (10, 20),
        metrics: Sequence[str] = METRICS,
        batch_size: int = 512,
        users: np.ndarray | None = None,
        mask: Sequence[str] | None = None,
    ):
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; choose from {METRICS}")
        self.dataset = dataset
        self.split = split
        self.ks = sorted(set(int(k) for k in ks))
        self.metrics = tuple(metrics)
        self.batch_size = batch_size
        self.target = dataset.matrix(split)
        # default: everything the user interacted with before the evaluated split
        mask = mask if mask is not None else (("train", "valid") if split == "test" else ("train",))
        exclude = dataset.matrix(mask[0]) if mask else sp.csr_matrix(self.target.shape, dtype=np.float32)
        for s in mask[1:]:
            exclude = exclude + dataset.matrix(s)
        self.exclude = exclude.tocsr()
        n_rel = np.diff(self.target.indptr)
        candidates = np.flatnonzero(n_rel > 0)
        self.users = candidates if users is None else np.intersect1d(candidates, users)

    def topk(self, model: Scorer, users: np.ndarray, k: int) -> np.ndarray:
        """Top-k item ids per user after masking seen items (users x k)."""
        scores = torch.as_tensor(np.asarray(model.score(users), dtype=np.float32))
        mask_rows(scores, self.exclude, users)
        return torch.topk(scores, k=min(k, scores.shape[1]), dim=1).indices.numpy()

    def evaluate(self, model: Scorer) -> EvalResult:
        max_k = max(self.ks)
        frames = []
        for start in range(0, len(self.users), self.batch_size):
            users = self.users[start : start + self.batch_size]
            top = self.topk(model, users, max_k)
            target = self.target[users]
            hits = _lookup(target, top)
            n_rel = np.diff(target.indptr)
            values = ranking_metrics(hits, n_rel, self.ks, self.metrics)
            for (m, k), v in values.items():
                frames.append(pd.DataFrame({"user": users, "metric": m, "k": k, "value": v}))
        per_user = (
            pd.concat(frames, ignore_index=True)
            if frames
            else pd.DataFrame(columns=["user", "metric", "k", "value"])
        )
        return EvalResult(per_user)


def mask_rows(scores: torch.Tensor, seen: sp.csr_matrix, users: np.ndarray) -> None:
    """Set scores of seen items to -inf in place."""
    sub = seen[users]
    rows = np.repeat(np.arange(len(users)), np.diff(sub.indptr))
    if len(rows):
        scores[torch.as_tensor(rows), torch.as_tensor(sub.indices.astype(np.int64))] = -torch.inf


def _lookup(target: sp.csr_matrix, top: np.ndarray) -> np.ndarray:
    """hits[u, r] = top[u, r] is in the user's target row."""
    hits = np.zeros(top.shape, dtype=bool)
    for row in range(top.shape[0]):
        rel = target.indices[target.indptr[row] : target.indptr[row + 1]]
        if len(rel):
            hits[row] = np.isin(top[row], rel)
    return hits
