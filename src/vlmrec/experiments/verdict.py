"""The verdict: does a content row's content help, is it ignored, or does it hurt?

One verdict per content row (model x features) that has a shuffled-feature twin. It needs both
references, because the shuffled twin alone can mislead (a twin fed shuffled content can fall
*below* the ID-only models, so "real minus shuffled" then partly measures the harm shuffled
content does):

- **content helps**: significantly better than the best ID-only baseline (chosen on validation)
  AND significantly better than its own shuffled twin;
- **content hurts**: significantly worse than its shuffled twin or than the best ID baseline;
- **content is ignored**: real ~ shuffled (no significant difference to the twin);
- **content is used, no gain over ID**: better than the twin, but not significantly better than
  the best ID baseline (or no ID baseline to compare with).

p-values are the leaderboard's (paired test over users, Holm-corrected within the dataset and
segment); each gap is the mean of the paired per-user differences (per-user values averaged over
seeds) with a seeded bootstrap 95% CI over users.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from vlmrec.evaluation.significance import bootstrap_ci
from vlmrec.experiments.leaderboard import ROW, leaderboard
from vlmrec.experiments.results import segment_rows

Label = Literal["helps", "hurts", "ignored", "used"]
SEGMENTS: tuple[str, ...] = ("all", "warm", "cold", "head", "torso", "tail")
#: the segments a verdict is broken down by, when the run recorded them
VERDICT_SEGMENTS: tuple[str, ...] = ("warm", "cold", "tail")
BEYOND_ACCURACY: tuple[str, ...] = ("coverage", "novelty", "tail_share")

HEADLINE: dict[str, str] = {
    "helps": "content helps",
    "hurts": "content hurts",
    "ignored": "content is ignored",
    "used": "content is used, no gain over ID",
}
EXPLAIN: dict[str, str] = {
    "helps": "significant vs best ID and vs its shuffled twin",
    "hurts": "significantly worse than its shuffled twin or the best ID baseline",
    "ignored": "real ~ shuffled: no significant difference",
    "used": "beats its shuffled twin, but not the best ID baseline",
}


def format_p(p: float | None) -> str:
    """A p-value for people: `< 0.001` below a thousandth, three decimals otherwise, `n/a` if none."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    if p < 0.001:
        return "< 0.001"
    return f"{p:.3f}"


def format_p_exact(p: float | None) -> str:
    """A p-value in scientific notation (e.g. `3.2e-05`), for hover text and logs."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def direction(diff: float | None, significant: bool | None) -> str:
    """`better` / `worse` when the difference is significant, `no sig. difference` otherwise."""
    if diff is None or (isinstance(diff, float) and math.isnan(diff)) or significant is None:
        return ""
    if not significant:
        return "no sig. difference"
    return "better" if diff > 0 else "worse"


def segments_present(results: pd.DataFrame) -> list[str]:
    """The segments a results table holds, in the canonical order (always at least "all")."""
    if "segment" not in results.columns:
        return ["all"]
    have = set(results["segment"].fillna("all").astype(str))
    return [s for s in SEGMENTS if s in have] or ["all"]


def safe_leaderboard(
    results: pd.DataFrame,
    per_user: pd.DataFrame,
    metric: str = "recall",
    k: int = 20,
    test: str = "wilcoxon",
    alpha: float = 0.05,
    segment: str = "all",
    extra: list[tuple[str, int]] | None = None,
) -> pd.DataFrame:
    """`leaderboard` on one segment, keeping only rows that have per-user values for it."""
    res = segment_rows(results, segment)
    pu = segment_rows(per_user, segment)
    sel = pu[(pu["metric"] == metric) & (pu["k"] == k)]
    if res.empty or sel.empty:
        return pd.DataFrame()
    for col in ROW:  # older per-user tables may lack `control`
        if col not in res.columns:
            res = res.assign(**{col: "none"})
        if col not in pu.columns:
            pu = pu.assign(**{col: "none"})
            sel = sel.assign(**{col: "none"})
    have = set(map(tuple, sel[ROW].drop_duplicates().to_numpy().tolist()))
    keep = [tuple(r) in have for r in res[ROW].to_numpy().tolist()]
    res = res[keep]
    if res.empty:
        return pd.DataFrame()
    board = leaderboard(res, pu, metric, k, test, alpha, extra=extra, segment=segment)
    if not board.empty:
        board["segment"] = segment
    return board


@dataclass(frozen=True)
class Gap:
    """A paired difference (row minus reference) with its bootstrap CI and Holm-adjusted p."""

    reference: str
    diff: float
    ci_low: float
    ci_high: float
    p: float
    significant: bool
    reference_mean: float

    def text(self) -> str:
        """E.g. `+0.0412 [+0.0301, +0.0520], p < 0.001, better`. The CI (bootstrap of the mean
        difference) and the p (paired rank test, Holm) answer different questions and can
        disagree; when the test is significant but the CI spans 0, the text says so."""
        word = direction(self.diff, self.significant)
        if word in ("better", "worse") and self.ci_low <= 0 <= self.ci_high:
            word += " by the rank test (the mean difference's CI includes 0)"
        return f"{self.diff:+.4f} [{self.ci_low:+.4f}, {self.ci_high:+.4f}], p {_p_phrase(self.p)}" + (
            f", {word}" if word else ""
        )


def _p_phrase(p: float) -> str:
    s = format_p(p)
    return s if s.startswith("<") or s == "n/a" else f"= {s}"


@dataclass(frozen=True)
class Verdict:
    """The verdict on one content row in one segment."""

    dataset: str
    model: str
    features: str
    segment: str
    metric: str
    label: Label
    mean: float
    vs_shuffled: Gap
    vs_id: Gap | None
    best_id: str | None
    #: the shuffled twin scored below the best ID baseline: part of the content gap is shuffled
    #: content doing harm, so the gap vs ID is the honest figure
    twin_below_id: bool

    @property
    def headline(self) -> str:
        """The verdict's words, e.g. `content helps`."""
        return HEADLINE[self.label]

    def line(self) -> str:
        """One line: verdict, why, and both gaps with CI and p."""
        where = "" if self.segment == "all" else f" [{self.segment} items]"
        parts = [f"{self.model} [{self.features}]{where}: {self.headline} ({EXPLAIN[self.label]})"]
        if self.vs_id is not None:
            parts.append(f"vs best ID ({self.best_id}) {self.metric} {self.vs_id.text()}")
        else:
            parts.append("no ID-only baseline with a validation score")
        parts.append(f"vs shuffled {self.vs_shuffled.text()}")
        line = "; ".join(parts)
        if self.twin_below_id and self.vs_id is not None:
            line += (
                f". Caution: the shuffled twin ({self.vs_shuffled.reference_mean:.4f}) is below "
                f"{self.best_id} ({self.vs_id.reference_mean:.4f}), so part of the gap to the twin is "
                "shuffled content doing harm; trust the gap vs ID"
            )
        return line

    def short(self) -> str:
        """A compact per-segment form, e.g. `cold: content helps (+0.0500 vs shuffled)`."""
        tail = f"{self.vs_shuffled.diff:+.4f} vs shuffled"
        if self.vs_id is not None:
            tail += f", {self.vs_id.diff:+.4f} vs ID"
        return f"{self.segment}: {self.headline} ({tail})"


def classify(
    vs_shuffled_diff: float,
    vs_shuffled_sig: bool,
    vs_id_diff: float | None,
    vs_id_sig: bool | None,
) -> Label:
    """The verdict rule (see the module docstring); both references count."""
    # the ID reference counts only with both a difference (not NaN) and a significance flag
    id_diff = (
        vs_id_diff
        if vs_id_diff is not None and vs_id_sig is not None and not math.isnan(vs_id_diff)
        else None
    )
    if (vs_shuffled_sig and vs_shuffled_diff < 0) or (id_diff is not None and vs_id_sig and id_diff < 0):
        return "hurts"
    if not vs_shuffled_sig:
        return "ignored"
    if id_diff is not None and vs_id_sig and id_diff > 0:
        return "helps"
    return "used"


def user_means(per_user: pd.DataFrame, metric: str, k: int) -> pd.Series:
    """Per-user values averaged over seeds, indexed by (dataset, model, features, control, user)."""
    pu = per_user[(per_user["metric"] == metric) & (per_user["k"] == k)]
    if "control" not in pu.columns:
        pu = pu.assign(control="none")
    return pu.groupby([*ROW, "user"])["value"].mean()


def paired_gap(mine: pd.Series, ref: pd.Series, seed: int = 0) -> tuple[float, float, float]:
    """Mean of the paired per-user differences `mine - ref` (common users) and its bootstrap CI."""
    common = mine.index.intersection(ref.index)
    d = mine[common].to_numpy() - ref[common].to_numpy()
    if len(d) == 0:
        return float("nan"), float("nan"), float("nan")
    lo, hi = bootstrap_ci(d, seed=seed)
    return float(d.mean()), lo, hi


def verdicts_from_board(
    board: pd.DataFrame, per_user: pd.DataFrame, metric: str, k: int, segment: str = "all"
) -> list[Verdict]:
    """Verdicts for the content rows of a leaderboard (of one segment) that have a shuffled twin."""
    if board.empty or "vs_shuffled_p_holm" not in board.columns:
        return []
    means = user_means(segment_rows(per_user, segment), metric, k)
    out = []
    for _, r in board[(board["kind"] == "content") & board["vs_shuffled_p_holm"].notna()].iterrows():
        b = board[board["dataset"] == r["dataset"]]
        twin = b[
            (b["model"] == r["model"])
            & (b["control"] == "shuffled")
            & (b["features"].str.replace("~shuffled", "", regex=False) == r["features"])
        ].iloc[0]
        mine = means.loc[tuple(r[c] for c in ROW)]
        d, lo, hi = paired_gap(mine, means.loc[tuple(twin[c] for c in ROW)])
        vs_sh = Gap(
            "shuffled twin",
            d,
            lo,
            hi,
            float(r["vs_shuffled_p_holm"]),
            bool(r["vs_shuffled_sig"]),
            float(twin["mean"]),
        )
        vs_id = None
        best_name = r.get("best_id_baseline")
        best_id = None
        if isinstance(best_name, str) and pd.notna(r.get("vs_id_p_holm")):
            best = b[(b["kind"] == "id-only") & (b["model"] == best_name)].iloc[0]
            best_id = best_name
            d, lo, hi = paired_gap(mine, means.loc[tuple(best[c] for c in ROW)])
            vs_id = Gap(
                best_name, d, lo, hi, float(r["vs_id_p_holm"]), bool(r["vs_id_sig"]), float(best["mean"])
            )
        label = classify(
            vs_sh.diff,
            vs_sh.significant,
            vs_id.diff if vs_id else None,
            vs_id.significant if vs_id else None,
        )
        out.append(
            Verdict(
                dataset=str(r["dataset"]),
                model=str(r["model"]),
                features=str(r["features"]),
                segment=segment,
                metric=f"{metric}@{k}",
                label=label,
                mean=float(r["mean"]),
                vs_shuffled=vs_sh,
                vs_id=vs_id,
                best_id=best_id,
                twin_below_id=vs_id is not None and vs_sh.reference_mean < vs_id.reference_mean,
            )
        )
    return out


def compute_verdicts(
    results: pd.DataFrame,
    per_user: pd.DataFrame,
    metric: str = "recall",
    k: int = 20,
    test: str = "wilcoxon",
    alpha: float = 0.05,
    segments: Iterable[str] | None = None,
) -> dict[str, list[Verdict]]:
    """Verdicts per segment: "all" always, plus warm / cold / tail where the run recorded them."""
    present = segments_present(results)
    wanted = ["all", *(s for s in (segments or VERDICT_SEGMENTS) if s != "all")]
    out: dict[str, list[Verdict]] = {}
    for seg in wanted:
        if seg not in present:
            continue
        board = safe_leaderboard(results, per_user, metric, k, test, alpha, segment=seg)
        found = verdicts_from_board(board, per_user, metric, k, seg)
        if found or seg == "all":
            out[seg] = found
    return out


def verdict_lines(by_segment: dict[str, list[Verdict]]) -> list[str]:
    """Plain-text verdict block: one line per content row, then its per-segment verdicts."""
    overall = by_segment.get("all", [])
    if not overall:
        return ["No verdict: no content row with a shuffled-feature twin (add `controls: [shuffled]`)."]
    lines = []
    for v in overall:
        lines.append(v.line())
        per_seg = [
            w.short()
            for seg, vs in by_segment.items()
            if seg != "all"
            for w in vs
            if (w.dataset, w.model, w.features) == (v.dataset, v.model, v.features)
        ]
        if per_seg:
            lines.append("    by segment: " + "; ".join(per_seg))
    return lines


def verdict_summary(label_counts: dict[str, int]) -> str:
    """E.g. `2 content rows: 1 helps, 1 ignored`."""
    total = sum(label_counts.values())
    parts = [f"{n} {HEADLINE[lab].removeprefix('content ')}" for lab, n in label_counts.items() if n]
    return f"{total} content row{'s' if total != 1 else ''}: " + ", ".join(parts)


def label_counts(verdicts: Iterable[Verdict]) -> dict[str, int]:
    """How many verdicts of each kind (in the order helps, used, ignored, hurts)."""
    labels = [v.label for v in verdicts]
    return {lab: labels.count(lab) for lab in ("helps", "used", "ignored", "hurts")}


__all__ = [
    "Gap",
    "Verdict",
    "classify",
    "compute_verdicts",
    "direction",
    "format_p",
    "format_p_exact",
    "label_counts",
    "paired_gap",
    "user_means",
    "safe_leaderboard",
    "segment_rows",
    "segments_present",
    "verdict_lines",
    "verdict_summary",
    "verdicts_from_board",
]
