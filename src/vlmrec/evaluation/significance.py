"""How sure a comparison is: paired tests over users, bootstrap intervals, Holm correction."""

from __future__ import annotations

import numpy as np
from scipy import stats

from vlmrec.errors import ConfigError, DataError


def paired_test(a: np.ndarray, b: np.ndarray, method: str = "wilcoxon") -> float:
    """Two-sided p-value that paired per-user values a and b differ."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape:
        raise DataError("paired samples must have the same shape (same users, same order)")
    diff = a - b
    if not np.any(diff):
        return 1.0
    if method == "wilcoxon":
        return float(stats.wilcoxon(a, b, zero_method="wilcox").pvalue)
    if method == "ttest":
        return float(stats.ttest_rel(a, b).pvalue)
    raise ConfigError(f"unknown test {method!r}; choose 'wilcoxon' or 'ttest'")


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
