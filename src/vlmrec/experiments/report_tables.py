"""The report's tables, each computed once from a run's results (the Markdown and HTML renderers
both read them): the compact leaderboard, metrics per segment, beyond-accuracy metrics, every cell,
every comparison, model selection, cold vs warm users, and the item gallery."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vlmrec.data.dataset import Dataset
from vlmrec.evaluation.significance import bootstrap_ci
from vlmrec.experiments.comparisons import RunComparisons
from vlmrec.experiments.leaderboard import ROW, leaderboard
from vlmrec.experiments.verdict import BEYOND_ACCURACY, format_p, segment_rows


def user_groups(ds: Dataset, per_user: pd.DataFrame, metric: str, k: int) -> pd.DataFrame:
    """Mean metric for cold (shortest third of train histories) vs warm (longest third) users."""
    hist = np.bincount(ds.train["user"].to_numpy(), minlength=ds.n_users)
    lo, hi = np.quantile(hist, [1 / 3, 2 / 3])
    group = np.where(hist <= lo, "cold", np.where(hist > hi, "warm", "middle"))
    pu = per_user[(per_user["metric"] == metric) & (per_user["k"] == k)].copy()
    pu["group"] = group[pu["user"].to_numpy()]
    table = pu.groupby(["model", "features", "group"])["value"].mean().unstack("group")
    cols = [c for c in ("cold", "middle", "warm") if c in table.columns]
    table = table[cols]
    table.columns = [
        f"{c} (n_train {'<=' if c == 'cold' else '>' if c == 'warm' else 'mid'} "
        f"{lo if c == 'cold' else hi if c == 'warm' else ''})".replace(" )", ")")
        for c in cols
    ]
    return table.reset_index()


def selection_table(run: dict) -> pd.DataFrame:
    """One row per leaderboard row: grid size, the grid, the chosen params and their validation score.

    Read from run.json's `selection` (written by the runner); empty for older runs without it.
    """
    rows = [
        {
            "model": sel["model"],
            "features": sel["features"],
            "grid size": sel["grid_size"],
            "grid": ", ".join(f"{k}: {v}" for k, v in sorted(sel.get("grid", {}).items()))
            or "(fixed params)",
            "chosen params": json.dumps(sel["params"], sort_keys=True),
            f"valid {sel.get('select', '')} (mean over seeds)": sel["valid_mean"],
        }
        for sel in run.get("selection", [])
    ]
    return pd.DataFrame(rows)


def compact_board(results: pd.DataFrame, per_user: pd.DataFrame, comparisons: RunComparisons) -> pd.DataFrame:
    """The seeds' leaderboard columns, as text: model, features, metric@K and nDCG@K with their
    CI, and each content row's gap vs the best ID model and vs its shuffled twin with the
    comparison's outcome (segment "all" only)."""
    metric, k = comparisons.spec.metric, comparisons.spec.k
    board = leaderboard(results, per_user, metric, k, comparisons=comparisons)
    if board.empty:
        return pd.DataFrame()
    second = "ndcg" if metric != "ndcg" else "recall"
    other = leaderboard(results, per_user, second, k)
    other_by_row = other.set_index(ROW) if not other.empty else None
    rows = []
    for _, r in board.iterrows():
        key = tuple(r[c] for c in ROW)
        row = {
            "model": r["model"],
            "features": r["features"],
            f"{_metric_name(metric)}@{k} (95% CI)": _with_ci(r["mean"], r["ci_low"], r["ci_high"]),
        }
        if other_by_row is not None:
            o = other_by_row.loc[key] if key in other_by_row.index else None
            row[f"{_metric_name(second)}@{k} (95% CI)"] = (
                _with_ci(o["mean"], o["ci_low"], o["ci_high"]) if o is not None else ""
            )
        row["vs best ID"] = _gap_cell(r, "vs_id")
        row["vs shuffled"] = _gap_cell(r, "vs_shuffled")
        if board["dataset"].nunique() > 1:
            row = {"dataset": r["dataset"], **row}
        rows.append(row)
    return pd.DataFrame(rows)


def _metric_name(metric: str) -> str:
    return {"recall": "Recall", "ndcg": "nDCG", "precision": "Precision", "hit": "Hit"}.get(metric, metric)


def _with_ci(mean: float, lo: float, hi: float) -> str:
    return f"{mean:.4f} ({lo:.4f}–{hi:.4f})"


def _gap_cell(r: pd.Series, col: str) -> str:
    """E.g. `+0.0106 (p 0.004), better`: a row's comparison, empty when it has none."""
    diff = r.get(f"{col}_diff")
    if diff is None or pd.isna(diff):
        return ""
    return f"{float(diff):+.4f} (p {format_p(float(r[f'{col}_p_holm']))}), {r[f'{col}_outcome']}"


def segment_table(
    results: pd.DataFrame, per_user: pd.DataFrame, segments: list[str], comparisons: RunComparisons
) -> pd.DataFrame:
    """Mean metric@k (per-user, averaged over seeds) per row and segment, with bootstrap CIs,
    plus each content row's gap to its shuffled twin per segment (the verdict's comparison, with
    its interval). Controls are not rows of their own."""
    metric, k = comparisons.spec.metric, comparisons.spec.k
    twin_gap = {
        (c.row, c.segment): (c.diff, c.ci_low, c.ci_high)
        for c in comparisons.comparisons
        if c.reference == "shuffled twin"
    }
    rows = []
    for seg in segments:
        pu = segment_rows(per_user, seg)
        pu = pu[(pu["metric"] == metric) & (pu["k"] == k)]
        if "control" not in pu.columns:
            pu = pu.assign(control="none")
        means = pu.groupby([*ROW, "user"])["value"].mean()
        if means.empty:
            continue
        index = means.index
        assert isinstance(index, pd.MultiIndex)  # grouped by ROW + user
        keys = index.droplevel("user").unique()
        for key in keys:
            rec = dict(zip(ROW, key))
            if rec["control"] != "none":
                continue
            mine = means.loc[key]
            lo, hi = bootstrap_ci(mine.to_numpy(), seed=0)
            gap = twin_gap.get((tuple(key), seg), (np.nan, np.nan, np.nan))
            rows.append(
                {
                    **rec,
                    "segment": seg,
                    "users": len(mine),
                    "mean": float(mine.mean()),
                    "ci_low": lo,
                    "ci_high": hi,
                    "gap": gap[0],
                    "gap_low": gap[1],
                    "gap_high": gap[2],
                }
            )
    return pd.DataFrame(rows)


def beyond_accuracy_table(results: pd.DataFrame) -> pd.DataFrame:
    """Coverage, novelty and tail share per row (segment "all", mean over seeds); empty if absent."""
    res = segment_rows(results, "all")
    res = res[res["metric"].isin(BEYOND_ACCURACY)]
    if res.empty:
        return pd.DataFrame()
    if "control" not in res.columns:
        res = res.assign(control="none")
    res = res.assign(column=[f"{m}@{int(k_)}" for m, k_ in zip(res["metric"], res["k"])])
    table = res.pivot_table(index=["model", "features"], columns="column", values="value", aggfunc="mean")
    return table.reset_index()


def per_cell_table(results: pd.DataFrame) -> pd.DataFrame:
    """Every cell: one row per (model, features, seed, segment), one column per metric@k."""
    res = results.assign(column=[f"{m}@{int(k_)}" for m, k_ in zip(results["metric"], results["k"])])
    if "segment" not in res.columns:
        res = res.assign(segment="all")
    index = [c for c in ("dataset", "model", "features", "control", "segment", "seed") if c in res.columns]
    return res.pivot_table(index=index, columns="column", values="value", aggfunc="mean").reset_index()


def comparison_table(comparisons: RunComparisons) -> pd.DataFrame:
    """Every comparison of the run: row, segment, reference, gap, interval, adjusted p, seeds."""
    return pd.DataFrame(
        [
            {
                "model": c.model,
                "features": c.features,
                "segment": c.segment,
                "question": c.question,
                "reference": c.reference,
                "diff": c.diff,
                "interval": f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}] ({100 * c.ci_level:.2f}%)",
                "p (Holm)": format_p(c.p_holm),
                "seeds": c.seeds,
                "per-seed diff": " ".join(f"{x:+.4f}" for x in c.seed_diffs),
                "users": c.users,
                "outcome": c.outcome_text(),
            }
            for c in comparisons.comparisons
        ]
    )


def gallery(ds: Dataset, run_dir: Path, n: int = 6) -> list[dict[str, Any]]:
    """Up to `n` items with their thumbnail and generated description (when a describer ran).

    Empty when there is nothing to show: no item image and no generated description. The
    `description` field is None when no describer ran for this run (a text-only run), so the page
    does not print "(no generated description)" on every card.
    """
    descriptions: dict[str, dict] = {}
    for path in sorted((run_dir / "features").glob("*/descriptions.jsonl")):
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            descriptions.setdefault(rec["item_id"], rec)
    has_images = "image_path" in ds.items.columns and ds.items["image_path"].notna().any()
    if not has_images and not descriptions:
        return []
    items = ds.items[ds.items["image_path"].notna()].head(n) if has_images else ds.items.head(n)
    out = []
    for _, it in items.iterrows():
        img = _thumbnail(it["image_path"]) if has_images and it.get("image_path") else None
        d = descriptions.get(str(it["item_id"]), {})
        out.append(
            {
                "item_id": it["item_id"],
                "title": str(it.get("title", "")),
                "image": img,
                "description": (d.get("description", "(no generated description)") if descriptions else None),
                "source": d.get("source", ""),
            }
        )
    return out


def _thumbnail(path: str, side: int = 160) -> str | None:
    """The image at `path` as a base64 PNG at most `side` pixels a side (None when unreadable)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            rgb = im.convert("RGB")
            rgb.thumbnail((side, side))
            buf = io.BytesIO()
            rgb.save(buf, format="PNG")
            return base64.b64encode(buf.getvalue()).decode()
    except OSError:
        return None
