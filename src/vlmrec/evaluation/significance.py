"""How sure a comparison is: the paired bootstrap over users and seeds, Holm correction."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vlmrec.errors import DataError


def bootstrap_ci(
    values: np.ndarray, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean, seeded."""
    v = np.asarray(values, float)
    if len(v) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(1)
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))


def holm(pvalues: list[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (same order as given)."""
    p = np.asarray(pvalues, float)
    m = len(p)
    order = np.argsort(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, (m - rank) * p[idx])
        adjusted[idx] = min(1.0, running)
    return adjusted


@dataclass(frozen=True)
class PairedBootstrap:
    """Bootstrap distribution of a mean paired difference over users AND training seeds.

    `diffs[s, u]` is row minus reference for user u under training seed s (the same seed on both
    sides where the seeds are shared). The estimand is the mean over seeds and users. Each draw
    resamples users (with replacement) and, independently, seeds (with replacement): the
    two-way ("pigeonhole") bootstrap, so the interval carries both the test sample's noise and
    the training-seed noise. One set of draws gives both the p-value and every interval, and
    they agree by construction: the level-`a` interval excludes 0 exactly when `p < a`.
    """

    estimate: float
    draws: np.ndarray  # sorted bootstrap means, float64 (n_boot)
    n_seeds: int
    n_users: int

    @property
    def p_value(self) -> float:
        """Two-sided bootstrap p: twice the smaller share of draws on either side of 0 (<= 1)."""
        b = len(self.draws)
        at_or_below = int(np.searchsorted(self.draws, 0.0, side="right"))
        at_or_above = b - int(np.searchsorted(self.draws, 0.0, side="left"))
        return min(1.0, 2.0 * min(at_or_below, at_or_above) / b)

    def interval(self, alpha: float = 0.05) -> tuple[float, float]:
        """The two-sided (1 - alpha) percentile interval, by order statistics: with
        lo = ceil(B * alpha / 2), [draws[lo - 1], draws[B - lo]] (1-based: the lo-th smallest and
        the lo-th largest), which excludes 0 exactly when `p_value < alpha`."""
        b = len(self.draws)
        lo = min(max(math.ceil(b * alpha / 2), 1), b)
        return float(self.draws[lo - 1]), float(self.draws[b - lo])


def paired_bootstrap(
    diffs: np.ndarray, n_boot: int = 4000, seed: int = 0, max_block: int = 4_000_000
) -> PairedBootstrap:
    """The two-way bootstrap of `diffs` (seeds x users); see `PairedBootstrap`.

    Draws are made in blocks of at most `max_block` values, so memory stays bounded for any
    number of users (no n_boot x n_users matrix is held)."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.ndim == 1:
        d = d[None, :]
    if d.ndim != 2 or d.shape[1] == 0 or d.shape[0] == 0:
        raise DataError(f"paired_bootstrap needs a non-empty seeds x users array, got shape {d.shape}")
    if not np.isfinite(d).all():
        raise DataError("paired_bootstrap: the per-user differences hold NaN or infinite values")
    n_seeds, n_users = d.shape
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    block = max(1, max_block // n_users)
    for start in range(0, n_boot, block):
        b = min(block, n_boot - start)
        # seed weights: how often each seed is drawn (sums to n_seeds); users by index
        seed_counts = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=b)
        per_user = seed_counts @ d / n_seeds  # b x n_users: each draw's seed-resampled user values
        users = rng.integers(0, n_users, size=(b, n_users))
        draws[start : start + b] = np.take_along_axis(per_user, users, axis=1).mean(axis=1)
    draws.sort()
    return PairedBootstrap(float(d.mean()), draws, n_seeds, n_users)


def holm_levels(pvalues: list[float] | np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down procedure, with an interval level per hypothesis consistent with it.

    Returns (adjusted p-values, interval alphas). With the p-values sorted, the hypothesis of
    rank j (0-based) is tested at alpha / (m - j) until the first one that fails (rank j*);
    every later one shares j*'s level. So the interval at a hypothesis's level excludes 0
    exactly when Holm rejects it (adjusted p < alpha): before j*, p < alpha / (m - j); from
    j* on, p >= p(j*) >= alpha / (m - j*)."""
    p = np.asarray(pvalues, float)
    m = len(p)
    adjusted = holm(p) if m else np.empty(0)
    order = np.argsort(p, kind="stable")
    levels = np.empty(m)
    stop = m
    for rank, idx in enumerate(order):
        if stop == m and p[idx] >= alpha / (m - rank):
            stop = rank
        levels[idx] = alpha / (m - min(rank, stop))
    return adjusted, levels
