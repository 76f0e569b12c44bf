"""Item cold-start split, evaluation segments (warm/cold, head/torso/tail) and beyond-accuracy
metrics, checked on small cases worked out by hand (issue 14)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vlmrec.data.dataset import build_dataset
from vlmrec.data.splits import split_cold_items, split_interactions
from vlmrec.errors import ConfigError
from vlmrec.evaluation.evaluator import Evaluator
from vlmrec.evaluation.segments import item_segments, popularity_thresholds, segment_info


# ---- the cold-items split ----------------------------------------------------------------
def _catalogue(n_users: int = 60, n_items: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(f"u{u}", f"i{i:03d}") for u in range(n_users) for i in rng.choice(n_items, 12, replace=False)]
    return pd.DataFrame(rows, columns=["user_id", "item_id"])


def test_cold_items_never_reach_training_and_the_fraction_is_exact():
    df = _catalogue()
    n_items = df["item_id"].nunique()
    train, valid, test, cold = split_cold_items(df, 0.2, seed=3)
    assert len(cold.all) == round(0.2 * n_items) == 10
    assert len(cold.valid) == 5 and len(cold.test) == 5 and not set(cold.valid) & set(cold.test)
    assert not set(train["item_id"]) & set(cold.all)
    # every interaction with a cold item went to its half; nothing lost or duplicated
    assert not set(test["item_id"]) & set(cold.valid)
    assert not set(valid["item_id"]) & set(cold.test)
    assert len(train) + len(valid) + len(test) == len(df)
    cold_rows = df[df["item_id"].isin(cold.all)]
    assert len(valid[valid["item_id"].isin(cold.valid)]) + len(test[test["item_id"].isin(cold.test)]) == len(
        cold_rows
    )


def test_cold_items_split_is_seeded_and_keeps_the_warm_coverage_rule():
    df = _catalogue()
    a = split_cold_items(df, 0.3, seed=1)
    b = split_cold_items(df, 0.3, seed=1)
    c = split_cold_items(df, 0.3, seed=2)
    assert a[3] == b[3] and a[3] != c[3]
    for x, y in zip(a[:3], b[:3]):
        pd.testing.assert_frame_equal(x, y)
    train, valid, test, cold = a
    warm = df[~df["item_id"].isin(cold.all)]
    n_warm = warm.groupby("user_id").size()
    covered = n_warm[n_warm >= 3].index
    warm_valid = valid[~valid["item_id"].isin(cold.all)]
    warm_test = test[~test["item_id"].isin(cold.all)]
    assert set(covered) <= set(train["user_id"]) & set(warm_valid["user_id"]) & set(warm_test["user_id"])
    # split_interactions dispatches to the same split
    three = split_interactions(df, "cold-items", seed=1, cold_fraction=0.3)
    for x, y in zip(three, a[:3]):
        pd.testing.assert_frame_equal(x, y)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_cold_fraction_out_of_range_is_refused(fraction):
    from vlmrec.errors import ConfigError

    with pytest.raises(ConfigError, match="cold_fraction"):
        split_cold_items(_catalogue(), fraction)


def test_prepare_records_the_cold_items_in_the_manifest(tmp_path):
    import json

    from vlmrec.data.prepare import prepare_dataset

    df = _catalogue()
    df.to_csv(tmp_path / "inter.csv", index=False)
    ds = prepare_dataset(
        "table",
        interactions=tmp_path / "inter.csv",
        split="cold-items",
        cold_fraction=0.2,
        seed=5,
        out=tmp_path / "ds",
    )
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    split = manifest["split"]
    assert split["method"] == "cold-items" and split["cold_fraction"] == 0.2 and split["n_cold_items"] == 10
    cold_ids = set(split["cold_items"]["valid"]) | set(split["cold_items"]["test"])
    counts = np.bincount(ds.train["item"], minlength=ds.n_items)
    assert {ds.item_ids[i] for i in np.flatnonzero(counts == 0)} == cold_ids


# ---- segments and beyond-accuracy, by hand -------------------------------------------------
class Fixed:
    def __init__(self, scores):
        self.scores = np.asarray(scores, dtype=np.float32)

    def score(self, users):
        return self.scores[np.asarray(users)]


def _hand_dataset():
    """3 users x 5 items. Train counts: i0=3, i1=2, i2=1, i3=0, i4=0 (i3, i4 cold).

    train: u0 {i0, i1}, u1 {i0, i2}, u2 {i0, i1}
    test:  u0 {i2, i3}, u1 {i3}, u2 {i4, i2}
    """
    tr = pd.DataFrame(
        {"user_id": ["u0", "u0", "u1", "u1", "u2", "u2"], "item_id": ["i0", "i1", "i0", "i2", "i0", "i1"]}
    )
    te = pd.DataFrame({"user_id": ["u0", "u0", "u1", "u2", "u2"], "item_id": ["i2", "i3", "i3", "i4", "i2"]})
    va = pd.DataFrame(columns=["user_id", "item_id"])
    return build_dataset("hand", tr, va, te)


# scores (train items are masked by the evaluator):
#   u0 ranks i3 > i2 > i4           top-2 {i3, i2}
#   u1 ranks i4 > i1 > i3           top-2 {i4, i1}
#   u2 ranks i2 > i3 > i4           top-2 {i2, i3}
SCORES = [
    [9, 9, 4, 5, 1],
    [9, 4, 9, 2, 5],
    [9, 9, 5, 4, 1],
]


def test_popularity_buckets_by_hand():
    ds = _hand_dataset()
    # counts sorted 3, 2, 1, 0, 0; T = 6; running 3, 5, 6: reaches 2 (T/3) at the 3 -> head >= 3;
    # reaches 4 (2T/3) at the 2 -> torso >= 2; tail < 2
    assert popularity_thresholds(np.array([3, 2, 1, 0, 0])) == (3, 2)
    seg = item_segments(ds.matrix("train"), ("popularity", "cold"))
    assert seg["head"].tolist() == [True, False, False, False, False]
    assert seg["torso"].tolist() == [False, True, False, False, False]
    assert seg["tail"].tolist() == [False, False, True, True, True]
    assert seg["cold"].tolist() == [False, False, False, True, True]
    info = segment_info(ds.matrix("train"), ["popularity", "cold"])
    assert info["popularity"]["head_min_count"] == 3 and info["popularity"]["torso_min_count"] == 2
    assert info["popularity"]["interaction_share"] == {"head": 0.5, "torso": 2 / 6, "tail": 1 / 6}
    assert info["cold"]["items"] == {"warm": 3, "cold": 2}


def _values(res, metric, k, segment):
    pu = res.per_user
    sel = pu[(pu["metric"] == metric) & (pu["k"] == k) & (pu["segment"] == segment)]
    return dict(zip(sel["user"], sel["value"]))


def test_warm_cold_segments_by_hand():
    ds = _hand_dataset()
    ev = Evaluator(ds, "test", ks=[2], metrics=["recall", "hitrate"], mask=("train",), segments=["cold"])
    res = ev.evaluate(Fixed(SCORES))
    # all:  u0 rel {2,3}, top {3,2} -> 2/2; u1 rel {3}, top {4,1} -> 0; u2 rel {4,2}, top {2,3} -> 1/2
    assert _values(res, "recall", 2, "all") == {0: 1.0, 1: 0.0, 2: 0.5}
    # warm items {0,1,2}: u0 rel {2} hit -> 1; u1 has no warm test item (absent); u2 rel {2} hit -> 1
    assert _values(res, "recall", 2, "warm") == {0: 1.0, 2: 1.0}
    # cold items {3,4}: u0 rel {3} hit -> 1; u1 rel {3} miss -> 0; u2 rel {4} miss (i3 is not relevant) -> 0
    assert _values(res, "recall", 2, "cold") == {0: 1.0, 1: 0.0, 2: 0.0}
    assert _values(res, "hitrate", 2, "cold") == {0: 1.0, 1: 0.0, 2: 0.0}
    # cold_only: warm items masked, so only {3, 4} compete: u0 top {3,4} rel {3} -> 1; u1 top {4,3}
    # rel {3} -> 1 (i3 was third overall, behind warm i1); u2 top {3,4} rel {4} -> 1
    assert _values(res, "recall", 2, "cold_only") == {0: 1.0, 1: 1.0, 2: 1.0}
    summary = res.summary().set_index(["metric", "k", "segment"])["value"]
    assert summary[("recall", 2, "cold")] == pytest.approx(1 / 3)
    assert summary[("recall", 2, "warm")] == 1.0
    assert res.mean("recall", 2, "all") == pytest.approx(0.5)


def test_popularity_segments_rank_over_the_whole_catalogue():
    ds = _hand_dataset()
    ev = Evaluator(
        ds, "test", ks=[1, 2], metrics=["recall", "ndcg"], mask=("train",), segments=["popularity"]
    )
    res = ev.evaluate(Fixed(SCORES))
    # nobody has a head (i0) or torso (i1) test item: no rows for those segments
    assert set(res.per_user["segment"]) == {"all", "tail"}
    # tail = {2,3,4} holds every test item, so tail equals all here
    assert _values(res, "recall", 2, "tail") == _values(res, "recall", 2, "all")
    # ndcg@2 u2: rel {4,2}, top (2, 3): 1 / (1 + 1/log2 3)
    assert _values(res, "ndcg", 2, "tail")[2] == pytest.approx(1 / (1 + 1 / np.log2(3)))
    # recall@1 u0: top (3) of rel {2,3} -> 1/2
    assert _values(res, "recall", 1, "tail")[0] == 0.5


def test_beyond_accuracy_metrics_by_hand():
    ds = _hand_dataset()
    ev = Evaluator(
        ds, "test", ks=[1, 2], metrics=["recall", "coverage", "novelty", "tail_share"], mask=("train",)
    )
    res = ev.evaluate(Fixed(SCORES))
    # coverage@2: union of top-2 {3,2} u {4,1} u {2,3} = {1,2,3,4} -> 4/5; @1: {3} u {4} u {2} -> 3/5
    summary = res.summary().set_index(["metric", "k", "segment"])["value"]
    assert summary[("coverage", 2, "all")] == pytest.approx(4 / 5)
    assert summary[("coverage", 1, "all")] == pytest.approx(3 / 5)
    assert not (res.per_user["metric"] == "coverage").any()  # set-level: no per-user values
    # novelty: 3 train users; self-information -log2(max(pop,1)/3): i0 0, i1 log2(3/2), i2 log2 3,
    # cold i3, i4 (seen once) log2 3
    s0, s1, s2 = 0.0, np.log2(1.5), np.log2(3)
    assert _values(res, "novelty", 2, "all") == pytest.approx({0: s2, 1: (s2 + s1) / 2, 2: s2})
    assert _values(res, "novelty", 1, "all") == pytest.approx({0: s2, 1: s2, 2: s2})
    assert s0 == 0.0
    # tail = {2,3,4}: u0 top-2 {3,2} -> 1; u1 {4,1} -> 1/2; u2 {2,3} -> 1
    assert _values(res, "tail_share", 2, "all") == {0: 1.0, 1: 0.5, 2: 1.0}
    assert res.mean("coverage", 2) == pytest.approx(0.8)


def test_default_evaluation_is_unchanged_apart_from_the_segment_column():
    ds = _hand_dataset()
    res = Evaluator(ds, "test", ks=[2], mask=("train",)).evaluate(Fixed(SCORES))
    assert set(res.per_user["segment"]) == {"all"}
    assert list(res.per_user.columns) == ["user", "metric", "k", "value", "segment"]


def test_unknown_segment_group_and_metric_are_refused():
    ds = _hand_dataset()
    with pytest.raises(ConfigError, match="segment group"):
        Evaluator(ds, "test", segments=["popular"])
    with pytest.raises(ConfigError, match="unknown metric"):
        Evaluator(ds, "test", metrics=["novel"])


# ---- through the config, the runner and the results table -----------------------------------
def test_config_runner_and_results_carry_segments_and_beyond_metrics(tmp_path):
    import json

    from vlmrec.errors import ConfigError
    from vlmrec.experiments.config import parse_config
    from vlmrec.experiments.leaderboard import leaderboard
    from vlmrec.experiments.runner import Runner

    _catalogue().to_csv(tmp_path / "inter.csv", index=False)
    raw = {
        "name": "cold",
        "output_dir": str(tmp_path / "run"),
        "threads": 1,
        "dataset": {
            "format": "table",
            "interactions": str(tmp_path / "inter.csv"),
            "split": "cold-items",
            "cold_fraction": 0.2,
        },
        "models": [{"name": "mostpop"}, {"name": "itemknn"}],
        "evaluation": {
            "ks": [10],
            "metrics": ["recall", "ndcg", "coverage", "novelty", "tail_share"],
            "segments": ["popularity", "cold"],
            "select": "recall@10",
        },
    }
    base = {"name": "t", "dataset": {"prepared": "x"}, "models": [{"name": "mostpop"}]}
    assert parse_config(base).evaluation.segments == []
    with pytest.raises(ConfigError, match="evaluation.segments"):
        parse_config({**base, "evaluation": {"segments": ["warmth"]}})
    with pytest.raises(ConfigError, match="evaluation.metrics"):
        parse_config({**base, "evaluation": {"metrics": ["serendipity"]}})
    with pytest.raises(ConfigError, match="dataset.split"):
        parse_config({**base, "dataset": {"prepared": "x", "split": "cold"}})

    out = Runner(parse_config(raw)).run()
    res = pd.read_csv(tmp_path / "run" / "results.csv")
    per_user = pd.read_parquet(tmp_path / "run" / "per_user.parquet")
    assert set(res["segment"]) == {"all", "warm", "cold", "cold_only", "head", "torso", "tail"}
    assert set(per_user["segment"]) == set(res["segment"])
    beyond = res[res["metric"].isin(["coverage", "novelty", "tail_share"])]
    assert set(beyond["segment"]) == {"all"} and len(beyond) == 2 * 3
    # ID-only models never recommend a cold item: their cold-segment recall is 0
    cold = res[(res["segment"] == "cold") & (res["metric"] == "recall")]
    assert (cold["value"] == 0).all() and len(cold) == 2
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    seg = run["evaluation"]["segments"]
    assert seg["requested"] == ["popularity", "cold"]
    assert seg["cold"]["items"]["cold"] == 10 and seg["popularity"]["head_min_count"] >= 1
    assert run["dataset_info"]["split"]["n_cold_items"] == 10
    # the leaderboard reads segment "all" by default, another segment on request
    board = leaderboard(out.results, out.per_user, "recall", 10)
    assert len(board) == 2
    assert (leaderboard(out.results, out.per_user, "recall", 10, segment="cold")["mean"] == 0).all()
