"""Cell engines: where the cells of a run execute.

The runner (`experiments/runner.py`) decides *which* cells run (every grid point x seed of a row,
then the row's control twins with the selected parameters) and in what order; an engine only
executes them. A cell is described by a `CellJob` (its key, the spec recorded in `cell.json`,
the model, parameters, feature names, control and seed) and by a `CellContext` shared by every
cell of the run (folders and evaluation settings). Both are plain picklable data, so the Ray
engine ships them to workers, which load the dataset and the FeatureSets from the run folder.
Whatever the engine, a cell is executed by `execute` and written through `CellArtifact`, so the
run folder, the results and resume are the same.

  local  one cell at a time in this process (`engines/local.py`)
  ray    each cell a Ray task with its model's `resources` (`engines/ray.py`)
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vlmrec.data.dataset import Dataset
from vlmrec.errors import ConfigError, DataError
from vlmrec.experiments.artifacts import CellArtifact
from vlmrec.experiments.cell import run_cell
from vlmrec.features.combine.controls import make_control
from vlmrec.features.featureset import FeatureSet
from vlmrec.provenance import code_version, hash_arrays

CELL_CODE = ("models", "evaluation", "features/combine/controls.py", "experiments/cell.py", "data/dataset.py")
"""The code a cell's numbers depend on: a change to it re-runs the cell instead of reusing it."""


@dataclass(frozen=True)
class CellContext:
    """What every cell of a run shares: where things are and how cells are evaluated."""

    run_dir: Path
    dataset_dir: Path
    features_dirs: Mapping[str, Path]
    threads: int
    ks: tuple[int, ...]
    metrics: tuple[str, ...]
    select_metric: tuple[str, int]
    mask: tuple[str, ...]
    segments: tuple[str, ...]


@dataclass(frozen=True)
class CellJob:
    """One cell to execute: `spec` is what determines it (hashed into `key`, kept in cell.json)."""

    key: str
    spec: dict[str, Any]
    model: str
    display: str
    params: dict[str, Any]
    features: tuple[str, ...]
    control: str
    seed: int
    label: str
    num_cpus: float = 1.0
    num_gpus: float = 0.0

    @property
    def line(self) -> str:
        """The per-cell line the runner prints: model [features] params seed."""
        return f"{self.display} [{self.label}] {self.params or ''} seed {self.seed}"

    def describe(self) -> dict[str, Any]:
        """The fields that name the cell in a failure record."""
        return {
            "cell": self.key,
            "model": self.display,
            "features": self.label,
            "control": self.control,
            "params": self.params,
            "seed": self.seed,
        }


@dataclass
class CellOutcome:
    """A finished cell: its record (cell.json with `key`), or the error that ended it."""

    job: CellJob
    record: dict[str, Any] | None = None
    error: str | None = None
    attempts: int = 1
    notes: list[str] = field(default_factory=list)


class CellEngine(Protocol):
    """Executes cells; the runner submits up to `capacity()` at once and waits for outcomes."""

    name: str

    def connect(self) -> None:
        """Get ready before the run's dataset and features are made (Ray: join the cluster)."""

    def start(self, ctx: CellContext, dataset: Dataset, jobs: list[CellJob]) -> None:
        """Get ready to execute the cells of run `ctx` on `dataset` (`jobs`: every grid cell)."""

    def capacity(self) -> int:
        """How many cells may be in flight now (more would only queue)."""

    def running(self) -> int:
        """How many submitted cells have not been returned by `wait` yet."""

    def submit(self, job: CellJob, features: dict[str, FeatureSet] | None) -> None:
        """Start `job`; `features` are the sets it trains with, as the runner made them."""

    def wait(self) -> list[CellOutcome]:
        """Block until at least one submitted cell is finished; return every finished one."""

    def close(self) -> None:
        """Release what `connect` took (a Ray cluster started here is shut down)."""


def feature_hashes(fsets: Mapping[str, FeatureSet] | None) -> dict[str, str]:
    """Content hash of each feature set a cell uses (its manifest's, else of its vectors)."""
    return {k: v.manifest.get("content_hash") or hash_arrays(v.vectors) for k, v in (fsets or {}).items()}


def cell_features(
    combo: Sequence[str], control: str, seed: int, real: Mapping[str, FeatureSet]
) -> dict[str, FeatureSet] | None:
    """The feature sets a cell trains with: the real sets of `combo`, or their `control` twins
    for `seed` (named `name~kind`); None for a cell without content."""
    if not combo:
        return None
    if control == "none":
        return {n: real[n] for n in combo}
    return {f"{n}~{control}": make_control(real[n], control, seed=seed) for n in combo}


def job_features(job: CellJob, real: Mapping[str, FeatureSet]) -> dict[str, FeatureSet] | None:
    """The feature sets `job` trains with, made from the real sets as the runner made them."""
    return cell_features(job.features, job.control, job.seed, real)


def execute(
    job: CellJob,
    ds: Dataset,
    features: dict[str, FeatureSet] | None,
    ctx: CellContext,
    verify: bool = True,
) -> dict[str, Any]:
    """Train and evaluate one cell, write it through `CellArtifact`, return its record.

    `verify`: check that the dataset and feature sets are the ones the job's key was made from
    (a worker loaded them from the run folder; the local engine has the runner's own)."""
    if verify:
        check_inputs(job, ds, features, ctx)
    res = run_cell(
        ds,
        job.model,
        job.params,
        features,
        seed=job.seed,
        ks=ctx.ks,
        metrics=ctx.metrics,
        select_metric=ctx.select_metric,
        features_name=job.label,
        mask=ctx.mask,
        segments=ctx.segments,
    )
    extra: dict[str, Any] = {
        "model": job.display,
        "control": job.control,
        "params": json.dumps(job.params, sort_keys=True),
        "cell": job.key,
    }
    record = {
        **job.spec,
        "valid_score": res.valid_score,
        "valid_by_segment": res.valid_by_segment,
        "seconds": round(res.seconds, 3),
        "code_version": code_version(),
        "epochs_run": getattr(res.model, "epochs_run_", None),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    CellArtifact.write(
        ctx.run_dir,
        job.key,
        record,
        res.results.assign(**extra),
        res.per_user.assign(**extra, valid_score=res.valid_score),
        res.model,
    )
    return {**record, "key": job.key}


def check_inputs(job: CellJob, ds: Dataset, features: dict[str, FeatureSet] | None, ctx: CellContext) -> None:
    """Refuse a dataset or feature set that is not the one the job's key was made from."""
    if ds.fingerprint != job.spec["dataset"]:
        raise DataError(
            f"{ctx.dataset_dir}: the dataset changed under the run (fingerprint {ds.fingerprint}, "
            f"the run's {job.spec['dataset']}); run the config again"
        )
    if feature_hashes(features) != job.spec["features"]:
        raise DataError(
            f"{ctx.run_dir / 'features'}: the feature sets of {job.label!r} changed under the run; "
            "run the config again (the changed sets' cells are recomputed)"
        )


ENGINES = ("local", "ray")


def make_engine(name: str, address: str | None = None, max_retries: int = 3) -> CellEngine:
    """The engine `name` (`local` or `ray`); `address` and `max_retries` are the Ray engine's."""
    if name == "local":
        if address is not None:
            raise ConfigError("--address names a Ray cluster: use it with --engine ray")
        from vlmrec.experiments.engines.local import LocalEngine

        return LocalEngine()
    if name == "ray":
        from vlmrec.experiments.engines.ray import RayEngine

        return RayEngine(address=address, max_retries=max_retries)
    raise ConfigError(f"engine {name!r}: choose one of {', '.join(ENGINES)}")


__all__ = [
    "CELL_CODE",
    "ENGINES",
    "CellContext",
    "CellEngine",
    "CellJob",
    "CellOutcome",
    "cell_features",
    "check_inputs",
    "execute",
    "feature_hashes",
    "job_features",
    "make_engine",
]
