"""The report as one self-contained HTML page (`report.html`, plots embedded as base64 PNG): the
verdict block first, the compact leaderboard, the charts, then the details collapsed."""

from __future__ import annotations

import html
import json

import pandas as pd

from vlmrec.experiments.comparisons import RunComparisons
from vlmrec.experiments.report_examples import examples_html
from vlmrec.experiments.report_sections import SELECTION_NOTE, Report
from vlmrec.experiments.verdict import (
    SEGMENT_NAMES,
    TONE,
    Verdict,
    procedure_note,
    verdict_lines,
    verdict_summary,
)

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


def render_html(report: Report) -> str:
    """The whole HTML page."""
    name = html.escape(report.name)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>vlmrec report: {name}</title><style>{CSS}</style></head><body>",
        f"<h1>vlmrec report: {name}</h1>",
    ]
    if report.synthetic is not None:
        parts.append(
            f"<p class='warn'><b>{html.escape(report.synthetic)}</b> Results on it are circular by construction: "
            "they test whether models use content, not real-world accuracy.</p>"
        )
    parts += [_verdict_html(report.verdicts, report.comparisons), *_leaderboard(report), *_charts(report)]
    parts += examples_html(report.examples)
    if len(report.beyond):
        parts += [
            "<h2 id='beyond'>Beyond accuracy</h2>",
            f"<div class='scroll'>{_table(report.beyond)}</div>",
        ]
    parts += _details(report) + _collapsed_charts(report) + _gallery(report)
    parts.append("</body></html>")
    return "\n".join(parts)


def _table(df: pd.DataFrame, classes: str = "t") -> str:
    return df.to_html(index=False, float_format=lambda v: f"{v:.4f}", na_rep="", border=0, classes=classes)


def _img(b64: str, alt: str) -> str:
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{b64}'>"


def _leaderboard(report: Report) -> list[str]:
    board = report.leaderboard
    return [
        f"<h2 id='leaderboard'>Leaderboard ({html.escape(board.metric)}@{board.k})</h2>",
        _table(board.compact, "t compact") if len(board.compact) else "<p>(no results)</p>",
        f"<p class='note'>{html.escape(board.note)}</p>",
    ]


def _charts(report: Report) -> list[str]:
    """The content-gap chart and each segment group's chart (or its note), then the thresholds."""
    parts = []
    if report.content_gap_chart:
        parts.append(
            f"<h2 id='content-gap'>Content gap</h2>{_img(report.content_gap_chart, 'content gap chart')}"
        )
    for section in report.segments:
        parts.append(f"<h2 id='{section.anchor}'>{html.escape(section.title)}</h2>")
        if section.chart is None:
            parts.append(f"<p class='note'>{html.escape(str(section.note))}</p>")
        else:
            parts.append(_img(section.chart, f"{section.title} chart"))
    if report.thresholds:
        thresholds = html.escape(json.dumps(report.thresholds, default=str))
        parts.append(f"<p class='note'>Segment thresholds: <code>{thresholds}</code></p>")
    return parts


def _details(report: Report) -> list[str]:
    """What was run, then every table behind the page, collapsed."""
    d = report.details
    full = report.leaderboard.full
    board_view = full.drop(columns=[c for c in full.columns if c.endswith("_p")], errors="ignore")
    selection = (
        f"<div class='scroll'>{_table(report.selection)}</div>"
        if len(report.selection)
        else "<p>(no selection record in run.json)</p>"
    )
    return [
        "<h2>Details</h2>",
        f"<p><b>{html.escape(d.dataset)}</b> (fingerprint <code>{d.fingerprint}</code>): "
        + html.escape(", ".join(f"{k_}: {v}" for k_, v in d.stats.items()))
        + f". Code version <code>{html.escape(d.code_version)}</code>; seeds {d.seeds}; "
        f"full-catalogue ranking, the same split for every row. {html.escape(d.mask)}</p>",
        "<details><summary>Full leaderboard (all columns)</summary>"
        f"<div class='scroll'>{_table(board_view)}</div>"
        "<p class='note'><code>vs_id</code>: against the best ID-only model; <code>vs_shuffled</code> / "
        "<code>vs_random</code>: against the model's own content twins (paired bootstrap over users and "
        "seeds, Holm level). <code>content_gap</code> = real minus shuffled.</p></details>",
        "<details><summary>Every comparison behind the verdict</summary>"
        f"<div class='scroll'>{_table(report.comparison_table)}</div></details>",
        f"<details><summary>Every cell ({len(report.cells)} rows)</summary>"
        f"<div class='scroll'>{_table(report.cells)}</div></details>",
        f"<details><summary>Model selection</summary><p>{html.escape(SELECTION_NOTE)}</p>{selection}</details>",
    ]


def _collapsed_charts(report: Report) -> list[str]:
    """The segment tables, the metric charts and the cold-vs-warm users table, collapsed."""
    parts = [
        f"<details><summary>{html.escape(section.title)}: table</summary>"
        f"<div class='scroll'>{_table(section.table)}</div></details>"
        for section in report.segments
        if section.chart is not None
    ]
    if report.metric_charts:
        parts.append("<details><summary>Metric charts</summary>")
        parts += [
            f"<h3>{html.escape(n)}</h3>{_img(b64, f'{n} chart')}" for n, b64 in report.metric_charts.items()
        ]
        parts.append("</details>")
    return [
        *parts,
        "<details><summary>Cold vs warm users</summary>",
        f"<div class='scroll'>{_table(report.user_groups)}</div></details>",
    ]


def _gallery(report: Report) -> list[str]:
    """A card per gallery item: thumbnail, title, and the generated description when one exists."""
    if not report.gallery:
        return []
    parts = ["<h2>Item gallery</h2><div class='gallery'>"]
    for g in report.gallery:
        thumb = _img(g["image"], f"item {g['item_id']}") if g["image"] else ""
        desc = (
            f"<div>{html.escape(g['description'])}</div><div style='color:#777'>{html.escape(g['source'])}</div>"
            if g["description"] is not None
            else ""
        )
        parts.append(f"<div class='card'>{thumb}<div><b>{html.escape(g['title'])}</b></div>{desc}</div>")
    parts.append("</div>")
    return parts
