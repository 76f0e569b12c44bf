"""docs/config.md: every key of the experiment YAML, generated from the pydantic schema.

The schema (`experiments/config.py`), each model's hyperparameter spec (`models.params.param_spec`, read from its signature)
and each extractor's options model (`features/registry.py`) are the single source: this module
only renders them, and a test keeps the checked-in file equal to what it renders.

    python -m vlmrec.experiments.config_reference > docs/config.md
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from vlmrec.data.spec import DatasetSpec
from vlmrec.features.registry import bound_phrases

HEADER = """# Configuration reference

Every key of an experiment config (`vlmrec run CONFIG.yaml`), with its type, default, allowed
values and meaning. Generated from the schema by `python -m vlmrec.experiments.config_reference
> docs/config.md`; `tests/test_config_reference.py` fails when this file is out of date.
Unknown keys are refused everywhere, naming the key.
"""


def _type_name(annotation: Any) -> str:
    """A short, readable name for a field's type."""
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(get_args(annotation)[0])
    if origin is Literal:
        return "text"
    if origin in (types.UnionType, typing.Union):
        parts = [a for a in get_args(annotation) if a is not type(None)]
        return " or ".join(_type_name(a) for a in parts)
    if origin in (list, tuple):
        args = [a for a in get_args(annotation) if a is not Ellipsis]
        inner = _type_name(args[0]) if args else "value"
        return f"list of {inner}" if origin is list else f"{len(args)} x {inner}"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    if annotation is Path:
        return "path"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def _choices(annotation: Any) -> list[Any]:
    """The allowed values when the type (or its list element) is a Literal."""
    origin = get_origin(annotation)
    if origin is Literal:
        return list(get_args(annotation))
    if origin in (list, typing.Annotated, types.UnionType, typing.Union):
        for arg in get_args(annotation):
            found = _choices(arg)
            if found:
                return found
    return []


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "see below"
    return f"`{value}`" if value != "" else '`""`'


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _table(model: type[BaseModel], prefix: str) -> list[str]:
    rows = [
        "| key | type | default | allowed | meaning |",
        "|---|---|---|---|---|",
    ]
    for name, field in model.model_fields.items():
        allowed = ", ".join(f"`{c}`" for c in _choices(field.annotation)) or ", ".join(
            bound_phrases(field.metadata)
        )
        rows.append(
            f"| `{prefix}{name}` | {_type_name(field.annotation)} | {_default(field)} | {allowed} "
            f"| {_cell(field.description or '')} |"
        )
    return rows


def config_reference() -> str:
    """The Markdown reference of every config key (what docs/config.md holds)."""
    from vlmrec.experiments.config import (
        EvaluationConfig,
        ExperimentConfig,
        FeatureConfig,
        ModelConfig,
        ResourcesConfig,
    )
    from vlmrec.features.registry import SPECS
    from vlmrec.models import MODELS, param_spec

    out = [HEADER, "## Top level", "", *_table(ExperimentConfig, "")]
    for title, model, prefix in (
        ("dataset", DatasetSpec, "dataset."),
        ("features (a list)", FeatureConfig, "features[]."),
        ("models (a list)", ModelConfig, "models[]."),
        ("models[].resources", ResourcesConfig, "models[].resources."),
        ("evaluation", EvaluationConfig, "evaluation."),
    ):
        out += ["", f"## {title}", ""]
        doc = (model.__doc__ or "").strip()
        if doc:
            out += [" ".join(line.strip() for line in doc.splitlines()), ""]
        out += _table(model, prefix)

    out += [
        "",
        "## Extractor options (`features[].options`)",
        "",
        "The options of the feature's `extractor`; `model`, `prompt` and `fields` may also be",
        "given beside `extractor`. The same options as `vlmrec extract --extractor NAME`.",
    ]
    for spec in SPECS:
        out += ["", f"### `{spec.name}`", "", _cell(spec.summary), "", *_table(spec.options, "")]

    out += [
        "",
        "## Model hyperparameters (`models[].params` and `models[].grid`)",
        "",
        "`params` fixes values; `grid` lists values to try (every combination is trained and the best",
        "on validation, averaged over seeds, is kept). Each value is checked against the model's",
        "spec at load, before anything trains. Documented per model in its class docstring.",
    ]
    for name in sorted(MODELS):
        params = param_spec(MODELS[name])
        out += ["", f"### `{name}`", ""]
        if not params.model_fields:
            out.append("No hyperparameters.")
            continue
        out += _table(params, "")
    return "\n".join(out) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(config_reference(), end="")
