"""Reading vlmrec's own files defensively: a damaged artifact is a DataError naming the file.

A folder vlmrec wrote can still be damaged afterwards (a disk filled up half-way through a copy,
a file truncated by a tool, a manifest edited by hand). Every reader of a manifest, a `.npy`
array or a Parquet table goes through these helpers, so such a folder ends in one sentence that
names the file and says what to do, never in a traceback or in numbers read from garbage.
"""

from __future__ import annotations

import json
import tokenize
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from vlmrec.errors import DataError

MAX_NPY_HEADER = 1 << 16
"""Bytes of a `.npy` header read at most (numpy's own headers are a few hundred bytes)."""


def read_json(path: Path, what: str, hint: str = "") -> dict[str, Any]:
    """The JSON object in `path`, or a DataError naming the file (missing, unreadable, not UTF-8,
    not JSON, or JSON that is not an object)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: missing; {what} is incomplete{_hint(hint)}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: damaged {what} ({_short(e)}){_hint(hint)}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: damaged {what} (expected a JSON object){_hint(hint)}")
    return data


def require_keys(data: dict[str, Any], keys: Iterable[str], path: Path, what: str, hint: str = "") -> None:
    """A DataError naming the first of `keys` missing from `data` (read from `path`)."""
    missing = [k for k in keys if k not in data]
    if missing:
        raise DataError(f"{path}: damaged {what} (no {', '.join(map(repr, missing))}){_hint(hint)}")


def npy_shape(path: Path, what: str, ndim: int = 2, hint: str = "") -> tuple[int, ...]:
    """The shape a `.npy` file of floating-point numbers holds, checked against the file itself
    before any data is read: a header that cannot be parsed, an object or non-float dtype, the
    wrong number of dimensions, or a size that is not what the header claims (a truncated file,
    or a header claiming a huge shape) is a DataError naming the file."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            major, _ = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
            shape, fortran, dtype = read(f, max_header_size=MAX_NPY_HEADER)
            offset = f.tell()
    except FileNotFoundError:
        raise DataError(f"{path}: missing; {what} is incomplete{_hint(hint)}") from None
    except (OSError, ValueError, SyntaxError, EOFError, tokenize.TokenError) as e:
        raise DataError(
            f"{path}: damaged {what} (not a readable .npy file: {_short(e)}){_hint(hint)}"
        ) from None
    if dtype.hasobject or dtype.kind != "f":
        raise DataError(
            f"{path}: damaged {what} (dtype {dtype}; expected floating-point numbers){_hint(hint)}"
        )
    if len(shape) != ndim:
        raise DataError(f"{path}: damaged {what} (shape {shape}; expected {ndim} dimensions){_hint(hint)}")
    expected = offset + int(np.prod(shape, dtype=object)) * dtype.itemsize
    actual = Path(path).stat().st_size
    if actual != expected:
        raise DataError(
            f"{path}: damaged {what} (the header claims shape {shape}, {expected:,} bytes, but the file "
            f"has {actual:,}: truncated or overwritten){_hint(hint)}"
        )
    return tuple(int(x) for x in shape)


def load_npy(path: Path, what: str, mmap: bool = False, ndim: int = 2, hint: str = "") -> np.ndarray:
    """A float `.npy` array after `npy_shape`'s checks (memory-mapped when `mmap`)."""
    npy_shape(path, what, ndim, hint)
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: damaged {what} ({_short(e)}){_hint(hint)}") from None


def read_parquet(path: Path, what: str, hint: str = "", columns: Iterable[str] = ()) -> Any:
    """The pandas DataFrame in a Parquet file, or a DataError naming the file (missing, truncated,
    not Parquet, or without one of `columns`)."""
    import pandas as pd
    import pyarrow as pa

    try:
        df = pd.read_parquet(path)
    except FileNotFoundError:
        raise DataError(f"{path}: missing; {what} is incomplete{_hint(hint)}") from None
    except (OSError, ValueError, pa.ArrowException) as e:
        raise DataError(f"{path}: damaged {what} ({_short(e)}){_hint(hint)}") from None
    absent = [c for c in columns if c not in df.columns]
    if absent:
        raise DataError(f"{path}: damaged {what} (no column {', '.join(map(repr, absent))}){_hint(hint)}")
    return df


def nonfinite_rows(vectors: np.ndarray, block: int = 65_536) -> np.ndarray:
    """Positions of the rows holding a NaN or an infinity, block by block (a memory-mapped
    matrix is read once, never copied whole)."""
    bad = [
        s + np.flatnonzero(~np.isfinite(vectors[s : s + block]).all(axis=1))
        for s in range(0, len(vectors), block)
    ]
    return np.concatenate(bad) if bad else np.empty(0, np.int64)


def _short(e: BaseException, limit: int = 160) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def _hint(hint: str) -> str:
    return f"; {hint}" if hint else ""
