"""Evaluation segments and beyond-accuracy metrics.

Segments split a test user's relevant items by a property of the item, always from the
*training* split (so they apply to any split, `cold-items` or not):

- `warm` / `cold` (group "cold"): whether the item has at least one training interaction.
  `cold_only` (also group "cold"): the same cold items, ranked among the cold items alone (every
  warm item masked), so a model whose cold items never reach the top-K of the whole catalogue
  still shows whether it orders the cold items well.
- `head` / `torso` / `tail` (group "popularity"): the item's number of training interactions
  c_i. Items are ranked by c_i (descending); with T the training interactions in all,
  `head_min_count` is the count of the item at which the running total first reaches T/3 and
  `torso_min_count` the count at which it first reaches 2T/3. head = c_i >= head_min_count,
  torso = torso_min_count <= c_i < head_min_count, tail = the rest (cold items included). A
  bucket depends only on an item's count, so tied items always share a bucket (with heavy ties a
  bucket can hold more or less than a third of the interactions; the shares are recorded).

A user contributes to a segment only when at least one of their relevant items belongs to it;
the metric is then computed with relevance restricted to those items, while the ranking is still
over the whole catalogue (the same top-K list as segment "all").

Beyond-accuracy metrics (segment "all" only):
  coverage@k   = |union over evaluated users of their top-k| / n_items   (one value per run:
                 set-level, it has no per-user values)
  novelty@k    = mean over the user's top-k of -log2(max(pop_i, 1) / n_train_users), pop_i the
                 number of training users of item i (a cold item counts as seen once, so its
                 self-information is finite: log2(n_train_users))
  tail_share@k = share of the user's top-k that are tail items (the popularity rule above)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import scipy.sparse as sp

SegmentGroup = Literal["popularity", "cold"]
SEGMENT_GROUPS: tuple[str, ...] = ("popularity", "cold")
Segment = Literal["all", "warm", "cold", "cold_only", "head", "torso", "tail"]
#: the segments each group adds; "cold_only" ranks cold items among cold items (see the evaluator)
SEGMENTS: dict[str, tuple[str, ...]] = {
    "cold": ("warm", "cold", "cold_only"),
    "popularity": ("head", "torso", "tail"),
}
BEYOND_METRICS: tuple[str, ...] = ("coverage", "novelty", "tail_share")
SET_METRICS: tuple[str, ...] = ("coverage",)  # one value per run, no per-user values


def item_train_counts(train: sp.csr_matrix) -> np.ndarray:
    """Training interactions per item (int64, n_items)."""
    return np.bincount(train.indices, minlength=train.shape[1]).astype(np.int64)


def popularity_thresholds(counts: np.ndarray) -> tuple[int, int]:
    """(head_min_count, torso_min_count) of the rule in the module docstring."""
    total = int(counts.sum())
    if total == 0:
        return 1, 1
    ordered = np.sort(counts)[::-1]
    running = np.cumsum(ordered)
    head_min = int(ordered[np.searchsorted(running, total / 3.0, side="left")])
    torso_min = int(ordered[np.searchsorted(running, 2.0 * total / 3.0, side="left")])
    return max(head_min, 1), max(min(torso_min, head_min), 1)


def item_segments(train: sp.csr_matrix, groups: Sequence[str]) -> dict[str, np.ndarray]:
    """Boolean item masks (n_items) of every segment of the requested groups."""
    counts = item_train_counts(train)
    out: dict[str, np.ndarray] = {}
    if "cold" in groups:
        out["warm"] = counts > 0
        out["cold"] = counts == 0
    if "popularity" in groups:
        head_min, torso_min = popularity_thresholds(counts)
        out["head"] = counts >= head_min
        out["torso"] = (counts >= torso_min) & (counts < head_min)
        out["tail"] = counts < torso_min
    return out


def segment_info(train: sp.csr_matrix, groups: Sequence[str]) -> dict:
    """What the segments were, for run.json (`evaluation.segments`): rule, thresholds, sizes."""
    counts = item_train_counts(train)
    total = max(int(counts.sum()), 1)
    info: dict = {"requested": list(groups)}
    masks = item_segments(train, ("cold", "popularity"))
    if "cold" in groups:
        info["cold"] = {
            "rule": "cold = no training interaction",
            "items": {s: int(masks[s].sum()) for s in ("warm", "cold")},
        }
    if "popularity" in groups:
        head_min, torso_min = popularity_thresholds(counts)
        info["popularity"] = {
            "rule": "items by training count; head/torso/tail cut where the running total of "
            "training interactions reaches 1/3 and 2/3 (tail includes cold items)",
            "head_min_count": head_min,
            "torso_min_count": torso_min,
            "items": {s: int(masks[s].sum()) for s in ("head", "torso", "tail")},
            "interaction_share": {
                s: float(counts[masks[s]].sum() / total) for s in ("head", "torso", "tail")
            },
        }
    return info


def novelty_weights(train: sp.csr_matrix) -> np.ndarray:
    """Self-information -log2(max(pop_i, 1) / n_train_users) of every item (float64)."""
    n_train_users = max(int((np.diff(train.indptr) > 0).sum()), 1)
    pop = np.maximum(item_train_counts(train), 1)
    return -np.log2(pop / n_train_users)


def beyond_metrics(
    top: np.ndarray, ks: list[int], metrics: tuple[str, ...], novelty: np.ndarray, tail: np.ndarray
) -> dict[tuple[str, int], np.ndarray]:
    """Per-user novelty@k and tail_share@k of a batch of top lists (users x max_k item ids)."""
    out: dict[tuple[str, int], np.ndarray] = {}
    if not len(top):
        return out
    nov = novelty[top]
    is_tail = tail[top].astype(np.float64)
    for k in ks:
        if "novelty" in metrics:
            out[("novelty", k)] = nov[:, :k].mean(1)
        if "tail_share" in metrics:
            out[("tail_share", k)] = is_tail[:, :k].mean(1)
    return out
