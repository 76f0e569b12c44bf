"""Models: one Recommender contract, a registry, ID-only and content/multimodal models.

Every module of this package is imported here, so a model registers itself by being a file in
it: a new model is one new file with a class decorated by `@register("name")`.
"""

import importlib
import pkgutil

from vlmrec.models.base import FactorModel, Recommender, Validator
from vlmrec.models.params import param_spec
from vlmrec.models.registry import (
    MODELS,
    create_model,
    get_model_class,
    model_names,
    register,
    validate_params,
)
from vlmrec.models.torch_base import TorchRecommender, TrainingParams

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "MODELS",
    "FactorModel",
    "Recommender",
    "TorchRecommender",
    "TrainingParams",
    "Validator",
    "create_model",
    "get_model_class",
    "model_names",
    "param_spec",
    "register",
    "validate_params",
]
