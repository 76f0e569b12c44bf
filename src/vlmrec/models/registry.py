"""The model registry: a model is registered by a decorator on its class, found by name.

    @register("ease")
    class EASE(Recommender): ...

Every module of `vlmrec.models` is imported by the package (so a new model is one new file);
`create_model("ease", reg=200)` builds one with checked hyperparameters (`models/params.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from vlmrec.errors import ConfigError, ModelError
from vlmrec.models.params import check_params, param_spec

if TYPE_CHECKING:  # the base class imports this module (Recommender.load finds classes here)
    from vlmrec.models.base import Recommender

ModelClass = TypeVar("ModelClass", bound="type[Recommender]")

MODELS: dict[str, type[Recommender]] = {}
"""Registered model classes by name."""


def register(name: str) -> Callable[[ModelClass], ModelClass]:
    """Class decorator: registers the model under `name` (lower case), sets its `name`, and
    builds its hyperparameter spec at once (a spec that cannot be built fails at import)."""
    if not name or name != name.lower() or not name.replace("_", "").replace("-", "").isalnum():
        raise ModelError(f"model name {name!r}: use lower-case letters, digits, '-' or '_'")

    def deco(cls: ModelClass) -> ModelClass:
        known = MODELS.get(name)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise ModelError(f"model name {name!r} is taken by {known.__module__}.{known.__qualname__}")
        cls.name = name
        param_spec(cls)
        MODELS[name] = cls
        return cls

    return deco


def model_names() -> list[str]:
    """The registered model names, sorted."""
    return sorted(MODELS)


def get_model_class(name: str) -> type[Recommender]:
    """The class registered as `name` (case-insensitive); ConfigError listing the valid names."""
    key = name.lower()
    if key not in MODELS:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(model_names())}")
    return MODELS[key]


def validate_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The given (flat) hyperparameters of model `name`, checked (types, ranges, names) and
    coerced; raises ModelError naming each bad parameter, what it got and what it expects."""
    return check_params(get_model_class(name), params)


def create_model(name: str, **params: Any) -> Recommender:
    """A model from the registry with checked hyperparameters (flat names, as in a config)."""
    return get_model_class(name).from_params(params)
