"""Hand-checked verdicts on constructed per-user data: helps / ignored / hurts / used."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vlmrec.experiments.verdict import (
    classify,
    compute_verdicts,
    format_p,
    segment_rows,
    verdict_lines,
)

N_USERS = 400


def hits(rate: float, seed: int) -> np.ndarray:
    """Per-user recall values: exactly round(rate * N_USERS) users hit (1.0), in a seeded order."""
    v = np.zeros(N_USERS)
    v[: round(rate * N_USERS)] = 1.0
    return np.random.default_rng(seed).permutation(v)


def make_run(
    rows: dict[tuple[str, str, str], np.ndarray],
    valid: dict[str, float],
    segment: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """results + per_user tables (recall@20, 2 seeds with the same values) for given per-user values."""
    res, per = [], []
    users = np.arange(N_USERS)
    for (model, feats, control), values in rows.items():
        for seed in (0, 1):
            extra = {} if segment is None else {"segment": segment}
            per.append(
                pd.DataFrame(
                    {
                        "dataset": "d",
                        "model": model,
                        "features": feats,
                        "control": control,
                        "seed": seed,
                        "user": users,
                        "metric": "recall",
                        "k": 20,
                        "value": values,
                        **extra,
                    }
                )
            )
            res.append(
                {
                    "dataset": "d",
                    "split": "test",
                    "features": feats,
                    "model": model,
                    "seed": seed,
                    "metric": "recall",
                    "k": 20,
                    "value": float(values.mean()),
                    "control": control,
                    "valid_score": valid.get(model, 0.1),
                    **extra,
                }
            )
    return pd.DataFrame(res), pd.concat(per, ignore_index=True)


ID_ROWS = {
    ("mostpop", "none", "none"): hits(0.10, 1),
    ("lightgcn", "none", "none"): hits(0.30, 2),
}
VALID = {"mostpop": 0.05, "lightgcn": 0.2}


def test_content_helps_when_it_beats_both_best_id_and_its_shuffled_twin():
    # per-user: the real row hits 0.6 of users, twin and LightGCN 0.3 -> both gaps +0.3
    rows = {**ID_ROWS, ("pm", "t", "none"): hits(0.6, 3), ("pm", "t~shuffled", "shuffled"): hits(0.3, 4)}
    (v,) = compute_verdicts(*make_run(rows, VALID))["all"]
    assert v.label == "helps" and v.best_id == "lightgcn"
    assert v.vs_shuffled.diff == pytest.approx(0.3) and v.vs_id.diff == pytest.approx(0.3)
    assert v.vs_shuffled.ci_low < 0.3 < v.vs_shuffled.ci_high and v.vs_shuffled.ci_low > 0
    line = v.line()
    assert "content helps" in line and "p < 0.001" in line and "better" in line and "0.0000" not in line
    assert "+0.3000" in line


def test_content_is_ignored_when_real_equals_shuffled():
    same = hits(0.45, 5)
    rows = {**ID_ROWS, ("pm", "t", "none"): same, ("pm", "t~shuffled", "shuffled"): same.copy()}
    (v,) = compute_verdicts(*make_run(rows, VALID))["all"]
    # it beats LightGCN significantly, but so does its twin: the model helps, not the content
    assert v.label == "ignored" and v.vs_shuffled.diff == 0 and v.vs_shuffled.p == 1.0
    assert v.vs_id.significant and v.vs_id.diff > 0
    assert "content is ignored" in v.line() and "no sig. difference" in v.line()


def test_content_hurts_when_significantly_worse_than_its_twin():
    rows = {**ID_ROWS, ("pm", "t", "none"): hits(0.1, 6), ("pm", "t~shuffled", "shuffled"): hits(0.4, 7)}
    (v,) = compute_verdicts(*make_run(rows, VALID))["all"]
    assert v.label == "hurts" and v.vs_shuffled.diff == pytest.approx(-0.3)
    assert "content hurts" in v.line() and "worse" in v.line()


def test_shuffled_twin_below_id_is_not_enough_the_freedom_case():
    # FREEDOM: real 0.30 ~ LightGCN 0.30, twin 0.15: a big "content gap" that is shuffled-content harm
    lightgcn = ID_ROWS[("lightgcn", "none", "none")]
    rows = {
        **ID_ROWS,
        ("freedom", "t", "none"): lightgcn.copy(),
        ("freedom", "t~shuffled", "shuffled"): hits(0.15, 8),
    }
    (v,) = compute_verdicts(*make_run(rows, VALID))["all"]
    assert v.vs_shuffled.significant and v.vs_shuffled.diff > 0
    assert v.label == "used" and v.twin_below_id
    assert "Caution" in v.line() and "trust the gap vs ID" in v.line()


def test_the_best_id_baseline_is_chosen_on_validation_not_test():
    # mostpop is better on test but worse on validation: LightGCN is the reference
    rows = {
        ("mostpop", "none", "none"): hits(0.5, 1),
        ("lightgcn", "none", "none"): hits(0.2, 2),
        ("pm", "t", "none"): hits(0.4, 3),
        ("pm", "t~shuffled", "shuffled"): hits(0.2, 4),
    }
    (v,) = compute_verdicts(*make_run(rows, VALID))["all"]
    assert v.best_id == "lightgcn" and v.label == "helps"


def test_segments_give_per_segment_verdicts_and_old_tables_still_work():
    overall = {**ID_ROWS, ("pm", "t", "none"): hits(0.5, 3), ("pm", "t~shuffled", "shuffled"): hits(0.3, 4)}
    cold = {
        ("mostpop", "none", "none"): np.zeros(N_USERS),  # ID-only models cannot rank cold items
        ("lightgcn", "none", "none"): np.zeros(N_USERS),
        ("pm", "t", "none"): hits(0.4, 9),
        ("pm", "t~shuffled", "shuffled"): hits(0.4, 9),
    }
    r1, p1 = make_run(overall, VALID, "all")
    r2, p2 = make_run(cold, VALID, "cold")
    by_seg = compute_verdicts(pd.concat([r1, r2]), pd.concat([p1, p2]))
    assert set(by_seg) == {"all", "cold"}
    assert by_seg["all"][0].label == "helps" and by_seg["cold"][0].label == "ignored"
    lines = verdict_lines(by_seg)
    assert lines[0].startswith("pm [t]: content helps") and "cold: content is ignored" in lines[1]
    # a table without the column is all "all"
    r0, p0 = make_run(overall, VALID)
    assert len(segment_rows(r0, "all")) == len(r0) and segment_rows(r0, "cold").empty
    assert list(compute_verdicts(r0, p0)) == ["all"]


def test_no_twin_no_verdict_and_p_value_format():
    rows = {**ID_ROWS, ("pm", "t", "none"): hits(0.5, 3)}
    by_seg = compute_verdicts(*make_run(rows, VALID))
    assert by_seg["all"] == [] and "No verdict" in verdict_lines(by_seg)[0]
    assert format_p(1e-7) == "< 0.001" and format_p(0.0123) == "0.012" and format_p(float("nan")) == "n/a"


@pytest.mark.parametrize(
    "args,label",
    [
        ((0.1, True, 0.1, True), "helps"),
        ((0.1, True, 0.01, False), "used"),
        ((0.1, True, None, None), "used"),
        ((0.0, False, 0.1, True), "ignored"),
        ((-0.1, True, 0.1, True), "hurts"),
        ((0.1, True, -0.1, True), "hurts"),
    ],
)
def test_classify_rule(args, label):
    assert classify(*args) == label


def test_gap_text_says_when_the_rank_test_and_the_ci_disagree():
    from vlmrec.experiments.verdict import Gap

    agree = Gap("x", 0.04, 0.03, 0.05, 0.0001, True, 0.2)
    assert agree.text() == "+0.0400 [+0.0300, +0.0500], p < 0.001, better"
    disagree = Gap("x", 0.0041, -0.0011, 0.0096, 0.009, True, 0.2)
    assert disagree.text().endswith("better by the rank test (the mean difference's CI includes 0)")
    not_significant = Gap("x", 0.0041, -0.0011, 0.0096, 0.2, False, 0.2)
    assert not_significant.text().endswith("no sig. difference")
