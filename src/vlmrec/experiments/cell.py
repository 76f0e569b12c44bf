"""One cell of a comparison: train a model on a dataset (with early stopping on validation),
evaluate it on test with the shared full-ranking evaluator, return tidy rows."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from vlmrec.data.dataset import Dataset
from vlmrec.evaluation.evaluator import Evaluator
from vlmrec.evaluation.metrics import METRICS
from vlmrec.features.featureset import FeatureSet
from vlmrec.models.base import Recommender, create_model

log = logging.getLogger(__name__)

RESULT_COLUMNS = ["dataset", "split", "mask", "features", "model", "seed", "metric", "k", "value", "segment"]
DEFAULT_MASK = ("train", "valid")


@dataclass
class CellResult:
    model: Recommender
    results: pd.DataFrame  # RESULT_COLUMNS (+ params, valid_score)
    per_user: pd.DataFrame  # user, metric, k, value (+ identifying columns)
    valid_score: float
    seconds: float
    #: the selection metric on validation per segment ("all" = valid_score)
    valid_by_segment: dict[str, float] = field(default_factory=dict)


def features_label(features: dict[str, FeatureSet] | None) -> str:
    return "+".join(sorted(features)) if features else "none"


def run_cell(
    dataset: Dataset,
    model_name: str,
    params: dict[str, Any] | None = None,
    features: dict[str, FeatureSet] | None = None,
    seed: int = 0,
    ks: Sequence[int] = (10, 20),
    metrics: Sequence[str] = METRICS,
    select_metric: tuple[str, int] = ("recall", 20),
    features_name: str | None = None,
    mask: Sequence[str] = DEFAULT_MASK,
    segments: Sequence[str] = (),
) -> CellResult:
    """Fit on train (early stopping on validation `select_metric`), evaluate on test.

    `mask`: the splits whose items are removed from the test ranking (validation always masks
    train only); recorded in the `mask` column of the results as e.g. "train+valid".
    `segments`: segment groups ("cold", "popularity") evaluated on test besides "all"; every
    result and per-user row has a `segment` column.
    """
    t0 = time.perf_counter()
    model = create_model(model_name, **(params or {}))
    valid_eval = Evaluator(dataset, "valid", ks=[select_metric[1]], metrics=[select_metric[0]])

    def validator(m: Recommender) -> float:
        return valid_eval.evaluate(m).mean(*select_metric)

    has_valid = len(valid_eval.users) > 0
    model.fit(
        dataset,
        features if model.uses_features else None,
        seed=seed,
        validator=validator if has_valid else None,
    )
    valid_by_segment = validation_by_segment(model, dataset, select_metric, segments) if has_valid else {}
    valid_score = valid_by_segment.get("all", float("nan"))
    test = Evaluator(dataset, "test", ks=ks, metrics=metrics, mask=tuple(mask), segments=segments).evaluate(
        model
    )
    label = features_name or (features_label(features) if model.uses_features else "none")
    summary = test.summary()
    results = summary.assign(
        dataset=dataset.name, split="test", mask="+".join(mask), features=label, model=model_name, seed=seed
    )
    results = results[RESULT_COLUMNS].assign(
        # each row carries the validation score of its own segment, so the best ID-only reference
        # can be chosen per segment on validation (NaN: no validation user in that segment)
        valid_score=results["segment"].map(valid_by_segment).astype(float),
        valid_segment=results["segment"],
    )
    per_user = test.per_user.assign(dataset=dataset.name, features=label, model=model_name, seed=seed)
    seconds = time.perf_counter() - t0
    log.info(
        "%s / %s / %s seed %d: valid %s@%d=%.4f (%.1fs)",
        dataset.name,
        label,
        model_name,
        seed,
        *select_metric,
        valid_score,
        seconds,
    )
    return CellResult(model, results, per_user, valid_score, seconds, valid_by_segment)


def validation_by_segment(
    model: Recommender, dataset: Dataset, select_metric: tuple[str, int], segments: Sequence[str]
) -> dict[str, float]:
    """The selection metric on validation, overall ("all") and per item segment."""
    metric, k = select_metric
    result = Evaluator(dataset, "valid", ks=[k], metrics=[metric], segments=segments).evaluate(model)
    summary = result.summary()
    sel = summary[(summary["metric"] == metric) & (summary["k"] == k)]
    return {str(seg): float(v) for seg, v in zip(sel["segment"], sel["value"])}
