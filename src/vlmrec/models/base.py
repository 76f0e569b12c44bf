"""The Recommender contract: an abstract base class every model derives from.

A recommender is a small class: hyperparameters only in `__init__` (typed, with their ranges and
meanings in the annotations, each kept under its own name: see `models/params.py`), `fit` learns
from a Dataset (and optionally FeatureSets handed over by the caller), `score` returns users x
items scores, higher is better. Masking of seen items and top-K belong to the evaluator. Fitted
state lives in attributes whose names end in "_", which is what `save`/`load` keep.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from vlmrec.data.dataset import Dataset
from vlmrec.errors import ModelError
from vlmrec.features.featureset import FeatureSet
from vlmrec.models import params
from vlmrec.models.registry import (  # noqa: F401  (create_model, validate_params: older import path)
    create_model,
    get_model_class,
    validate_params,
)
from vlmrec.provenance import code_version

log = logging.getLogger(__name__)

Validator = Callable[["Recommender"], float]
"""Returns a validation score for the current state (higher is better); used for early stopping."""


class Recommender(ABC):
    """The contract of every model: `fit`, `score`, hyperparameters from `__init__`, save/load.

    A subclass's `__init__` is wrapped so that every construction checks its arguments against
    the signature (types, ranges); register the class with `@register("name")`."""

    name: ClassVar[str] = "base"
    uses_features: ClassVar[bool] = False
    """True when the model reads item content (so content controls apply to it)."""
    cold_items_: np.ndarray = np.empty(0, dtype=np.int64)
    """Items with no training interaction, set by `fit` in models that apply a cold-item rule."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            setattr(cls, "__init__", params.checked_init(cls, cls.__dict__["__init__"]))  # noqa: B010

    @abstractmethod
    def fit(
        self,
        dataset: Dataset,
        features: dict[str, FeatureSet] | None = None,
        *,
        seed: int = 0,
        validator: Validator | None = None,
    ) -> Recommender:
        """Train on the dataset's train split.

        Args:
            dataset: the prepared interactions (ids, splits, item table).
            features: FeatureSets by label, aligned with `dataset.item_ids`; required by models
                with `uses_features`, ignored by ID-only ones.
            seed: seeds every random step of training (same seed, same scores).
            validator: called with the model after evaluation rounds; returns a score (higher is
                better) for early stopping and best-state restore. None trains all epochs.

        Returns:
            self, fitted: `score` can be called.
        """

    @abstractmethod
    def score(self, user_ids: np.ndarray) -> np.ndarray:
        """Raw relevance scores.

        Args:
            user_ids: internal user indices (0..n_users-1).

        Returns:
            float32 array (len(user_ids), n_items); higher ranks first. Seen items are not
            masked here: the evaluator and the service mask them.
        """

    # ---- parameters (scikit-learn style, flat: a group's fields stand beside the others) --
    @classmethod
    def param_names(cls) -> list[str]:
        """The hyperparameter names (flat), in signature order."""
        return params.param_names(cls)

    @classmethod
    def from_params(cls, values: Mapping[str, Any]) -> Self:
        """A model built from flat hyperparameters, checked (ModelError names each bad one)."""
        return cls(**params.nest_params(cls, params.check_params(cls, values)))

    def get_params(self) -> dict[str, Any]:
        """The hyperparameters (flat), as `from_params` takes them."""
        return params.flat_params(self)

    def clone(self, **changes: Any) -> Self:
        """An unfitted copy with the same hyperparameters, `changes` applied."""
        return type(self).from_params({**self.get_params(), **changes})

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ---- persistence ---------------------------------------------------------------------
    # A fitted model is its hyperparameters plus its public fitted state: the attributes whose
    # names end in "_" holding numpy arrays, scipy sparse matrices or JSON values. That is what
    # `score` reads, so a loaded model scores exactly as the saved one (training internals such
    # as torch modules and graphs are not kept: a loaded model scores, it does not resume).
    MODEL_FORMAT: ClassVar[int] = 1

    def save(self, directory: str | Path) -> Path:
        """Write `model.json` (name, params, JSON state), `arrays.npz` and one `<attr>.npz` per
        sparse matrix into `directory`; returns the folder."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        sparse: list[str] = []
        values: dict[str, Any] = {}
        for key, value in vars(self).items():
            if not key.endswith("_") or key.startswith("_"):
                continue
            if isinstance(value, np.ndarray):
                arrays[key] = value
            elif sp.issparse(value):
                sp.save_npz(d / f"{key}.npz", sp.csr_matrix(value))
                sparse.append(key)
            elif _is_json_value(value):
                values[key] = value
        # numpy's stub lets **kwds collide with `allow_pickle: bool`; the keys here all end in "_"
        np.savez(d / "arrays.npz", **arrays)  # type: ignore[arg-type]
        record = {
            "format": self.MODEL_FORMAT,
            "model": self.name,
            "params": self.get_params(),
            "arrays": sorted(arrays),
            "sparse": sorted(sparse),
            "values": values,
            "code_version": code_version(),
        }
        (d / "model.json").write_text(json.dumps(record, indent=1, default=str))
        return d

    @staticmethod
    def load(directory: str | Path) -> Recommender:
        """A fitted model written by `save` (of any registered class)."""
        d = Path(directory)
        try:
            record = json.loads((d / "model.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ModelError(f"{d}: not a saved model ({e})") from None
        if record.get("format") != Recommender.MODEL_FORMAT:
            raise ModelError(
                f"{d}: saved model format {record.get('format')!r}, this vlmrec reads {Recommender.MODEL_FORMAT}"
            )
        model = get_model_class(record["model"]).from_params(record["params"])
        with np.load(d / "arrays.npz") as arrays:
            for key in record["arrays"]:
                setattr(model, key, arrays[key])
        for key in record["sparse"]:
            setattr(model, key, sp.load_npz(d / f"{key}.npz").tocsr())
        for key, value in record["values"].items():
            setattr(model, key, value)
        return model

    # ---- helpers -------------------------------------------------------------------------
    def _require_features(self, features: dict[str, FeatureSet] | None, dataset: Dataset) -> list[FeatureSet]:
        if not features:
            raise ModelError(
                f"model {self.name!r} needs item features; pass --features (e.g. a FeatureSet from `vlmrec extract`)"
            )
        for key, fs in features.items():
            fs.check_matches(dataset, f"feature set {key!r}")
        return list(features.values())


def _is_json_value(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_json_value(v) for v in value)
    return False


class FactorModel(Recommender, ABC):
    """A model whose scores are dot products of user and item factor matrices, exposed as
    `user_factors_` and `item_factors_` (so serving and evaluation share one scoring rule)."""

    user_factors_: np.ndarray
    item_factors_: np.ndarray

    def score(self, user_ids: np.ndarray) -> np.ndarray:
        """<p_u, q_i> for the given users and every item (users x items)."""
        return self.user_factors_[np.asarray(user_ids)] @ self.item_factors_.T
