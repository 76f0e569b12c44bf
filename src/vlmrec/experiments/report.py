"""`vlmrec report RUN_DIR`: a self-contained HTML report (PNG plots embedded) and Markdown.

The sections are computed once (report_sections.py, from the tables in report_tables.py and the
charts in charts.py) and rendered twice: report_markdown.py and report_html.py."""

from __future__ import annotations

from pathlib import Path

from vlmrec.experiments.report_html import render_html
from vlmrec.experiments.report_markdown import render_markdown
from vlmrec.experiments.report_sections import Report, build_report

__all__ = ["Report", "build_report", "write_report"]


def write_report(run_dir: str | Path, metric: str = "recall", k: int = 20) -> Path:
    """Write report.html (self-contained: plots as base64 PNG), report.md and leaderboard.csv into a
    run folder; returns the HTML file.

    Order: the verdict block, a compact leaderboard, the content-gap chart, the warm-vs-cold and
    popularity-bucket charts (when the run recorded those segments), then the details collapsed.
    """
    run_dir = Path(run_dir)
    report = build_report(run_dir, metric, k)
    report.leaderboard.full.to_csv(run_dir / "leaderboard.csv", index=False)
    (run_dir / "report.md").write_text(render_markdown(report))
    out = run_dir / "report.html"
    out.write_text(render_html(report))
    return out
