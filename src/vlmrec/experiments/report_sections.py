"""A run's report as data: every section computed once (`build_report`), then rendered by
report_markdown.py and report_html.py, which choose only how to show it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from vlmrec.data.dataset import Dataset
from vlmrec.experiments import charts
from vlmrec.experiments.artifacts import RunArtifact
from vlmrec.experiments.comparisons import ComparisonSpec, RunComparisons
from vlmrec.experiments.examples import ExamplesSection, build_examples
from vlmrec.experiments.leaderboard import describe_mask, leaderboard, results_mask
from vlmrec.experiments.report_tables import (
    beyond_accuracy_table,
    compact_board,
    comparison_table,
    gallery,
    per_cell_table,
    segment_table,
    selection_table,
    user_groups,
)
from vlmrec.experiments.verdict import (
    Verdict,
    by_segment,
    compute_verdicts,
    procedure_note,
    segment_rows,
    segments_present,
)

VERDICT_RULE = (
    "Two questions per content row and segment: does it use its content (vs its own shuffled / "
    "random twin) and is it worth using (vs the best ID-only model of that segment, chosen on "
    "validation)? Gaps are mean per-user differences; intervals and p from one paired bootstrap "
    "over users and seeds, Holm over all comparisons; better/worse need >= 3 seeds agreeing in sign."
)
SELECTION_NOTE = (
    "Hyperparameters are chosen once per row: every grid point runs with every seed, and the "
    "point with the best validation score averaged over seeds is used for all seeds and for the "
    "control twins. The test split plays no part."
)
# (title, anchor, segments, what they are called in the note when the run has none of them)
SEGMENT_GROUPS = (
    ("Warm vs cold items", "warm-cold", ["warm", "cold", "cold_only"], "warm/cold item segments"),
    (
        "Popularity buckets (head / torso / tail)",
        "popularity",
        ["head", "torso", "tail"],
        "popularity buckets",
    ),
)


@dataclass(frozen=True)
class LeaderboardSection:
    """The leaderboard: compact (text cells with CIs and comparisons) and full (every column)."""

    metric: str
    k: int
    compact: pd.DataFrame
    full: pd.DataFrame
    note: str  # the mask, the CI procedure and the best ID model


@dataclass(frozen=True)
class SegmentSection:
    """A group of segments (warm/cold items, popularity buckets): table and chart, or a note."""

    title: str
    anchor: str
    table: pd.DataFrame
    chart: str | None  # base64 PNG; None exactly when the run has none of these segments
    note: str | None


@dataclass(frozen=True)
class RunDetails:
    """What was run on what: dataset, code version, seeds, cutoffs, the training-item mask."""

    dataset: str
    fingerprint: str
    stats: dict[str, Any]
    code_version: str
    seeds: Any
    cutoffs: list[int]
    mask: str  # in words


@dataclass(frozen=True)
class Report:
    """Every section of a run's report, in the order the HTML page shows them."""

    name: str
    synthetic: str | None  # the dataset's label when it was generated (results circular), else None
    verdicts: list[Verdict]  # every segment
    comparisons: RunComparisons
    leaderboard: LeaderboardSection
    content_gap_chart: str | None
    segments: list[SegmentSection]
    thresholds: dict[str, Any] | None
    beyond: pd.DataFrame
    details: RunDetails
    comparison_table: pd.DataFrame
    cells: pd.DataFrame
    selection: pd.DataFrame
    metric_charts: dict[str, str]
    user_groups: pd.DataFrame
    gallery: list[dict[str, Any]] = field(default_factory=list)
    examples: ExamplesSection | None = None  # what each model recommends (examples.py)

    @property
    def overall_verdicts(self) -> list[Verdict]:
        """The verdicts on all items (segment "all")."""
        return by_segment(self.verdicts).get("all", [])


def build_report(run_dir: str | Path, metric: str = "recall", k: int = 20) -> Report:
    """Every section of the report of the run in `run_dir`, ranked by `metric`@`k`."""
    run_dir = Path(run_dir)
    folder = RunArtifact(run_dir)
    results, per_user, run = folder.results(), folder.per_user(), folder.summary()
    ds = Dataset.load(folder.dataset_dir())
    evaluation = run.get("evaluation", {})
    spec = ComparisonSpec(
        metric=metric,
        k=k,
        alpha=float(evaluation.get("alpha", 0.05)),
        n_boot=int(evaluation.get("n_boot", ComparisonSpec.n_boot)),
    )
    comparisons, verdicts = compute_verdicts(results, per_user, spec)
    overall = segment_rows(results, "all")
    mask = describe_mask(results_mask(overall, "+".join(evaluation.get("mask", ["train", "valid"]))))
    board = _leaderboard(results, per_user, comparisons, run, mask)
    return Report(
        name=str(run.get("name", run_dir.name)),
        synthetic=ds.info.get("label", "") if ds.info.get("generated") else None,
        verdicts=verdicts,
        comparisons=comparisons,
        leaderboard=board,
        metric_charts=_metric_charts(results, per_user, board),
        content_gap_chart=charts.content_gap_chart(by_segment(verdicts).get("all", [])),
        segments=_segment_sections(results, per_user, comparisons),
        thresholds=evaluation.get("segments"),
        beyond=beyond_accuracy_table(results),
        details=RunDetails(
            dataset=ds.name,
            fingerprint=ds.fingerprint,
            stats=ds.stats(),
            code_version=str(run.get("code_version", "?")),
            seeds=run.get("seeds"),
            cutoffs=[int(x) for x in sorted(overall["k"].unique())],
            mask=mask,
        ),
        comparison_table=comparison_table(comparisons),
        cells=per_cell_table(results),
        selection=selection_table(run),
        user_groups=user_groups(ds, segment_rows(per_user, "all"), metric, k),
        gallery=gallery(ds, run_dir),
        examples=build_examples(run_dir, ds, run, comparisons.references.get((ds.name, "all"))),
    )


def _leaderboard(
    results: pd.DataFrame, per_user: pd.DataFrame, comparisons: RunComparisons, run: dict, mask: str
) -> LeaderboardSection:
    """The leaderboard on all items, with nDCG beside the ranking metric where it was measured."""
    metric, k = comparisons.spec.metric, comparisons.spec.k
    extra = [("ndcg", k)] if "ndcg" in set(segment_rows(results, "all")["metric"]) else []
    board = leaderboard(results, per_user, metric, k, extra=extra, comparisons=comparisons)
    note = (
        f"{mask} CI: bootstrap over test users (per-user values averaged over seeds "
        f"{run.get('seeds')}). {procedure_note(comparisons)} Best ID model on all items: "
        + (", ".join(map(str, board["best_id_baseline"].dropna().unique())) or "none")
        + "."
        if not board.empty
        else "(no results)"
    )
    return LeaderboardSection(metric, k, compact_board(results, per_user, comparisons), board, note)


def _metric_charts(
    results: pd.DataFrame, per_user: pd.DataFrame, board: LeaderboardSection
) -> dict[str, str]:
    """A bar chart per measured metric of the ranking metric and nDCG, on all items."""
    overall, overall_pu = segment_rows(results, "all"), segment_rows(per_user, "all")
    metric, k, full = board.metric, board.k, board.full
    return {
        f"{m}@{k}": charts.metric_chart(
            full if m == metric else leaderboard(overall, overall_pu, m, k), f"{m}@{k}"
        )
        for m in dict.fromkeys([metric, "ndcg"])
        if m in set(overall["metric"]) and not full.empty
    }


def _segment_sections(
    results: pd.DataFrame, per_user: pd.DataFrame, comparisons: RunComparisons
) -> list[SegmentSection]:
    """One section per segment group: its table and chart, or a note when the run has none."""
    present = segments_present(results)
    metric, k = comparisons.spec.metric, comparisons.spec.k
    sections = []
    for title, anchor, segs, what in SEGMENT_GROUPS:
        have = [s for s in segs if s in present]
        table = segment_table(results, per_user, have, comparisons) if have else pd.DataFrame()
        if table.empty:
            note = (
                f"No {what} in this run (an older run, or a config without `evaluation.segments`): "
                "chart omitted."
            )
            sections.append(SegmentSection(title, anchor, table, None, note))
        else:
            chart = charts.segment_chart(table, have, metric, k, title)
            sections.append(SegmentSection(title, anchor, table, chart, None))
    return sections
