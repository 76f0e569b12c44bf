"""Full-ranking evaluation: every model ranks the whole catalogue, the same way.

The evaluator, not the model, masks items the user already interacted with (train, and valid
when evaluating on test) and takes the top-K with `torch.topk` on batched score blocks.

Ties are broken deterministically: higher score first, then the lower item index. So top-10 is
always a prefix of top-20 and a metric at K does not depend on which other cutoffs were asked for
(`torch.topk` alone promises no order among equal scores). NaN scores rank below every number.

Segments (`segments=("cold", "popularity")`) and beyond-accuracy metrics (coverage, novelty,
tail_share) are defined in `vlmrec.evaluation.segments`; every per-user row carries a `segment`
("all" unless restricted to warm/cold/head/torso/tail items). Group "cold" adds a third segment,
"cold_only": the user's cold test items ranked among the cold items alone (every warm item
masked), beside "cold", where cold items compete with the whole catalogue.
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
from vlmrec.errors import ConfigError
from vlmrec.evaluation.metrics import METRICS, ranking_metrics
from vlmrec.evaluation.segments import (
    BEYOND_METRICS,
    SEGMENT_GROUPS,
    SET_METRICS,
    beyond_metrics,
    item_segments,
    novelty_weights,
    segment_info,
)

log = logging.getLogger(__name__)


class Scorer(Protocol):
    def score(self, user_ids: np.ndarray) -> np.ndarray: ...


PER_USER_COLUMNS = ["user", "metric", "k", "value", "segment"]
SET_COLUMNS = ["metric", "k", "value", "segment"]


@dataclass
class EvalResult:
    per_user: pd.DataFrame  # columns user, metric, k, value, segment
    set_level: pd.DataFrame | None = None  # metric, k, value, segment: metrics with no per-user value

    def summary(self) -> pd.DataFrame:
        """Mean per (metric, k, segment) of the per-user values, plus the set-level metrics."""
        per = self.per_user
        if "segment" not in per.columns:
            per = per.assign(segment="all")
        out = per.groupby(["metric", "k", "segment"], as_index=False)[["value"]].mean()
        if self.set_level is not None and len(self.set_level):
            out = pd.concat([out, self.set_level[SET_COLUMNS]], ignore_index=True)
        return out

    def mean(self, metric: str, k: int, segment: str = "all") -> float:
        pu = self.per_user
        sel = pu[(pu["metric"] == metric) & (pu["k"] == k)]
        if "segment" in pu.columns:
            sel = sel[sel["segment"] == segment]
        if not len(sel) and self.set_level is not None:
            sl = self.set_level
            sel = sl[(sl["metric"] == metric) & (sl["k"] == k) & (sl["segment"] == segment)]
        return float(sel["value"].mean()) if len(sel) else float("nan")


class Evaluator:
    """Evaluate any Scorer on one split of a Dataset.

    split="valid" masks train items; split="test" masks train and valid items (`mask` overrides,
    e.g. ("train",) to reproduce toolkits that leave validation items unmasked). Users with no
    relevant item in the split are skipped (they carry no signal).

    `metrics` may mix ranking metrics (METRICS) and beyond-accuracy ones (BEYOND_METRICS);
    `segments` (groups "cold", "popularity") adds rows per item segment for the ranking metrics.
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
        segments: Sequence[str] = (),
    ):
        unknown = [m for m in metrics if m not in METRICS + BEYOND_METRICS]
        if unknown:
            raise ConfigError(f"unknown metric(s) {unknown}; choose from {METRICS + BEYOND_METRICS}")
        bad = [g for g in segments if g not in SEGMENT_GROUPS]
        if bad:
            raise ConfigError(f"unknown segment group(s) {bad}; choose from {SEGMENT_GROUPS}")
        self.dataset = dataset
        self.split = split
        self.ks = sorted(set(int(k) for k in ks))
        self.metrics = tuple(m for m in metrics if m in METRICS)
        self.beyond = tuple(m for m in metrics if m in BEYOND_METRICS)
        self.segments = tuple(dict.fromkeys(segments))
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
        train = dataset.matrix("train")
        # item masks of the requested segments (tail also drives tail_share)
        self.item_segments = item_segments(train, self.segments)
        self.tail = item_segments(train, ("popularity",))["tail"]
        # "cold_only": cold test items ranked among the cold items alone (warm items masked), so
        # "no cold item reaches the top-K" is told apart from "the content carries no signal"
        cold = self.item_segments.get("cold")
        self.cold_only = cold if cold is not None and cold.any() else None
        self.novelty = novelty_weights(train)
        self.n_items = dataset.n_items

    @property
    def segment_info(self) -> dict:
        """The segment rules, thresholds and sizes (what run.json records)."""
        return segment_info(self.dataset.matrix("train"), self.segments)

    def topk(self, model: Scorer, users: np.ndarray, k: int) -> np.ndarray:
        """Top-k item ids per user after masking seen items (users x k), ties by lowest index."""
        return stable_topk(self._masked_scores(model, users), k).numpy()

    def _masked_scores(self, model: Scorer, users: np.ndarray) -> torch.Tensor:
        """The model's scores for `users` with their seen items at -inf."""
        scores = torch.as_tensor(np.asarray(model.score(users), dtype=np.float32))
        mask_rows(scores, self.exclude, users)
        return scores

    def evaluate(self, model: Scorer) -> EvalResult:
        max_k = max(self.ks)
        frames = []
        seen = {k: np.zeros(self.n_items, dtype=bool) for k in self.ks}  # for coverage@k
        for start in range(0, len(self.users), self.batch_size):
            users = self.users[start : start + self.batch_size]
            scores = self._masked_scores(model, users)
            top = stable_topk(scores, max_k).numpy()  # (turns NaN scores into -inf in place)
            target = self.target[users]
            hits = _lookup(target, top)
            n_rel = np.diff(target.indptr)
            if self.metrics:
                values = ranking_metrics(hits, n_rel, self.ks, self.metrics)
                frames += _rows(users, values, "all")
            for name, members in self.item_segments.items():
                # relevance restricted to the segment's items, ranking unchanged
                n_seg = np.asarray(target @ members.astype(np.float64)).ravel().astype(np.int64)
                keep = n_seg > 0
                if self.metrics and keep.any():
                    seg_hits = hits[keep] & members[top[keep]]
                    values = ranking_metrics(seg_hits, n_seg[keep], self.ks, self.metrics)
                    frames += _rows(users[keep], values, name)
            if self.cold_only is not None and self.metrics:
                frames += self._cold_only_rows(scores, users, target, max_k)
            if self.beyond:
                frames += _rows(
                    users, beyond_metrics(top, self.ks, self.beyond, self.novelty, self.tail), "all"
                )
                for k in self.ks:
                    seen[k][top[:, :k].ravel()] = True
        per_user = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PER_USER_COLUMNS)
        set_rows = [
            {"metric": m, "k": k, "value": float(seen[k].sum() / max(self.n_items, 1)), "segment": "all"}
            for m in self.beyond
            if m in SET_METRICS
            for k in self.ks
        ]
        set_level = pd.DataFrame(set_rows, columns=SET_COLUMNS) if len(self.users) else None
        return EvalResult(per_user, set_level)

    def _cold_only_rows(
        self, scores: torch.Tensor, users: np.ndarray, target: sp.csr_matrix, max_k: int
    ) -> list[pd.DataFrame]:
        """Per-user metrics of segment "cold_only" for the users of a batch with a cold relevant
        item: warm items masked, relevance restricted to cold items."""
        assert self.cold_only is not None
        cold = self.cold_only
        n_cold = np.asarray(target @ cold.astype(np.float64)).ravel().astype(np.int64)
        keep = np.flatnonzero(n_cold > 0)
        if not len(keep):
            return []
        block = scores[torch.as_tensor(keep)]
        block[:, torch.as_tensor(~cold)] = -torch.inf
        top = stable_topk(block, max_k).numpy()
        hits = _lookup(target[keep], top) & cold[top]
        values = ranking_metrics(hits, n_cold[keep], self.ks, self.metrics)
        return _rows(users[keep], values, "cold_only")


def _rows(users: np.ndarray, values: dict[tuple[str, int], np.ndarray], segment: str) -> list[pd.DataFrame]:
    return [
        pd.DataFrame({"user": users, "metric": m, "k": k, "value": v, "segment": segment})
        for (m, k), v in values.items()
    ]


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
    """hits[u, r] = top[u, r] is in the user's target row (one sparse lookup, no Python loop)."""
    if not top.size:
        return np.zeros(top.shape, dtype=bool)
    rows = np.broadcast_to(np.arange(top.shape[0])[:, None], top.shape)
    return np.asarray(target[rows.ravel(), top.ravel()]).reshape(top.shape) != 0
