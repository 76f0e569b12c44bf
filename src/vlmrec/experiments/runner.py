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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vlmrec.data.dataset import Dataset
from vlmrec.data.prepare import input_signature
from vlmrec.errors import ConfigError
from vlmrec.evaluation.segments import segment_info
from vlmrec.experiments.artifacts import CellArtifact, RunArtifact
from vlmrec.experiments.cell import run_cell
from vlmrec.experiments.comparisons import ComparisonSpec, RunComparisons
from vlmrec.experiments.config import ExperimentConfig, FeatureConfig, ModelConfig
from vlmrec.experiments.verdict import Verdict, compute_verdicts, write_verdict
from vlmrec.features.combine.controls import make_control
from vlmrec.features.combine.fusion import fuse
from vlmrec.features.featureset import FeatureSet
from vlmrec.models import MODELS
from vlmrec.provenance import code_hash, code_version, hash_arrays, hash_text, set_threads

log = logging.getLogger(__name__)


# the code a cell's numbers depend on: a change to it re-runs the cell instead of reusing it
CELL_CODE = ("models", "evaluation", "features/combine/controls.py", "experiments/cell.py", "data/dataset.py")


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


class Runner:
    def __init__(self, config: ExperimentConfig, on_event=None):
        self.cfg = config
        # parse_config fills output_dir (runs/<name>) when the config leaves it out
        self.out = Path(config.output_dir or Path("runs") / config.name)
        self.on_event = on_event or (lambda msg: log.info(msg))
        self.cells_run = 0
        self.cells_skipped = 0

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
        ds = d.prepare(target)
        marker.write_text(key)
        return ds

    def features(self, ds: Dataset) -> dict[str, FeatureSet]:
        from vlmrec.features.extraction import extract
        from vlmrec.features.registry import build_extractor

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
    def _cell(
        self,
        ds: Dataset,
        model: ModelConfig,
        params: dict,
        fsets: dict[str, FeatureSet] | None,
        features_label: str,
        control: str,
        seed: int,
    ) -> dict:
        ev = self.cfg.evaluation
        spec = {
            "dataset": ds.fingerprint,
            "model": model.name,
            "label": model.display,
            "params": params,
            "features": {
                k: v.manifest.get("content_hash") or hash_arrays(v.vectors) for k, v in (fsets or {}).items()
            },
            "control": control,
            "seed": seed,
            "code": code_hash(*CELL_CODE),
            "ks": ev.ks,
            "metrics": ev.metrics,
            "select": ev.select,
            "mask": ev.mask,
            **({"segments": ev.segments} if ev.segments else {}),
        }
        key = _key(spec)
        done = CellArtifact.find(self.out, key)
        if done is not None:
            self.cells_skipped += 1
            return done.record()
        self.on_event(f"{model.display} [{features_label}] {params or ''} seed {seed}")
        res = run_cell(
            ds,
            model.name,
            params,
            fsets,
            seed=seed,
            ks=ev.ks,
            metrics=ev.metrics,
            select_metric=ev.select_metric,
            features_name=features_label,
            mask=ev.mask,
            segments=ev.segments,
        )
        extra: dict[str, Any] = {
            "model": model.display,
            "control": control,
            "params": json.dumps(params, sort_keys=True),
            "cell": key,
        }
        record = {
            **spec,
            "valid_score": res.valid_score,
            "valid_by_segment": res.valid_by_segment,
            "seconds": round(res.seconds, 3),
            "code_version": code_version(),
            "epochs_run": getattr(res.model, "epochs_run_", None),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        CellArtifact.write(
            self.out,
            key,
            record,
            res.results.assign(**extra),
            res.per_user.assign(**extra, valid_score=res.valid_score),
            res.model,
        )
        record = {**record, "key": key}
        self.cells_run += 1
        return record

    def _select(
        self, ds: Dataset, model: ModelConfig, combo_sets: dict[str, FeatureSet] | None, label: str
    ) -> tuple[list[dict], dict]:
        """Run every grid point with every seed and choose ONE point for the row: the best
        validation score averaged over seeds (ties: the earlier grid point). Returns the chosen
        point's cells (one per seed) and a record of the selection."""
        points = model.grid_points()
        by_point = [
            [self._cell(ds, model, p, combo_sets, label, "none", seed) for seed in self.cfg.seeds]
            for p in points
        ]
        means = [_nanmean([r["valid_score"] for r in recs]) for recs in by_point]
        best = max(range(len(points)), key=lambda i: (means[i] if means[i] == means[i] else -np.inf, -i))
        selection = {
            "model": model.display,
            "name": model.name,
            "features": label,
            "grid_size": len(points),
            "grid": model.grid,
            "seeds": list(self.cfg.seeds),
            "select": self.cfg.evaluation.select,
            "params": points[best],
            "valid_mean": means[best],
            "points": [
                {"params": p, "valid_mean": m, "valid_by_seed": [r["valid_score"] for r in recs]}
                for p, m, recs in zip(points, means, by_point)
            ],
        }
        return by_point[best], selection

    def run(self) -> RunOutput:
        set_threads(self.cfg.threads)
        run_folder = RunArtifact(self.out)
        run_folder.write_config(self.cfg.model_dump_json(indent=1))
        ds = self.dataset()
        if max(self.cfg.evaluation.ks) > ds.n_items:
            raise ConfigError(
                f"evaluation.ks {self.cfg.evaluation.ks}: cutoffs above the catalogue size ({ds.n_items} items)"
            )
        fsets = self.features(ds)
        selected: dict[str, int] = {}  # cell key -> grid size of its row
        selections: list[dict] = []
        for model in self.cfg.models:
            uses = MODELS[model.name].uses_features
            combos = model.features if uses else [[]]
            for combo in combos:
                label = "+".join(combo) if combo else "none"
                real = {n: fsets[n] for n in combo} if combo else None
                chosen, selection = self._select(ds, model, real, label)
                selections.append(selection)
                grid_size = selection["grid_size"]
                selected.update((rec["key"], grid_size) for rec in chosen)
                if not uses:
                    continue
                # the control twins reuse the params chosen for the real features, every seed
                for seed in self.cfg.seeds:
                    for kind in self.cfg.controls:
                        ctrl = {f"{n}~{kind}": make_control(fsets[n], kind, seed=seed) for n in combo}
                        ctrl_label = "+".join(ctrl)
                        rec = self._cell(ds, model, selection["params"], ctrl, ctrl_label, kind, seed)
                        selected[rec["key"]] = grid_size
        results, per_user = self.collect(list(selected))
        self.prune_models(set(selected))
        results["grid_size"] = results["cell"].map(selected).astype("int64")
        run_folder.write_results(results, per_user)
        run_info = {
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
            "cells_run": self.cells_run,
            "cells_skipped": self.cells_skipped,
            "selection": selections,
            "features": {
                k: {
                    kk: v.manifest.get(kk)
                    for kk in ("extractor", "model", "dim", "modality", "describer_source", "failed")
                }
                for k, v in fsets.items()
            },
        }
        run_folder.write_summary(run_info)
        comparisons, verdicts = compute_verdicts(results, per_user, self.comparison_spec())
        write_verdict(self.out, comparisons, verdicts)
        return RunOutput(
            self.out, ds, results, per_user, self.cells_run, self.cells_skipped, comparisons, verdicts
        )

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


def run_experiment(config: ExperimentConfig, on_event=None) -> RunOutput:
    return Runner(config, on_event).run()


__all__ = ["Runner", "run_experiment", "RunOutput", "FeatureConfig"]
