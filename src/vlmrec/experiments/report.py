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
from vlmrec.evaluation.significance import bootstrap_ci
from vlmrec.experiments.artifacts import RunArtifact
from vlmrec.experiments.comparisons import ComparisonSpec, RunComparisons
from vlmrec.experiments.leaderboard import ROW, describe_mask, format_markdown, leaderboard, results_mask
from vlmrec.experiments.verdict import (
    BEYOND_ACCURACY,
    SEGMENT_NAMES,
    TONE,
    Verdict,
    by_segment,
    compute_verdicts,
    format_p,
    procedure_note,
    segment_rows,
    segments_present,
    verdict_lines,
    verdict_summary,
)

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
        img = None
        if has_images and it.get("image_path"):
            try:
                from PIL import Image

                with Image.open(it["image_path"]) as im:
                    rgb = im.convert("RGB")
                    rgb.thumbnail((160, 160))
                    buf = io.BytesIO()
                    rgb.save(buf, format="PNG")
                    img = base64.b64encode(buf.getvalue()).decode()
            except OSError:
                img = None
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


def _row_label(model: str, features: str) -> str:
    return f"{model} [{features}]"


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


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _shuffled_twin(v: Verdict):
    """The verdict's comparison with its shuffled twin (None when the run has none)."""
    return next((t for t in v.twins if t.reference == "shuffled twin"), None)


def _verdict_gap_chart(verdicts: list[Verdict]) -> str | None:
    """Per content row: the gap to its shuffled twin and to the best ID model, with the intervals
    of the verdict's comparisons (Holm level)."""
    verdicts = [v for v in verdicts if v.twins]
    if not verdicts:
        return None
    plt = _plt()
    labels = [_row_label(v.model, v.features) for v in verdicts]
    y = np.arange(len(verdicts))
    fig, ax = plt.subplots(figsize=(8, max(2.2, 0.55 * len(verdicts) + 1)))
    for off, name, colour, get in (
        (-0.2, "real minus shuffled twin", "#DD8452", _shuffled_twin),
        (0.2, "real minus best ID model", "#4C72B0", lambda v: v.versus_id),
    ):
        gaps = [get(v) for v in verdicts]
        mean = np.array([g.diff if g else np.nan for g in gaps])
        err = np.array(
            [[g.diff - g.ci_low, g.ci_high - g.diff] if g else [np.nan, np.nan] for g in gaps]
        ).T.clip(min=0)
        ax.barh(y + off, mean, height=0.38, xerr=err, color=colour, capsize=3, label=name)
    ax.set_yticks(y, labels)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel(f"{verdicts[0].metric} difference (bootstrap interval over users and seeds, Holm level)")
    ax.set_title("Content gap")
    ax.legend(loc="best", fontsize=8)
    return _png(fig)


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


def _segment_chart(table: pd.DataFrame, segments: list[str], metric: str, k: int, title: str) -> str:
    """Left: metric per segment for every (non-control) row; right (same rows, shared labels): the
    content gap (real minus shuffled twin) per segment, for the rows that have a twin."""
    plt = _plt()
    # ID-only rows first, then content rows; the top of the chart is the first row
    labels = list(dict.fromkeys(_row_label(m, f) for m, f in zip(table["model"], table["features"])))
    has_gap = table["gap"].notna().any()
    height = max(2.5, 0.2 * len(labels) * (len(segments) + 1) + 1)
    fig, axes = plt.subplots(
        1, 2 if has_gap else 1, figsize=(11 if has_gap else 8, height), squeeze=False, sharey=True
    )
    colours = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B2", "#937860"]
    width = 0.8 / len(segments)
    y = np.arange(len(labels))[::-1]

    def bars(ax, value: str, low: str, high: str, xlabel: str) -> None:
        for i, seg in enumerate(segments):
            t = table[table["segment"] == seg].copy()
            t["label"] = [_row_label(m, f) for m, f in zip(t["model"], t["features"])]
            t = t.drop_duplicates("label").set_index("label").reindex(labels)
            err = np.nan_to_num(np.vstack([t[value] - t[low], t[high] - t[value]]).clip(min=0))
            off = ((len(segments) - 1) / 2 - i) * width  # the first segment on top
            ax.barh(
                y + off,
                t[value].fillna(0),
                height=width,
                xerr=err,
                capsize=2,
                color=colours[i % 6],
                label=seg,
            )
        ax.set_yticks(y, labels)
        ax.set_xlabel(xlabel)
        ax.axvline(0, color="black", lw=0.6)
        ax.legend(fontsize=8, loc="best")

    bars(axes[0][0], "mean", "ci_low", "ci_high", f"{metric}@{k} (95% CI over users)")
    axes[0][0].set_title(title)
    if has_gap:
        bars(axes[0][1], "gap", "gap_low", "gap_high", "content gap: real minus shuffled (95% CI)")
        axes[0][1].set_title("Content gap per segment")
    fig.tight_layout()
    return _png(fig)


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


CSS = (
    "*{box-sizing:border-box}"
    "body{font-family:system-ui,sans-serif;margin:0 auto;padding:16px 20px;max-width:1180px;color:#222;"
    "overflow-wrap:anywhere}"
    "h1{font-size:24px;margin:.2em 0 .4em}h2{font-size:19px;margin:1.2em 0 .4em}"
    "img{max-width:100%;height:auto}"
    "table.t{border-collapse:collapse;font-size:13px;max-width:100%}"
    "table.t td,table.t th{padding:3px 7px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}"
    "table.compact{width:100%;table-layout:auto}table.compact td{white-space:normal}"
    ".scroll{overflow-x:auto;max-width:100%}"
    ".warn{background:#fff3cd;border:1px solid #e0c36c;padding:.5em 1em;border-radius:4px}"
    ".verdict{border:2px solid #444;border-radius:6px;padding:.4em 1em .8em;background:#fafafa}"
    ".verdict h2{margin-top:.3em}.verdict ul{padding-left:1.1em;margin:.3em 0}"
    ".verdict li{margin:.35em 0;font-size:14px}.seg{color:#555;font-size:13px}"
    ".badge{display:inline-block;padding:0 .45em;border-radius:3px;color:#fff;font-weight:600}"
    ".good{background:#2e7d32}.bad{background:#c62828}.neutral{background:#757575}"
    ".note{color:#555;font-size:13px}"
    "details{margin:.6em 0}summary{cursor:pointer;font-weight:600}"
    ".gallery{display:flex;flex-wrap:wrap;gap:12px}.card{width:170px;font-size:12px;border:1px solid #ddd;"
    "padding:6px}"
)


def _verdict_html(verdicts: list[Verdict], comparisons: RunComparisons) -> str:
    """The verdict block: per content row its two labels as badges, the segments whose labels
    differ below it, and the procedure said once."""
    overall = [v for v in verdicts if v.segment == "all"]
    parts = ["<section id='verdict' class='verdict'><h2>Verdict: does the content help, and is it used?</h2>"]
    if not overall:
        parts.append(f"<p>{html.escape(verdict_lines(verdicts)[0])}</p></section>")
        return "".join(parts)
    parts.append(f"<p class='note'>{html.escape(verdict_summary(verdicts))}.</p><ul>")
    for v in overall:
        parts.append(f"<li><b>{html.escape(v.row)}</b>: {_badges(v)}")
        others = [
            w
            for w in verdicts
            if (w.dataset, w.model, w.features) == (v.dataset, v.model, v.features) and w.segment != "all"
        ]
        for w in others:
            name = SEGMENT_NAMES.get(w.segment, w.segment)
            parts.append(f"<div class='seg'>{html.escape(name)}: {_badges(w)}</div>")
        parts.append("</li>")
    parts.append(f"</ul><p class='note'>{html.escape(procedure_note(comparisons))}</p></section>")
    return "".join(parts)


def _badges(v: Verdict) -> str:
    """The two labels of a verdict as coloured badges, each followed by its gap (the same words as
    the terminal line)."""
    out = []
    for (label, rest), tone_of in ((v.use_parts(), v.use), (v.worth_parts(), v.worth)):
        tone = TONE.get(tone_of, "neutral")
        out.append(f"<span class='badge {tone}'>{html.escape(label)}</span>{html.escape(rest)}")
    return " · ".join(out)


VERDICT_RULE = (
    "Two questions per content row and segment: does it use its content (vs its own shuffled / "
    "random twin) and is it worth using (vs the best ID-only model of that segment, chosen on "
    "validation)? Gaps are mean per-user differences; intervals and p from one paired bootstrap "
    "over users and seeds, Holm over all comparisons; better/worse need >= 3 seeds agreeing in sign."
)


def write_report(run_dir: str | Path, metric: str = "recall", k: int = 20) -> Path:
    """Write report.html (self-contained: plots as base64 PNG) and report.md into a run folder.

    Order: the verdict block, a compact leaderboard, the content-gap chart, the warm-vs-cold and
    popularity-bucket charts (when the run recorded those segments), then the details collapsed.
    """
    run_dir = Path(run_dir)
    folder = RunArtifact(run_dir)
    results = folder.results()
    run = folder.summary()
    per_user = folder.per_user()
    ds = Dataset.load(folder.dataset_dir())
    evaluation = run.get("evaluation", {})
    spec = ComparisonSpec(
        metric=metric,
        k=k,
        alpha=float(evaluation.get("alpha", 0.05)),
        n_boot=int(evaluation.get("n_boot", ComparisonSpec.n_boot)),
    )
    comparisons, all_verdicts = compute_verdicts(results, per_user, spec)
    overall = segment_rows(results, "all")
    overall_pu = segment_rows(per_user, "all")
    ks = sorted(overall["k"].unique())
    mask = results_mask(overall, "+".join(evaluation.get("mask", ["train", "valid"])))
    extra = [("ndcg", k)] if "ndcg" in set(overall["metric"]) else []
    board = leaderboard(results, per_user, metric, k, extra=extra, comparisons=comparisons)
    board.to_csv(run_dir / "leaderboard.csv", index=False)
    md_board = format_markdown(board)
    verdicts = by_segment(all_verdicts).get("all", [])
    compact = compact_board(results, per_user, comparisons)
    stats = ds.stats()
    generated = bool(ds.info.get("generated"))
    label = ds.info.get("label", "")
    charts = {
        f"{m}@{k}": _bar_chart(board if m == metric else leaderboard(overall, overall_pu, m, k), f"{m}@{k}")
        for m in dict.fromkeys([metric, "ndcg"])
        if m in set(overall["metric"]) and not board.empty
    }
    gap = _verdict_gap_chart(verdicts)
    present = segments_present(results)
    seg_charts: list[tuple[str, str, str | None, pd.DataFrame]] = []  # (title, anchor, png, table)
    thresholds = evaluation.get("segments")
    for title, anchor, segs, what in (
        ("Warm vs cold items", "warm-cold", ["warm", "cold", "cold_only"], "warm/cold item segments"),
        (
            "Popularity buckets (head / torso / tail)",
            "popularity",
            ["head", "torso", "tail"],
            "popularity buckets",
        ),
    ):
        have = [s for s in segs if s in present]
        table = segment_table(results, per_user, have, comparisons) if have else pd.DataFrame()
        if table.empty:
            note = (
                f"No {what} in this run (an older run, or a config without `evaluation.segments`): "
                "chart omitted."
            )
            seg_charts.append((title, anchor, None, pd.DataFrame({"note": [note]})))
        else:
            seg_charts.append((title, anchor, _segment_chart(table, have, metric, k, title), table))
    beyond = beyond_accuracy_table(results)
    groups = user_groups(ds, overall_pu, metric, k)
    gallery = _gallery(ds, run_dir)
    selection = selection_table(run)
    cells = per_cell_table(results)
    selection_note = (
        "Hyperparameters are chosen once per row: every grid point runs with every seed, and the "
        "point with the best validation score averaged over seeds is used for all seeds and for the "
        "control twins. The test split plays no part."
    )
    name = str(run.get("name", run_dir.name))
    ci_note = (
        f"{describe_mask(mask)} CI: bootstrap over test users (per-user values averaged over seeds "
        f"{run.get('seeds')}). {procedure_note(comparisons)} Best ID model on all items: "
        + (", ".join(map(str, board["best_id_baseline"].dropna().unique())) or "none")
        + "."
        if not board.empty
        else "(no results)"
    )

    # ---- Markdown ------------------------------------------------------------------------
    md = [f"# vlmrec report: {name}", ""]
    if generated:
        md += [
            f"> **{label}** Results on it are circular by construction: a test of whether models use content, "
            "not a claim about real-world accuracy.",
            "",
        ]
    md += ["## Verdict", ""]
    md += [
        f"- {line.strip()}" if not line.startswith("    ") else f"  - {line.strip()}"
        for line in verdict_lines(all_verdicts)
    ]
    md += ["", VERDICT_RULE, "", f"## Leaderboard ({metric}@{k})", ""]
    md += [_md_table(compact) if len(compact) else "(no results)", "", ci_note, ""]
    if verdicts:
        md += ["## Comparisons", "", _md_table(comparison_table(comparisons)), ""]
    for title, _anchor, png, table in seg_charts:
        md += [f"## {title}", ""]
        if png is None:
            md += [str(table["note"].iloc[0]), ""]
        else:
            view = table[["model", "features", "segment", "users", "mean", "ci_low", "ci_high", "gap"]]
            md += [_md_table(view), ""]
    if thresholds:
        md += [f"Segment thresholds: `{json.dumps(thresholds, sort_keys=True, default=str)}`", ""]
    if len(beyond):
        md += ["## Beyond accuracy", "", _md_table(beyond), ""]
    md += [
        "## Details",
        "",
        f"Dataset **{ds.name}** (fingerprint `{ds.fingerprint}`): "
        + ", ".join(f"{k_}: {v}" for k_, v in stats.items()),
        "",
        f"Code version `{run.get('code_version', '?')}`, seeds {run.get('seeds')}, cutoffs {[int(x) for x in ks]}.",
        "",
        f"Full-catalogue ranking, the same split for every row. {describe_mask(mask)}",
        "",
        "### Full leaderboard",
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
        _md_table(groups),
        "",
    ]
    (run_dir / "report.md").write_text("\n".join(md))

    # ---- HTML ----------------------------------------------------------------------------
    def table_html(df: pd.DataFrame, classes: str = "t") -> str:
        return df.to_html(
            index=False, float_format=lambda v: f"{v:.4f}", na_rep="", border=0, classes=classes
        )

    def img(b64: str, alt: str) -> str:
        return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{b64}'>"

    board_view = board.drop(columns=[c for c in board.columns if c.endswith("_p")], errors="ignore")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>vlmrec report: {html.escape(name)}</title><style>{CSS}</style></head><body>",
        f"<h1>vlmrec report: {html.escape(name)}</h1>",
    ]
    if generated:
        parts.append(
            f"<p class='warn'><b>{html.escape(label)}</b> Results on it are circular by construction: "
            "they test whether models use content, not real-world accuracy.</p>"
        )
    parts += [
        _verdict_html(all_verdicts, comparisons),
        f"<h2 id='leaderboard'>Leaderboard ({html.escape(metric)}@{k})</h2>",
        table_html(compact, "t compact") if len(compact) else "<p>(no results)</p>",
        f"<p class='note'>{html.escape(ci_note)}</p>",
    ]
    if gap:
        parts.append(f"<h2 id='content-gap'>Content gap</h2>{img(gap, 'content gap chart')}")
    for title, anchor, png, table in seg_charts:
        parts.append(f"<h2 id='{anchor}'>{html.escape(title)}</h2>")
        if png is None:
            parts.append(f"<p class='note'>{html.escape(str(table['note'].iloc[0]))}</p>")
        else:
            parts.append(img(png, f"{title} chart"))
    if thresholds:
        parts.append(
            f"<p class='note'>Segment thresholds: <code>{html.escape(json.dumps(thresholds, default=str))}</code></p>"
        )
    if len(beyond):
        parts += ["<h2 id='beyond'>Beyond accuracy</h2>", f"<div class='scroll'>{table_html(beyond)}</div>"]
    parts += [
        "<h2>Details</h2>",
        f"<p><b>{html.escape(ds.name)}</b> (fingerprint <code>{ds.fingerprint}</code>): "
        + html.escape(", ".join(f"{k_}: {v}" for k_, v in stats.items()))
        + f". Code version <code>{html.escape(str(run.get('code_version', '?')))}</code>; seeds {run.get('seeds')}; "
        f"full-catalogue ranking, the same split for every row. {html.escape(describe_mask(mask))}</p>",
        "<details><summary>Full leaderboard (all columns)</summary>"
        f"<div class='scroll'>{table_html(board_view)}</div>"
        "<p class='note'><code>vs_id</code>: against the best ID-only model; <code>vs_shuffled</code> / "
        "<code>vs_random</code>: against the model's own content twins (paired bootstrap over users and "
        "seeds, Holm level). <code>content_gap</code> = real minus shuffled.</p></details>",
        "<details><summary>Every comparison behind the verdict</summary>"
        f"<div class='scroll'>{table_html(comparison_table(comparisons))}</div></details>",
        f"<details><summary>Every cell ({len(cells)} rows)</summary><div class='scroll'>{table_html(cells)}</div>"
        "</details>",
        "<details><summary>Model selection</summary>"
        f"<p>{html.escape(selection_note)}</p>"
        + (
            f"<div class='scroll'>{table_html(selection)}</div>"
            if len(selection)
            else "<p>(no selection record in run.json)</p>"
        )
        + "</details>",
    ]
    for seg_title, _anchor, png, table in seg_charts:
        if png is not None:
            parts.append(
                f"<details><summary>{html.escape(seg_title)}: table</summary>"
                f"<div class='scroll'>{table_html(table)}</div></details>"
            )
    if charts:
        parts.append("<details><summary>Metric charts</summary>")
        parts += [f"<h3>{html.escape(n)}</h3>{img(b64, f'{n} chart')}" for n, b64 in charts.items()]
        parts.append("</details>")
    parts += [
        "<details><summary>Cold vs warm users</summary>",
        f"<div class='scroll'>{table_html(groups)}</div></details>",
    ]
    if gallery:
        parts.append("<h2>Item gallery</h2><div class='gallery'>")
        for g in gallery:
            thumb = img(g["image"], f"item {g['item_id']}") if g["image"] else ""
            desc = (
                f"<div>{html.escape(g['description'])}</div><div style='color:#777'>{html.escape(g['source'])}</div>"
                if g["description"] is not None
                else ""
            )
            parts.append(f"<div class='card'>{thumb}<div><b>{html.escape(g['title'])}</b></div>{desc}</div>")
        parts.append("</div>")
    parts.append("</body></html>")
    out = run_dir / "report.html"
    out.write_text("\n".join(parts))
    return out


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


def _md_table(df: pd.DataFrame) -> str:
    """A GitHub-style Markdown pipe table (floats to 4 decimals, empty for missing values);
    needs no optional `tabulate` dependency."""
    if df.empty:
        return "(none)"

    def cell(v) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        text = f"{v:.4f}" if isinstance(v, float | np.floating) else str(v)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)
