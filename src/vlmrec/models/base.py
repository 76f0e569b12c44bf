"""The Recommender contract and the model registry.

A recommender is a small class: hyperparameters only in `__init__`, `fit` learns from a Dataset
(and optionally FeatureSets handed over by the caller), `score` returns users x items scores,
higher is better. Masking of seen items and top-K belong to the evaluator.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from vlmrec.data.dataset import Dataset
from vlmrec.errors import ModelError
from vlmrec.features.featureset import FeatureSet

log = logging.getLogger(__name__)

Validator = Callable[["Recommender"], float]
"""Returns a validation score for the current state (higher is better); used for early stopping."""

MODELS: dict[str, type[Recommender]] = {}


def register(name: str):
    def deco(cls: type[Recommender]) -> type[Recommender]:
        cls.name = name
        MODELS[name] = cls
        return cls

    return deco


def get_model_class(name: str) -> type[Recommender]:
    key = name.lower()
    if key not in MODELS:
        raise ModelError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    return MODELS[key]


def create_model(name: str, **params: Any) -> Recommender:
    cls = get_model_class(name)
    valid = cls.param_names()
    bad = [p for p in params if p not in valid]
    if bad:
        raise ModelError(f"model {name!r} has no parameter(s) {bad}; its parameters are {valid}")
    return cls(**params)


class Recommender:
    name: ClassVar[str] = "base"
    uses_features: ClassVar[bool] = False
    """True when the model reads item content (so content controls apply to it)."""

    def fit(
        self,
        dataset: Dataset,
        features: dict[str, FeatureSet] | None = None,
        *,
        seed: int = 0,
        validator: Validator | None = None,
    ) -> Recommender:
        raise NotImplementedError

    def score(self, user_ids: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # ---- parameters (scikit-learn style) --------------------------------------------------
    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        return {p: getattr(self, p) for p in self.param_names()}

    def clone(self, **changes: Any) -> Recommender:
        params = self.get_params()
        params.update(changes)
        return type(self)(**params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ---- helpers -------------------------------------------------------------------------
    def _require_features(self, features: dict[str, FeatureSet] | None, dataset: Dataset) -> list[FeatureSet]:
        if not features:
            raise ModelError(
                f"model {self.name!r} needs item features; pass --features (e.g. a FeatureSet from `vlmrec extract`)"
            )
        for key, fs in features.items():
            fs.check_matches(dataset, f"feature set {key!r}")
        return list(features.values())


class FactorModel(Recommender):
    """A model whose scores are dot products of user and item factor matrices, exposed as
    `user_factors_` and `item_factors_` (so serving and evaluation share one scoring rule)."""

    user_factors_: np.ndarray
    item_factors_: np.ndarray

    def score(self, user_ids: np.ndarray) -> np.ndarray:
        return self.user_factors_[np.asarray(user_ids)] @ self.item_factors_.T
