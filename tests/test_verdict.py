"""Verdicts on constructed per-user data, checked against hand-worked figures: two labels per
row (content use, worth), one estimand, seeds counted, the ID reference chosen per segment."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from vlmrec.evaluation.significance import holm, holm_levels, paired_bootstrap
from vlmrec.experiments.comparisons import ComparisonSpec
from vlmrec.experiments.verdict import compute_verdicts, format_p, verdict_json, verdict_lines

N_USERS = 300
SEEDS = (0, 1, 2)


def hits(rate: float, seed: int, n: int = N_USERS) -> np.ndarray:
    """Per-user recall values: exactly round(rate * n) users hit (1.0), in a seeded order."""
    v = np.zeros(n)
    v[: round(rate * n)] = 1.0
    return np.random.default_rng(seed).permutation(v)


Values = np.ndarray | dict[int, np.ndarray]  # one array for every seed, or one per seed


def make_run(
    rows: dict[tuple[str, str, str], Values],
    valid: dict[str, float],
    segment: str = "all",
    seeds: tuple[int, ...] = SEEDS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """results + per_user tables (recall@20) for the given per-user values of each row and seed.

    `valid` gives each model's validation score in this segment (what the reference is chosen on)."""
    res, per = [], []
    for (model, feats, control), values in rows.items():
        for seed in seeds:
            v = values[seed] if isinstance(values, dict) else values
            per.append(
                pd.DataFrame(
                    {
                        "dataset": "d",
                        "model": model,
                        "features": feats,
                        "control": control,
                        "seed": seed,
                        "user": np.arange(len(v)),
                        "metric": "recall",
                        "k": 20,
                        "value": v,
                        "segment": segment,
                    }
                )
            )
            res.append(
                {
                    "dataset": "d",
                    "features": feats,
                    "model": model,
                    "seed": seed,
                    "metric": "recall",
                    "k": 20,
                    "value": float(np.mean(v)),
                    "control": control,
                    "segment": segment,
                    "valid_score": valid.get(model, 0.1),
                    "valid_segment": segment,
                }
            )
    return pd.DataFrame(res), pd.concat(per, ignore_index=True)


ID_ROWS: dict[tuple[str, str, str], Values] = {
    ("mostpop", "none", "none"): hits(0.10, 1),
    ("lightgcn", "none", "none"): hits(0.30, 2),
}
VALID = {"mostpop": 0.05, "lightgcn": 0.2}


def only(verdicts, segment: str = "all"):
    (v,) = [v for v in verdicts if v.segment == segment]
    return v


def test_the_250_50_case_is_not_beats_though_a_rank_test_says_so():
    # 250 of 300 users worse by 0.05, 50 better by 0.30: mean +0.0083, and the mean's interval
    # spans 0 (a Wilcoxon signed-rank test gives p < 0.001 here, and used to say "helps")
    base = np.full(N_USERS, 0.5)
    mine = base.copy()
    mine[:250] -= 0.05
    mine[250:] += 0.30
    rows = {
        ("ease", "none", "none"): base,
        ("pm", "t", "none"): mine,
        ("pm", "t~shuffled", "shuffled"): base - 0.2,
    }
    _, verdicts = compute_verdicts(*make_run(rows, {"ease": 0.3}))
    v = only(verdicts)
    assert v.versus_id is not None and v.versus_id.diff == pytest.approx((250 * -0.05 + 50 * 0.30) / 300)
    assert v.versus_id.ci_low < 0 < v.versus_id.ci_high
    assert v.worth == "on par with best ID" and v.reference == "ease"
    assert v.use == "uses content"


def test_a_gap_whose_sign_flips_between_seeds_is_inconclusive():
    # five seeds: four far above the twin, one slightly below. Pooled over users and seeds the gap
    # is significant, but its sign does not hold in every seed: no direction is claimed
    twin = hits(0.3, 4)
    up, down = hits(0.6, 5), hits(0.28, 6)
    seeds = (0, 1, 2, 3, 4)
    rows = {
        **ID_ROWS,
        ("pm", "t", "none"): {0: up, 1: up, 2: up, 3: up, 4: down},
        ("pm", "t~shuffled", "shuffled"): twin,
    }
    _, verdicts = compute_verdicts(*make_run(rows, VALID, seeds=seeds))
    v = only(verdicts)
    (twin_cmp,) = v.twins
    assert [np.sign(x) for x in twin_cmp.seed_diffs] == [1, 1, 1, 1, -1]
    assert twin_cmp.significant  # the interval excludes 0 ...
    assert v.use == "inconclusive (sign differs across seeds)"  # ... yet no claim


def test_above_its_twin_but_below_the_best_id_reads_uses_content_and_below_best_id():
    # the FREEDOM case of issue 20: beats its shuffled twin, trails the best ID model
    rows = {
        **ID_ROWS,
        ("lightgcn", "none", "none"): hits(0.5, 2),
        ("freedom", "t", "none"): hits(0.35, 3),
        ("freedom", "t~shuffled", "shuffled"): hits(0.15, 4),
    }
    _, verdicts = compute_verdicts(*make_run(rows, VALID))
    v = only(verdicts)
    assert v.use == "uses content" and v.worth == "below best ID" and v.reference == "lightgcn"
    line = verdict_lines(verdicts)[0]
    assert line == "freedom [t]: uses content (+0.2000 vs shuffled twin) · below best ID lightgcn (-0.1500)"
    assert "hurts" not in line and "helps" not in line


def test_fewer_than_three_seeds_is_inconclusive_beside_the_figures():
    rows = {**ID_ROWS, ("pm", "t", "none"): hits(0.6, 3), ("pm", "t~shuffled", "shuffled"): hits(0.3, 4)}
    _, verdicts = compute_verdicts(*make_run(rows, VALID, seeds=(0, 1)))
    v = only(verdicts)
    assert v.use == "inconclusive (2 seeds)" and v.worth == "inconclusive (2 seeds)"
    assert v.twins[0].ci_low > 0  # the figures are there; only the claim is withheld
    assert "+0.3000" in v.line() and "inconclusive (2 seeds)" in v.line()


def test_content_degrades_it_and_no_evidence_of_use():
    worse = {**ID_ROWS, ("pm", "t", "none"): hits(0.1, 6), ("pm", "t~shuffled", "shuffled"): hits(0.4, 7)}
    assert only(compute_verdicts(*make_run(worse, VALID))[1]).use == "content degrades it"
    same = hits(0.45, 5)
    equal = {**ID_ROWS, ("pm", "t", "none"): same, ("pm", "t~shuffled", "shuffled"): same.copy()}
    v = only(compute_verdicts(*make_run(equal, VALID))[1])
    assert v.use == "no evidence it uses content" and v.twins[0].diff == 0 and v.twins[0].p == 1.0
    # it beats LightGCN, and so would its twin: worth and use are separate questions
    assert v.worth == "beats best ID"


def test_uses_content_needs_every_twin_present():
    rows = {
        **ID_ROWS,
        ("pm", "t", "none"): hits(0.6, 3),
        ("pm", "t~shuffled", "shuffled"): hits(0.3, 4),
        ("pm", "t~random", "random"): hits(0.6, 3),  # as good as the real features
    }
    v = only(compute_verdicts(*make_run(rows, VALID))[1])
    assert [t.reference for t in v.twins] == ["shuffled twin", "random twin"]
    assert v.use == "no evidence it uses content"


def test_the_reference_is_chosen_per_segment_on_that_segments_validation():
    # overall: EASE is the best ID model on validation; on the tail LightGCN is
    overall = {
        ("ease", "none", "none"): hits(0.5, 1),
        ("lightgcn", "none", "none"): hits(0.3, 2),
        ("pm", "t", "none"): hits(0.4, 3),
        ("pm", "t~shuffled", "shuffled"): hits(0.2, 4),
    }
    tail = {
        ("ease", "none", "none"): hits(0.05, 1),
        ("lightgcn", "none", "none"): hits(0.35, 2),
        ("pm", "t", "none"): hits(0.2, 3),
        ("pm", "t~shuffled", "shuffled"): hits(0.05, 4),
    }
    r1, p1 = make_run(overall, {"ease": 0.4, "lightgcn": 0.3}, "all")
    r2, p2 = make_run(tail, {"ease": 0.02, "lightgcn": 0.1}, "tail")
    comparisons, verdicts = compute_verdicts(pd.concat([r1, r2]), pd.concat([p1, p2]))
    assert only(verdicts).reference == "ease" and only(verdicts).worth == "below best ID"
    t = only(verdicts, "tail")
    assert t.reference == "lightgcn" and t.worth == "below best ID"  # vs EASE it would "beat"
    assert t.reference_basis == "validation on tail items"
    lines = verdict_lines(verdicts)
    assert lines[0].startswith("pm [t]: uses content") and "best ID ease" in lines[0]
    # the tail's labels equal the overall ones, so the block says them once
    assert len(lines) == 1
    # Holm runs over both segments and both questions: 4 comparisons
    assert comparisons.family_size == {"d": 4}


def test_a_row_tuned_on_fewer_points_than_its_reference_says_so():
    rows = {**ID_ROWS, ("pm", "t", "none"): hits(0.6, 3), ("pm", "t~shuffled", "shuffled"): hits(0.3, 4)}
    res, per = make_run(rows, VALID)
    res["grid_size"] = res["model"].map({"lightgcn": 20, "mostpop": 1, "pm": 3})
    v = only(compute_verdicts(res, per)[1])
    assert v.versus_id is not None and v.versus_id.unequal_budget
    assert v.worth_text() == "beats best ID lightgcn (+0.3000; tuned on 3 points vs 20)"
    res["grid_size"] = res["model"].map({"lightgcn": 2, "mostpop": 1, "pm": 2})
    assert only(compute_verdicts(res, per)[1]).worth_text() == "beats best ID lightgcn (+0.3000)"


def test_a_tie_on_the_segment_is_broken_by_overall_validation_and_said():
    # every ID model scores 0 on cold items: the reference is the best one overall, not the
    # alphabetically first, and the basis says it was a tie
    cold_rows = {
        ("ease", "none", "none"): np.zeros(N_USERS),
        ("bprmf", "none", "none"): np.zeros(N_USERS),
        ("pm", "t", "none"): hits(0.2, 3),
        ("pm", "t~shuffled", "shuffled"): hits(0.05, 4),
    }
    overall = {**cold_rows, ("ease", "none", "none"): hits(0.3, 1), ("bprmf", "none", "none"): hits(0.2, 2)}
    r1, p1 = make_run(overall, {"ease": 0.3, "bprmf": 0.2}, "all")
    r2, p2 = make_run(cold_rows, {"ease": 0.0, "bprmf": 0.0}, "cold")
    _, verdicts = compute_verdicts(pd.concat([r1, r2]), pd.concat([p1, p2]))
    cold = only(verdicts, "cold")
    assert cold.reference == "ease"
    assert cold.reference_basis == (
        "validation on cold items (tied at 0.0000 with 1 other ID model: broken by validation on all items)"
    )
    # the terminal block can leave segments out; the JSON and the report keep them
    assert any(line.startswith("    cold:") for line in verdict_lines(verdicts))
    assert not any(line.startswith("    cold:") for line in verdict_lines(verdicts, ("tail",)))


def test_the_reference_is_chosen_on_validation_not_test():
    rows = {
        ("mostpop", "none", "none"): hits(0.5, 1),  # best on test, worst on validation
        ("lightgcn", "none", "none"): hits(0.2, 2),
        ("pm", "t", "none"): hits(0.4, 3),
        ("pm", "t~shuffled", "shuffled"): hits(0.2, 4),
    }
    v = only(compute_verdicts(*make_run(rows, VALID))[1])
    assert v.reference == "lightgcn" and v.worth == "beats best ID"


def test_verdict_json_holds_every_figure_behind_a_label():
    rows = {**ID_ROWS, ("pm", "t", "none"): hits(0.6, 3), ("pm", "t~shuffled", "shuffled"): hits(0.3, 4)}
    comparisons, verdicts = compute_verdicts(*make_run(rows, VALID))
    data = json.loads(json.dumps(verdict_json(comparisons, verdicts)))
    (v,) = data["verdicts"]
    assert v["content_use"]["label"] == "uses content" and v["worth"]["label"] == "beats best ID"
    cmp = v["worth"]["comparison"]
    assert v["worth"]["reference"] == "lightgcn" and cmp["reference_row"]["model"] == "lightgcn"
    assert cmp["diff"] == pytest.approx(0.3) and cmp["seeds"] == 3 and len(cmp["seed_diffs"]) == 3
    assert cmp["ci_low"] > 0 and cmp["p_holm"] < 0.05 and cmp["significant"] is True
    assert data["procedure"]["min_seeds"] == 3 and data["family_size"] == {"d": 2}


def test_no_twin_no_verdict_and_p_value_format():
    rows = {**ID_ROWS, ("pm", "t", "none"): hits(0.5, 3)}
    _, verdicts = compute_verdicts(*make_run(rows, VALID))
    assert only(verdicts).use == "no twin"
    assert format_p(1e-7) == "< 0.001" and format_p(0.0123) == "0.012" and format_p(float("nan")) == "n/a"
    _, none = compute_verdicts(*make_run(ID_ROWS, VALID))
    assert none == [] and "No verdict" in verdict_lines(none)[0]


# ---- the procedure itself -------------------------------------------------------------------


def test_bootstrap_p_and_interval_agree_by_construction():
    rng = np.random.default_rng(0)
    for shift in (0.0, 0.01, 0.02, 0.05, -0.03):
        d = rng.normal(shift, 0.3, size=(3, 200))
        boot = paired_bootstrap(d, n_boot=2000, seed=1)
        for a in (0.5, 0.05, 0.01, 0.001):
            lo, hi = boot.interval(a)
            assert (lo > 0 or hi < 0) == (boot.p_value < a)
        assert boot.estimate == pytest.approx(d.mean())


def test_bootstrap_interval_covers_the_seed_noise():
    # every user has the same difference within a seed, but the seeds disagree: the users-only
    # bootstrap would give a zero-width interval; resampling seeds widens it
    d = np.repeat(np.array([[0.02], [0.0], [-0.01]]), 100, axis=1)
    lo, hi = paired_bootstrap(d, n_boot=2000, seed=0).interval(0.05)
    assert lo < 0 < hi
    users_only = paired_bootstrap(d.mean(axis=0), n_boot=2000, seed=0).interval(0.05)
    assert users_only[1] - users_only[0] == pytest.approx(0)


def test_holm_levels_match_holm_rejections():
    p = np.array([0.001, 0.04, 0.012, 0.3, 0.0002])
    adjusted, levels = holm_levels(p, 0.05)
    assert np.allclose(adjusted, holm(p))
    # by hand: sorted 0.0002 (x5), 0.001 (x4), 0.012 (x3 = 0.036), 0.04 (x2 = 0.08: stop), 0.3
    assert list(adjusted < 0.05) == [True, False, True, False, True]
    assert levels[4] == pytest.approx(0.05 / 5) and levels[0] == pytest.approx(0.05 / 4)
    assert levels[2] == pytest.approx(0.05 / 3)
    assert levels[1] == pytest.approx(0.05 / 2) and levels[3] == pytest.approx(0.05 / 2)
    assert all((pi < li) == (a < 0.05) for pi, li, a in zip(p, levels, adjusted))


def test_spec_label():
    assert ComparisonSpec("ndcg", 10).label == "ndcg@10"
