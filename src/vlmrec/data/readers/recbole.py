"""RecBole atomic files (`<name>.inter` / `<name>.item`, header `field:type`)."""

from __future__ import annotations

from pathlib import Path

from vlmrec.data.readers.common import RawData, _find, _item_table
from vlmrec.data.readers.delimited import read_delimited
from vlmrec.data.readers.dialect import MIXED_ENCODING


def read_recbole_atomic(path: str | Path) -> RawData:
    """RecBole atomic files (`<name>.inter` / `<name>.item`, header `field:type`), as shipped
    for MovieLens-100k inside the recbole wheel. Read as UTF-8 (RecBole's default encoding;
    the wheel's ml-100k.item is UTF-8: "Misérables"), with any byte that is not UTF-8 read as
    latin-1 (`MIXED_ENCODING`), so files saved in latin-1 read right too."""
    d = Path(path)
    inter_file = _find(d, ["*.inter"], "RecBole .inter")
    what = "a RecBole atomic file (tab-separated, header 'name:type')"
    enc = MIXED_ENCODING
    inter = read_delimited(inter_file, sep="\t", encoding=enc, id_columns=_recbole_token, what=what)
    inter.columns = [c.split(":")[0] for c in inter.columns]
    items = None
    dropped: dict[str, int] = {}
    item_file = inter_file.with_suffix(".item")
    if item_file.exists():
        items = read_delimited(item_file, sep="\t", encoding=enc, id_columns=_recbole_token, what=what)
        items.columns = [c.split(":")[0] for c in items.columns]
        items = items.rename(columns={"movie_title": "title", "class": "genres"})
        items = _item_table(items, str(item_file), dropped)
        if "genres" in items.columns:
            genres = items["genres"].fillna("").astype(str).str.replace(" ", ", ", regex=False)
            items["genres"] = genres.astype(object)
    return RawData(str(inter_file), inter, items, dropped=dropped)


def _recbole_token(column: str) -> bool:
    """RecBole `token` / `token_seq` fields (ids among them) are text, read verbatim; so are
    untyped `user_id` / `item_id` columns."""
    name, _, kind = column.partition(":")
    return kind in ("token", "token_seq") or (not kind and name in ("user_id", "item_id"))
