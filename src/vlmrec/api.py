"""Helpers of the Python API (`import vlmrec`) that the stages do not already offer as one call."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vlmrec.data.dataset import Dataset
from vlmrec.data.prepare import prepare_dataset
from vlmrec.data.spec import DatasetSpec


def prepare(spec: DatasetSpec | Mapping[str, Any], out: str | Path | None = None) -> Dataset:
    """Read, clean and split the data `spec` describes (a DatasetSpec, or its fields as a dict, the
    YAML `dataset:` section); with `out`, save the Dataset there (`vlmrec prepare`'s folder)."""
    if not isinstance(spec, DatasetSpec):
        spec = DatasetSpec.model_validate(dict(spec))
    if spec.prepared is not None:
        return Dataset.load(spec.prepared)
    return prepare_dataset(spec, out)
