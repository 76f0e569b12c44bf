"""Cleaning a raw interactions table: validation, implicit conversion, duplicates, k-core.

A raw table has string ids in `user_id`, `item_id` and optional `rating`, `timestamp` columns;
`source` (a file name) is carried only for error messages.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from vlmrec.errors import DataError

log = logging.getLogger(__name__)

REQUIRED = ("user_id", "item_id")


def ids_as_text(values: pd.Series, source: str, column: str) -> pd.Series:
    """Ids as verbatim text (object dtype; missing stays missing), never via a number.

    Text stays as it is (`007` stays `007`, `0.0` stays `0.0`). Integers (JSON numbers, Parquet
    int columns) become their decimal digits. A floating-point column can only come from a
    binary format that stored ids as numbers: integral values become integer digits (`1.0` ->
    `1`) with a warning, since the original text is not known. Lists, dicts and booleans are
    refused with the row named. Bytes (a Parquet binary column) are decoded as UTF-8, never
    written as `"b'P00000'"`; bytes that are not UTF-8 are refused naming the column and row.
    """
    if isinstance(values.dtype, pd.StringDtype) or (
        values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty")
    ):
        return values.astype(object)  # text already (the common case): nothing to convert
    if pd.api.types.is_bool_dtype(values.dtype):
        raise DataError(f"{source}: column {column!r} holds true/false values, not ids")
    if pd.api.types.is_integer_dtype(values.dtype):
        return pd.Series(
            [None if pd.isna(v) else str(int(v)) for v in values], index=values.index, dtype=object
        )
    if pd.api.types.is_float_dtype(values.dtype):
        log.warning(
            "%s: column %r stores ids as floating-point numbers; integral values are read as "
            "integers (1.0 -> '1'). Store ids as text to keep them verbatim.",
            source,
            column,
        )
        return pd.Series([_float_id(v) for v in values], index=values.index, dtype=object)
    out = []
    for row, v in enumerate(values, 1):
        if v is None or isinstance(v, str):
            out.append(v)
        elif isinstance(v, bytes | bytearray):
            out.append(_bytes_id(v, source, column, row))
        elif isinstance(v, bool) or not np.isscalar(v):
            raise DataError(f"{source}: row {row}: {column!r} is {v!r}; expected an id (text or integer)")
        elif isinstance(v, (int, np.integer)):
            out.append(str(int(v)))
        elif isinstance(v, (float, np.floating)):
            out.append(_float_id(v))
        else:
            out.append(str(v))
    return pd.Series(out, index=values.index, dtype=object)


def _float_id(v: float | np.floating) -> str | None:
    if pd.isna(v):
        return None
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def validate_interactions(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check columns and values; return a copy with verbatim text ids (see `ids_as_text`) and
    float ratings/timestamps."""
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {missing}; expected at least {list(REQUIRED)} "
            f"(found {list(df.columns)}). Use --user-col/--item-col to map your column names."
        )
    out = df.copy()
    labels = df.index.to_numpy()

    def row_of(position: int) -> int:
        """The 1-based data row in the file: the index keeps it when rows were dropped before."""
        label = labels[position]
        return int(label) + 1 if isinstance(label, (int, np.integer)) else position + 1

    for col in REQUIRED:
        ids = ids_as_text(out[col], source, col)
        empty = (ids.isna() | (ids == "")).to_numpy()
        if empty.any():
            row = int(np.flatnonzero(empty)[0])
            raise DataError(f"{source}: row {row_of(row)}: empty {col!r}; every interaction needs one")
        out[col] = ids.astype(str)
    for col in ("rating", "timestamp"):
        if col not in out.columns:
            continue
        values = pd.to_numeric(out[col], errors="coerce")
        bad = values.isna() & out[col].notna()
        if bad.any() or values.isna().any():
            row = int(np.flatnonzero((bad | values.isna()).to_numpy())[0])
            raise DataError(
                f"{source}: row {row_of(row)}: {col!r} is {out[col].iloc[row]!r}; expected a number"
            )
        if col == "rating" and (values < 0).any():
            row = int(np.flatnonzero((values < 0).to_numpy())[0])
            raise DataError(
                f"{source}: row {row_of(row)}: rating {values.iloc[row]} is negative; ratings must be >= 0"
            )
        out[col] = values.astype("float64")
    if out.empty:
        raise DataError(f"{source}: no interactions found")
    return out.reset_index(drop=True)


def to_implicit(df: pd.DataFrame, threshold: float | None) -> pd.DataFrame:
    """Keep interactions with rating >= threshold (all of them when threshold is None)."""
    if threshold is None or "rating" not in df.columns:
        return df
    return df[df["rating"] >= threshold].reset_index(drop=True)


def drop_duplicates(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (user, item): the latest by timestamp, else the last in file order."""
    if "timestamp" in df.columns:
        df = df.sort_values("timestamp", kind="stable")
    return df.drop_duplicates(["user_id", "item_id"], keep="last").reset_index(drop=True)


def k_core(df: pd.DataFrame, k: int, source: str = "interactions") -> pd.DataFrame:
    """Iteratively drop users and items with fewer than k interactions until none remain."""
    if k <= 1:
        return df
    while True:
        user_counts = df["user_id"].map(df["user_id"].value_counts())
        item_counts = df["item_id"].map(df["item_id"].value_counts())
        keep = (user_counts >= k) & (item_counts >= k)
        if keep.all():
            break
        df = df[keep]
    if df.empty:
        raise DataError(
            f"{source}: nothing is left after the {k}-core filter; use a smaller --k-core "
            "(every user and item must keep at least k interactions)"
        )
    return df.reset_index(drop=True)


def _bytes_id(value: bytes | bytearray, source: str, column: str, row: int) -> str:
    """An id stored as bytes, as the text it encodes (UTF-8), or a DataError naming where."""
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(
            f"{source}: row {row}: column {column!r} holds bytes that are not UTF-8 text "
            f"({bytes(value)[:40]!r}); store the ids as text (a string column)"
        ) from None
