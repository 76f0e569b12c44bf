"""The leaderboard: mean, CI and seed spread per (model, features) row, and its comparisons.

A row's CI is a seeded bootstrap over test users of the per-user values averaged over seeds (the
uncertainty of the test sample, which deterministic models have too); `seed_std` shows the spread
across training seeds beside it. The comparisons of content rows (against the segment's best ID
model, chosen on validation, and against their own content twins) are not made here: they come
from `experiments.comparisons`, the one procedure the verdict uses too.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import pandas as pd

from vlmrec.evaluation.significance import bootstrap_ci
from vlmrec.experiments.comparisons import ROW, RowKey, RunComparisons, best_id_reference
from vlmrec.experiments.results import segment_rows

MASK_TEXT = {
    "train": "train items (validation items stay rankable, the MMRec convention)",
    "train+valid": "train and validation items",
}


def describe_mask(mask: str) -> str:
    """A sentence naming the test-time mask ("train" or "train+valid") of a results table."""
    return f"Test-time mask: {MASK_TEXT.get(mask, mask)}."


def results_mask(results: pd.DataFrame, default: str = "train+valid") -> str:
    """The test-time mask recorded in a results table (older tables: `default`, which they used)."""
    if "mask" not in results.columns or results["mask"].isna().all():
        return default
    return " / ".join(sorted(results["mask"].dropna().astype(str).unique()))


def leaderboard(
    results: pd.DataFrame,
    per_user: pd.DataFrame,
    metric: str = "recall",
    k: int = 20,
    segment: str = "all",
    extra: list[tuple[str, int]] | None = None,
    comparisons: RunComparisons | None = None,
) -> pd.DataFrame:
    """The leaderboard of one metric@k on one `segment` ("all" by default; tables without a
    segment column are all "all").

    Rows without per-user values of the metric are left out. With `comparisons` (made for this
    metric@k by `compare_run`), each content row gets its comparison columns: `vs_id_*` against
    the segment's best ID model and `vs_shuffled_*` / `vs_random_*` against its twins (diff,
    ci_low, ci_high, p_holm, outcome); `content_gap` is the diff vs the shuffled twin."""
    results = segment_rows(with_control(results), segment)
    per_user = segment_rows(with_control(per_user), segment)
    sel = results[(results["metric"] == metric) & (results["k"] == k)]
    pu = per_user[(per_user["metric"] == metric) & (per_user["k"] == k)]
    user_means = pu.groupby([*ROW, "user"])["value"].mean()
    have = {tuple(key[:-1]) for key in user_means.index} if len(user_means) else set()
    rows = []
    for keys, g in sel.groupby(ROW, sort=False):
        key = cast(RowKey, keys)  # the ROW columns hold strings
        if key not in have:
            continue
        rows.append(_row(key, g, user_means.loc[key].to_numpy(), results, extra))
    board = pd.DataFrame(rows)
    if board.empty:
        return board
    board["kind"] = np.where(
        board["control"] != "none", "control", np.where(board["features"] == "none", "id-only", "content")
    )
    for dataset, b in board.groupby("dataset"):
        best, _ = best_id_reference(results[results["dataset"] == dataset], segment)
        board.loc[b.index, "best_id_baseline"] = None if best is None else best[1]
    if comparisons is not None:
        _attach(board, comparisons, segment)
    board["metric"] = f"{metric}@{k}"
    board["segment"] = segment
    board["mask"] = results_mask(results)
    return board.sort_values(["dataset", "mean"], ascending=[True, False]).reset_index(drop=True)


def with_control(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with a `control` column ("none" where missing: tables written before controls)."""
    return frame if "control" in frame.columns else frame.assign(control="none")


def _row(
    key: RowKey,
    cells: pd.DataFrame,
    user_values: np.ndarray,
    results: pd.DataFrame,
    extra: list[tuple[str, int]] | None,
) -> dict:
    """One leaderboard row: mean over seeds, bootstrap CI over users, seed spread, validation."""
    values = cells["value"].to_numpy()
    lo, hi = bootstrap_ci(user_values, seed=0)
    row = dict(
        zip(ROW, key),
        mean=values.mean(),
        ci_low=lo,
        ci_high=hi,
        seeds=len(values),
        seed_std=float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        valid_mean=float(cells["valid_score"].mean()) if "valid_score" in cells else np.nan,
    )
    if "grid_size" in cells:
        row["grid_size"] = int(cells["grid_size"].iloc[0])
    for m2, k2 in extra or []:
        by_row = results[(results["metric"] == m2) & (results["k"] == k2)].set_index(ROW)
        v2 = by_row["value"].loc[[key]] if key in by_row.index else pd.Series(dtype=float)
        row[f"{m2}@{k2}"] = float(v2.mean()) if len(v2) else np.nan
    return row


COMPARISON_PREFIX = {"shuffled twin": "vs_shuffled", "random twin": "vs_random"}


def _attach(board: pd.DataFrame, comparisons: RunComparisons, segment: str) -> None:
    """Copy each content row's comparisons of `segment` into its leaderboard columns."""
    index = {tuple(r[c] for c in ROW): i for i, r in board.iterrows()}
    for c in comparisons.comparisons:
        i = index.get(c.row)
        if c.segment != segment or i is None:
            continue
        prefix = "vs_id" if c.question == "worth" else COMPARISON_PREFIX.get(c.reference, "vs_twin")
        for name, value in (
            ("diff", c.diff),
            ("ci_low", c.ci_low),
            ("ci_high", c.ci_high),
            ("p_holm", c.p_holm),
            ("outcome", c.outcome_text()),
        ):
            board.loc[i, f"{prefix}_{name}"] = value
        if prefix == "vs_shuffled":
            board.loc[i, "content_gap"] = c.diff


def format_markdown(board: pd.DataFrame) -> str:
    """A Markdown table: each content row's difference to the best ID-only model and to its
    shuffled twin, with the comparison's outcome (better / worse / no difference / inconclusive)."""
    if board.empty:
        return "(no results)"
    metric = board["metric"].iloc[0]
    extra_cols = [c for c in board.columns if "@" in c and c != "metric"]
    grid = "grid_size" in board.columns
    head = (
        "| model | features | "
        + ("grid | " if grid else "")
        + f"{metric} (95% CI) | "
        + " | ".join(extra_cols)
        + (" | " if extra_cols else "")
        + "vs best ID | vs shuffled | content gap |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for _, r in board.iterrows():
        gap = f"{r['content_gap']:+.4f}" if "content_gap" in r and pd.notna(r.get("content_gap")) else ""
        extras = " | ".join(f"{r[c]:.4f}" for c in extra_cols)
        size = (
            f"{int(r['grid_size'])} | " if grid and pd.notna(r.get("grid_size")) else ("| " if grid else "")
        )
        lines.append(
            f"| {r['model']} | {r['features']} | {size}{r['mean']:.4f} ({r['ci_low']:.4f}-{r['ci_high']:.4f}) | "
            + (extras + " | " if extra_cols else "")
            + f"{_mark(r, 'vs_id')} | {_mark(r, 'vs_shuffled')} | {gap} |"
        )
    lines.append("")
    if "mask" in board.columns:
        lines.append(describe_mask(str(board["mask"].iloc[0])))
        lines.append("")
    refs = (
        [str(r) for r in board["best_id_baseline"].dropna().unique()] if "best_id_baseline" in board else []
    )
    lines.append(
        f"Best ID baseline (the 'vs best ID' reference): {', '.join(refs)}, chosen on the validation "
        "score averaged over seeds (not on test)."
        if len(refs)
        else "No ID-only row with a validation score: no 'vs best ID' reference."
    )
    lines.append("")
    lines.append(
        "CI: bootstrap over test users. vs best ID / vs shuffled: mean per-user difference, outcome "
        "from the paired bootstrap over users and seeds (Holm over the run's comparisons; "
        "better/worse need >= 3 seeds agreeing in sign). "
        "Content gap = real features minus the model's own shuffled-feature twin."
        + (
            " Grid = hyperparameter points tried for the row (chosen once on validation, mean over seeds)."
            if grid
            else ""
        )
    )
    return "\n".join(lines)


def _mark(r: pd.Series, col: str) -> str:
    """E.g. `+0.0106, better` from a row's comparison columns (empty when it has none)."""
    if pd.isna(r.get(f"{col}_diff")):
        return ""
    return f"{r[f'{col}_diff']:+.4f}, {r[f'{col}_outcome']}"
