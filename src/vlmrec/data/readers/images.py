"""Item images: files in a folder named `<item_id>.<ext>`, attached to the item table by the
verbatim item id.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from vlmrec.data.readers.common import _item_table
from vlmrec.errors import DataError

log = logging.getLogger(__name__)


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


def attach_images(items: pd.DataFrame, image_dir: str | Path | None) -> pd.DataFrame:
    """Set `image_path` to `<image_dir>/<item_id>.<ext>` where such a file exists.

    Files are matched by their stem to the verbatim item id (`00099.jpg` is item `00099`). An
    image whose item has no row in `items` gets a row of its own (empty text), so an item the
    item table leaves out keeps its image once the table is joined to the interactions' items.
    With several files for one id, the first by file name is used.
    """
    items = _item_table(items, "item table")
    if image_dir is None:
        if "image_path" not in items.columns:
            items["image_path"] = None
        return items
    d = Path(image_dir)
    if not d.is_dir():
        what = "is a file" if d.exists() else "not found"
        raise DataError(f"{d}: {what}; expected a folder of item images named <item_id>.<ext>")
    by_stem: dict[str, Path] = {}
    undecodable: list[str] = []
    for p in sorted(d.iterdir(), key=lambda q: q.name):
        if not _utf8_name(str(p.resolve())):
            undecodable.append(ascii(p.name))  # it cannot name an item id, nor go into Parquet
            continue
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file():
            by_stem.setdefault(p.stem, p.resolve())
    if undecodable:
        log.warning(
            "%s: %d file name(s) are not UTF-8 text and match no item id; skipped (first: %s)",
            d,
            len(undecodable),
            undecodable[0],
        )
    known = set(items["item_id"])
    extra = sorted(stem for stem in by_stem if stem not in known)
    if extra:
        items = pd.concat(
            [items, pd.DataFrame({"item_id": pd.Series(extra, dtype=object)})], ignore_index=True
        )
        for col in items.columns:
            if col not in ("item_id", "image_path") and items[col].dtype == object:
                items[col] = items[col].where(items[col].notna() | ~items["item_id"].isin(extra), "")
    items["image_path"] = pd.Series(
        [str(by_stem[i]) if i in by_stem else None for i in items["item_id"]], index=items.index, dtype=object
    )
    log.info(
        "%s: images found for %d of %d items in the item table",
        d,
        items["image_path"].notna().sum() - len(extra),
        len(items) - len(extra),
    )
    return items


def _utf8_name(name: str) -> bool:
    """False for a file name holding bytes that are not UTF-8 (Python keeps them as surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
