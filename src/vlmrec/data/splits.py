"""Seeded train/validation/test splits of a cleaned interactions table."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from vlmrec.errors import ConfigError

SplitMethod = Literal["random", "loo", "temporal"]
SPLIT_METHODS = ("random", "loo", "temporal")


def split_interactions(
    df: pd.DataFrame,
    method: str = "random",
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 42,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split into (train, valid, test).

    random: per user, a seeded shuffle cut by `ratios` (at least one train item per user).
    loo: per user by time, last item -> test, second last -> validation (needs timestamps).
    temporal: one global time cut by `ratios` over all interactions.
    """
    if method not in SPLIT_METHODS:
        raise ConfigError(f"split: unknown method {method!r}; choose one of {SPLIT_METHODS}")
    if len(ratios) != 3 or abs(sum(ratios) - 1.0) > 1e-6 or min(ratios) < 0:
        raise ConfigError(f"split ratios {ratios}: expected three non-negative numbers summing to 1")
    if method in ("loo", "temporal") and "timestamp" not in df.columns:
        raise ConfigError(f"split {method!r} needs a timestamp column; use 'random' instead")
    df = df.reset_index(drop=True)
    part = np.zeros(len(df), dtype=np.int8)  # 0 train, 1 valid, 2 test
    if method == "temporal":
        order = np.argsort(df["timestamp"].to_numpy(), kind="stable")
        n = len(df)
        n_train = int(round(ratios[0] * n))
        n_valid = int(round(ratios[1] * n))
        part[order[n_train : n_train + n_valid]] = 1
        part[order[n_train + n_valid :]] = 2
    else:
        rng = np.random.default_rng(seed)
        if method == "random":
            # A random key per row, then rank within user: one vectorised seeded shuffle.
            key = rng.random(len(df))
            ranked = df.assign(_k=key).sort_values(["user_id", "_k"], kind="stable")
        else:
            ranked = df.assign(_k=df["timestamp"]).sort_values(["user_id", "_k"], kind="stable")
        pos = ranked.groupby("user_id", sort=False).cumcount().to_numpy()
        size = ranked.groupby("user_id", sort=False)["item_id"].transform("size").to_numpy()
        if method == "random":
            n_train = np.maximum(1, np.round(ratios[0] * size)).astype(int)
            n_valid = np.round(ratios[1] * size).astype(int)
            n_valid = np.minimum(n_valid, size - n_train)
            p = np.where(pos < n_train, 0, np.where(pos < n_train + n_valid, 1, 2))
        else:
            # leave-one-out: last -> test, second last -> valid, only if the user keeps a train item
            p = np.where(pos == size - 1, 2, np.where(pos == size - 2, 1, 0))
            p = np.where(size >= 3, p, np.where((size == 2) & (pos == 1), 2, 0))
        part[ranked.index.to_numpy()] = p
    cols = [c for c in df.columns if not c.startswith("_")]
    return tuple(df.loc[part == k, cols].reset_index(drop=True) for k in range(3))  # type: ignore[return-value]
