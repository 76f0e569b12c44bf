"""The report as Markdown (`report.md`): the verdict, the leaderboard, the comparisons, the segment
tables and the details, from a built `Report`."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from vlmrec.experiments.leaderboard import format_markdown
from vlmrec.experiments.report_examples import examples_markdown
from vlmrec.experiments.report_sections import SELECTION_NOTE, VERDICT_RULE, Report
from vlmrec.experiments.verdict import verdict_lines

SEGMENT_COLUMNS = ["model", "features", "segment", "users", "mean", "ci_low", "ci_high", "gap"]


def render_markdown(report: Report) -> str:
    """The whole Markdown document."""
    lines = [f"# vlmrec report: {report.name}", ""]
    if report.synthetic is not None:
        lines += [
            f"> **{report.synthetic}** Results on it are circular by construction: a test of whether models "
            "use content, not a claim about real-world accuracy.",
            "",
        ]
    lines += _verdict(report) + _leaderboard(report) + _segments(report) + examples_markdown(report.examples)
    if len(report.beyond):
        lines += ["## Beyond accuracy", "", md_table(report.beyond), ""]
    return "\n".join(lines + _details(report))


def _verdict(report: Report) -> list[str]:
    lines = ["## Verdict", ""]
    lines += [
        f"- {line.strip()}" if not line.startswith("    ") else f"  - {line.strip()}"
        for line in verdict_lines(report.verdicts)
    ]
    return [*lines, "", VERDICT_RULE, ""]


def _leaderboard(report: Report) -> list[str]:
    board = report.leaderboard
    lines = [f"## Leaderboard ({board.metric}@{board.k})", ""]
    lines += [md_table(board.compact) if len(board.compact) else "(no results)", "", board.note, ""]
    if report.overall_verdicts:
        lines += ["## Comparisons", "", md_table(report.comparison_table), ""]
    return lines


def _segments(report: Report) -> list[str]:
    lines: list[str] = []
    for section in report.segments:
        lines += [f"## {section.title}", ""]
        if section.chart is None:
            lines += [str(section.note), ""]
        else:
            lines += [md_table(section.table[SEGMENT_COLUMNS]), ""]
    if report.thresholds:
        lines += [f"Segment thresholds: `{json.dumps(report.thresholds, sort_keys=True, default=str)}`", ""]
    return lines


def _details(report: Report) -> list[str]:
    d = report.details
    return [
        "## Details",
        "",
        f"Dataset **{d.dataset}** (fingerprint `{d.fingerprint}`): "
        + ", ".join(f"{k_}: {v}" for k_, v in d.stats.items()),
        "",
        f"Code version `{d.code_version}`, seeds {d.seeds}, cutoffs {d.cutoffs}.",
        "",
        f"Full-catalogue ranking, the same split for every row. {d.mask}",
        "",
        "### Full leaderboard",
        "",
        format_markdown(report.leaderboard.full),
        "",
        "## Model selection",
        "",
        SELECTION_NOTE,
        "",
        md_table(report.selection) if len(report.selection) else "(no selection record in run.json)",
        "",
        "## Cold vs warm users",
        "",
        md_table(report.user_groups),
        "",
    ]


def md_table(df: pd.DataFrame) -> str:
    """A GitHub-style Markdown pipe table (floats to 4 decimals, empty for missing values);
    needs no optional `tabulate` dependency."""
    if df.empty:
        return "(none)"

    def cell(v: Any) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        text = f"{v:.4f}" if isinstance(v, float | np.floating) else str(v)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)
