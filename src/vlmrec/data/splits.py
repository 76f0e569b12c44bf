"""Seeded train/validation/test splits of a cleaned interactions table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from vlmrec.errors import ConfigError

SplitMethod = Literal["random", "loo", "temporal", "cold-items"]
SPLIT_METHODS = ("random", "loo", "temporal", "cold-items")


def split_interactions(
    df: pd.DataFrame,
    method: str = "random",
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 42,
    cold_fraction: float = 0.2,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split into (train, valid, test) DataFrames with the columns of `df`.

    random: per user, a seeded shuffle cut into train / valid / test by `ratios`:
        n_train = round-half-up(r_train * n), n_valid = round-half-down(r_valid * n), and the
        test split takes the rest; then clipped so that **every user with n >= 3 interactions
        keeps at least one train, one validation and one test item** (a split whose ratio is 0
        is left empty). Users with 2 interactions get one train and one test item (one train
        and one validation item when r_test is 0); users with 1 interaction are train only.
        With (0.8, 0.1, 0.1): n=3 -> 1/1/1, 5 -> 3/1/1, 7 -> 5/1/1, 10 -> 8/1/1, 20 -> 16/2/2.
    loo: per user by time, last item -> test, second last -> validation (needs timestamps);
        the same coverage rule (n >= 3: train, valid and test; n = 2: train + test; n = 1: train).
    temporal: one global time cut by `ratios` over all interactions (needs timestamps). No
        per-user guarantee: a user active only before the cut has no validation or test item,
        and one who starts after it has no train item (build_dataset then drops those rows).
    cold-items: item cold-start, see `split_cold_items` (`cold_fraction` of the items held out
        of training; their interactions go to validation and test only).

    `Dataset.stats()` reports how many users each split covers (`vlmrec prepare` logs it).
    """
    if method not in SPLIT_METHODS:
        raise ConfigError(f"split: unknown method {method!r}; choose one of {SPLIT_METHODS}")
    if len(ratios) != 3 or abs(sum(ratios) - 1.0) > 1e-6 or min(ratios) < 0:
        raise ConfigError(f"split ratios {ratios}: expected three non-negative numbers summing to 1")
    if method in ("loo", "temporal") and "timestamp" not in df.columns:
        raise ConfigError(f"split {method!r} needs a timestamp column; use 'random' instead")
    if method == "cold-items":
        train, valid, test, _ = split_cold_items(df, cold_fraction, ratios, seed)
        return train, valid, test
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
            p = _random_cut(pos, size, ratios)
        else:
            # leave-one-out: last -> test, second last -> valid, only if the user keeps a train item
            p = np.where(pos == size - 1, 2, np.where(pos == size - 2, 1, 0))
            p = np.where(size >= 3, p, np.where((size == 2) & (pos == 1), 2, 0))
        part[ranked.index.to_numpy()] = p
    cols = [c for c in df.columns if not c.startswith("_")]
    return tuple(df.loc[part == k, cols].reset_index(drop=True) for k in range(3))


def _random_cut(pos: np.ndarray, size: np.ndarray, ratios: tuple[float, float, float]) -> np.ndarray:
    """Part (0 train, 1 valid, 2 test) of the row at shuffled position `pos` in a history of `size`."""
    eps = 1e-9  # r * n is inexact in binary (0.1 * 25): keep halves exactly half
    need_valid = int(ratios[1] > 0)
    need_test = int(ratios[2] > 0)
    n_train = np.floor(ratios[0] * size + 0.5 + eps).astype(np.int64)
    n_train = np.clip(n_train, 1, np.maximum(1, size - need_valid - need_test))
    n_valid = np.ceil(ratios[1] * size - 0.5 - eps).astype(np.int64)
    rest = size - n_train
    test_first = np.minimum(need_test, rest)  # with too few items, test keeps its item first
    n_valid = np.clip(n_valid, np.minimum(need_valid, rest - test_first), rest - test_first)
    if not need_test:
        n_valid = rest
    return np.where(pos < n_train, 0, np.where(pos < n_train + n_valid, 1, 2))


@dataclass(frozen=True)
class ColdItems:
    """The items `split_cold_items` held out of training (original item ids, sorted)."""

    valid: list[str]
    test: list[str]

    @property
    def all(self) -> list[str]:
        return sorted(self.valid + self.test)


def split_cold_items(
    df: pd.DataFrame,
    cold_fraction: float = 0.2,
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 42,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, ColdItems]:
    """Item cold-start split: (train, valid, test, cold items).

    1. Exactly n_cold = round-half-up(cold_fraction * n_items) of the distinct items are drawn
       (seeded, uniformly, without replacement); they never appear in training: no ID
       embedding is trained for them, no graph edge and no popularity.
    2. The cold items are split **per item** into two disjoint halves: the first
       floor(n_cold / 2) of the seeded draw are validation-cold items (every interaction with
       them goes to validation), the rest test-cold items (every interaction goes to test). So
       model selection never sees a test-cold item, and no cold item appears in both.
    3. The interactions with the other (warm) items are split by the `random` rule with
       `ratios` (`split_interactions`), so a warm test item is also evaluated and the warm and
       cold segments of one test split can be compared (`mixed` evaluation).

    Coverage: the per-user guarantees of the random rule hold for each user's *warm*
    interactions (n_warm >= 3: one train, one validation and one warm test item). Exceptions:
    a user whose interactions are all with cold items has no train item and is dropped by
    `build_dataset`; a user with 1 or 2 warm interactions may have no warm validation/test item
    but can still have cold ones.
    """
    if not 0.0 < cold_fraction < 1.0:
        raise ConfigError(f"cold_fraction {cold_fraction}: expected a number strictly between 0 and 1")
    df = df.reset_index(drop=True)
    items = np.array(sorted(df["item_id"].astype(str).unique()), dtype=object)
    n_cold = int(np.floor(cold_fraction * len(items) + 0.5))
    n_cold = min(max(n_cold, 1), len(items) - 1)
    rng = np.random.default_rng(seed)
    drawn = items[rng.permutation(len(items))[:n_cold]]
    cold = ColdItems(valid=sorted(drawn[: n_cold // 2]), test=sorted(drawn[n_cold // 2 :]))
    ids = df["item_id"].astype(str)
    to_valid = ids.isin(cold.valid).to_numpy()
    to_test = ids.isin(cold.test).to_numpy()
    warm = df[~(to_valid | to_test)]
    train, valid, test = split_interactions(warm, "random", ratios, seed)
    valid = pd.concat([valid, df[to_valid]], ignore_index=True)
    test = pd.concat([test, df[to_test]], ignore_index=True)
    return train, valid, test, cold
