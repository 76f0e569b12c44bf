"""The evaluation protocol (issue 11, "Protocol"): split coverage, deterministic ties, the test-time
mask, selection over seeds, and stale-input detection. Each test fails on the old behaviour."""

import pandas as pd
import pytest

from vlmrec.data.splits import split_interactions


def _users_with(sizes: list[int]) -> pd.DataFrame:
    rows = [(f"u{n}_{r}", f"i{t}", float(t)) for n in sizes for r in range(3) for t in range(n)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


@pytest.mark.parametrize("ratios", [(0.8, 0.1, 0.1), (0.7, 0.1, 0.2), (0.6, 0.2, 0.2), (0.9, 0.05, 0.05)])
def test_random_split_gives_every_user_with_3_or_more_a_train_valid_and_test_item(ratios):
    sizes = list(range(1, 26))
    df = _users_with(sizes)
    parts = split_interactions(df, "random", ratios, seed=0)
    counts = pd.concat(
        [p.groupby("user_id").size().rename(s) for p, s in zip(parts, ("train", "valid", "test"))], axis=1
    ).reindex(df["user_id"].unique(), fill_value=0)
    counts = counts.fillna(0).astype(int)
    n = counts.sum(axis=1)
    assert (n == df.groupby("user_id").size().reindex(counts.index)).all()  # nothing lost
    big = counts[n >= 3]
    assert (big > 0).all().all(), big[(big == 0).any(axis=1)]
    # 1 interaction: train only; 2 interactions: one train and one test item
    assert (counts[n == 1][["train", "valid", "test"]].to_numpy() == [1, 0, 0]).all()
    assert (counts[n == 2][["train", "valid", "test"]].to_numpy() == [1, 0, 1]).all()
    # validation and test cover the same users (all with >= 3 interactions)
    assert set(parts[1]["user_id"]) == set(parts[2]["user_id"]) - set(counts[n == 2].index)


def test_random_split_keeps_the_ratios_for_long_histories():
    df = _users_with([10, 20, 40])
    train, valid, test = split_interactions(df, "random", (0.8, 0.1, 0.1), seed=0)
    size = {s: len(p[p["user_id"].str.startswith("u40_")]) / 3 for s, p in zip("tvx", (train, valid, test))}
    assert size == {"t": 32, "v": 4, "x": 4}
    size = {s: len(p[p["user_id"].str.startswith("u10_")]) / 3 for s, p in zip("tvx", (train, valid, test))}
    assert size == {"t": 8, "v": 1, "x": 1}


def test_loo_split_coverage_rule_matches_random():
    df = _users_with([1, 2, 3, 5])
    train, valid, test = split_interactions(df, "loo")
    for n, expect in {1: (1, 0, 0), 2: (1, 0, 1), 3: (1, 1, 1), 5: (3, 1, 1)}.items():
        got = tuple(int((p["user_id"].str.startswith(f"u{n}_")).sum() / 3) for p in (train, valid, test))
        assert got == expect, (n, got)


def test_prepare_reports_how_many_users_each_split_covers(tmp_path, caplog):
    import json
    import logging

    from vlmrec.data.prepare import prepare_dataset

    # 6 users with 5 interactions: the old rounding gave none of them a validation item
    rows = [f"u{u},i{(u + t) % 9},1" for u in range(6) for t in range(5)]
    (tmp_path / "i.csv").write_text("user_id,item_id,rating\n" + "\n".join(rows) + "\n")
    with caplog.at_level(logging.INFO, logger="vlmrec.data.prepare"):
        ds = prepare_dataset("table", interactions=tmp_path / "i.csv", out=tmp_path / "ds")
    stats = json.loads((tmp_path / "ds" / "manifest.json").read_text())["stats"]
    assert (stats["users_train"], stats["users_valid"], stats["users_test"]) == (6, 6, 6)
    assert ds.stats()["users_valid"] == 6
    assert "covers 6 users in train, 6 in validation, 6 in test" in caplog.text
