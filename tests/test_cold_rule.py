"""The shared cold-item rule on hand-made score rows: every cold item just below the row's lowest
finite warm score, whatever else the row holds (NaN, -inf, nothing finite)."""

import numpy as np

from vlmrec.evaluation.evaluator import _lookup
from vlmrec.models.cold import demote_cold_scores


def test_cold_items_go_just_below_the_lowest_finite_warm_score():
    scores = np.array(
        [
            [3.0, 1.0, 9.0, 2.0],  # floor 1 -> cold at 1 - 1 - 1 = -1
            [-2.0, np.nan, 9.0, 5.0],  # NaN ignored: floor -2 -> -2 - 1 - 2 = -5
            [-np.inf, 4.0, 9.0, 7.0],  # -inf (a masked item) ignored: floor 4 -> -1
            [np.nan, -np.inf, 9.0, 9.0],  # no finite warm score: floor 0 -> -1
        ],
        dtype=np.float32,
    )
    out = demote_cold_scores(scores.copy(), np.array([2, 3]))
    np.testing.assert_array_equal(out[:, 2], [-1, -5, -1, -1])
    np.testing.assert_array_equal(out[:, 2], out[:, 3])
    np.testing.assert_array_equal(out[0, :2], [3, 1])  # warm scores untouched
    assert np.isnan(out[1, 1]) and out[2, 0] == -np.inf
    # every item cold: one tie, below nothing
    np.testing.assert_array_equal(demote_cold_scores(np.ones((2, 3)), np.arange(3)), -np.ones((2, 3)))


def test_hit_lookup_matches_a_per_row_membership_test():
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    target = sp.random(50, 200, density=0.05, format="csr", random_state=1)
    target.data[:] = 1
    top = rng.integers(0, 200, size=(50, 10))
    expected = np.array([np.isin(top[r], target[r].indices) for r in range(50)])
    np.testing.assert_array_equal(_lookup(target, top), expected)
    assert _lookup(target, top).sum() > 0
