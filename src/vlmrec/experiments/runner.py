"""The comparison runner: dataset x feature sets x models x hyperparameters x seeds.

Every cell shares the dataset's split, the full-catalogue evaluator and the seeds. Hyperparameters
are chosen on validation (never on test), once per row (model x feature combination): every grid
point runs with every seed, and the point with the best validation metric averaged over seeds is
used for all seeds (and for the control twins). run.json records each row's grid and choice. Each finished cell is written under `cells/<key>/`
(key = hash of everything that determines it), so a killed run resumes by skipping them.
Content-using models get a twin per requested control (shuffled / random / zero features) with
the hyperparameters selected for the real features, so the only difference is the content.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vlmrec.data.dataset import Dataset
from vlmrec.data.prepare import input_signature, prepare_dataset
from vlmrec.errors import ConfigError, ModelError
from vlmrec.evaluation.segments import segment_info
from vlmrec.experiments.artifacts import CellArtifact, RunArtifact
from vlmrec.experiments.comparisons import ComparisonSpec, RunComparisons
from vlmrec.experiments.config import ExperimentConfig, FeatureConfig, ModelConfig
from vlmrec.experiments.engines import (
    CELL_CODE,
    CellContext,
    CellEngine,
    CellJob,
    CellOutcome,
    cell_features,
    feature_hashes,
    make_engine,
)
from vlmrec.experiments.verdict import Verdict, compute_verdicts, write_verdict
from vlmrec.features.combine.fusion import fuse
from vlmrec.features.featureset import FeatureSet
from vlmrec.models import MODELS
from vlmrec.provenance import code_hash, code_version, hash_arrays, hash_text, set_threads

log = logging.getLogger(__name__)


def _key(obj: Any) -> str:
    return hash_text(json.dumps(obj, sort_keys=True, default=str))


@dataclass
class RunOutput:
    out_dir: Path
    dataset: Dataset
    results: pd.DataFrame
    per_user: pd.DataFrame
    cells_run: int
    cells_skipped: int
    comparisons: RunComparisons
    verdicts: list[Verdict]
    #: cells that failed by their own error or after `max_retries` worker deaths (also in run.json)
    failures: list[dict] = field(default_factory=list)


@dataclass
class _Row:
    """One result row (a model with one feature combination): its grid (point x seed cells, each
    with the feature sets it trains with), then its selection and control twins."""

    model: ModelConfig
    combo: list[str]
    label: str
    uses: bool
    points: list[dict]
    grid: list[list[tuple[CellJob, dict[str, FeatureSet] | None]]]
    decided: bool = False
    selection: dict | None = None
    twins: list[CellJob] = field(default_factory=list)

    def grid_keys(self) -> list[str]:
        """The keys of every grid cell."""
        return [job.key for jobs in self.grid for job, _ in jobs]

    def n_twins(self, cfg: ExperimentConfig) -> int:
        """How many control twins the row will have once selected."""
        return len(cfg.seeds) * len(cfg.controls) if self.uses else 0


class _Queue:
    """The cells still to run (in order), and the records / failures of those that finished.
    A cell finished by an earlier run (its `cell.json` exists) is reused, never queued."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.ready: deque[tuple[CellJob, dict[str, FeatureSet] | None]] = deque()
        self.keys: set[str] = set()
        self.records: dict[str, dict] = {}
        self.failed: set[str] = set()
        self.skipped = 0

    def add(self, cells: list[tuple[CellJob, dict[str, FeatureSet] | None]], front: bool = False) -> None:
        """Queue the cells not seen before (at the front: they run next)."""
        new = []
        for job, features in cells:
            if job.key in self.keys:
                continue  # listed twice (a repeated grid value): one cell
            self.keys.add(job.key)
            done = CellArtifact.find(self.out, job.key)
            if done is not None:
                self.records[job.key] = done.record()
                self.skipped += 1
                continue
            new.append((job, features))
        if front:
            self.ready.extendleft(reversed(new))
        else:
            self.ready.extend(new)


class _Progress:
    """One bar over every cell of the run: done (reused included), running, failed. Shown on an
    interactive terminal only (a log file gets the per-cell lines, not bar refreshes)."""

    def __init__(self, total: int, reused: int) -> None:
        from tqdm.auto import tqdm

        self.failed = 0
        self.bar = tqdm(total=total, initial=reused, desc="cells", unit="cell", disable=None, mininterval=0.5)

    def show(self, running: int) -> None:
        """Refresh the running / failed counts."""
        self.bar.set_postfix(running=running, failed=self.failed, refresh=False)

    def done(self, failed: bool, running: int) -> None:
        """One cell more finished (or failed)."""
        self.failed += failed
        self.bar.update(1)
        self.show(running)

    def skip(self, n: int) -> None:
        """`n` cells reused from an earlier run."""
        if n:
            self.bar.update(n)

    def drop(self, n: int) -> None:
        """`n` cells that will not run (a row with no complete grid point has no twins)."""
        if n and self.bar.total is not None:
            self.bar.total -= n
            self.bar.refresh()

    def close(self) -> None:
        """Leave the bar."""
        self.bar.close()


class Runner:
    """Runs a config: dataset, features, then every cell through a `CellEngine` (local or Ray);
    selection, results, run.json and the verdict do not depend on the engine."""

    def __init__(
        self,
        config: ExperimentConfig,
        on_event: Callable[[str], None] | None = None,
        engine: CellEngine | None = None,
    ) -> None:
        self.cfg = config
        # parse_config fills output_dir (runs/<name>) when the config leaves it out
        self.out = Path(config.output_dir or Path("runs") / config.name)
        self.on_event: Callable[[str], None] = on_event or (lambda msg: log.info(msg))
        self.engine: CellEngine = engine or make_engine(config.engine)
        self.cells_run = 0
        self.cells_skipped = 0
        self.retries = 0
        self.failures: list[dict] = []
        self.left_out: list[dict] = []
        self._code = ""

    # ---- stages ------------------------------------------------------------------------
    def dataset(self) -> Dataset:
        """The run's Dataset: a prepared folder as is, or prepared into `<output_dir>/dataset`.

        The prepared copy is reused only while its key matches: the dataset spec, the content of
        the input files (`input_signature`: sha256 of files, name/size/mtime of folders) and the
        data code (`data_code_version`), and while every item image still has the size and
        mtime recorded at preparation. Otherwise it is prepared again (new fingerprint).
        """
        d = self.cfg.dataset
        if d.prepared is not None:
            return Dataset.load(d.prepared)
        target = self.out / "dataset"
        spec = d.cache_key_fields()
        inputs = input_signature(
            d.reader_format(), path=d.path, interactions=d.interactions, items=d.items, images=d.images
        )
        key = _key({"spec": spec, "inputs": inputs, "code": code_hash("data")})
        marker = target / "config_key.txt"
        if marker.exists() and marker.read_text() == key:
            ds = Dataset.load(target)
            if ds.info.get("inputs", {}).get("item_images") == ds.image_signature():
                return ds
            self.on_event("item images changed since the dataset was prepared")
        elif marker.exists():
            self.on_event("dataset inputs, settings or data code changed since the last run")
        self.on_event(f"preparing dataset ({d.format})")
        marker.unlink(missing_ok=True)  # a preparation killed half-way is never taken as fresh
        ds = prepare_dataset(d, target)
        marker.write_text(key)
        return ds

    def features(self, ds: Dataset) -> dict[str, FeatureSet]:
        """Every feature set of the config in `<output_dir>/features/<name>`, reused while its key
        matches; extracted on the Ray cluster with the Ray engine (extractors that allow it)."""
        from vlmrec.features.extraction import extract
        from vlmrec.features.registry import build_extractor, get_spec

        out: dict[str, FeatureSet] = {}
        for f in self.cfg.features:
            target = self.out / "features" / f.name
            key = _key(
                {
                    "cfg": f.model_dump(mode="json"),
                    "dataset": ds.fingerprint,
                    "inputs": [out[r].manifest.get("content_hash") for r in f.fuse or []],
                    "code": code_hash("features"),
                    # a `path` set is copied: a new copy when the source's vectors change
                    **({"source": hash_arrays(FeatureSet.load(f.path).vectors)} if f.path else {}),
                }
            )
            if (target / "manifest.json").exists():
                # made for another dataset version or code: recomputed (extraction resumes
                # only chunks made for this dataset), never refused
                fs = FeatureSet.load(target)
                if fs.manifest.get("config_key") == key:
                    fs.check_matches(ds, str(target))
                    out[f.name] = self._same_content(fs, target)
                    continue
            self.on_event(f"features: {f.name}")
            if f.path is not None:
                fs = FeatureSet.load(f.path, ds)
            elif f.fuse is not None:
                fs = fuse([out[r] for r in f.fuse], f.method, f.weights, ds)
            else:
                options = dict(f.options)
                if f.fields:
                    options["fields"] = f.fields
                if f.prompt:
                    options["prompt"] = f.prompt
                assert f.extractor is not None  # FeatureConfig: exactly one of extractor/fuse/path
                if self.engine.name == "ray" and get_spec(f.extractor).distributable:
                    # the grid's cluster extracts too: the Ray Data engine, same chunks and FeatureSet
                    from vlmrec.features.engines.ray import extract_ray

                    fs = extract_ray(
                        self._dataset_dir().resolve(),
                        f.extractor,
                        target,
                        f.model,
                        options,
                        missing=f.missing,
                    )
                else:
                    ex = build_extractor(f.extractor, target, model=f.model, items=ds.items, **options)
                    extracted = extract(ds, ex, target, missing=f.missing)
                    assert extracted is not None  # None only when stopped early (max_chunks)
                    fs = extracted
            fs.manifest.update(name=f.name, config_key=key, content_hash=hash_arrays(fs.vectors))
            fs.save(target)
            out[f.name] = fs
        return out

    def _same_content(self, fs: FeatureSet, target: Path) -> FeatureSet:
        """`fs` with the content hash of the vectors it holds now. Cells are keyed by that hash,
        and control twins are made from the vectors: a `vectors.npy` replaced after the set was
        made would otherwise reuse the real cell (keyed by the old hash) while its twins came
        from the new vectors (issue 23). A changed set is recorded, and its cells run again."""
        actual = hash_arrays(fs.vectors)
        if fs.manifest.get("content_hash") != actual:
            self.on_event(f"features: {fs.name}: vectors.npy changed since it was made; its cells run again")
            fs.manifest["content_hash"] = actual
            fs.save(target)
        return fs

    # ---- cells -------------------------------------------------------------------------
    def _job(
        self,
        ds: Dataset,
        model: ModelConfig,
        params: dict,
        combo: list[str],
        control: str,
        seed: int,
        fsets: dict[str, FeatureSet],
    ) -> tuple[CellJob, dict[str, FeatureSet] | None]:
        """One cell of `model` (its key: a hash of everything that determines it) and the feature
        sets it trains with (the real sets, or their `control` twins for `seed`)."""
        ev = self.cfg.evaluation
        features = cell_features(combo, control, seed, fsets)
        spec = {
            "dataset": ds.fingerprint,
            "model": model.name,
            "label": model.display,
            "params": params,
            "features": feature_hashes(features),
            "control": control,
            "seed": seed,
            "code": self._code,
            "ks": ev.ks,
            "metrics": ev.metrics,
            "select": ev.select,
            "mask": ev.mask,
            **({"segments": ev.segments} if ev.segments else {}),
        }
        res = model.resources
        job = CellJob(
            key=_key(spec),
            spec=spec,
            model=model.name,
            display=model.display,
            params=params,
            features=tuple(combo),
            control=control,
            seed=seed,
            label="+".join(features) if features else "none",
            num_cpus=float(res.num_cpus if res.num_cpus is not None else self.cfg.threads),
            num_gpus=float(res.num_gpus),
        )
        return job, features

    def _rows(self, ds: Dataset, fsets: dict[str, FeatureSet]) -> list[_Row]:
        """Every result row (model x feature combination) with its grid: point x seed cells."""
        rows = []
        for model in self.cfg.models:
            uses = MODELS[model.name].uses_features
            for combo in model.features if uses else [[]]:
                points = model.grid_points()
                grid = [
                    [self._job(ds, model, p, combo, "none", s, fsets) for s in self.cfg.seeds] for p in points
                ]
                rows.append(_Row(model, list(combo), "+".join(combo) or "none", uses, points, grid))
        return rows

    def _choose(self, row: _Row, records: dict[str, dict], failed: set[str]) -> dict | None:
        """Choose ONE grid point for the row: the best validation score averaged over seeds (ties:
        the earlier point). A point with a failed cell cannot be compared on every seed and is not
        chosen; None when no point finished on every seed."""
        means: list[float | None] = []
        for jobs in row.grid:
            ok = not any(job.key in failed for job, _ in jobs)
            means.append(_nanmean([records[job.key]["valid_score"] for job, _ in jobs]) if ok else None)
        eligible = [i for i, m in enumerate(means) if m is not None]
        if not eligible:
            return None

        def rank(i: int) -> tuple[float, int]:
            """Best mean first (NaN last), then the earlier point."""
            m = means[i]
            return (m if m is not None and m == m else -np.inf, -i)

        best = max(eligible, key=rank)
        return {
            "model": row.model.display,
            "name": row.model.name,
            "features": row.label,
            "grid_size": len(row.points),
            "grid": row.model.grid,
            "seeds": list(self.cfg.seeds),
            "select": self.cfg.evaluation.select,
            "params": row.points[best],
            "valid_mean": means[best],
            "points": [
                {
                    "params": p,
                    "valid_mean": m if m is not None else float("nan"),
                    "valid_by_seed": [records.get(job.key, {}).get("valid_score") for job, _ in jobs],
                    **({"failed": True} if m is None else {}),
                }
                for p, m, jobs in zip(row.points, means, row.grid)
            ],
            "_best": best,
        }

    def _twins(self, ds: Dataset, row: _Row, fsets: dict[str, FeatureSet]) -> list[tuple[CellJob, Any]]:
        """The control twins of a content row: the params chosen for the real features, every seed
        and control kind, so the only difference is the content."""
        assert row.selection is not None
        params = row.selection["params"]
        return [
            self._job(ds, row.model, params, row.combo, kind, seed, fsets)
            for seed in self.cfg.seeds
            for kind in self.cfg.controls
        ]

    def _execute(self, ds: Dataset, rows: list[_Row], fsets: dict[str, FeatureSet]) -> dict[str, dict]:
        """Run every row's grid, and each row's twins as soon as its grid is complete (they go to
        the front of the queue); returns the record of every finished cell by key."""
        grid = _Queue(self.out)
        for row in rows:
            grid.add([cell for jobs in row.grid for cell in jobs])
        self.cells_skipped += grid.skipped
        bar = _Progress(len(grid.keys) + sum(r.n_twins(self.cfg) for r in rows), grid.skipped)
        # every grid cell, finished or not: the engine checks their resources (twins share their row's)
        self.engine.start(self._context(), ds, [job for row in rows for jobs in row.grid for job, _ in jobs])
        try:
            self._advance(ds, rows, fsets, grid, bar)
            while grid.ready or self.engine.running():
                while grid.ready and self.engine.running() < self.engine.capacity():
                    job, features = grid.ready.popleft()
                    self.on_event(job.line)
                    self.engine.submit(job, features)
                    bar.show(self.engine.running())
                for outcome in self.engine.wait():
                    self._finish(outcome, grid, bar)
                self._advance(ds, rows, fsets, grid, bar)
        finally:
            bar.close()
        return grid.records

    def _advance(
        self, ds: Dataset, rows: list[_Row], fsets: dict[str, FeatureSet], grid: _Queue, bar: _Progress
    ) -> None:
        """Select the rows whose grid is complete and queue their twins first."""
        twins: list[tuple[CellJob, Any]] = []
        for row in rows:
            if row.decided or not all(k in grid.records or k in grid.failed for k in row.grid_keys()):
                continue
            row.decided = True
            row.selection = self._choose(row, grid.records, grid.failed)
            if row.selection is None:
                self.on_event(
                    f"{row.model.display} [{row.label}]: no grid point finished on every seed; row left out"
                )
                self.left_out.append({"model": row.model.display, "features": row.label})
                bar.drop(row.n_twins(self.cfg))
            elif row.uses:
                pairs = self._twins(ds, row, fsets)
                row.twins = [job for job, _ in pairs]
                twins += pairs
        before = grid.skipped
        grid.add(twins, front=True)
        self.cells_skipped += grid.skipped - before
        bar.skip(grid.skipped - before)

    def _finish(self, outcome: CellOutcome, grid: _Queue, bar: _Progress) -> None:
        """Record a finished cell, or its failure (listed in run.json; the grid goes on)."""
        self.retries += outcome.attempts - 1
        for note in outcome.notes:
            self.on_event(note)
        if outcome.record is not None:
            grid.records[outcome.job.key] = outcome.record
            self.cells_run += 1
            bar.done(failed=False, running=self.engine.running())
            return
        grid.failed.add(outcome.job.key)
        self.failures.append({**outcome.job.describe(), "error": outcome.error, "attempts": outcome.attempts})
        self.on_event(f"FAILED {outcome.job.line}: {outcome.error}")
        bar.done(failed=True, running=self.engine.running())

    def _context(self) -> CellContext:
        """What every cell of this run shares (absolute paths: Ray workers may run elsewhere)."""
        ev = self.cfg.evaluation
        return CellContext(
            run_dir=self.out.resolve(),
            dataset_dir=self._dataset_dir().resolve(),
            features_dirs={f.name: (self.out / "features" / f.name).resolve() for f in self.cfg.features},
            threads=self.cfg.threads,
            ks=tuple(ev.ks),
            metrics=tuple(ev.metrics),
            select_metric=ev.select_metric,
            mask=tuple(ev.mask),
            segments=tuple(ev.segments),
        )

    def _dataset_dir(self) -> Path:
        """The prepared dataset folder cells load: the config's `prepared`, else the run's own."""
        prepared = self.cfg.dataset.prepared
        return Path(prepared) if prepared is not None else self.out / "dataset"

    def run(self) -> RunOutput:
        """Dataset, features, every cell on the engine, then results, run.json and the verdict."""
        set_threads(self.cfg.threads)
        run_folder = RunArtifact(self.out)
        run_folder.write_config(self.cfg.model_dump_json(indent=1))
        self.engine.connect()
        try:
            ds = self.dataset()
            if max(self.cfg.evaluation.ks) > ds.n_items:
                raise ConfigError(
                    f"evaluation.ks {self.cfg.evaluation.ks}: cutoffs above the catalogue size ({ds.n_items} items)"
                )
            fsets = self.features(ds)
            self._code = code_hash(*CELL_CODE)
            rows = self._rows(ds, fsets)
            records = self._execute(ds, rows, fsets)
        finally:
            self.engine.close()
        selected: dict[str, int] = {}  # cell key -> grid size of its row
        selections: list[dict] = []
        for row in rows:
            if row.selection is None:
                continue
            selection = dict(row.selection)
            best = selection.pop("_best")
            selections.append(selection)
            chosen = [job.key for job, _ in row.grid[best]]
            chosen += [job.key for job in row.twins if job.key in records]
            selected.update((key, selection["grid_size"]) for key in chosen)
        if not selected:
            run_folder.write_summary(self._summary(ds, fsets, selections))
            first = self.failures[0]["error"] if self.failures else "no cell"
            raise ModelError(
                f"no cell of the run finished (first error: {first}); see {self.out / 'run.json'}"
            )
        results, per_user = self.collect(list(selected))
        self.prune_models(set(selected))
        results["grid_size"] = results["cell"].map(selected).astype("int64")
        run_folder.write_results(results, per_user)
        run_folder.write_summary(self._summary(ds, fsets, selections))
        comparisons, verdicts = compute_verdicts(results, per_user, self.comparison_spec())
        write_verdict(self.out, comparisons, verdicts)
        return RunOutput(
            self.out,
            ds,
            results,
            per_user,
            self.cells_run,
            self.cells_skipped,
            comparisons,
            verdicts,
            failures=list(self.failures),
        )

    def _summary(self, ds: Dataset, fsets: dict[str, FeatureSet], selections: list[dict]) -> dict:
        """run.json: what the run used, what it selected, and which cells failed."""
        return {
            "name": self.cfg.name,
            "description": self.cfg.description,
            "dataset": ds.name,
            "dataset_fingerprint": ds.fingerprint,
            "dataset_stats": ds.stats(),
            "dataset_info": ds.info,
            "code_version": code_version(),
            "seeds": self.cfg.seeds,
            # evaluation.segments: the requested groups with their rules, thresholds and sizes
            "evaluation": {
                **self.cfg.evaluation.model_dump(mode="json"),
                "segments": segment_info(ds.matrix("train"), self.cfg.evaluation.segments),
            },
            "engine": self.engine.name,
            "cells_run": self.cells_run,
            "cells_skipped": self.cells_skipped,
            "cells_retried": self.retries,
            "failures": self.failures,
            "rows_left_out": self.left_out,
            "selection": selections,
            "features": {
                k: {
                    kk: v.manifest.get(kk)
                    for kk in ("extractor", "model", "dim", "modality", "describer_source", "failed")
                }
                for k, v in fsets.items()
            },
        }

    def comparison_spec(self) -> ComparisonSpec:
        """The run's comparisons: its selection metric, alpha and bootstrap size."""
        metric, k = self.cfg.evaluation.select_metric
        ev = self.cfg.evaluation
        return ComparisonSpec(metric=metric, k=k, alpha=ev.alpha, n_boot=ev.n_boot)

    def collect(self, keys: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Results and per-user rows of the given cells, read through their artifacts."""
        cells = [RunArtifact(self.out).cell(k) for k in dict.fromkeys(keys)]
        res = pd.concat([c.results() for c in cells], ignore_index=True)
        per = pd.concat([c.per_user() for c in cells], ignore_index=True)
        return res, per

    def prune_models(self, keep: set[str]) -> None:
        """Drop the saved models of cells that model selection did not choose (their rows stay)."""
        for cell in CellArtifact.all(self.out):
            if cell.directory.name not in keep and cell.has_model:
                cell.drop_model()


def _nanmean(values: list[float]) -> float:
    """Mean of the non-NaN values (NaN when there are none: no validation users)."""
    finite = [v for v in values if v == v]
    return float(np.mean(finite)) if finite else float("nan")


def run_experiment(
    config: ExperimentConfig,
    on_event: Callable[[str], None] | None = None,
    *,
    address: str | None = None,
    max_retries: int = 3,
) -> RunOutput:
    """Run `config` on its `engine` (`address` and `max_retries`: the Ray engine's)."""
    engine = make_engine(config.engine, address=address, max_retries=max_retries)
    return Runner(config, on_event, engine).run()


__all__ = ["Runner", "run_experiment", "RunOutput", "FeatureConfig"]
