"""Any CSV/TSV/Parquet interactions table with a column map (`read_table`), and time columns as
Unix seconds (`parse_times`: numbers, Parquet timestamps or ISO 8601 dates).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from vlmrec.data.readers.common import RawData, _item_table
from vlmrec.data.readers.delimited import read_delimited, read_delimited_header
from vlmrec.data.readers.dialect import table_dialect
from vlmrec.errors import DataError

log = logging.getLogger(__name__)


# ---- generic table and pre-split folders -----------------------------------------------------
COLUMN_NAMES = ("user_id", "item_id", "rating", "timestamp")
_COLUMN_FLAGS = {
    "user_id": "--user-col",
    "item_id": "--item-col",
    "rating": "--rating-col",
    "timestamp": "--time-col",
}
_INTERACTIONS = (
    "an interactions table (CSV, TSV or Parquet with a header row: user_id, item_id[, rating, timestamp])"
)
_FOLDER_HINT = " (for a folder of train/valid/test files use --format presplit)"


def resolve_columns(columns: dict[str, str] | None, found: list[str], source: str) -> dict[str, str]:
    """Our column name -> the file's, checked against the file's header `found`.

    A mapping to a different name (`--user-col uid`) is explicit; one to the same name is the
    default. When an explicit mapping takes a column that is another name's default
    (`--user-col item_id`), the explicit one is honoured: an optional name (rating, timestamp)
    then has no column, a required one (user_id, item_id) must be given another and is an error
    saying so. Two explicit mappings to one column, unknown names and explicit mappings to a
    column the file lacks are errors too.
    """
    columns = dict(columns or {})
    unknown = sorted(set(columns) - set(COLUMN_NAMES))
    if unknown:
        raise DataError(
            f"{source}: unknown column role(s) {unknown}; the column map takes {list(COLUMN_NAMES)}"
        )
    for ours in COLUMN_NAMES:
        columns.setdefault(ours, ours)
    explicit = {ours: col for ours, col in columns.items() if col != ours}
    for ours, col in explicit.items():
        if col not in found:
            raise DataError(
                f"{source}: {_COLUMN_FLAGS[ours]} {col!r}: no such column (found {list(map(str, found))})"
            )
    taken: dict[str, str] = {}
    for ours, col in explicit.items():
        if col in taken:
            raise DataError(
                f"{source}: column {col!r} is mapped to both {taken[col]} ({_COLUMN_FLAGS[taken[col]]}) and "
                f"{ours} ({_COLUMN_FLAGS[ours]}); each needs its own column"
            )
        taken[col] = ours
    resolved = {}
    for ours, col in columns.items():
        if ours in explicit or col not in taken:
            resolved[ours] = col
        elif ours in ("user_id", "item_id"):
            raise DataError(
                f"{source}: column {col!r} is mapped to {taken[col]} ({_COLUMN_FLAGS[taken[col]]} {col}), "
                f"so {ours} needs another column: name it with {_COLUMN_FLAGS[ours]} "
                f"(found {list(map(str, found))})"
            )
        else:
            log.warning(
                "%s: column %r is used for %s, so there is no %s column", source, col, taken[col], ours
            )
    return resolved


def _apply_columns(df: pd.DataFrame, mapping: dict[str, str], source: str) -> pd.DataFrame:
    """Columns renamed to our names; a file column that has one of our names but is not the
    column mapped to it is dropped (it would shadow the mapped one)."""
    sources = {col: ours for ours, col in mapping.items() if col in df.columns}
    shadowed = [c for c in df.columns if c in COLUMN_NAMES and c not in sources]
    if shadowed:
        log.warning("%s: column(s) %s not used (other columns are mapped to those names)", source, shadowed)
    return df.drop(columns=shadowed).rename(columns=sources)


def read_table(
    interactions: str | Path,
    items: str | Path | None = None,
    columns: dict[str, str] | None = None,
    sep: str | None = None,
    encoding: str = "utf-8",
) -> RawData:
    """Any CSV/TSV/Parquet interactions table. `columns` maps our names (user_id, item_id,
    rating, timestamp) to the file's (see `resolve_columns`); the item table needs `item_id` or
    the interactions' mapped item column name. Id columns are read as verbatim text.

    Text files are read with `sep` (default: sniffed per file) and `encoding` (see
    `table_dialect`); `RawData.read_options` records how each file was read. The time column
    may hold numbers (Unix time) or ISO 8601 dates (see `parse_times`)."""
    p = Path(interactions)
    mapping = resolve_columns(
        columns,
        read_delimited_header(p, sep, what=_INTERACTIONS, hint=_FOLDER_HINT, encoding=encoding),
        str(p),
    )
    id_cols = (mapping["user_id"], mapping["item_id"])
    df = read_delimited(
        p, sep=sep, id_columns=id_cols, what=_INTERACTIONS, hint=_FOLDER_HINT, encoding=encoding
    )
    df = _apply_columns(df, mapping, str(p))
    if "timestamp" in df.columns:
        df["timestamp"] = parse_times(df["timestamp"], str(p), mapping["timestamp"])
    options = {"interactions": _read_options(p, sep, encoding)}
    item_df = None
    dropped: dict[str, int] = {}
    if items is not None:
        ip = Path(items)
        what = "an item table (CSV, TSV or Parquet with a header row: item_id, text columns)"
        found = read_delimited_header(ip, sep, what=what, encoding=encoding)
        item_col = mapping["item_id"] if mapping["item_id"] in found else "item_id"
        if item_col not in found:
            raise DataError(f"{ip}: missing column {mapping['item_id']!r} in the item table (found {found})")
        item_df = read_delimited(ip, sep=sep, id_columns=(item_col,), what=what, encoding=encoding)
        if item_col != "item_id" and "item_id" in item_df.columns:
            item_df = item_df.drop(columns="item_id")
        item_df = _item_table(item_df.rename(columns={item_col: "item_id"}), str(ip), dropped)
        options["items"] = _read_options(ip, sep, encoding)
    return RawData(str(p), df, item_df, dropped=dropped, read_options=options)


def _read_options(path: Path, sep: str | None, encoding: str) -> dict[str, Any]:
    dialect = table_dialect(path, sep, encoding)
    return {"format": "parquet"} if dialect is None else dialect.as_dict()


def parse_times(values: pd.Series, source: str, column: str) -> pd.Series:
    """A time column as numbers: Unix times are left as they are (`validate_interactions`
    makes them float); a column of ISO 8601 dates or date-times (`2021-01-01`,
    `2021-01-01T10:00:00`, `2021-01-01 10:00:00+02:00`) becomes float seconds since 1970-01-01
    UTC, the unit of the Unix times the other readers give (dates without a zone are taken as
    UTC). Any other cell is a DataError naming the column (`column`, as the file names it) and
    the first bad row; empty cells are left missing for `validate_interactions` to report."""
    if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_datetime64_any_dtype(values.dtype):
        if pd.api.types.is_datetime64_any_dtype(values.dtype):  # Parquet timestamps
            utc = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
            return (utc - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
        _warn_if_compact_dates(values, source, column)
        return values
    present = values.notna().to_numpy() & (values.astype(str).str.strip() != "").to_numpy()
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().to_numpy()[present].all():
        _warn_if_compact_dates(numbers, source, column)
        return values
    text = values.astype(object).where(present, None)
    dates = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    bad = present & dates.isna().to_numpy()
    if bad.any():
        row = int(bad.nonzero()[0][0])
        raise DataError(
            f"{source}: row {row + 1}: time column {column!r} is {values.iloc[row]!r}; expected a Unix "
            "timestamp (a number) or an ISO 8601 date such as 2021-01-01 or 2021-01-01T10:00:00, the "
            "same kind in every row"
        )
    return (dates - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)


def _warn_if_compact_dates(numbers: pd.Series, source: str, column: str) -> None:
    """Warn when every time value reads as a compact date (YYYYMMDD, e.g. 20210101): such numbers
    are taken as Unix seconds, which keeps their order (loo and temporal splits stay right) but
    not their meaning."""
    v = pd.to_numeric(numbers, errors="coerce").dropna()
    if v.empty or not (v == v.round()).all() or not v.between(19000101, 21001231).all():
        return
    as_dates = pd.to_datetime(v.astype("int64").astype(str), format="%Y%m%d", errors="coerce")
    if as_dates.notna().all():
        log.warning(
            "%s: time column %r holds numbers that look like compact dates (e.g. %d); they are read "
            "as Unix seconds, which keeps their order but not their meaning: write them as ISO dates "
            "(2021-01-01) for real times",
            source,
            column,
            int(v.iloc[0]),
        )
