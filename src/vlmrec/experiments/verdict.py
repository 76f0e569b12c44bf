"""The verdict: two labels per content row and item segment, each against a named reference.

- **content use** (the row against its own shuffled twin, and its random twin when present):
  `uses content` (better than every twin), `content degrades it` (worse than a twin),
  `no evidence it uses content` (no significant difference);
- **worth** (the row against the best ID-only model of that segment, chosen on that segment's
  validation score): `beats best ID`, `on par with best ID`, `below best ID`.

Either label reads `inconclusive (...)` when the run cannot say: fewer than 3 seeds, or a gap
whose sign differs between seeds. The figures behind each label (mean per-user difference,
Holm-level interval, adjusted p, per-seed differences) come from `experiments.comparisons`,
and `verdict.json` in the run folder holds all of them (`verdict_json`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from vlmrec.experiments.comparisons import (
    MIN_SEEDS,
    SEGMENTS,
    Comparison,
    ComparisonSpec,
    RunComparisons,
    compare_run,
)
from vlmrec.experiments.results import segment_rows

#: the verdict file in a run folder (written by the runner; read by other tools)
VERDICT_FILE = "verdict.json"
VERDICT_FORMAT = 2
BEYOND_ACCURACY: tuple[str, ...] = ("coverage", "novelty", "tail_share")
#: the segments the terminal block shows under a row (head and torso are in the report and JSON)
TERMINAL_SEGMENTS: tuple[str, ...] = ("warm", "cold", "cold_only", "tail")
#: label -> colour class (terminal and HTML): good news, bad news, everything else
TONE: dict[str, str] = {
    "uses content": "good",
    "beats best ID": "good",
    "content degrades it": "bad",
    "below best ID": "bad",
}
SEGMENT_NAMES: dict[str, str] = {
    "all": "all items",
    "warm": "warm items",
    "cold": "cold items (ranked among all items)",
    "cold_only": "cold items ranked among cold items only",
    "head": "head items",
    "torso": "torso items",
    "tail": "tail items",
}


def format_p(p: float | None) -> str:
    """A p-value for people: `< 0.001` below a thousandth, three decimals otherwise, `n/a` if none."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    if p < 0.001:
        return "< 0.001"
    return f"{p:.3f}"


def segments_present(results: pd.DataFrame) -> list[str]:
    """The segments a results table holds, in the canonical order (always at least "all")."""
    if "segment" not in results.columns:
        return ["all"]
    have = set(results["segment"].fillna("all").astype(str))
    return [s for s in SEGMENTS if s in have] or ["all"]


def use_label(twins: Iterable[Comparison]) -> str:
    """The content-use label from the row's twin comparisons (see the module docstring)."""
    twins = list(twins)
    if not twins:
        return "no twin"
    outcomes = [t.outcome for t in twins]
    if "worse" in outcomes:
        return "content degrades it"
    if all(o == "better" for o in outcomes):
        return "uses content"
    for t in twins:
        if t.outcome == "inconclusive":
            return f"inconclusive ({t.reason})"
    if all(o == "n/a" for o in outcomes):
        return "n/a"
    return "no evidence it uses content"


def worth_label(versus_id: Comparison | None) -> str:
    """The worth label from the comparison with the segment's best ID model."""
    if versus_id is None:
        return "no ID reference"
    return {
        "better": "beats best ID",
        "worse": "below best ID",
        "no difference": "on par with best ID",
    }.get(versus_id.outcome, versus_id.outcome_text())


@dataclass(frozen=True)
class Verdict:
    """The verdict on one content row in one segment."""

    dataset: str
    model: str
    features: str
    segment: str
    metric: str
    use: str
    worth: str
    twins: tuple[Comparison, ...]
    versus_id: Comparison | None
    #: the segment's best ID-only model (None: the run has none with a validation score)
    reference: str | None
    reference_basis: str

    @property
    def row(self) -> str:
        """E.g. `freedom [text]`."""
        return f"{self.model} [{self.features}]"

    def use_parts(self) -> tuple[str, str]:
        """The content-use label and what follows it, e.g. (`uses content`, ` (+0.0106 vs shuffled twin)`)."""
        if not self.twins:
            return "no twin", " to test content use"
        gaps = ", ".join(f"{t.diff:+.4f} vs {t.reference}" for t in self.twins)
        word = self.use if not self.use.startswith("inconclusive") else f"content use {self.use}"
        return word, f" ({gaps})"

    def worth_parts(self) -> tuple[str, str]:
        """The worth label and what follows it, e.g. (`below best ID`, ` ease (-0.0120)`)."""
        if self.versus_id is None:
            return "no ID reference", " with a validation score"
        v = self.versus_id
        gap = f"{v.diff:+.4f}"
        if v.unequal_budget:
            # an honest comparison tunes both sides as hard: say when it did not
            gap += (
                f"; tuned on {v.grid_size} point{'s' if v.grid_size != 1 else ''} vs {v.reference_grid_size}"
            )
        if self.worth.startswith("inconclusive"):
            return f"vs best ID {self.reference}: {self.worth}", f" ({gap})"
        return self.worth, f" {self.reference} ({gap})"

    def use_text(self) -> str:
        """The content-use label with its gap(s), e.g. `uses content (+0.0106 vs shuffled twin)`."""
        return "".join(self.use_parts())

    def worth_text(self) -> str:
        """The worth label with its gap, e.g. `below best ID ease (-0.0120)`."""
        return "".join(self.worth_parts())

    def line(self) -> str:
        """One short line: the row, both labels and both gaps."""
        return f"{self.row}: {self.use_text()} · {self.worth_text()}"

    def short(self) -> str:
        """The per-segment form, e.g. `tail: uses content (+0.0050 vs shuffled twin) · ...`."""
        return f"{self.segment}: {self.use_text()} · {self.worth_text()}"

    def to_json(self) -> dict:
        """A JSON-ready record for verdict.json."""
        return {
            "dataset": self.dataset,
            "model": self.model,
            "features": self.features,
            "segment": self.segment,
            "metric": self.metric,
            "content_use": {"label": self.use, "comparisons": [t.to_json() for t in self.twins]},
            "worth": {
                "label": self.worth,
                "reference": self.reference,
                "reference_chosen_on": self.reference_basis,
                "comparison": self.versus_id.to_json() if self.versus_id else None,
            },
        }


def verdicts_from(comparisons: RunComparisons) -> list[Verdict]:
    """One verdict per content row and segment, in segment order then row order."""
    keys = sorted(
        {(c.dataset, c.model, c.features, c.segment) for c in comparisons.comparisons},
        key=lambda k: (k[0], SEGMENTS.index(k[3]) if k[3] in SEGMENTS else len(SEGMENTS), k[1], k[2]),
    )
    out = []
    for dataset, model, features, segment in keys:
        found = comparisons.for_row(dataset, model, features, segment)
        twins = tuple(c for c in found if c.question == "use")
        versus = next((c for c in found if c.question == "worth"), None)
        out.append(
            Verdict(
                dataset=dataset,
                model=model,
                features=features,
                segment=segment,
                metric=comparisons.spec.label,
                use=use_label(twins),
                worth=worth_label(versus),
                twins=twins,
                versus_id=versus,
                reference=comparisons.references.get((dataset, segment)),
                reference_basis=comparisons.reference_basis.get((dataset, segment), ""),
            )
        )
    return out


def compute_verdicts(
    results: pd.DataFrame, per_user: pd.DataFrame, spec: ComparisonSpec = ComparisonSpec()
) -> tuple[RunComparisons, list[Verdict]]:
    """The run's comparisons and its verdicts (every content row, every recorded segment)."""
    comparisons = compare_run(results, per_user, spec)
    return comparisons, verdicts_from(comparisons)


def by_segment(verdicts: Iterable[Verdict]) -> dict[str, list[Verdict]]:
    """Verdicts grouped by segment (segment order kept)."""
    out: dict[str, list[Verdict]] = {}
    for v in verdicts:
        out.setdefault(v.segment, []).append(v)
    return out


def seed_counts(comparisons: RunComparisons) -> list[int]:
    """The distinct numbers of seeds behind the comparisons (normally one)."""
    return sorted({c.seeds for c in comparisons.comparisons})


def procedure_note(comparisons: RunComparisons) -> str:
    """The caution said once per verdict block: how sure each label is, and where the details are."""
    seeds = seed_counts(comparisons)
    n = sum(comparisons.family_size.values())
    few = [s for s in seeds if s < MIN_SEEDS]
    text = (
        f"Gaps: mean per-user difference of {comparisons.spec.label}; intervals and p from one paired "
        f"bootstrap over users and seeds, Holm over {n} comparison{'s' if n != 1 else ''}. A label says "
        f"better/worse only when the interval excludes 0 with >= {MIN_SEEDS} seeds all agreeing in sign. "
        "The best ID model is chosen per segment on validation."
    )
    if few:
        text += f" This run has {few[0]} seed{'s' if few[0] != 1 else ''}: every label is inconclusive."
    return text


def verdict_lines(verdicts: list[Verdict], segments: Iterable[str] | None = None) -> list[str]:
    """Plain-text verdict block: one line per content row (all items), then indented lines for
    the segments (of `segments`; default every one) whose labels differ from the row's overall
    ones."""
    shown = None if segments is None else set(segments)
    overall = [v for v in verdicts if v.segment == "all"]
    if not overall:
        return ["No verdict: no content row to compare (add a content model and `controls: [shuffled]`)."]
    lines = []
    for v in overall:
        lines.append(v.line())
        for w in verdicts:
            same_row = (w.dataset, w.model, w.features) == (v.dataset, v.model, v.features)
            wanted = w.segment != "all" and (shown is None or w.segment in shown)
            if same_row and wanted and (w.use, w.worth) != (v.use, v.worth):
                lines.append("    " + w.short())
    return lines


def verdict_summary(verdicts: Iterable[Verdict]) -> str:
    """E.g. `3 content rows: 2 use content, 1 no evidence; 1 beats best ID, 2 below`."""
    overall = [v for v in verdicts if v.segment == "all"]
    if not overall:
        return "no content rows"

    def counts(labels: list[str], names: dict[str, str]) -> str:
        keys = list(dict.fromkeys(labels))
        return ", ".join(f"{labels.count(k)} {names.get(k, k)}" for k in keys)

    use = counts(
        [v.use for v in overall],
        {"uses content": "use content", "no evidence it uses content": "no evidence of use"},
    )
    worth = counts([v.worth for v in overall], {})
    n = len(overall)
    return f"{n} content row{'s' if n != 1 else ''}: {use}; {worth}"


def verdict_json(comparisons: RunComparisons, verdicts: list[Verdict]) -> dict:
    """Everything behind the verdict, for other tools: per row and segment, the reference's name,
    each comparison's mean difference, interval, adjusted p, seeds, per-seed signs and the label."""
    spec = comparisons.spec
    return {
        "format": VERDICT_FORMAT,
        "metric": spec.label,
        "alpha": spec.alpha,
        "procedure": {
            "estimand": "mean per-user difference (row minus reference), averaged over shared seeds",
            "test_and_interval": "two-way paired bootstrap over users and seeds "
            f"({spec.n_boot} draws, seed {spec.seed}); p = 2 x the smaller share of draws on either "
            "side of 0 (0 means below the resolution, p_resolution); percentile interval at the Holm "
            "level of the comparison",
            "p_resolution": 2.0 / spec.n_boot,
            "multiplicity": "Holm over every comparison of a dataset (both questions, all rows, all segments)",
            "min_seeds": MIN_SEEDS,
            "label_rule": "better/worse only when Holm-significant, >= min_seeds seeds, and the same "
            "sign in every seed; otherwise inconclusive or no difference",
            "reference": "best ID-only model per segment, on that segment's validation score averaged over seeds",
        },
        "family_size": comparisons.family_size,
        "references": [
            {"dataset": d, "segment": s, "model": m, "chosen_on": comparisons.reference_basis.get((d, s), "")}
            for (d, s), m in comparisons.references.items()
        ],
        "verdicts": [v.to_json() for v in verdicts],
    }


def write_verdict(run_dir: str | Path, comparisons: RunComparisons, verdicts: list[Verdict]) -> Path:
    """Write verdict.json into a run folder (atomically: a reader never sees half a file)."""
    path = Path(run_dir) / VERDICT_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(verdict_json(comparisons, verdicts), indent=1, sort_keys=False))
    tmp.replace(path)
    return path


__all__ = [
    "BEYOND_ACCURACY",
    "SEGMENT_NAMES",
    "TERMINAL_SEGMENTS",
    "TONE",
    "VERDICT_FILE",
    "Verdict",
    "by_segment",
    "compute_verdicts",
    "format_p",
    "procedure_note",
    "segment_rows",
    "segments_present",
    "use_label",
    "verdict_json",
    "verdict_lines",
    "verdict_summary",
    "verdicts_from",
    "worth_label",
    "write_verdict",
]
