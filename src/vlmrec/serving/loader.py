"""What to serve, and where it comes from: a run folder (the best trained cell, or one chosen by
model and features) or a dataset plus a FeatureSet (ProfileMatch).

`load_servable` is the only function that reads model or feature artifacts; everything else
(`load_state`, the CLI, the multi-worker entry point) goes through it, so changing how a cell is
stored (e.g. a cell artifact with `Recommender.save/load`) means changing that one function.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vlmrec.data.dataset import Dataset
from vlmrec.errors import DataError
from vlmrec.features.featureset import FeatureSet
from vlmrec.serving.index import IndexChoice, IndexParams, resolve_kind
from vlmrec.serving.state import Encoder, Mode, ServingState

log = logging.getLogger(__name__)


class ServeSpec(BaseModel):
    """Everything that decides what a server serves (the CLI, the worker entry point and Python
    callers build the same object)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    run: Path | None = Field(None, description="a run folder: its best servable cell")
    model: str | None = Field(None, description="with run: only this model's cells")
    features: str | None = Field(
        None, description="with run: a features label; with dataset: a FeatureSet folder"
    )
    dataset: Path | None = Field(None, description="a prepared dataset (with features): ProfileMatch")
    state_dir: Path | None = Field(None, description="index + event/item logs (default: beside the input)")
    index: IndexChoice = "auto"
    index_params: IndexParams = Field(default_factory=IndexParams)


@dataclass
class Servable:
    """A model's serving inputs: item vectors (memory-mapped where they come from a file), user
    vectors (factor models), the dataset for ids and histories, and a description."""

    dataset: Dataset
    mode: Mode
    item_vectors: np.ndarray
    user_vectors: np.ndarray | None
    description: dict
    default_state_dir: Path
    features: FeatureSet | None = None
    extra: dict = field(default_factory=dict)


def text_encoder_for(fs: FeatureSet | None) -> Encoder | None:
    """On-the-fly extraction for POST /items with text, when the set came from a text extractor."""
    if fs is None or fs.manifest.get("extractor") not in ("text", "text-mpnet"):
        return None
    from vlmrec.features.encoders.text import SentenceEncoder

    cache: dict = {}

    def encode(text: str) -> np.ndarray:
        if "enc" not in cache:
            cache["enc"] = SentenceEncoder(fs.manifest.get("model", "minilm"), device="cpu")
        return cache["enc"].encode([text])[0]

    return encode


def load_servable(spec: ServeSpec) -> Servable:
    """Read the artifacts `spec` names (the one place that knows the on-disk layout of runs,
    cells and feature sets)."""
    if spec.run is not None:
        return _servable_from_run(spec.run, spec.model, spec.features)
    if spec.dataset is not None and spec.features:
        ds = Dataset.load(spec.dataset)
        fs = FeatureSet.load(spec.features, ds, mmap=True)
        return Servable(
            ds,
            "profile",
            fs.vectors,
            None,
            {"features": fs.name, "extractor": fs.manifest.get("extractor"), "model": "profilematch"},
            Path(spec.features) / "serving",
            features=fs,
        )
    raise DataError("give a run folder (--run), or a dataset and a FeatureSet (--dataset, --features)")


def load_state(spec: ServeSpec) -> ServingState:
    """The ServingState for `spec`: loads the persisted index when it matches, builds it if not."""
    s = load_servable(spec)
    state_dir = spec.state_dir or s.default_state_dir
    if s.mode == "profile":
        assert s.features is not None  # load_servable gives every profile Servable its FeatureSet
        state = ServingState.from_features(
            s.dataset,
            s.features,
            state_dir,
            index_kind=spec.index,
            index_params=spec.index_params,
        )
    else:
        state = ServingState.from_factors(
            s.dataset,
            s.user_vectors,
            s.item_vectors,
            state_dir,
            index_kind=spec.index,
            index_params=spec.index_params,
        )
    state.description.update(s.description)
    state.encoder = text_encoder_for(s.features)
    return state


def from_dataset(
    dataset_dir: str | Path,
    features_dir: str | Path,
    state_dir: str | Path | None = None,
    index_kind: str = "auto",
) -> ServingState:
    """ProfileMatch serving from a prepared dataset and a FeatureSet folder."""
    resolve_kind(index_kind, 0)  # an unknown kind is a ConfigError listing the choices
    return load_state(
        ServeSpec(dataset=dataset_dir, features=str(features_dir), state_dir=state_dir, index=index_kind)
    )


def from_run(
    run_dir: str | Path,
    model: str | None = None,
    features: str | None = None,
    state_dir: str | Path | None = None,
    index_kind: str = "auto",
) -> ServingState:
    """Serving the best servable cell of a run (optionally of one model / features label)."""
    resolve_kind(index_kind, 0)  # an unknown kind is a ConfigError listing the choices
    return load_state(
        ServeSpec(run=run_dir, model=model, features=features, state_dir=state_dir, index=index_kind)
    )


def _servable_from_run(run: Path, model: str | None, features: str | None) -> Servable:
    # imported here: models bring torch (~200 MB resident), which serving from a dataset and a
    # FeatureSet, or from an already built state, does not need
    from vlmrec.experiments.artifacts import CellArtifact, RunArtifact
    from vlmrec.models.base import FactorModel, get_model_class

    folder = RunArtifact(run)
    res = folder.results()
    rows = res[(res["control"] == "none")].drop_duplicates("cell")
    if model:
        rows = rows[rows["model"] == model]
    if features:
        rows = rows[rows["features"] == features]

    def servable(c, m, f) -> bool:
        cell = CellArtifact.find(run, c)
        if cell is None or not cell.has_model:
            return False
        return issubclass(get_model_class(cell.record()["model"]), FactorModel)

    ok = [servable(c, m, f) for c, m, f in zip(rows["cell"], rows["model"], rows["features"])]
    ranked = rows.sort_values(["valid_score", "seed"], ascending=[False, True])
    best_any = ranked.iloc[0] if len(ranked) else None
    rows = rows[ok]
    if rows.empty:
        raise DataError(
            f"{run}: no servable cell for model={model!r} features={features!r} "
            f"(available: {sorted(set(zip(res['model'], res['features'])))}; servable cells are "
            "the chosen cells of factor models, profilematch included, which keep their fitted model)"
        )
    best = rows.sort_values(["valid_score", "seed"], ascending=[False, True]).iloc[0]
    desc = {
        "model": best["model"],
        "features": best["features"],
        "seed": int(best["seed"]),
        "valid_score": float(best["valid_score"]),
        "cell": best["cell"],
    }
    if best_any is not None and best_any["cell"] != best["cell"]:
        desc["not_served"] = (
            f"the best cell by validation is {best_any['model']}/{best_any['features']} "
            f"({float(best_any['valid_score']):.4f}), which is not servable (not a factor model, or its cell kept no model)"
        )
        log.warning("%s: %s; serving %s/%s", run, desc["not_served"], best["model"], best["features"])
    ds = Dataset.load(folder.dataset_dir())
    state_dir = run / "serving" / f"{best['model']}__{best['features']}"
    fitted = folder.cell(best["cell"]).load_model()
    assert isinstance(fitted, FactorModel)
    feat_dir = folder.features_dir(str(best["features"]))
    params = fitted.get_params()
    if (
        fitted.name == "profilematch"
        and params.get("aggregation") == "mean"
        and (feat_dir / "vectors.npy").exists()
    ):
        # mean profiles update online from new events with the same rule the model used
        fs = FeatureSet.load(feat_dir, ds, mmap=True)
        return Servable(ds, "profile", fs.vectors, None, desc, state_dir, features=fs)
    if fitted.name == "profilematch":
        desc["note"] = (
            f"profiles served as fitted (aggregation {params.get('aggregation')!r}); new events do not "
            "update them (only mean profiles update online)"
        )
    users, items = fitted.user_factors_, fitted.item_factors_
    return Servable(ds, "factors", items, users, desc, state_dir)
