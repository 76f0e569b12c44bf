import numpy as np
import pandas as pd
import pytest

from vlmrec.data.interactions import drop_duplicates, k_core, to_implicit
from vlmrec.data.splits import split_interactions
from vlmrec.errors import ConfigError


def test_duplicates_keep_latest():
    df = pd.DataFrame(
        {"user_id": ["a", "a"], "item_id": ["x", "x"], "rating": [1.0, 5.0], "timestamp": [2.0, 1.0]}
    )
    out = drop_duplicates(df)
    assert len(out) == 1 and out["rating"].iloc[0] == 1.0  # timestamp 2 is the latest


def test_implicit_threshold():
    df = pd.DataFrame({"user_id": list("abc"), "item_id": list("xyz"), "rating": [3.0, 4.0, 5.0]})
    assert to_implicit(df, 4).shape[0] == 2


def test_k_core_is_iterative():
    # u3 has 2 items; dropping it leaves i3 with 1 user, which must then go too
    df = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u2", "u3", "u3"],
            "item_id": ["i1", "i2", "i1", "i2", "i1", "i3"],
        }
    )
    out = k_core(df, 2)
    assert set(out["item_id"]) == {"i1", "i2"} and set(out["user_id"]) == {"u1", "u2"}


def _frame(n_users=20, per_user=10):
    rows = [(f"u{u}", f"i{(u + t) % 30}", float(t)) for u in range(n_users) for t in range(per_user)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def test_random_split_ratios_and_seed():
    df = _frame()
    a = split_interactions(df, "random", (0.8, 0.1, 0.1), seed=3)
    b = split_interactions(df, "random", (0.8, 0.1, 0.1), seed=3)
    c = split_interactions(df, "random", (0.8, 0.1, 0.1), seed=4)
    assert [len(x) for x in a] == [160, 20, 20]
    assert all(x.equals(y) for x, y in zip(a, b))
    assert not a[2].equals(c[2])
    # each user keeps exactly 8/1/1
    assert (a[0].groupby("user_id").size() == 8).all()
    total = pd.concat(a)
    assert len(total.drop_duplicates()) == len(df)


def test_leave_one_out_uses_time():
    train, valid, test = split_interactions(_frame(), "loo")
    assert (test["timestamp"] == 9).all() and (valid["timestamp"] == 8).all()
    assert len(train) == 20 * 8


def test_temporal_global_cut():
    df = _frame()
    train, valid, test = split_interactions(df, "temporal", (0.6, 0.2, 0.2))
    assert train["timestamp"].max() <= valid["timestamp"].min() <= test["timestamp"].min()
    assert np.isclose(len(train) / len(df), 0.6)


def test_split_errors():
    with pytest.raises(ConfigError, match="unknown method"):
        split_interactions(_frame(), "bogus")
    with pytest.raises(ConfigError, match="summing to 1"):
        split_interactions(_frame(), "random", (0.5, 0.1, 0.1))
