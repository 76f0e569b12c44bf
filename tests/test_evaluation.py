import numpy as np
import pandas as pd
import pytest

from vlmrec.data.dataset import build_dataset
from vlmrec.evaluation import Evaluator, ranking_metrics
from vlmrec.evaluation.significance import bootstrap_ci, holm, paired_bootstrap


def test_metrics_hand_worked():
    # ranks 0..4; relevant items at ranks 0 and 2; user has 3 relevant items in total
    hits = np.array([[1, 0, 1, 0, 0]], bool)
    m = ranking_metrics(hits, np.array([3]), [2, 5])
    assert m[("recall", 2)][0] == pytest.approx(1 / 3)
    assert m[("recall", 5)][0] == pytest.approx(2 / 3)
    assert m[("precision", 5)][0] == pytest.approx(2 / 5)
    assert m[("hitrate", 2)][0] == 1
    assert m[("mrr", 5)][0] == 1
    dcg = 1 / np.log2(2) + 1 / np.log2(4)
    idcg = 1 / np.log2(2) + 1 / np.log2(3) + 1 / np.log2(4)
    assert m[("ndcg", 5)][0] == pytest.approx(dcg / idcg)
    assert m[("ndcg", 2)][0] == pytest.approx(1 / (1 + 1 / np.log2(3)))
    assert m[("map", 5)][0] == pytest.approx((1 + 2 / 3) / 3)


def test_metrics_no_hit():
    m = ranking_metrics(np.zeros((1, 3), bool), np.array([1]), [3])
    assert all(v[0] == 0 for v in m.values())


class FixedScores:
    def __init__(self, scores):
        self.scores = np.asarray(scores, np.float32)

    def score(self, users):
        return self.scores[users]


def _tiny():
    train = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": ["0", "1", "0"]})
    valid = pd.DataFrame({"user_id": ["a"], "item_id": ["2"]})
    test = pd.DataFrame({"user_id": ["a", "b"], "item_id": ["3", "1"]})
    return build_dataset("tiny", train, valid, test)


def test_evaluator_masks_train_and_valid_on_test():
    ds = _tiny()
    # user a scores its train (0, 1) and valid (2) items highest; they must be skipped
    scores = np.array([[9, 8, 7, 1], [9, 2, 0, 0]], np.float32)
    ev = Evaluator(ds, "test", ks=[1])
    res = ev.evaluate(FixedScores(scores))
    per = res.per_user.query("metric == 'recall'").set_index("user")["value"]
    assert per[0] == 1.0  # a: after masking 0,1,2 the top-1 is item 3
    assert per[1] == 1.0  # b: item 0 masked, item 1 is top
    # on validation only train items are masked: a's top-1 is item 2 (its valid item)
    assert Evaluator(ds, "valid", ks=[1]).evaluate(FixedScores(scores)).mean("recall", 1) == 1.0


def test_evaluator_matches_brute_force_on_random_scores():
    rng = np.random.default_rng(0)
    n_users, n_items = 30, 50
    rows = [(f"u{u}", f"{i:02d}") for u in range(n_users) for i in rng.choice(n_items, 12, replace=False)]
    df = pd.DataFrame(rows, columns=["user_id", "item_id"])
    ds = build_dataset("r", df.iloc[::2], df.iloc[1::4], df.iloc[3::4])
    scores = rng.random((ds.n_users, ds.n_items)).astype(np.float32)
    res = Evaluator(ds, "test", ks=[5], batch_size=7).evaluate(FixedScores(scores))
    train, valid, test = (ds.matrix(s).toarray() > 0 for s in ("train", "valid", "test"))
    expected = []
    for u in range(ds.n_users):
        if not test[u].any():
            continue
        s = scores[u].copy()
        s[train[u] | valid[u]] = -np.inf
        top = np.argsort(-s)[:5]
        expected.append(test[u, top].sum() / test[u].sum())
    assert res.mean("recall", 5) == pytest.approx(np.mean(expected))


def test_significance_helpers():
    rng = np.random.default_rng(0)
    a = rng.random(200)
    assert paired_bootstrap(a - (a + 0.2), n_boot=1000).p_value == 0.0
    assert paired_bootstrap(a - a, n_boot=1000).p_value == 1.0
    lo, hi = bootstrap_ci(a, seed=1)
    assert lo < a.mean() < hi
    assert bootstrap_ci(a, seed=1) == bootstrap_ci(a, seed=1)
    # Holm: sorted p * (m - rank), monotone
    assert np.allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
