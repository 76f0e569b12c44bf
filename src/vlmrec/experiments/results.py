"""The tidy results table on disk: results.parquet + results.csv, per-user values beside them.

Columns: dataset, split, mask, features, model, seed, metric, k, value, segment (+ the runner's
model, control, params, valid_score, cell, grid_size). `segment` is "all" for the whole test
split and "warm" / "cold" / "head" / "torso" / "tail" for the item segments of
`evaluation.segments` (docs/cold_start.md). Beyond-accuracy metrics (coverage, novelty,
tail_share) are further `metric` values with segment "all"; coverage is set-level, so it has no
per-user rows. per_user.parquet has the same `segment` column.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

DEFAULT_SEGMENT = "all"


def with_segment(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with a `segment` column ("all" where missing: tables written before segments)."""
    if "segment" not in frame.columns:
        return frame.assign(segment=DEFAULT_SEGMENT)
    return frame.assign(segment=frame["segment"].fillna(DEFAULT_SEGMENT))


def segment_rows(frame: pd.DataFrame, segment: str = DEFAULT_SEGMENT) -> pd.DataFrame:
    """The rows of one segment (a table without a `segment` column is all segment "all")."""
    return frame[with_segment(frame)["segment"].astype(str) == segment]


def write_results(out: str | Path, results: pd.DataFrame, per_user: pd.DataFrame | None = None) -> Path:
    """Write results.parquet, results.csv (and per_user.parquet) into `out`; returns the folder."""
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    results = with_segment(results)
    results.to_parquet(d / "results.parquet", index=False)
    results.to_csv(d / "results.csv", index=False)
    if per_user is not None:
        with_segment(per_user).to_parquet(d / "per_user.parquet", index=False)
    return d
