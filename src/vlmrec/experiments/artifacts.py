"""The run and cell artifacts: the only writers and readers of a run folder.

A run folder (`RunArtifact`) holds `config.json` (the validated config), `run.json` (the run's
summary: dataset, code version, evaluation, selection), the tidy `results.parquet` / `results.csv`
/ `per_user.parquet` (experiments/results.py), `dataset/` (when the run prepared it),
`features/<label>/` and `cells/<key>/`.

A cell is one trained and evaluated model (dataset x model x params x features x control x
seed). Its folder holds `cell.json` (what determined it and what it measured, written last: its
presence marks the cell complete), `results.parquet` and `per_user.parquet` (tidy rows), and
`model/` (the fitted model, `Recommender.save`), so serving and reports load exactly the
evaluated model. A cell is written into a temporary folder and renamed into place, so a killed run
never leaves a half-written cell behind.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd

from vlmrec.artifact_io import read_json, read_parquet
from vlmrec.errors import ConfigError, DataError
from vlmrec.experiments.results import write_results
from vlmrec.folders import claim_folder
from vlmrec.models.base import Recommender
from vlmrec.names import safe_name

CELL_FORMAT = 1
_RERUN = "run `vlmrec run CONFIG` again into this folder (finished cells are reused) or restore it"
_ROW_COLUMNS = ("metric", "k", "value")
"""Columns every results / per-user table of a run has, whatever else it holds."""
_RERUN_CELL = "delete this cell folder and run the config again (only this cell is recomputed)"


class CellArtifact:
    """One cell folder of a run."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    # ---- locating ------------------------------------------------------------------------
    @staticmethod
    def folder(run_dir: str | Path, key: str) -> Path:
        """Where the cell `key` of run `run_dir` lives."""
        return Path(run_dir) / "cells" / key

    @classmethod
    def find(cls, run_dir: str | Path, key: str) -> CellArtifact | None:
        """The complete cell `key` of `run_dir`, or None when it was never finished."""
        cell = cls(cls.folder(run_dir, key))
        return cell if cell.complete else None

    @classmethod
    def all(cls, run_dir: str | Path) -> list[CellArtifact]:
        """Every complete cell of a run, in key order."""
        root = Path(run_dir) / "cells"
        if not root.is_dir():
            return []
        return [c for c in (cls(p) for p in sorted(root.iterdir()) if p.is_dir()) if c.complete]

    @property
    def complete(self) -> bool:
        """True once `cell.json` (written last) exists."""
        return (self.directory / "cell.json").is_file()

    # ---- writing -------------------------------------------------------------------------
    @classmethod
    def write(
        cls,
        run_dir: str | Path,
        key: str,
        record: dict[str, Any],
        results: pd.DataFrame,
        per_user: pd.DataFrame,
        model: Recommender | None,
    ) -> CellArtifact:
        """Write a finished cell atomically and return it."""
        final = cls.folder(run_dir, key)
        tmp = final.parent / f".tmp-{key}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            results.to_parquet(tmp / "results.parquet", index=False)
            per_user.to_parquet(tmp / "per_user.parquet", index=False)
            if model is not None:
                model.save(tmp / "model")
            record = {**record, "key": key, "cell_format": CELL_FORMAT, "has_model": model is not None}
            (tmp / "cell.json").write_text(json.dumps(record, indent=1, default=str))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if final.exists():  # an unfinished older attempt (no cell.json) or a re-run
            shutil.rmtree(final)
        os.replace(tmp, final)
        return cls(final)

    def drop_model(self) -> None:
        """Delete the saved model (cells not chosen by model selection keep only their rows)."""
        if (self.directory / "model").exists():
            shutil.rmtree(self.directory / "model")
            record = self.record()
            record["has_model"] = False
            (self.directory / "cell.json").write_text(json.dumps(record, indent=1, default=str))

    # ---- reading -------------------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        """The cell's spec and measurements (cell.json)."""
        record = read_json(self.directory / "cell.json", "cell record", _RERUN_CELL)
        fmt = record.get("cell_format", 0)
        if not isinstance(fmt, int) or isinstance(fmt, bool):
            raise DataError(
                f"{self.directory / 'cell.json'}: damaged cell record (cell_format); {_RERUN_CELL}"
            )
        if fmt > CELL_FORMAT:
            raise ConfigError(
                f"{self.directory}: cell format {fmt} is newer than this vlmrec reads ({CELL_FORMAT})"
            )
        return record

    def results(self) -> pd.DataFrame:
        """Tidy summary rows of the cell."""
        return read_parquet(self.directory / "results.parquet", "cell results", _RERUN_CELL)

    def per_user(self) -> pd.DataFrame:
        """Per-user metric values of the cell."""
        return read_parquet(self.directory / "per_user.parquet", "cell results", _RERUN_CELL)

    @property
    def has_model(self) -> bool:
        """True when the fitted model was kept."""
        return (self.directory / "model" / "model.json").is_file()

    def load_model(self) -> Recommender:
        """The fitted model exactly as evaluated."""
        if not self.has_model:
            raise ConfigError(
                f"{self.directory}: this cell kept no model (only the cells chosen by model selection"
                " keep theirs, and runs before cell format 1 kept none)"
            )
        try:
            return Recommender.load(self.directory / "model")
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
            raise DataError(
                f"{self.directory / 'model'}: damaged saved model ({type(e).__name__}: {str(e)[:120]}); "
                f"{_RERUN_CELL}"
            ) from None


class RunArtifact:
    """One run folder: what `vlmrec run` writes and `vlmrec report` / `vlmrec serve --run` read."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    # ---- writing -------------------------------------------------------------------------
    def write_config(self, config_json: str) -> None:
        """The validated config, as JSON (written first: it says what the run is). The folder
        must be new, empty or an earlier run's (`folders.claim_folder`): a folder of the user's
        is refused before anything is written."""
        claim_folder(self.directory, "run", "run folder (output_dir)")
        _write_atomic(self.directory / "config.json", config_json)

    def write_results(self, results: pd.DataFrame, per_user: pd.DataFrame) -> None:
        """The tidy results of every selected cell (results.parquet, .csv, per_user.parquet)."""
        write_results(self.directory, results, per_user)

    def write_summary(self, summary: dict[str, Any]) -> None:
        """run.json: dataset, code version, evaluation, selection (written last)."""
        _write_atomic(self.directory / "run.json", json.dumps(summary, indent=1, default=str))

    # ---- reading -------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The run's config (config.json) as a mapping."""
        if not (self.directory / "config.json").is_file():
            raise DataError(f"{self.directory}: not a run folder (no config.json)")
        return read_json(self.directory / "config.json", "run config", _RERUN)

    def summary(self) -> dict[str, Any]:
        """run.json, or {} for a run that has not finished writing it."""
        path = self.directory / "run.json"
        return read_json(path, "run summary", _RERUN) if path.is_file() else {}

    def results(self) -> pd.DataFrame:
        """The tidy results table; a DataError when the run has not produced one."""
        path = self.directory / "results.parquet"
        if not path.is_file():
            raise DataError(f"{self.directory}: no results.parquet; run `vlmrec run CONFIG` first")
        return read_parquet(path, "run results", _RERUN, _ROW_COLUMNS)

    def per_user(self) -> pd.DataFrame:
        """Per-user metric values of every selected cell."""
        return read_parquet(
            self.directory / "per_user.parquet", "run results", _RERUN, ("user", *_ROW_COLUMNS)
        )

    def dataset_dir(self) -> Path:
        """The prepared dataset the run used: its own `dataset/` or the config's `prepared`."""
        own = self.directory / "dataset"
        if own.exists():
            return own
        section = self.config().get("dataset")
        prepared = section.get("prepared") if isinstance(section, dict) else None
        if not prepared:
            raise DataError(f"{self.directory}: no dataset/ folder and no dataset.prepared in config.json")
        return Path(prepared)

    def features_dir(self, label: str) -> Path:
        """Where the run keeps the FeatureSet `label` (a name, never a path: see `vlmrec.names`)."""
        return self.directory / "features" / safe_name(label, "features label")

    def cell(self, key: str) -> CellArtifact:
        """The cell `key` of this run (complete or not: see `CellArtifact.complete`)."""
        return CellArtifact(CellArtifact.folder(self.directory, key))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
