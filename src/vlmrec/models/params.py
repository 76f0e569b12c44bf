"""A model's hyperparameters, read from its `__init__` signature: the one place they are declared.

Each parameter has its type, its default, and its range and meaning beside it:

    reg: Annotated[float, Field(gt=0, description="lambda, the L2 weight on B")] = 500.0

From the signature this module builds the typed spec (a pydantic model) that the config's
`params`/`grid`, the CLI's `--param`, the Python API (`create_model`) and docs/config.md all use,
and the check every construction of a model goes through (`Recommender.__init_subclass__` wraps
each model's `__init__` with `checked_init`).

A parameter typed as a pydantic model is a *group* (the torch models' `TrainingParams`): the
constructor takes the group, but the spec users see is *flat*, the group's fields spread out
beside the model's own, so a config says `lr: 0.01`, not `training: {lr: 0.01}`. The group's
default (an instance in the signature) gives the model's defaults for its fields.
`nest_params` turns flat values into constructor arguments, `flat_params` a model back into flat
values. Shared hyperparameter types (the same name, range and meaning in several models) are at
the end of this module.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, Field
from pydantic.fields import FieldInfo

from vlmrec.errors import ModelError


@dataclass(frozen=True)
class Hyperparameter:
    """One parameter of a model's `__init__`: its name, type (with its Annotated range and
    meaning), default (`...` when required) and, for a group, the group's model class."""

    name: str
    annotation: Any
    default: Any
    group: type[BaseModel] | None


def _label(cls: type) -> str:
    """The model's registered name (its class name before registration)."""
    return str(vars(cls).get("name") or cls.__name__)


@functools.cache
def hyperparameters(cls: type) -> tuple[Hyperparameter, ...]:
    """The parameters of `cls.__init__` after `self`, in signature order."""
    init = inspect.unwrap(cls.__init__)  # type: ignore[misc]  # the model's own, not checked_init
    if init is object.__init__:
        return ()
    hints = typing.get_type_hints(init, include_extras=True)
    out = []
    for p in list(inspect.signature(init).parameters.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ModelError(f"model {_label(cls)!r}: hyperparameters are named parameters, not *{p.name}")
        kind = hints.get(p.name, Any)
        default = p.default if p.default is not p.empty else ...
        group = kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None
        if group is not None and default is ...:
            default = group()
        out.append(Hyperparameter(p.name, kind, default, group))
    return tuple(out)


def _spec(cls: type, fields: dict[str, Any], suffix: str) -> type[BaseModel]:
    return pydantic.create_model(
        f"{cls.__name__}{suffix}", __config__=pydantic.ConfigDict(extra="forbid"), **fields
    )


@functools.cache
def param_spec(cls: type) -> type[BaseModel]:
    """The flat hyperparameter spec of a model (a pydantic model, unknown names refused): each
    `__init__` parameter with its type, default, range and meaning, a group's fields spread out
    with the model's defaults for them. What configs, the CLI and docs/config.md show."""
    fields: dict[str, Any] = {}
    for hp in hyperparameters(cls):
        if hp.group is None:
            members = {hp.name: (hp.annotation, hp.default)}
        else:
            members = {
                name: (info.annotation, FieldInfo.merge_field_infos(info, default=getattr(hp.default, name)))
                for name, info in hp.group.model_fields.items()
            }
        clash = sorted(set(members) & set(fields))
        if clash:
            raise ModelError(f"model {_label(cls)!r}: parameter(s) {clash} declared twice")
        fields.update(members)
    return _spec(cls, fields, "Params")


@functools.cache
def constructor_spec(cls: type) -> type[BaseModel]:
    """The spec of the constructor's own arguments (a group is one argument of its model type)."""
    return _spec(cls, {hp.name: (hp.annotation, hp.default) for hp in hyperparameters(cls)}, "Arguments")


def param_names(cls: type) -> list[str]:
    """The flat hyperparameter names of a model, in signature order."""
    return list(param_spec(cls).model_fields)


def _validated(
    cls: type, spec: type[BaseModel], values: Mapping[str, Any], names: list[str]
) -> dict[str, Any]:
    """`values` checked against `spec` and coerced; a ModelError names each bad one."""
    try:
        checked = spec.model_validate(dict(values))
    except pydantic.ValidationError as e:
        problems = []
        for err in e.errors():
            key = ".".join(str(x) for x in err["loc"]) or "?"
            if err["type"] == "extra_forbidden":
                problems.append(f"no parameter {key!r} (its parameters are {names})")
            else:
                problems.append(f"{key}={err.get('input')!r}: {err['msg']}")
        raise ModelError(f"model {_label(cls)!r}: " + "; ".join(problems)) from None
    return {k: getattr(checked, k) for k in values}


def check_params(cls: type, params: Mapping[str, Any]) -> dict[str, Any]:
    """The given flat hyperparameters of model class `cls`, checked (names, types, ranges) and
    coerced (a command line's "7" becomes 7); raises ModelError naming each bad parameter, what
    it got and what it expects."""
    return _validated(cls, param_spec(cls), params, param_names(cls))


def nest_params(cls: type, params: Mapping[str, Any]) -> dict[str, Any]:
    """Flat hyperparameters as `cls.__init__` arguments: a group's fields become one group
    instance (the signature's default with the given fields changed). Names that are neither a
    parameter nor a group field raise ModelError."""
    kwargs: dict[str, Any] = {}
    left = dict(params)
    for hp in hyperparameters(cls):
        if hp.group is None:
            if hp.name in left:
                kwargs[hp.name] = left.pop(hp.name)
            continue
        given = {name: left.pop(name) for name in hp.group.model_fields if name in left}
        if given:
            kwargs[hp.name] = hp.group.model_validate({**hp.default.model_dump(), **given})
    if left:
        raise ModelError(
            f"model {_label(cls)!r}: no parameter(s) {sorted(left)} (its parameters are {param_names(cls)})"
        )
    return kwargs


def flat_params(model: object) -> dict[str, Any]:
    """A model's hyperparameters as flat values (each parameter is kept under its own name,
    scikit-learn style; a group contributes its fields)."""
    out: dict[str, Any] = {}
    cls: type = type(model)
    for hp in hyperparameters(cls):
        value = getattr(model, hp.name)
        if hp.group is None:
            out[hp.name] = value
        else:
            out.update(value.model_dump())
    return out


def checked_init(cls: type, init: Callable[..., None]) -> Callable[..., None]:
    """`init` (the `__init__` of `cls`) preceded by the check of its arguments against the
    signature's types and ranges, so a model built directly is checked like one built by
    `create_model`; raises ModelError."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self: object, *args: Any, **kwargs: Any) -> None:
        names = [hp.name for hp in hyperparameters(cls)]
        try:
            given = dict(list(signature.bind(self, *args, **kwargs).arguments.items())[1:])
        except TypeError as e:
            raise ModelError(f"model {_label(cls)!r}: {e} (its parameters are {names})") from None
        init(self, **_validated(cls, constructor_spec(cls), given, names))

    return __init__


# ---- hyperparameters several models share: same name, same range, same meaning -------------
EmbeddingDim = Annotated[int, Field(ge=1, description="size of the user and item ID embeddings")]
GraphLayers = Annotated[int, Field(ge=0, description="graph propagation layers")]
UserItemLayers = Annotated[int, Field(ge=0, description="propagation layers on the user-item graph")]
ContentKnnK = Annotated[
    int,
    Field(ge=1, description="neighbours kept per item in the content kNN graph (the item itself included)"),
]
TrainFeatures = Annotated[
    bool, Field(description="train a copy of the raw features, as the reference does (false: frozen)")
]
EmbLossReg = Annotated[
    float, Field(ge=0, description="L2 weight on the batch's embeddings (MMRec's EmbLoss: norm / batch size)")
]
Neighbours = Annotated[int, Field(ge=1, description="neighbours kept per item")]
SimilarityBlock = Annotated[
    int, Field(ge=1, description="items per block when building the similarity matrix (memory vs speed only)")
]
