"""Top-K ranking metrics, vectorised over a batch of users.

Inputs: `hits` (users x K bool, hits[u, r] = the item at rank r is relevant) and `n_relevant`
(users,). Definitions (rank r from 0):
  recall@k    = sum_{r<k} hit_r / |rel|
  precision@k = sum_{r<k} hit_r / k
  hitrate@k   = 1[any hit in top k]
  ndcg@k      = sum_{r<k} hit_r / log2(r+2)  /  sum_{r<min(|rel|,k)} 1 / log2(r+2)
  mrr@k       = 1 / (first hit rank + 1), 0 without a hit in top k
  map@k       = sum_{r<k} hit_r * precision@(r+1) / min(|rel|, k)
"""

from __future__ import annotations

import numpy as np

from vlmrec.errors import ConfigError

METRICS = ("recall", "ndcg", "precision", "hitrate", "mrr", "map")


def ranking_metrics(
    hits: np.ndarray, n_relevant: np.ndarray, ks: list[int], metrics=METRICS
) -> dict[tuple[str, int], np.ndarray]:
    hits = np.asarray(hits, dtype=np.float64)
    n_rel = np.asarray(n_relevant, dtype=np.float64)
    max_k = hits.shape[1]
    discounts = 1.0 / np.log2(np.arange(2, max_k + 2))
    cum_hits = np.cumsum(hits, axis=1)
    ideal_cum = np.cumsum(discounts)
    out: dict[tuple[str, int], np.ndarray] = {}
    for k in ks:
        if k > max_k:
            raise ConfigError(f"k={k} exceeds the {max_k} ranked items")
        h = hits[:, :k]
        n_hit = cum_hits[:, k - 1]
        for m in metrics:
            if m == "recall":
                v = n_hit / n_rel
            elif m == "precision":
                v = n_hit / k
            elif m == "hitrate":
                v = (n_hit > 0).astype(np.float64)
            elif m == "ndcg":
                ideal = ideal_cum[np.minimum(n_rel, k).astype(int) - 1]
                v = (h * discounts[:k]).sum(1) / ideal
            elif m == "mrr":
                first = np.argmax(h > 0, axis=1)
                v = np.where(n_hit > 0, 1.0 / (first + 1), 0.0)
            elif m == "map":
                prec_at = cum_hits[:, :k] / np.arange(1, k + 1)
                v = (prec_at * h).sum(1) / np.minimum(n_rel, k)
            else:
                raise ConfigError(f"unknown metric {m!r}; choose from {METRICS}")
            out[(m, k)] = v
    return out
