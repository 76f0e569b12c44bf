"""What every reader shares: the `RawData` it returns, the reasons rows are dropped, file checks
(missing, a folder, empty, binary), line and record iteration with errors naming the line, and the
item table's normalisation (`item_table`: verbatim text ids, first row of a duplicated id kept).
"""

from __future__ import annotations

import gzip
import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from vlmrec.data.interactions import ids_as_text
from vlmrec.data.readers.dialect import _decode_error
from vlmrec.errors import DataError

log = logging.getLogger(__name__)

# Leading bytes of files people pass by mistake, for a message that says what the file is.
_MAGIC = [
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG", "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"RIFF", "a RIFF (WebP/WAV/AVI) file"),
    (b"BM", "a BMP image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an .xlsx/.docx file)"),
    (b"\x1f\x8b", "a gzip file"),
    (b"PAR1", "a Parquet file"),
    (b"\x93NUMPY", "a NumPy array"),
]
DUPLICATE_ITEM = "duplicate item id in the item table (first row kept)"
MISSING_ITEM_ID = "item table row without an item id"
MALFORMED_ID = "interaction with an empty or malformed user/item id"


@dataclass
class RawData:
    """What a reader found: interactions (or given splits), an optional item table, and the
    number of rows it dropped for each reason (`dropped`)."""

    source: str
    interactions: pd.DataFrame | None
    items: pd.DataFrame | None = None
    presplit: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    read_options: dict[str, Any] = field(default_factory=dict)
    """How each text file was read (`Dialect.as_dict`: separator, escape character, encoding)."""


# ---- helpers ---------------------------------------------------------------------------------
def _check_file(path: Path, what: str, hint: str = "", allow_empty: bool = False) -> None:
    """Refuse a missing path, a folder or (unless `allow_empty`) an empty file, with a message
    naming `what` was expected."""
    if not path.exists():
        raise DataError(f"{path}: file not found; expected {what}")
    if path.is_dir():
        raise DataError(f"{path}: is a folder; expected {what}{hint}")
    if not allow_empty and path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (0 bytes); expected {what}")


def _sniff_binary(path: Path, what: str, allowed: tuple[bytes, ...] = ()) -> None:
    """Refuse images, archives and other binary files where a text table is expected."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if any(head.startswith(m) for m in allowed):
        return
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            raise DataError(f"{path}: this is {kind}, not {what}")
    if b"\x00" in head:
        raise DataError(f"{path}: this is a binary file (it holds NUL bytes), not {what}")


def _open_text(path: Path, encoding: str = "utf-8", what: str = "a text file") -> io.TextIOBase:
    _check_file(path, what, allow_empty=True)
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding)
    _sniff_binary(path, what)
    return open(path, encoding=encoding)


def _lines(path: Path, encoding: str = "utf-8", what: str = "a text file") -> Iterator[tuple[int, str]]:
    """(line number, line) of a text file (gzip by extension); decoding and gzip errors are
    DataErrors naming the file and line."""
    with _open_text(path, encoding, what) as f:
        lineno = 0
        while True:
            try:
                line = f.readline()
            except UnicodeDecodeError as e:
                raise _decode_error(path, e, encoding) from None
            except (OSError, EOFError) as e:  # a corrupt or truncated .gz
                raise DataError(f"{path}: cannot read past line {lineno}: {e}") from None
            if not line:
                return
            lineno += 1
            yield lineno, line


def _iter_records(path: Path, parser: Callable[[str], Any], what: str) -> Iterator[dict]:
    """Yield one dict per non-empty line; a bad line raises DataError with its number."""
    for lineno, line in _lines(path, what=f"{what} lines"):
        if not line.strip():
            continue
        try:
            rec = parser(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as e:
            raise DataError(f"{path}: line {lineno}: cannot parse as {what}: {e}") from None
        if not isinstance(rec, dict):
            raise DataError(f"{path}: line {lineno}: expected a {what} object, got {type(rec).__name__}")
        yield rec


def _records_frame(
    path: Path, parser, what: str, fields: dict[str, str], required: tuple[str, ...]
) -> pd.DataFrame:
    rows = []
    for i, rec in enumerate(_iter_records(path, parser, what), 1):
        missing = [k for k in required if k not in rec]
        if missing:
            raise DataError(f"{path}: record {i}: missing field(s) {missing}; expected {list(required)}")
        rows.append({out: rec.get(src) for src, out in fields.items()})
    df = pd.DataFrame(rows, columns=list(fields.values()))
    for col in ("user_id", "item_id"):
        if col in df.columns:
            df[col] = ids_as_text(df[col].astype(object), str(path), col)
    return df


def _item_table(df: pd.DataFrame, source: str, dropped: dict[str, int] | None = None) -> pd.DataFrame:
    """The item table as readers return it: verbatim text ids, no row without an id, one row
    per id (the first; duplicates are counted and warned about) and text columns as Python
    objects, so that cells missing after a merge are recognised as missing text."""
    if "item_id" not in df.columns:
        raise DataError(f"{source}: missing column 'item_id' in the item table (found {list(df.columns)})")
    df = df.copy()
    df["item_id"] = ids_as_text(df["item_id"], source, "item_id")
    no_id = (df["item_id"].isna() | (df["item_id"] == "")).to_numpy()
    if no_id.any():
        log.warning("%s: %d item table row(s) without an item id dropped", source, int(no_id.sum()))
        df = df[~no_id]
        if dropped is not None:
            dropped[MISSING_ITEM_ID] = dropped.get(MISSING_ITEM_ID, 0) + int(no_id.sum())
    dup = df["item_id"].duplicated(keep="first").to_numpy()
    if dup.any():
        ids = pd.unique(df["item_id"][dup])
        log.warning(
            "%s: %d item id(s) appear more than once in the item table (%d extra row(s)), e.g. %s; "
            "keeping the first row of each",
            source,
            len(ids),
            int(dup.sum()),
            ", ".join(repr(i) for i in ids[:5]),
        )
        df = df[~dup]
        if dropped is not None:
            dropped[DUPLICATE_ITEM] = dropped.get(DUPLICATE_ITEM, 0) + int(dup.sum())
    for col in df.columns:
        if col != "item_id" and (df[col].dtype == object or pd.api.types.is_string_dtype(df[col].dtype)):
            df[col] = df[col].astype(object)
    return df.reset_index(drop=True)


def _join_text(value: Any) -> str:
    """Amazon metadata holds text as str, list, or list of lists: flatten to one string."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, (list, tuple)):
        return " | ".join(t for t in (_join_text(v) for v in value) if t)
    return str(value).strip()


def _find(path: Path, patterns: list[str], what: str) -> Path:
    if path.is_file():
        return path
    for pat in patterns:
        hits = sorted(path.glob(pat))
        if hits:
            return hits[0]
    raise DataError(f"{path}: no {what} file found (looked for {patterns})")


def _maybe(directory: Path, patterns: list[str]) -> Path | None:
    for pat in patterns:
        hits = sorted(directory.glob(pat))
        if hits:
            return hits[0]
    return None


def drop_malformed_ids(df: pd.DataFrame, source: str, dropped: dict[str, int]) -> pd.DataFrame:
    """Interactions without a usable user or item id (an empty or blank cell, or one holding a
    line break, tab or other control character: the mark of a broken quote or separator) are
    dropped, counted under `MALFORMED_ID` in `dropped` and named in a warning (first row). Other
    ids are kept verbatim."""
    bad = pd.Series(False, index=df.index)
    for col in ("user_id", "item_id"):
        if col not in df.columns:
            continue
        v = df[col]
        text = v.map(lambda x: x if isinstance(x, str) else None)
        blank = v.isna() | (text.notna() & (text.fillna("").str.strip() == ""))
        control = text.fillna("").str.contains(r"[\x00-\x1f\x7f]", regex=True)
        bad |= blank | control
    n = int(bad.sum())
    dropped[MALFORMED_ID] = dropped.get(MALFORMED_ID, 0) + n
    if n:
        row = int(bad.to_numpy().nonzero()[0][0])
        first = {c: df[c].iloc[row] for c in ("user_id", "item_id") if c in df.columns}
        log.warning(
            "%s: %d interaction(s) with an empty or malformed user/item id dropped (first: row %d, %s)",
            source,
            n,
            row + 1,
            first,
        )
        # the index keeps the file's row positions, so later errors name the right row
        df = df[~bad.to_numpy()]
    return df
