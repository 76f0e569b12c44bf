"""`vlmrec report RUN_DIR`: a self-contained HTML report (PNG plots embedded) and Markdown."""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from vlmrec.data.dataset import Dataset
from vlmrec.errors import DataError
from vlmrec.experiments.leaderboard import describe_mask, format_markdown, leaderboard, results_mask

log = logging.getLogger(__name__)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _bar_chart(board: pd.DataFrame, title: str):
    """Horizontal bars of a leaderboard's means with its (bootstrap-over-users) 95% CIs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b = board.sort_values("mean")
    err = np.vstack([b["mean"] - b["ci_low"], b["ci_high"] - b["mean"]]).clip(min=0)
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.32 * len(b))))
    labels = [f"{m} [{f}]" for m, f in zip(b["model"], b["features"])]
    colours = {"id-only": "#4C72B0", "content": "#DD8452", "control": "#999999"}
    ax.barh(labels, b["mean"], xerr=err, color=[colours[k] for k in b["kind"]], capsize=3)
    ax.set_xlabel(f"{title} (mean over seeds, 95% CI over users)")
    ax.set_title(f"{title} per model and representation (blue: ID-only, orange: content, grey: control)")
    return _png(fig)


def _gap_chart(board: pd.DataFrame):
    import matplotlib.pyplot as plt

    if "content_gap" not in board or board["content_gap"].isna().all():
        return None
    b = board.dropna(subset=["content_gap"]).sort_values("content_gap")
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.32 * len(b))))
    ax.barh(
        [f"{m} [{f}]" for m, f in zip(b["model"], b["features"])],
        b["content_gap"],
        color=["#55A868" if v > 0 else "#C44E52" for v in b["content_gap"]],
    )
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel(f"content gap: {board['metric'].iloc[0]} real minus shuffled features")
    return _png(fig)


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


def _gallery(ds: Dataset, run_dir: Path, n: int = 6) -> list[dict]:
    descriptions: dict[str, dict] = {}
    for path in sorted((run_dir / "features").glob("*/descriptions.jsonl")):
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            descriptions.setdefault(rec["item_id"], rec)
    items = (
        ds.items[ds.items["image_path"].notna()].head(n)
        if ds.items["image_path"].notna().any()
        else ds.items.head(n)
    )
    out = []
    for _, it in items.iterrows():
        img = None
        if it.get("image_path"):
            try:
                from PIL import Image

                with Image.open(it["image_path"]) as im:
                    im = im.convert("RGB")
                    im.thumbnail((160, 160))
                    buf = io.BytesIO()
                    im.save(buf, format="PNG")
                    img = base64.b64encode(buf.getvalue()).decode()
            except OSError:
                img = None
        d = descriptions.get(str(it["item_id"]), {})
        out.append(
            {
                "item_id": it["item_id"],
                "title": str(it.get("title", "")),
                "image": img,
                "description": d.get("description", "(no generated description)"),
                "source": d.get("source", ""),
            }
        )
    return out


def write_report(run_dir: str | Path, metric: str = "recall", k: int = 20) -> Path:
    run_dir = Path(run_dir)
    if not (run_dir / "results.parquet").exists():
        raise DataError(f"{run_dir}: no results.parquet; run `vlmrec run CONFIG` first")
    run = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    results = pd.read_parquet(run_dir / "results.parquet")
    per_user = pd.read_parquet(run_dir / "per_user.parquet")
    ds_dir = run_dir / "dataset"
    if not ds_dir.exists():
        cfg = json.loads((run_dir / "config.json").read_text())
        ds_dir = Path(cfg["dataset"]["prepared"])
    ds = Dataset.load(ds_dir)
    ks = sorted(results["k"].unique())
    mask = results_mask(results, "+".join(run.get("evaluation", {}).get("mask", ["train", "valid"])))
    extra = [("ndcg", k)] if "ndcg" in set(results["metric"]) else []
    board = leaderboard(results, per_user, metric, k, extra=extra)
    board.to_csv(run_dir / "leaderboard.csv", index=False)
    md_board = format_markdown(board)
    stats = ds.stats()
    generated = bool(ds.info.get("generated"))
    label = ds.info.get("label", "")
    charts = {
        f"{m}@{k}": _bar_chart(board if m == metric else leaderboard(results, per_user, m, k), f"{m}@{k}")
        for m in dict.fromkeys([metric, "ndcg"])
        if m in set(results["metric"])
    }
    gap = _gap_chart(board)
    groups = user_groups(ds, per_user, metric, k)
    gallery = _gallery(ds, run_dir)
    selection = selection_table(run)
    selection_note = (
        "Hyperparameters are chosen once per row: every grid point runs with every seed, and the "
        "point with the best validation score averaged over seeds is used for all seeds and for the "
        "control twins. The test split plays no part."
    )

    md = [f"# vlmrec report: {run.get('name', run_dir.name)}", ""]
    if generated:
        md += [
            f"> **{label}** Results on it are circular by construction: a test of whether models use content, "
            "not a claim about real-world accuracy.",
            "",
        ]
    md += [
        f"Dataset **{ds.name}** (fingerprint `{ds.fingerprint}`): "
        + ", ".join(f"{k_}: {v}" for k_, v in stats.items()),
        "",
        f"Code version `{run.get('code_version', '?')}`, seeds {run.get('seeds')}, cutoffs {[int(x) for x in ks]}.",
        "",
        f"Full-catalogue ranking, the same split for every row. {describe_mask(mask)}",
        "",
        "## Leaderboard",
        "",
        md_board,
        "",
        "## Model selection",
        "",
        selection_note,
        "",
        _md_table(selection) if len(selection) else "(no selection record in run.json)",
        "",
        "## Cold vs warm users",
        "",
        groups.to_markdown(index=False, floatfmt=".4f")
        if hasattr(groups, "to_markdown") and _has_tabulate()
        else groups.to_string(index=False),
        "",
    ]
    (run_dir / "report.md").write_text("\n".join(md))

    def table_html(df: pd.DataFrame) -> str:
        return df.to_html(index=False, float_format=lambda v: f"{v:.4f}", na_rep="", border=0, classes="t")

    board_view = board.drop(columns=[c for c in board.columns if c.endswith("_p")], errors="ignore")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>vlmrec report</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}"
        "table.t{border-collapse:collapse;font-size:13px}table.t td,table.t th{padding:3px 8px;border-bottom:1px solid #ddd}"
        ".warn{background:#fff3cd;border:1px solid #e0c36c;padding:.6em 1em;border-radius:4px}"
        ".gallery{display:flex;flex-wrap:wrap;gap:12px}.card{width:170px;font-size:12px;border:1px solid #ddd;padding:6px}"
        "</style></head><body>",
        f"<h1>vlmrec report: {html.escape(str(run.get('name', run_dir.name)))}</h1>",
    ]
    if generated:
        parts.append(
            f"<p class='warn'><b>{html.escape(label)}</b> Results on it are circular by construction: "
            "they test whether models use content, not real-world accuracy.</p>"
        )
    parts += [
        f"<h2>Dataset</h2><p><b>{html.escape(ds.name)}</b> (fingerprint <code>{ds.fingerprint}</code>)</p>",
        table_html(pd.DataFrame([stats])),
        f"<p>Code version <code>{html.escape(str(run.get('code_version', '?')))}</code>; seeds {run.get('seeds')}; "
        f"full-catalogue ranking, the same split for every row. {html.escape(describe_mask(mask))}</p>",
        f"<h2>Leaderboard ({metric}@{k})</h2>",
        table_html(board_view),
        "<p>Paired tests over users (per-user values averaged over seeds), Holm-corrected within the dataset: "
        "<code>vs_id</code> against the best ID-only baseline, <code>vs_shuffled</code> against the model's own "
        "shuffled-feature twin. <code>content_gap</code> = real minus shuffled.</p>",
    ]
    parts += [
        "<h2>Model selection</h2>",
        f"<p>{html.escape(selection_note)}</p>",
        table_html(selection) if len(selection) else "<p>(no selection record in run.json)</p>",
    ]
    for name, b64 in charts.items():
        parts.append(f"<h2>{name}</h2><img alt='{name} chart' src='data:image/png;base64,{b64}'>")
    if gap:
        parts.append(f"<h2>Content gap</h2><img alt='content gap chart' src='data:image/png;base64,{gap}'>")
    parts += ["<h2>Cold vs warm users</h2>", table_html(groups), "<h2>Item gallery</h2><div class='gallery'>"]
    for g in gallery:
        img = (
            f"<img alt='item {html.escape(str(g['item_id']))}' src='data:image/png;base64,{g['image']}'>"
            if g["image"]
            else ""
        )
        parts.append(
            f"<div class='card'>{img}<div><b>{html.escape(g['title'])}</b></div>"
            f"<div>{html.escape(g['description'])}</div><div style='color:#777'>{html.escape(g['source'])}</div></div>"
        )
    parts.append("</div></body></html>")
    out = run_dir / "report.html"
    out.write_text("\n".join(parts))
    return out


def _md_table(df: pd.DataFrame) -> str:
    if _has_tabulate():
        return df.to_markdown(index=False, floatfmt=".4f")
    return df.to_string(index=False)


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401

        return True
    except ImportError:
        return False
