"""The dataset formats, each mapped to its reader: what `vlmrec prepare --format` and a config's
`dataset.format` accept (`Format`), and how each reads its files (`READERS`).

`DatasetSpec` takes its `format` choices from here and `prepare_dataset` its readers, so the spec
never needs the preparation code (the old `spec` <-> `prepare` import cycle). A reader takes the
spec's reader fields (`ReaderInputs`: path, interactions, items, columns, sep, encoding), which a
`DatasetSpec` has.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal, Protocol, get_args

from vlmrec.data.readers import (
    AMAZON_2014,
    AMAZON_2018,
    AMAZON_2023,
    AmazonSchema,
    RawData,
    read_amazon,
    read_movielens_1m,
    read_movielens_100k,
    read_movielens_latest,
    read_presplit,
    read_recbole_atomic,
    read_table,
)
from vlmrec.errors import ConfigError

Format = Literal[
    "amazon-2014",
    "amazon-2018",
    "amazon-2023",
    "movielens-100k",
    "movielens-1m",
    "movielens-latest",
    "recbole",
    "presplit",
    "table",
    "planted",
]
"""The formats `vlmrec prepare --format` and a config's `dataset.format` accept (docs/data.md)."""
FORMATS: tuple[str, ...] = get_args(Format)
GENERATED = "planted"
"""The one format that is generated (`data.planted`), not read: `prepare_dataset` writes its
files, then reads them as a table."""


class ReaderInputs(Protocol):
    """The fields of a dataset spec that a reader reads."""

    @property
    def path(self) -> Path | None: ...
    @property
    def interactions(self) -> Path | None: ...
    @property
    def items(self) -> Path | None: ...
    @property
    def columns(self) -> dict[str, str] | None: ...
    @property
    def sep(self) -> str | None: ...
    @property
    def encoding(self) -> str | None: ...


Reader = Callable[[ReaderInputs], RawData]


def need_path(path: str | Path | None, fmt: str) -> Path:
    """`path` as a Path, or the error saying format `fmt` needs one."""
    if path is None:
        raise ConfigError(f"--format {fmt} needs --path (the file or folder to read)")
    return Path(path)


def _amazon(schema: AmazonSchema, fmt: str) -> Reader:
    """An Amazon release: reviews at `path`, metadata at `items` (default: found beside them)."""
    return lambda src: read_amazon(schema, need_path(src.path, fmt), src.items)


def _folder(read: Callable[[str | Path], RawData], fmt: str) -> Reader:
    """A format that reads a file or folder at `path` and nothing else."""
    return lambda src: read(need_path(src.path, fmt))


def _table(src: ReaderInputs) -> RawData:
    """Any table: `interactions` (+ `items`) with a column map, separator and encoding."""
    if src.interactions is None:
        raise ConfigError("--format table needs --interactions FILE")
    return read_table(src.interactions, src.items, src.columns, sep=src.sep, encoding=src.encoding or "utf-8")


def _presplit(src: ReaderInputs) -> RawData:
    """A folder of given splits at `path` (+ an `items` table)."""
    return read_presplit(need_path(src.path, "presplit"), src.items)


READERS: dict[str, Reader] = {
    "amazon-2014": _amazon(AMAZON_2014, "amazon-2014"),
    "amazon-2018": _amazon(AMAZON_2018, "amazon-2018"),
    "amazon-2023": _amazon(AMAZON_2023, "amazon-2023"),
    "movielens-100k": _folder(read_movielens_100k, "movielens-100k"),
    "movielens-1m": _folder(read_movielens_1m, "movielens-1m"),
    "movielens-latest": _folder(read_movielens_latest, "movielens-latest"),
    "recbole": _folder(read_recbole_atomic, "recbole"),
    "presplit": _presplit,
    "table": _table,
}
"""Each format that is read from files -> its reader (every Format but `GENERATED`)."""
assert set(READERS) | {GENERATED} == set(FORMATS), "every Format has a reader"
