"""Build a ServingState from a run folder (the best trained cell, or one chosen by model and
features) or from a dataset plus a FeatureSet (ProfileMatch)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from vlmrec.data.dataset import Dataset
from vlmrec.errors import DataError
from vlmrec.features.featureset import FeatureSet
from vlmrec.serving.state import ServingState


def text_encoder_for(fs: FeatureSet):
    """On-the-fly extraction for POST /items with text, when the set came from a text extractor."""
    if fs.manifest.get("extractor") not in ("text", "text-mpnet"):
        return None
    from vlmrec.features.text import SentenceEncoder

    cache: dict = {}

    def encode(text: str) -> np.ndarray:
        if "enc" not in cache:
            cache["enc"] = SentenceEncoder(fs.manifest.get("model", "minilm"), device="cpu")
        return cache["enc"].encode([text])[0]

    return encode


def from_dataset(
    dataset_dir: str | Path,
    features_dir: str | Path,
    state_dir: str | Path | None = None,
    index_kind: str = "auto",
) -> ServingState:
    ds = Dataset.load(dataset_dir)
    fs = FeatureSet.load(features_dir, ds)
    state = ServingState.from_features(
        ds, fs, state_dir or Path(features_dir) / "serving", index_kind=index_kind
    )
    state.encoder = text_encoder_for(fs)
    return state


def from_run(
    run_dir: str | Path,
    model: str | None = None,
    features: str | None = None,
    state_dir: str | Path | None = None,
    index_kind: str = "auto",
) -> ServingState:
    run = Path(run_dir)
    if not (run / "results.parquet").exists():
        raise DataError(f"{run}: no results.parquet; run `vlmrec run` first")
    res = pd.read_parquet(run / "results.parquet")
    rows = res[(res["control"] == "none")].drop_duplicates("cell")
    if model:
        rows = rows[rows["model"] == model]
    if features:
        rows = rows[rows["features"] == features]
    servable = [
        (run / "cells" / c / "factors.npz").exists()
        or (m == "profilematch" and (run / "features" / str(f) / "vectors.npy").exists())
        for c, m, f in zip(rows["cell"], rows["model"], rows["features"])
    ]
    rows = rows[servable]
    if rows.empty:
        raise DataError(
            f"{run}: no servable cell for model={model!r} features={features!r} "
            f"(available: {sorted(set(zip(res['model'], res['features'])))})"
        )
    best = rows.sort_values(["valid_score", "seed"], ascending=[False, True]).iloc[0]
    ds_dir = run / "dataset"
    if not ds_dir.exists():
        ds_dir = Path(json.loads((run / "config.json").read_text())["dataset"]["prepared"])
    ds = Dataset.load(ds_dir)
    state_dir = state_dir or run / "serving" / f"{best['model']}__{best['features']}"
    desc = {
        "model": best["model"],
        "features": best["features"],
        "seed": int(best["seed"]),
        "valid_score": float(best["valid_score"]),
        "cell": best["cell"],
    }
    feat_dir = run / "features" / str(best["features"])
    if best["model"] == "profilematch" and (feat_dir / "vectors.npy").exists():
        fs = FeatureSet.load(feat_dir, ds)
        state = ServingState.from_features(ds, fs, state_dir, index_kind=index_kind)
        state.description.update(desc)
        state.encoder = text_encoder_for(fs)
        return state
    with np.load(run / "cells" / best["cell"] / "factors.npz") as z:
        return ServingState.from_factors(
            ds, z["user_factors"], z["item_factors"], state_dir, index_kind=index_kind, description=desc
        )
