"""Every comparison a run's verdict and leaderboard print, made once and the same way.

Two questions per content row (model x feature set) and item segment, never one for the other:

- **content use**: the row against its own content twins (`shuffled`, and `random` when the run
  has it), trained with the same hyperparameters and seeds: does the model use what the content
  says, beyond its mere presence?
- **worth**: the row against the best ID-only model *of that segment*, chosen on that segment's
  validation score averaged over seeds (never on test): is the content model worth using?

One estimand everywhere: the mean per-user difference (row minus reference) of the metric,
averaged over the training seeds both rows share. Its interval and its p-value come from one
paired two-way bootstrap over users and seeds (`evaluation.significance.paired_bootstrap`), and
Holm's correction runs over every comparison of a dataset (both questions, every row, every
segment), with each interval at the level Holm tests it at: so a comparison is significant
exactly when its interval excludes 0.

A difference is called `better` / `worse` only when it is significant, the run has at least
`MIN_SEEDS` seeds, and the per-seed mean difference has the same sign in every seed; otherwise
`inconclusive` (with the reason) or `no difference`. docs/verdict.md states the procedure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Literal, cast

import numpy as np
import pandas as pd

from vlmrec.errors import ConfigError
from vlmrec.evaluation.significance import PairedBootstrap, holm_levels, paired_bootstrap
from vlmrec.experiments.results import segment_rows, with_segment

ROW = ["dataset", "model", "features", "control"]
RowKey = tuple[str, str, str, str]  # one leaderboard row: its values of the ROW columns
#: the segments a verdict is given for, in display order, when the run recorded them
SEGMENTS: tuple[str, ...] = ("all", "warm", "cold", "cold_only", "head", "torso", "tail")
#: the content twins that answer "does the row use its content"
USE_CONTROLS: tuple[str, ...] = ("shuffled", "random")
#: fewer training seeds than this never give a "better" or "worse"
MIN_SEEDS = 3

Outcome = Literal["better", "worse", "no difference", "inconclusive", "n/a"]
Question = Literal["use", "worth"]


@dataclass(frozen=True)
class ComparisonSpec:
    """What a run's comparisons measure: one value instead of (metric, k, alpha, ...) threaded
    through the leaderboard, the verdict and the report."""

    metric: str = "recall"
    k: int = 20
    alpha: float = 0.05
    n_boot: int = 5000
    seed: int = 0

    @property
    def label(self) -> str:
        """E.g. `recall@20`."""
        return f"{self.metric}@{self.k}"


@dataclass(frozen=True)
class Comparison:
    """One paired comparison: a row minus a reference, in one segment."""

    dataset: str
    segment: str
    model: str
    features: str
    question: Question
    #: what the row is compared with, in words: `shuffled twin`, `random twin` or the ID model's name
    reference: str
    reference_row: RowKey
    diff: float
    ci_low: float
    ci_high: float
    #: the interval's confidence level (Holm-adjusted: above 0.95 for most comparisons)
    ci_level: float
    p: float
    p_holm: float
    seeds: int
    #: the mean difference under each shared seed (their signs must agree for a better/worse)
    seed_diffs: tuple[float, ...]
    users: int
    outcome: Outcome
    #: why an outcome is inconclusive, e.g. `2 seeds` or `sign differs across seeds`
    reason: str = ""
    #: hyperparameter points tried on validation for the row and for the reference (None: unknown)
    grid_size: int | None = None
    reference_grid_size: int | None = None

    @property
    def unequal_budget(self) -> bool:
        """The row was tuned on fewer validation points than its reference."""
        return (
            self.grid_size is not None
            and self.reference_grid_size is not None
            and self.grid_size < self.reference_grid_size
        )

    @property
    def row(self) -> RowKey:
        """The compared row's key (its control is always `none`)."""
        return (self.dataset, self.model, self.features, "none")

    @property
    def significant(self) -> bool:
        """Whether the (Holm-level) interval lies on one side of 0: by construction, exactly when
        the Holm-adjusted p is below alpha."""
        return self.ci_low > 0 or self.ci_high < 0

    def figures(self) -> str:
        """E.g. `+0.0106 [+0.0041, +0.0170]`."""
        return f"{self.diff:+.4f} [{self.ci_low:+.4f}, {self.ci_high:+.4f}]"

    def outcome_text(self) -> str:
        """The outcome with its reason, e.g. `inconclusive (2 seeds)`."""
        return f"{self.outcome} ({self.reason})" if self.reason else self.outcome

    def to_json(self) -> dict:
        """A JSON-ready record (verdict.json)."""
        out = asdict(self)
        out["reference_row"] = dict(zip(ROW, self.reference_row))
        out["seed_diffs"] = list(self.seed_diffs)
        out["significant"] = self.significant
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}


@dataclass
class RunComparisons:
    """All comparisons of a run for one spec, and the per-segment ID references they used."""

    spec: ComparisonSpec
    comparisons: list[Comparison]
    #: (dataset, segment) -> the best ID-only model's name (None: no ID row with a validation score)
    references: dict[tuple[str, str], str | None]
    #: (dataset, segment) -> how the reference was chosen, e.g. `validation recall@20 on tail items`
    reference_basis: dict[tuple[str, str], str]
    family_size: dict[str, int] = field(default_factory=dict)

    def for_row(self, dataset: str, model: str, features: str, segment: str) -> list[Comparison]:
        """The comparisons of one content row in one segment (twins first, then vs best ID)."""
        found = [
            c
            for c in self.comparisons
            if (c.dataset, c.model, c.features, c.segment) == (dataset, model, features, segment)
        ]
        return sorted(found, key=lambda c: c.question == "worth")

    def segments(self) -> list[str]:
        """The segments compared, in display order."""
        have = {c.segment for c in self.comparisons} | {s for _, s in self.references}
        return [s for s in SEGMENTS if s in have] + sorted(have - set(SEGMENTS))


def best_id_reference(results: pd.DataFrame, segment: str) -> tuple[RowKey | None, str]:
    """The best ID-only row of one dataset in `segment`: highest validation score of that segment
    averaged over seeds, from the `valid_score` of that segment's result rows. Ties (e.g. every
    ID-only model at 0 on cold items) are broken by the validation score on all items, then by
    name. Returns (the row's key or None, how it was chosen, in words)."""
    seg_means = _id_validation(results, segment)
    if seg_means.empty:
        return None, "no ID-only row with a validation score"
    overall = _id_validation(results, "all") if segment != "all" else seg_means
    scored = [(cast(RowKey, key), float(v), float(overall.get(key, -np.inf))) for key, v in seg_means.items()]
    ranked = sorted(scored, key=lambda r: (-r[1], -r[2], r[0][1]))
    key, best = ranked[0][0], ranked[0][1]
    res = segment_rows(results, segment)
    per_segment = segment == "all" or (
        "valid_segment" in res.columns and (res["valid_segment"].dropna() == segment).all()
    )
    if not per_segment:
        return key, "overall validation (this run recorded no per-segment validation scores)"
    basis = f"validation on {'all' if segment == 'all' else segment} items"
    tied = sum(1 for _, v, _ in ranked if v == best)
    if tied > 1:
        basis += f" (tied at {best:.4f} with {tied - 1} other ID model{'s' if tied > 2 else ''}: broken by validation on all items)"
    return key, basis


def _id_validation(results: pd.DataFrame, segment: str) -> pd.Series:
    """Mean validation score over seeds of every ID-only row in `segment` (NaN rows dropped)."""
    res = segment_rows(results, segment)
    if "control" not in res.columns:
        res = res.assign(control="none")
    ids = res[(res["features"] == "none") & (res["control"] == "none")]
    if "valid_score" not in ids.columns or ids.empty:
        return pd.Series(dtype=float)
    # one validation score per cell: the first metric row of each (row, seed)
    per_cell = ids.drop_duplicates([*ROW, "seed"])
    return per_cell.groupby(ROW)["valid_score"].mean().dropna()


def _seed_matrix(pu: pd.DataFrame, key: RowKey) -> pd.DataFrame:
    """Per-user values of one row as a seeds x users table."""
    sel = pu[(pu["dataset"] == key[0]) & (pu["model"] == key[1]) & (pu["features"] == key[2])]
    sel = sel[sel["control"] == key[3]]
    return sel.pivot_table(index="seed", columns="user", values="value", aggfunc="mean")


def _paired_diffs(mine: pd.DataFrame, ref: pd.DataFrame) -> tuple[np.ndarray, tuple[float, ...]]:
    """(seeds x users differences, per-seed mean differences) over the users both rows have.

    Paired by seed where the seeds are shared; otherwise each side is averaged over its own
    seeds (one pseudo-seed), and the per-seed figures are the row's seeds against the
    reference's mean."""
    users = mine.columns.intersection(ref.columns)
    mine, ref = mine[users], ref[users]
    seeds = mine.index.intersection(ref.index)
    if len(seeds):
        d = mine.loc[seeds].to_numpy() - ref.loc[seeds].to_numpy()
        keep = np.isfinite(d).all(axis=0)
        d = d[:, keep]
        return d, tuple(float(x) for x in d.mean(axis=1)) if d.shape[1] else ()
    ref_mean = ref.mean(axis=0).to_numpy()
    d = mine.mean(axis=0).to_numpy() - ref_mean
    per_seed = tuple(float(np.nanmean(row - ref_mean)) for row in mine.to_numpy())
    return d[None, np.isfinite(d)], per_seed


def _grid_sizes(results: pd.DataFrame) -> dict[RowKey, int]:
    """Each row's number of grid points (the runner's `grid_size` column; empty when absent)."""
    if "grid_size" not in results.columns:
        return {}
    sizes = results.dropna(subset=["grid_size"]).groupby(ROW)["grid_size"].max()
    return {cast(RowKey, key): int(v) for key, v in sizes.items()}


def decide(
    p_holm: float, alpha: float, diff: float, seed_diffs: tuple[float, ...], seeds: int
) -> tuple[Outcome, str]:
    """The outcome rule: significant (Holm) AND >= MIN_SEEDS seeds AND the same sign in every
    seed gives better/worse; fewer seeds or a sign that flips gives `inconclusive`."""
    if math.isnan(p_holm) or math.isnan(diff):
        return "n/a", "no common users"
    if seeds < MIN_SEEDS:
        return "inconclusive", f"{seeds} seed{'s' if seeds != 1 else ''}"
    if p_holm >= alpha:
        return "no difference", ""
    sign = np.sign(diff)
    if any(np.sign(x) != sign for x in seed_diffs):
        return "inconclusive", "sign differs across seeds"
    return ("better" if diff > 0 else "worse"), ""


def _twins(rows: Iterable[RowKey], content: RowKey) -> list[tuple[str, RowKey]]:
    """The content twins of a row present in `rows`: (control kind, twin key). A twin is the same
    model with control `kind` and every feature name of the row suffixed `~kind` (the runner
    writes `a~shuffled+b~shuffled`; older runs `a+b~shuffled`)."""
    out = []
    for kind in USE_CONTROLS:
        for key in sorted(rows):
            same_model = key[:2] == content[:2] and key[3] == kind
            if same_model and key[2].replace(f"~{kind}", "") == content[2]:
                out.append((kind, key))
                break
    return out


@dataclass
class _Pending:
    """A comparison before Holm: its bootstrap and identifying fields."""

    fields: dict
    boot: PairedBootstrap
    seed_diffs: tuple[float, ...]


def compare_run(
    results: pd.DataFrame, per_user: pd.DataFrame, spec: ComparisonSpec = ComparisonSpec()
) -> RunComparisons:
    """Every content row against its twins and the per-segment best ID model, in every segment
    the run recorded; Holm over all comparisons of each dataset. See the module docstring."""
    if results.empty:
        return RunComparisons(spec, [], {}, {})
    results = with_segment(results if "control" in results.columns else results.assign(control="none"))
    per_user = with_segment(per_user if "control" in per_user.columns else per_user.assign(control="none"))
    pu_all = per_user[(per_user["metric"] == spec.metric) & (per_user["k"] == spec.k)]
    if pu_all.empty and not per_user.empty:
        raise ConfigError(
            f"no per-user values of {spec.label} in this run; measured: "
            + ", ".join(sorted({f"{m}@{k}" for m, k in zip(per_user["metric"], per_user["k"])}))
        )
    references: dict[tuple[str, str], str | None] = {}
    basis: dict[tuple[str, str], str] = {}
    pending: dict[str, list[_Pending]] = {}
    present = [s for s in SEGMENTS if s in set(pu_all["segment"].astype(str))]
    for dataset in sorted(results["dataset"].astype(str).unique()):
        res_d = results[results["dataset"] == dataset]
        for segment in present:
            pu = segment_rows(pu_all[pu_all["dataset"] == dataset], segment)
            if pu.empty:
                continue
            best_key, how = best_id_reference(res_d, segment)
            references[(dataset, segment)] = None if best_key is None else best_key[1]
            basis[(dataset, segment)] = how
            found = _segment_comparisons(pu, res_d, best_key, dataset, segment, spec)
            pending.setdefault(dataset, []).extend(found)
    out: list[Comparison] = []
    family: dict[str, int] = {}
    for dataset, items in pending.items():
        family[dataset] = len(items)
        out += _finalise(items, spec)
    return RunComparisons(spec, out, references, basis, family)


def _segment_comparisons(
    pu: pd.DataFrame,
    res: pd.DataFrame,
    best_key: RowKey | None,
    dataset: str,
    segment: str,
    spec: ComparisonSpec,
) -> list[_Pending]:
    """The bootstrapped comparisons of one dataset and segment, before Holm: each content row
    against its twins and against the segment's best ID row (when it has per-user values)."""
    rows = {cast(RowKey, tuple(r)) for r in pu[ROW].drop_duplicates().to_numpy().tolist()}
    if best_key is not None and best_key not in rows:
        best_key = None
    grids = _grid_sizes(res)
    found = []
    for content in sorted(r for r in rows if r[2] != "none" and r[3] == "none"):
        refs = [(f"{kind} twin", "use", key) for kind, key in _twins(rows, content)]
        if best_key is not None:
            refs.append((best_key[1], "worth", best_key))
        mine = _seed_matrix(pu, content)
        for name, question, ref_key in refs:
            d, seed_diffs = _paired_diffs(mine, _seed_matrix(pu, ref_key))
            if d.size == 0:
                continue
            boot = paired_bootstrap(d, n_boot=spec.n_boot, seed=spec.seed)
            fields = dict(
                dataset=dataset,
                segment=segment,
                model=content[1],
                features=content[2],
                question=question,
                reference=name,
                reference_row=ref_key,
                diff=boot.estimate,
                p=boot.p_value,
                seeds=len(seed_diffs),
                users=d.shape[1],
                grid_size=grids.get(content),
                reference_grid_size=grids.get(ref_key),
            )
            found.append(_Pending(fields, boot, seed_diffs))
    return found


def _finalise(items: list[_Pending], spec: ComparisonSpec) -> list[Comparison]:
    """One dataset's comparisons after Holm: adjusted p, the Holm-level interval, the outcome."""
    adjusted, levels = holm_levels([it.fields["p"] for it in items], spec.alpha)
    out = []
    for it, p_holm, level in zip(items, adjusted, levels):
        lo, hi = it.boot.interval(level)
        outcome, reason = decide(
            float(p_holm), spec.alpha, it.fields["diff"], it.seed_diffs, it.fields["seeds"]
        )
        out.append(
            Comparison(
                **it.fields,
                ci_low=lo,
                ci_high=hi,
                ci_level=1.0 - float(level),
                p_holm=float(p_holm),
                seed_diffs=it.seed_diffs,
                outcome=outcome,
                reason=reason,
            )
        )
    return out


__all__ = [
    "MIN_SEEDS",
    "ROW",
    "SEGMENTS",
    "USE_CONTROLS",
    "Comparison",
    "ComparisonSpec",
    "RunComparisons",
    "best_id_reference",
    "compare_run",
    "decide",
]
