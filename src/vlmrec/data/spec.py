"""DatasetSpec: what a dataset is made from and how it is split, as one typed value.

The YAML config's `dataset:` section, `vlmrec prepare`'s options and the Python API all build a
DatasetSpec; `vlmrec.data.prepare.prepare_dataset(spec, out)` is the one place that turns it into a
prepared Dataset, and `cache_key_fields()` what a run's cache key covers. Choices are defined once
in `data.formats` (formats) and `data.splits` (split methods); the CLI lists them from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from vlmrec.data.formats import Format
from vlmrec.data.splits import SplitMethod

Int = Annotated[int, Strict()]
"""An integer that is an integer: YAML's `true` is refused, not read as 1."""
Number = Annotated[float, Strict()]
"""A number (an integer is one too), never `true`/`false`."""


class DatasetSpec(BaseModel):
    """Either `prepared` (a folder from `vlmrec prepare`) or a reader spec."""

    # the docstring under each field is its description (docs/config.md is generated from them)
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    name: str | None = None
    """dataset name in reports (default: from the reader)"""
    prepared: Path | None = None
    """a folder written by `vlmrec prepare` (then the reader keys are not used)"""
    format: Format | None = None
    """the reader of the raw files (docs/data.md describes each)"""
    path: Path | None = None
    """the file or folder the reader reads (a relative path is taken from the working directory)"""
    interactions: Path | None = None
    """format table: the interactions file (CSV, TSV or Parquet)"""
    items: Path | None = None
    """format table: the items file (item id, text fields, optional image path)"""
    images: Path | None = None
    """a folder of item images named by item id (`<item_id>.jpg`, ...)"""
    columns: dict[str, str] | None = None
    """format table: your column names for user_id, item_id, rating, timestamp, ..."""
    sep: str | None = None
    """format table: the field separator of text files (default: sniffed per file)"""
    encoding: str | None = None
    """format table: the files' text encoding (default UTF-8; a wrong one is an error naming the byte)"""
    rating_threshold: Number | None = None
    """keep interactions rated >= this as positives (unset: keep all)"""
    k_core: Int = Field(0, ge=0)
    """repeatedly drop users and items with fewer interactions than this (0: off)"""
    split: SplitMethod = "random"
    """random (per user), loo (leave the last out), temporal (one global time cut) or cold-items"""
    ratios: tuple[Number, Number, Number] = (0.8, 0.1, 0.1)
    """train, validation and test shares"""
    seed: Int = Field(42, ge=0, le=2**32 - 1)
    """seed of the split: the same seed gives the same split"""
    cold_fraction: Number = Field(0.2, gt=0, lt=1)
    """split cold-items: the fraction of items held out of training (see docs/cold_start.md)"""
    planted: dict[str, Any] | None = None
    """format planted: generator options (n_users, n_items, interactions_per_user, ...)"""

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSpec:
        if self.prepared is None and self.format is None:
            raise ValueError("give either 'prepared' (a prepared dataset folder) or 'format' (+ 'path')")
        return self

    def reader_format(self) -> str:
        """The reader's format (a spec without `prepared` always has one)."""
        if self.format is None:
            raise ValueError("this dataset spec names a prepared folder, not a reader format")
        return self.format

    def cache_key_fields(self) -> dict[str, Any]:
        """What determines the prepared dataset besides the input files' content."""
        return self.model_dump(mode="json", exclude={"prepared"})
