"""The tidy results table on disk: results.parquet + results.csv, per-user values beside them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def write_results(out: str | Path, results: pd.DataFrame, per_user: pd.DataFrame | None = None) -> Path:
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    results.to_parquet(d / "results.parquet", index=False)
    results.to_csv(d / "results.csv", index=False)
    if per_user is not None:
        per_user.to_parquet(d / "per_user.parquet", index=False)
    return d
