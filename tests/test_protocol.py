"""The evaluation protocol (issue 11, "Protocol"): split coverage, deterministic ties, the test-time
mask, selection over seeds, and stale-input detection. Each test fails on the old behaviour."""

import numpy as np
import pandas as pd
import pytest

from vlmrec.data.dataset import build_dataset
from vlmrec.data.splits import split_interactions
from vlmrec.evaluation import Evaluator


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


# ---- ties -------------------------------------------------------------------------------------
class Scores:
    def __init__(self, scores: np.ndarray):
        self.scores = np.asarray(scores, np.float32)

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.scores[users]


def _catalogue(n_users: int = 40, n_items: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = [
        (f"u{u:02d}", f"i{i:03d}") for u in range(n_users) for i in rng.choice(n_items, 30, replace=False)
    ]
    df = pd.DataFrame(rows, columns=["user_id", "item_id"])
    tr, va, te = split_interactions(df, "random", (0.6, 0.2, 0.2), seed=1)
    return build_dataset("ties", tr, va, te)


def test_all_equal_scores_rank_items_by_lowest_index():
    ds = _catalogue()
    ev = Evaluator(ds, "test", ks=[10, 20], mask=[])
    users = np.arange(ds.n_users)
    top = ev.topk(Scores(np.zeros((ds.n_users, ds.n_items))), users, 20)
    assert (top == np.arange(20)).all()
    # with masking, the unmasked items in index order
    ev = Evaluator(ds, "test", ks=[10, 20])
    top = ev.topk(Scores(np.zeros((ds.n_users, ds.n_items))), users, 20)
    seen = (ds.matrix("train") + ds.matrix("valid")).toarray() > 0
    for u in users:
        assert list(top[u]) == list(np.flatnonzero(~seen[u])[:20])


def test_ties_break_by_index_inside_and_across_the_cutoff():
    ds = _catalogue()
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, size=(ds.n_users, ds.n_items)).astype(np.float32)  # many ties
    ev = Evaluator(ds, "test", ks=[10, 20], batch_size=7)
    users = np.arange(ds.n_users)
    top20 = ev.topk(Scores(scores), users, 20)
    top10 = ev.topk(Scores(scores), users, 10)
    assert (top20[:, :10] == top10).all()
    seen = (ds.matrix("train") + ds.matrix("valid")).toarray() > 0
    for u in users:
        s = np.where(seen[u], -np.inf, scores[u])
        expected = np.lexsort((np.arange(ds.n_items), -s))[:20]  # score desc, then index asc
        assert list(top20[u]) == list(expected)


def test_recall_at_10_does_not_depend_on_the_requested_cutoffs():
    ds = _catalogue()
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 3, size=(ds.n_users, ds.n_items)).astype(np.float32)
    small = Evaluator(ds, "test", ks=[10]).evaluate(Scores(scores))
    both = Evaluator(ds, "test", ks=[10, 20, 50]).evaluate(Scores(scores))
    for metric in ("recall", "ndcg", "precision", "hitrate", "mrr", "map"):
        a, b = (r.per_user[(r.per_user["metric"] == metric) & (r.per_user["k"] == 10)] for r in (small, both))
        pd.testing.assert_series_equal(a.set_index("user")["value"], b.set_index("user")["value"])


def test_stable_topk_edge_cases():
    import torch

    from vlmrec.evaluation.evaluator import stable_topk

    x = torch.tensor([[1.0, float("nan"), 3.0, 3.0, -float("inf"), 1.0]])
    assert stable_topk(x.clone(), 3).tolist() == [[2, 3, 0]]
    assert stable_topk(x.clone(), 6).tolist() == [[2, 3, 0, 5, 1, 4]]  # NaN ranks as -inf
    assert stable_topk(x.clone(), 10).tolist() == [[2, 3, 0, 5, 1, 4]]
    assert stable_topk(torch.zeros((0, 4)), 2).shape == (0, 2)


# ---- the test-time mask -----------------------------------------------------------------------
def _mask_config(tmp_path, ds, mask=None, models=None):
    from vlmrec.experiments.config import parse_config

    if not (tmp_path / "ds" / "manifest.json").exists():
        ds.save(tmp_path / "ds")
    evaluation = {"ks": [10, 20], "metrics": ["recall", "ndcg"]}
    if mask is not None:
        evaluation["mask"] = mask
    raw = {
        "name": "mask",
        "output_dir": str(tmp_path / "run"),
        "seeds": [0],
        "threads": 1,
        "dataset": {"prepared": str(tmp_path / "ds")},
        "models": models or [{"name": "mostpop"}],
        "evaluation": evaluation,
    }
    return parse_config(raw)


def test_mask_is_a_validated_config_key():
    from vlmrec.errors import ConfigError
    from vlmrec.experiments.config import parse_config

    base = {"name": "t", "dataset": {"prepared": "x"}, "models": [{"name": "mostpop"}]}
    assert parse_config(base).evaluation.mask == ["train", "valid"]
    assert parse_config({**base, "evaluation": {"mask": ["train"]}}).evaluation.mask == ["train"]
    with pytest.raises(ConfigError, match=r"evaluation.mask"):
        parse_config({**base, "evaluation": {"mask": ["train", "test"]}})
    with pytest.raises(ConfigError, match=r"evaluation.mask.*train"):
        parse_config({**base, "evaluation": {"mask": ["valid"]}})


def test_mask_reaches_the_evaluator_the_cache_key_run_json_and_the_report(tmp_path, multi_community_dataset):
    import json

    from vlmrec.experiments.leaderboard import format_markdown, leaderboard
    from vlmrec.experiments.report import write_report
    from vlmrec.experiments.runner import Runner
    from vlmrec.models.base import create_model

    ds = multi_community_dataset
    both = Runner(_mask_config(tmp_path, ds)).run()
    train_only = Runner(_mask_config(tmp_path, ds, ["train"])).run()
    assert train_only.cells_run == 1 and train_only.cells_skipped == 0  # a new cell, not the cached one
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["evaluation"]["mask"] == ["train"]
    # the test metric is the one the evaluator gives with that mask
    model = create_model("mostpop")
    model.fit(ds, None, seed=0)
    for out, mask in ((both, ("train", "valid")), (train_only, ("train",))):
        expect = Evaluator(ds, "test", ks=[20], mask=mask).evaluate(model).mean("recall", 20)
        got = out.results.query("metric == 'recall' and k == 20")["value"].iloc[0]
        assert got == pytest.approx(expect)
        assert set(out.results["mask"]) == {"+".join(mask)}
    assert both.results["value"].to_list() != train_only.results["value"].to_list()
    text = format_markdown(leaderboard(train_only.results, train_only.per_user))
    assert "test-time mask: train items" in text.lower()
    write_report(tmp_path / "run")
    assert "test-time mask: train items" in (tmp_path / "run" / "report.md").read_text().lower()
    assert "test-time mask: train items" in (tmp_path / "run" / "report.html").read_text().lower()


# ---- selection --------------------------------------------------------------------------------
# designed validation scores: per seed the best point differs, averaged over seeds one wins
FAKE_VALID = {
    ("itemknn", "k", 5): {0: 0.50, 1: 0.10},  # mean 0.300
    ("itemknn", "k", 10): {0: 0.40, 1: 0.45},  # mean 0.425 <- chosen for both seeds
    ("profilematch", "aggregation", "mean"): {0: 0.90, 1: 0.20},  # mean 0.55 <- chosen
    ("profilematch", "aggregation", "last"): {0: 0.10, 1: 0.30},  # mean 0.20 (best on seed 1)
}


def _fake_valid_run_cell(monkeypatch):
    import dataclasses

    import vlmrec.experiments.engines as engines_mod  # where the local engine runs a cell
    from vlmrec.experiments.cell import run_cell

    def fake(ds, name, params, features=None, seed=0, **kw):
        res = run_cell(ds, name, params, features, seed=seed, **kw)
        for (model, key, value), by_seed in FAKE_VALID.items():
            if model == name and params.get(key) == value:
                return dataclasses.replace(res, valid_score=by_seed[seed])
        return res

    monkeypatch.setattr(engines_mod, "run_cell", fake)


def test_hyperparameters_are_chosen_once_per_row_on_the_mean_validation_score(
    tmp_path, multi_community_dataset, monkeypatch
):
    import json

    from vlmrec.experiments.config import parse_config
    from vlmrec.experiments.report import write_report
    from vlmrec.experiments.runner import Runner
    from vlmrec.features.featureset import FeatureSet

    _fake_valid_run_cell(monkeypatch)
    ds = multi_community_dataset
    ds.save(tmp_path / "ds")
    x = np.random.default_rng(0).normal(size=(ds.n_items, 6))
    FeatureSet.create(x, ds, extractor="synthetic", model="synthetic").save(tmp_path / "feat")
    cfg = parse_config(
        {
            "name": "select",
            "output_dir": str(tmp_path / "run"),
            "seeds": [0, 1],
            "threads": 1,
            "dataset": {"prepared": str(tmp_path / "ds")},
            "features": [{"name": "f", "path": str(tmp_path / "feat")}],
            "controls": ["shuffled"],
            "models": [
                {"name": "mostpop"},
                {"name": "itemknn", "grid": {"k": [5, 10]}},
                {"name": "profilematch", "grid": {"aggregation": ["mean", "last"]}, "features": ["f"]},
            ],
            "evaluation": {"ks": [20], "metrics": ["recall"]},
        }
    )
    out = Runner(cfg).run()
    res = out.results
    chosen = res.groupby(["model", "features"])["params"].unique()
    assert list(chosen[("itemknn", "none")]) == [json.dumps({"k": 10})]
    assert list(chosen[("profilematch", "f")]) == [json.dumps({"aggregation": "mean"})]
    assert list(chosen[("profilematch", "f~shuffled")]) == [json.dumps({"aggregation": "mean"})]
    for model in ("itemknn", "profilematch"):
        assert sorted(res[(res["model"] == model) & (res["control"] == "none")]["seed"]) == [0, 1]
    # run.json records each row's grid size and choice; the report states the grid size
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    sel = {(s["model"], s["features"]): s for s in run["selection"]}
    assert sel[("itemknn", "none")]["grid_size"] == 2 and sel[("itemknn", "none")]["params"] == {"k": 10}
    assert sel[("itemknn", "none")]["valid_mean"] == pytest.approx(0.425)
    assert sel[("mostpop", "none")]["grid_size"] == 1
    assert set(res.loc[res["model"] == "itemknn", "grid_size"]) == {2}
    write_report(tmp_path / "run")
    md = (tmp_path / "run" / "report.md").read_text()
    assert "## Model selection" in md and "grid size" in md
    rows = [line.replace("|", " ").split() for line in md[md.index("## Model selection") :].splitlines()]
    assert ["itemknn", "none", "2"] in [r[:3] for r in rows]  # model, features, grid size


def test_the_best_id_reference_is_chosen_on_validation_not_test():
    from vlmrec.experiments.leaderboard import format_markdown, leaderboard

    users = np.arange(200)
    rng = np.random.default_rng(0)
    spec = {  # (model, features, control): (test rate, validation score)
        ("strong-on-test", "none", "none"): (0.4, 0.10),
        ("strong-on-valid", "none", "none"): (0.2, 0.30),
        ("content", "t", "none"): (0.3, 0.25),
    }
    rows, per = [], []
    for (model, feats, control), (p, valid) in spec.items():
        for seed in (0, 1):
            v = (rng.random(len(users)) < p).astype(float)
            ident = {"dataset": "d", "model": model, "features": feats, "control": control, "seed": seed}
            per.append(pd.DataFrame({**ident, "user": users, "metric": "recall", "k": 20, "value": v}))
            rows.append(
                {
                    **ident,
                    "split": "test",
                    "metric": "recall",
                    "k": 20,
                    "value": v.mean(),
                    "valid_score": valid,
                }
            )
    from vlmrec.experiments.comparisons import compare_run

    results, per_user = pd.DataFrame(rows), pd.concat(per, ignore_index=True)
    comparisons = compare_run(results, per_user)
    board = leaderboard(results, per_user, "recall", 20, comparisons=comparisons)
    assert (board["best_id_baseline"] == "strong-on-valid").all()
    assert comparisons.references[("d", "all")] == "strong-on-valid"
    r = board.set_index("model").loc["content"]
    assert r["vs_id_diff"] > 0  # content vs the validation-chosen reference
    assert "strong-on-valid, chosen on the validation score" in format_markdown(board)


# ---- stale inputs -----------------------------------------------------------------------------
def _write_catalogue(d, title_of_i0="red ball", rating_u0_i1=5):
    d.mkdir(exist_ok=True)
    rows = [
        f"u{u},i{(u + t) % 8},{rating_u0_i1 if (u, (u + t) % 8) == (0, 1) else 5}"
        for u in range(8)
        for t in range(5)
    ]
    (d / "interactions.csv").write_text("user_id,item_id,rating\n" + "\n".join(rows) + "\n")
    titles = {0: title_of_i0, **{i: f"thing {i}" for i in range(1, 8)}}
    (d / "items.csv").write_text("item_id,title\n" + "\n".join(f"i{i},{t}" for i, t in titles.items()) + "\n")
    (d / "images").mkdir(exist_ok=True)
    for i in range(3):
        p = d / "images" / f"i{i}.png"
        if not p.exists():
            p.write_bytes(b"\x89PNG fake image " + bytes([i]) * 10)


def _csv_config(tmp_path):
    from vlmrec.experiments.config import parse_config

    raw = tmp_path / "raw"
    return parse_config(
        {
            "name": "stale",
            "output_dir": str(tmp_path / "run"),
            "seeds": [0],
            "threads": 1,
            "dataset": {
                "format": "table",
                "interactions": str(raw / "interactions.csv"),
                "items": str(raw / "items.csv"),
                "images": str(raw / "images"),
                "name": "stale",
            },
            "features": [{"name": "words", "extractor": "onehot", "fields": ["title"]}],
            "models": [{"name": "mostpop"}, {"name": "profilematch", "features": ["words"]}],
            "evaluation": {"ks": [5], "metrics": ["recall"], "select": "recall@5"},
        }
    )


def _fingerprint(tmp_path) -> str:
    import json

    return json.loads((tmp_path / "run" / "run.json").read_text())["dataset_fingerprint"]


def test_editing_an_interaction_row_rebuilds_the_dataset(tmp_path):
    from vlmrec.experiments.runner import Runner

    _write_catalogue(tmp_path / "raw")
    first = Runner(_csv_config(tmp_path)).run()
    again = Runner(_csv_config(tmp_path)).run()
    assert again.cells_run == 0 and _fingerprint(tmp_path) == first.dataset.fingerprint  # unchanged: cached
    # u0's rating of i1 changes (every rating is a positive: same ids and splits after cleaning)
    _write_catalogue(tmp_path / "raw", rating_u0_i1=4)
    second = Runner(_csv_config(tmp_path)).run()
    assert second.dataset.fingerprint != first.dataset.fingerprint
    assert _fingerprint(tmp_path) == second.dataset.fingerprint
    assert second.cells_run > 0  # results of the old data are not reused


def test_editing_the_item_table_or_an_image_rebuilds_and_refuses_old_features(tmp_path):
    from vlmrec.data.dataset import Dataset
    from vlmrec.errors import DataError
    from vlmrec.experiments.runner import Runner
    from vlmrec.features.featureset import FeatureSet

    _write_catalogue(tmp_path / "raw")
    first = Runner(_csv_config(tmp_path)).run()
    old = FeatureSet.load(tmp_path / "run" / "features" / "words")
    old.check_matches(first.dataset)
    _write_catalogue(tmp_path / "raw", title_of_i0="blue ball")  # one title edited
    second = Runner(_csv_config(tmp_path)).run()
    assert second.dataset.fingerprint != first.dataset.fingerprint
    assert "blue ball" in set(second.dataset.items["title"])
    # the run rebuilt its own features; a feature set made from the older item table is refused
    assert FeatureSet.load(tmp_path / "run" / "features" / "words", second.dataset).manifest[
        "dataset_fingerprint"
    ] == (second.dataset.fingerprint)
    old.save(tmp_path / "old-features")
    with pytest.raises(DataError, match=r"item table"):
        FeatureSet.load(tmp_path / "old-features", second.dataset)
    # an image file replaced by another of a different size: rebuilt again
    (tmp_path / "raw" / "images" / "i1.png").write_bytes(b"\x89PNG another picture, longer than before")
    third = Runner(_csv_config(tmp_path)).run()
    assert third.dataset.fingerprint not in (first.dataset.fingerprint, second.dataset.fingerprint)
    # the saved dataset checks its own items table: tampering is refused on load
    items = pd.read_parquet(tmp_path / "run" / "dataset" / "items.parquet")
    items.loc[0, "title"] = "tampered"
    items.to_parquet(tmp_path / "run" / "dataset" / "items.parquet", index=False)
    with pytest.raises(DataError, match="fingerprint"):
        Dataset.load(tmp_path / "run" / "dataset")


def test_datasets_prepared_before_the_content_fingerprint_still_load(tmp_path, multi_community_dataset):
    import json

    from vlmrec.data.dataset import Dataset
    from vlmrec.provenance import hash_arrays

    ds = multi_community_dataset
    ds.save(tmp_path / "ds")
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    arrays = [np.asarray(ds.user_ids, dtype=str), np.asarray(ds.item_ids, dtype=str)]
    for s in ("train", "valid", "test"):
        arrays += [getattr(ds, s)["user"].to_numpy(np.int64), getattr(ds, s)["item"].to_numpy(np.int64)]
    manifest["fingerprint"] = hash_arrays(*arrays)  # the scheme-1 fingerprint: ids and splits only
    del manifest["fingerprint_scheme"]
    (tmp_path / "ds" / "manifest.json").write_text(json.dumps(manifest))
    old = Dataset.load(tmp_path / "ds")
    assert old.fingerprint == manifest["fingerprint"] != ds.fingerprint
