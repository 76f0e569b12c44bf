"""Folders with given train/validation/test splits (Elliot/MMRec `.tsv` pairs, or `.txt` lines of
`user item1 item2 ...`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from vlmrec.data.readers.common import RawData, _item_table, _lines
from vlmrec.data.readers.delimited import read_delimited
from vlmrec.data.readers.table import parse_times
from vlmrec.errors import DataError

log = logging.getLogger(__name__)


def read_presplit(path: str | Path, items: str | Path | None = None) -> RawData:
    """A folder with given splits: Elliot/MMRec style `train.tsv`, `val.tsv`/`valid.tsv`,
    `test.tsv` (user, item[, rating, timestamp] per row), or the `train.txt`, `validation.txt`,
    `test.txt` style where each line is `user item1 item2 ...`."""
    d = Path(path)
    if not d.is_dir():
        raise DataError(f"{d}: expected a folder holding train/validation/test files")
    layouts = [
        (["train.tsv"], ["val.tsv", "valid.tsv", "validation.tsv"], ["test.tsv"], "pairs"),
        (["train.txt"], ["validation.txt", "valid.txt", "val.txt"], ["test.txt"], "lists"),
    ]
    for train_names, valid_names, test_names, layout in layouts:
        found = [
            next((d / n for n in names if (d / n).exists()), None)
            for names in (train_names, valid_names, test_names)
        ]
        if found[0] is not None and found[2] is not None:
            frames = []
            for f in found:
                if f is None:  # no validation file: an empty validation split
                    frames.append(pd.DataFrame(columns=["user_id", "item_id"]))
                else:
                    frames.append(_read_pairs(f) if layout == "pairs" else _read_lists(f))
            dropped: dict[str, int] = {}
            item_df = None
            if items:
                what = "an item table (CSV, TSV or Parquet with a header row: item_id, text columns)"
                item_df = _item_table(
                    read_delimited(Path(items), id_columns=("item_id",), what=what), str(items), dropped
                )
            return RawData(str(d), None, item_df, tuple(frames), dropped=dropped)  # type: ignore[arg-type]
    raise DataError(f"{d}: no train.tsv/test.tsv or train.txt/test.txt found")


def _read_pairs(path: Path) -> pd.DataFrame:
    rows = []
    for lineno, line in _lines(path, what="user<TAB>item[<TAB>rating<TAB>timestamp] lines"):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise DataError(f"{path}: line {lineno}: expected 'user<TAB>item[<TAB>rating<TAB>timestamp]'")
        if lineno == 1 and parts[0].lower() in ("user", "user_id", "userid"):
            continue  # header
        rows.append(parts[:4])
    width = max((len(r) for r in rows), default=2)
    names = ["user_id", "item_id", "rating", "timestamp"][:width]
    df = pd.DataFrame([r + [None] * (width - len(r)) for r in rows], columns=names, dtype=object)
    if "timestamp" in df.columns:  # ratings stay text: validate_interactions names a bad one
        df["timestamp"] = parse_times(df["timestamp"], str(path), "timestamp")
    return df


def _read_lists(path: Path) -> pd.DataFrame:
    rows: list[tuple[str, str]] = []
    for lineno, line in _lines(path, what="'user item1 item2 ...' lines"):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            log.debug("%s: line %d: user with no items", path, lineno)
        rows.extend((parts[0], it) for it in parts[1:])
    return pd.DataFrame(rows, columns=["user_id", "item_id"], dtype=object)
