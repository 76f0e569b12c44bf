"""The leaderboard: mean +- CI over seeds per (model, features), and how sure each gain is.

Each content row is tested, paired by user (per-user values averaged over seeds), against
(a) the best ID-only baseline, chosen on the VALIDATION score (the run's selection metric,
averaged over seeds; never on test), and (b) its own shuffled-feature twin; all p-values of a dataset
are Holm-corrected together. CI: a seeded bootstrap over test users of the per-user values
averaged over seeds (the uncertainty of the test sample, which deterministic models have too);
`seed_std` shows the spread across training seeds beside it.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import pandas as pd

from vlmrec.evaluation.significance import bootstrap_ci, holm, paired_test
from vlmrec.experiments.results import segment_rows

ROW = ["dataset", "model", "features", "control"]
RowKey = tuple[str, str, str, str]  # one leaderboard row: its values of the ROW columns
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
    test: str = "wilcoxon",
    alpha: float = 0.05,
    extra: list[tuple[str, int]] | None = None,
    segment: str = "all",
) -> pd.DataFrame:
    """The leaderboard of one metric@k on one `segment` ("all" by default; tables without a
    segment column are all "all")."""
    rows = []
    results = segment_rows(results, segment)
    per_user = segment_rows(per_user, segment)
    sel = results[(results["metric"] == metric) & (results["k"] == k)]
    pu = per_user[(per_user["metric"] == metric) & (per_user["k"] == k)]
    user_means = pu.groupby([*ROW, "user"])["value"].mean()
    for keys, g in sel.groupby(ROW, sort=False):
        key = cast(RowKey, keys)  # the ROW columns hold strings
        values = g["value"].to_numpy()
        lo, hi = bootstrap_ci(user_means.loc[key].to_numpy(), seed=0)
        row = dict(
            zip(ROW, key),
            mean=values.mean(),
            ci_low=lo,
            ci_high=hi,
            seeds=len(values),
            seed_std=float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            valid_mean=float(g["valid_score"].mean()) if "valid_score" in g else np.nan,
        )
        if "grid_size" in g:
            row["grid_size"] = int(g["grid_size"].iloc[0])
        for m2, k2 in extra or []:
            by_row = results[(results["metric"] == m2) & (results["k"] == k2)].set_index(ROW)
            v2 = by_row["value"].loc[[key]] if key in by_row.index else pd.Series(dtype=float)
            row[f"{m2}@{k2}"] = float(v2.mean()) if len(v2) else np.nan
        rows.append(row)
    board = pd.DataFrame(rows)
    if board.empty:
        return board
    board["kind"] = np.where(
        board["control"] != "none", "control", np.where(board["features"] == "none", "id-only", "content")
    )
    tests: list[tuple[int, str, float]] = []  # (row index, column, p)
    for _, b in board.groupby("dataset"):
        # the reference is chosen on validation, never on test; no validation score, no reference
        ids = b[(b["kind"] == "id-only") & b["valid_mean"].notna()]
        # board's index is a RangeIndex: its labels are ints
        best_id = ids.loc[cast(int, ids["valid_mean"].idxmax())] if len(ids) else None
        board.loc[b.index, "best_id_baseline"] = best_id["model"] if best_id is not None else None
        for label, r in b[b["kind"] == "content"].iterrows():
            idx = cast(int, label)
            mine = user_means.loc[tuple(r[c] for c in ROW)]
            if best_id is not None:
                ref = user_means.loc[tuple(best_id[c] for c in ROW)]
                common = mine.index.intersection(ref.index)
                board.loc[idx, "vs_id_diff"] = float(mine[common].mean() - ref[common].mean())
                tests.append(
                    (idx, "vs_id", paired_test(mine[common].to_numpy(), ref[common].to_numpy(), test))
                )
            twin = b[
                (b["model"] == r["model"])
                & (b["control"] == "shuffled")
                & (b["features"].str.replace("~shuffled", "", regex=False) == r["features"])
            ]
            if len(twin):
                t = twin.iloc[0]
                ref = user_means.loc[tuple(t[c] for c in ROW)]
                common = mine.index.intersection(ref.index)
                board.loc[idx, "content_gap"] = r["mean"] - t["mean"]
                tests.append(
                    (idx, "vs_shuffled", paired_test(mine[common].to_numpy(), ref[common].to_numpy(), test))
                )
    if tests:
        for dataset in board["dataset"].unique():
            ts = [t for t in tests if board.loc[t[0], "dataset"] == dataset]
            adj = holm([p for _, _, p in ts])
            for (idx, col, p), pa in zip(ts, adj):
                board.loc[idx, f"{col}_p"] = p
                board.loc[idx, f"{col}_p_holm"] = pa
                board.loc[idx, f"{col}_sig"] = bool(pa < alpha)
    board["metric"] = f"{metric}@{k}"
    board["mask"] = results_mask(results)
    return board.sort_values(["dataset", "mean"], ascending=[True, False]).reset_index(drop=True)


def format_markdown(board: pd.DataFrame) -> str:
    """A Markdown table with significance marks: * beats/differs from the best ID-only baseline,
    and dagger = differs from its own shuffled-content twin (Holm-corrected)."""
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
        "CI: bootstrap over test users. p-values: paired test over users, Holm-corrected within the "
        "dataset; * = significant at the configured alpha (better/worse than the reference). "
        "Content gap = real features minus the model's own shuffled-feature twin."
        + (
            " Grid = hyperparameter points tried for the row (chosen once on validation, mean over seeds)."
            if grid
            else ""
        )
    )
    return "\n".join(lines)


def _mark(r: pd.Series, col: str) -> str:
    if f"{col}_p_holm" not in r or pd.isna(r.get(f"{col}_p_holm")):
        return ""
    text = f"p={r[f'{col}_p_holm']:.3g}"
    if r[f"{col}_sig"]:
        diff = r.get("vs_id_diff") if col == "vs_id" else r.get("content_gap")
        text += " * " + ("better" if diff is not None and diff > 0 else "worse")
    return text
