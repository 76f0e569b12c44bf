"""CSV/TSV/Parquet tables read with the file named in every error (`read_delimited`), and
headerless fixed-width-by-separator text files (`_read_fixed`, MovieLens' `.dat` / `u.data`).
Id columns are read as verbatim text where only the empty cell is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import pandas as pd

from vlmrec.data.interactions import ids_as_text
from vlmrec.data.readers.common import _check_file, _lines, _sniff_binary
from vlmrec.data.readers.dialect import _ENCODING_HINT, Dialect, _decode_error, _is_parquet, table_dialect
from vlmrec.errors import DataError

# Cells that mean "missing" in columns other than ids (pandas' default list, written out so that
# id columns can be read without it: there only the empty cell is missing).
_NA_CELLS = [
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
]


def _guard_table(path: Path, what: str, hint: str) -> None:
    _check_file(path, what, hint)
    if _is_parquet(path):
        _sniff_binary(path, what, allowed=(b"PAR1",))
    elif path.suffix != ".gz":
        _sniff_binary(path, what)


def _read_or_explain(
    path: Path, what: str, encoding: str, read: Callable[[], Any], dialect: Dialect | None = None
) -> Any:
    """Run `read`, turning the errors pandas/pyarrow raise for bad files into DataErrors."""
    try:
        return read()
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: no header row or columns found; expected {what}") from None
    except pd.errors.ParserError as e:
        how = ""
        if dialect is not None:
            found = ", sniffed from the first lines" if dialect.sniffed else ""
            how = f" (fields separated by {dialect.sep!r}{found}; name the separator with --sep)"
        raise DataError(f"{path}: cannot parse: {str(e).strip()}{how}") from None
    except UnicodeDecodeError as e:
        raise _decode_error(path, e, encoding, _ENCODING_HINT) from None
    except DataError:
        raise
    except Exception as e:  # pyarrow, gzip and zlib raise several unrelated types for a bad file
        raise DataError(f"{path}: cannot read {what}: {type(e).__name__}: {e}") from None


def read_delimited_header(
    path: Path, sep: str | None = None, *, what: str = "a table", hint: str = "", encoding: str = "utf-8"
) -> list[str]:
    """The column names of a CSV/TSV/Parquet file, with `read_delimited`'s checks."""
    path = Path(path)
    _guard_table(path, what, hint)
    dialect = table_dialect(path, sep, encoding)
    if dialect is None:
        import pyarrow.parquet as pq

        return _read_or_explain(path, what, encoding, lambda: [str(c) for c in pq.read_schema(path).names])
    return _read_or_explain(
        path,
        what,
        encoding,
        lambda: [str(c) for c in pd.read_csv(path, nrows=0, **dialect.pandas()).columns],
        dialect,
    )


def read_delimited(
    path: Path,
    sep: str | None = None,
    *,
    id_columns: Collection[str] | Callable[[str], bool] = (),
    what: str = "a table (CSV, TSV or Parquet with a header row)",
    hint: str = "",
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """CSV/TSV/Parquet by extension, with the file named in any error.

    Text files are read as `table_dialect` says (separator given or sniffed, escaped quotes,
    `encoding`; see there). `id_columns` (file column names, or a test on them) are read as
    verbatim text where only the empty cell is missing; the other columns get pandas' usual
    type inference and missing markers. A folder, an empty file, an image or another binary
    file is refused with a DataError saying it expected `what` (then `hint`).
    """
    path = Path(path)
    header = read_delimited_header(path, sep, what=what, hint=hint, encoding=encoding)
    is_id = id_columns if callable(id_columns) else set(id_columns).__contains__
    ids = [c for c in header if is_id(c)]
    dialect = table_dialect(path, sep, encoding)
    if dialect is None:
        df = _read_or_explain(path, what, encoding, lambda: pd.read_parquet(path))
        for col in ids:
            df[col] = ids_as_text(df[col], str(path), col)
        return df
    return _read_or_explain(
        path,
        what,
        encoding,
        lambda: pd.read_csv(
            path,
            **dialect.pandas(),
            dtype={c: str for c in ids},
            keep_default_na=False,
            na_values={c: ([""] if c in ids else _NA_CELLS) for c in header},
        ),
        dialect,
    )


def _read_fixed(path: Path, sep: str, names: list[str] | None, encoding: str = "utf-8") -> pd.DataFrame:
    """Headerless delimited file with a known number of fields; names the bad line."""
    rows = []
    what = f"{sep!r}-separated text" + (f" ({', '.join(names)})" if names else "")
    for lineno, line in _lines(path, encoding, what):
        line = line.rstrip("\n\r")
        if not line:
            continue
        parts = line.split(sep)
        if names is not None and len(parts) != len(names):
            raise DataError(
                f"{path}: line {lineno}: expected {len(names)} {sep!r}-separated fields "
                f"({', '.join(names)}), found {len(parts)}"
            )
        rows.append(parts)
    return pd.DataFrame(rows, columns=names, dtype=object)
