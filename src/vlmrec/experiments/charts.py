"""The report's charts, each drawn with matplotlib (Agg) and returned as a base64 PNG string that
the HTML report embeds: metric bars per row, the content gap per row, metrics per segment."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pandas as pd

from vlmrec.experiments.verdict import Verdict

KIND_COLOURS = {"id-only": "#4C72B0", "content": "#DD8452", "control": "#999999"}
SEGMENT_COLOURS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B2", "#937860"]


def row_label(model: str, features: str) -> str:
    """How a chart labels a row: `model [features]`."""
    return f"{model} [{features}]"


def _pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg back-end (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    """The figure as a base64 PNG (110 dpi, tight), and closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def metric_chart(board: pd.DataFrame, title: str) -> str:
    """Horizontal bars of a leaderboard's means with its (bootstrap-over-users) 95% CIs."""
    plt = _pyplot()
    b = board.sort_values("mean")
    err = np.vstack([b["mean"] - b["ci_low"], b["ci_high"] - b["mean"]]).clip(min=0)
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.32 * len(b))))
    labels = [row_label(m, f) for m, f in zip(b["model"], b["features"])]
    ax.barh(labels, b["mean"], xerr=err, color=[KIND_COLOURS[k] for k in b["kind"]], capsize=3)
    ax.set_xlabel(f"{title} (mean over seeds, 95% CI over users)")
    ax.set_title(f"{title} per model and representation (blue: ID-only, orange: content, grey: control)")
    return _png(fig)


def _shuffled_twin(v: Verdict) -> Any:
    """The verdict's comparison with its shuffled twin (None when the run has none)."""
    return next((t for t in v.twins if t.reference == "shuffled twin"), None)


def content_gap_chart(verdicts: list[Verdict]) -> str | None:
    """Per content row: the gap to its shuffled twin and to the best ID model, with the intervals
    of the verdict's comparisons (Holm level). None when no verdict has a twin."""
    verdicts = [v for v in verdicts if v.twins]
    if not verdicts:
        return None
    plt = _pyplot()
    labels = [row_label(v.model, v.features) for v in verdicts]
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


def _segment_bars(
    ax: Any, table: pd.DataFrame, segments: list[str], labels: list[str], columns: tuple[str, str, str]
) -> None:
    """One bar per (row, segment) of `columns` (value, low, high), rows in `labels` order, top down."""
    value, low, high = columns
    width = 0.8 / len(segments)
    y = np.arange(len(labels))[::-1]
    for i, seg in enumerate(segments):
        t = table[table["segment"] == seg].copy()
        t["label"] = [row_label(m, f) for m, f in zip(t["model"], t["features"])]
        t = t.drop_duplicates("label").set_index("label").reindex(labels)
        err = np.nan_to_num(np.vstack([t[value] - t[low], t[high] - t[value]]).clip(min=0))
        off = ((len(segments) - 1) / 2 - i) * width  # the first segment on top
        ax.barh(
            y + off,
            t[value].fillna(0),
            height=width,
            xerr=err,
            capsize=2,
            color=SEGMENT_COLOURS[i % 6],
            label=seg,
        )
    ax.set_yticks(y, labels)
    ax.axvline(0, color="black", lw=0.6)
    ax.legend(fontsize=8, loc="best")


def segment_chart(table: pd.DataFrame, segments: list[str], metric: str, k: int, title: str) -> str:
    """Left: metric per segment for every (non-control) row; right (same rows, shared labels): the
    content gap (real minus shuffled twin) per segment, for the rows that have a twin."""
    plt = _pyplot()
    # ID-only rows first, then content rows; the top of the chart is the first row
    labels = list(dict.fromkeys(row_label(m, f) for m, f in zip(table["model"], table["features"])))
    has_gap = table["gap"].notna().any()
    height = max(2.5, 0.2 * len(labels) * (len(segments) + 1) + 1)
    fig, axes = plt.subplots(
        1, 2 if has_gap else 1, figsize=(11 if has_gap else 8, height), squeeze=False, sharey=True
    )
    _segment_bars(axes[0][0], table, segments, labels, ("mean", "ci_low", "ci_high"))
    axes[0][0].set_xlabel(f"{metric}@{k} (95% CI over users)")
    axes[0][0].set_title(title)
    if has_gap:
        _segment_bars(axes[0][1], table, segments, labels, ("gap", "gap_low", "gap_high"))
        axes[0][1].set_xlabel("content gap: real minus shuffled (95% CI)")
        axes[0][1].set_title("Content gap per segment")
    fig.tight_layout()
    return _png(fig)
