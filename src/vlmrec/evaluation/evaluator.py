"""Full-ranking evaluation: every model ranks the whole catalogue, the same way.

The evaluator, not the model, masks items the user already interacted with (train, and valid
when evaluating on test) and takes the top-K with `torch.topk` on batched score blocks.

Ties are broken deterministically: higher score first, then the lower item index. So top-10 is
always a prefix of top-20 and a metric at K does not depend on which other cutoffs were asked for
(`torch.topk` alone promises no order among equal scores). NaN scores rank below every number.
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
        """Top-k item ids per user after masking seen items (users x k), ties by lowest index."""
        scores = torch.as_tensor(np.asarray(model.score(users), dtype=np.float32))
        mask_rows(scores, self.exclude, users)
        return stable_topk(scores, k).numpy()

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


def stable_topk(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k highest scores per row, ordered by score (descending) then item index.

    `torch.topk` on k + 1 finds the top-k set; a row whose k-th and (k+1)-th scores differ has
    an unambiguous set, which is then ordered by (score desc, index asc) with a stable sort on
    k items. Only rows with a tie straddling the cutoff take the exact path: the items above the
    k-th score, then the lowest-index items equal to it. NaN scores are treated as -inf.
    `scores` (a CPU tensor) may be modified in place.
    """
    n_rows, n_items = scores.shape
    k = min(k, n_items)
    if k == 0 or n_rows == 0:
        return torch.empty((n_rows, k), dtype=torch.int64)
    if k < n_items:
        vals, idx = torch.topk(scores, k + 1, dim=1)
        # topk ranks NaN above everything, so a row with a NaN shows one in its top values
        nan_rows = torch.nonzero(torch.isnan(vals).any(dim=1)).flatten()
        if len(nan_rows):
            block = scores[nan_rows]
            block.masked_fill_(torch.isnan(block), -torch.inf)
            scores[nan_rows] = block
            vals[nan_rows], idx[nan_rows] = torch.topk(block, k + 1, dim=1)
        ambiguous = torch.nonzero(vals[:, k - 1] == vals[:, k]).flatten().tolist()
        idx = idx[:, :k].clone()
        if ambiguous:
            # a tie straddles the cutoff: keep the items above the k-th score, then fill up
            # with the lowest-index items equal to it (numpy row by row: no B x N temporaries)
            top_vals, top_idx, full = vals.numpy(), idx.numpy(), scores.numpy()
            for r in ambiguous:
                cut = top_vals[r, k - 1]
                above = top_idx[r][top_vals[r, :k] > cut]
                tied = np.flatnonzero(full[r] == cut)[: k - len(above)]
                top_idx[r, : len(above)] = above
                top_idx[r, len(above) :] = tied
    else:
        scores.masked_fill_(torch.isnan(scores), -torch.inf)
        idx = torch.arange(n_items).expand(n_rows, n_items)
    idx = torch.sort(idx, dim=1).values  # index ascending, so the stable sort keeps ties in index order
    order = torch.sort(torch.gather(scores, 1, idx), dim=1, descending=True, stable=True).indices
    return torch.gather(idx, 1, order)


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
