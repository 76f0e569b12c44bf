"""Amazon review dumps, one reader for the three releases: 2014 (`reviews_<Cat>_5.json.gz` +
`meta_<Cat>.json.gz` of Python literals), 2018 (`<Cat>_5.json.gz` + `meta_<Cat>.json.gz`, JSON
lines) and 2023 (`<Cat>.jsonl` keyed by `parent_asin` + `meta_<Cat>.jsonl`). An `AmazonSchema`
says where each release keeps its files and fields; `read_amazon` reads any of them.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from vlmrec.data.readers.common import (
    RawData,
    _find,
    _item_table,
    _iter_records,
    _join_text,
    _maybe,
    _records_frame,
)


@dataclass(frozen=True)
class AmazonSchema:
    """Where one Amazon release keeps its reviews and metadata, and what its fields are called."""

    label: str
    """the release as error messages name it (`Amazon 2018 reviews`)"""
    reviews: tuple[str, ...]
    """glob patterns for the reviews file in a folder, tried in order"""
    meta: tuple[str, ...]
    """glob patterns for the metadata file beside the reviews, tried in order"""
    review_fields: tuple[str, str, str, str]
    """the review fields holding the user id, item id (both required), rating and timestamp"""
    meta_parser: Callable[[str], Any]
    """how one metadata line is parsed (JSON, or Python literals in 2014)"""
    meta_format: str
    """the metadata lines' format, as errors name it"""
    item_id: str
    """the metadata field holding the item id"""
    text: tuple[tuple[str, tuple[str, ...]], ...]
    """our text column -> the metadata fields it is taken from (the first non-empty one), in order"""
    image_url: Callable[[dict], Any]
    """the record's image URL (or None)"""


def _first_listed(*keys: str) -> Callable[[dict], Any]:
    """The first URL of the first non-empty list among `keys` (Amazon 2018's image fields)."""

    def url(rec: dict) -> Any:
        urls = next((rec.get(k) for k in keys if rec.get(k)), None) or []
        return urls[0] if urls else None

    return url


def _image_2023(rec: dict) -> Any:
    """Amazon 2023: the first of `images`, a dict of sizes (large, else hi_res, else thumb)."""
    images = rec.get("images") or []
    first = images[0] if images else {}
    return (
        first.get("large") or first.get("hi_res") or first.get("thumb") if isinstance(first, dict) else first
    )


AMAZON_2014 = AmazonSchema(
    label="Amazon 2014",
    reviews=("reviews_*.json.gz", "reviews_*.json"),
    meta=("meta_*.json.gz", "meta_*.json"),
    review_fields=("reviewerID", "asin", "overall", "unixReviewTime"),
    meta_parser=ast.literal_eval,
    meta_format="Python literal",
    item_id="asin",
    text=(
        ("title", ("title",)),
        ("description", ("description",)),
        ("brand", ("brand",)),
        ("categories", ("categories",)),
    ),
    image_url=lambda rec: rec.get("imUrl"),
)
AMAZON_2018 = replace(
    AMAZON_2014,
    label="Amazon 2018",
    reviews=("*_5.json.gz", "[!m]*.json.gz", "*.json"),
    meta_parser=json.loads,
    meta_format="JSON",
    text=(*AMAZON_2014.text[:3], ("categories", ("category",))),
    image_url=_first_listed("imageURLHighRes", "imageURL"),
)
AMAZON_2023 = replace(
    AMAZON_2018,
    label="Amazon 2023",
    reviews=("[!m]*.jsonl", "[!m]*.jsonl.gz"),
    meta=("meta_*.jsonl", "meta_*.jsonl.gz"),
    review_fields=("user_id", "parent_asin", "rating", "timestamp"),
    item_id="parent_asin",
    text=(
        *AMAZON_2014.text[:2],
        ("features", ("features",)),
        ("brand", ("store",)),
        ("categories", ("categories", "main_category")),
    ),
    image_url=_image_2023,
)


def read_amazon(schema: AmazonSchema, path: str | Path, meta: str | Path | None = None) -> RawData:
    """Reviews (a file, or the first match of `schema.reviews` in a folder) as interactions, and
    metadata (`meta`, or the first match of `schema.meta` beside the reviews) as the item table:
    text fields flattened to one string each, plus the first image URL."""
    reviews = _find(Path(path), list(schema.reviews), f"{schema.label} reviews")
    fields = dict(zip(schema.review_fields, ("user_id", "item_id", "rating", "timestamp")))
    inter = _records_frame(reviews, json.loads, "JSON", fields, schema.review_fields[:2])
    dropped: dict[str, int] = {}
    meta_path = Path(meta) if meta else _maybe(reviews.parent, list(schema.meta))
    items = None
    if meta_path:
        rows = []
        for rec in _iter_records(meta_path, schema.meta_parser, schema.meta_format):
            row = {"item_id": rec.get(schema.item_id)}
            for column, keys in schema.text:
                row[column] = _join_text(next((rec.get(k) for k in keys if rec.get(k)), rec.get(keys[-1])))
            row["image_url"] = schema.image_url(rec)
            rows.append(row)
        items = _item_table(
            pd.DataFrame(rows, columns=list(rows[0]) if rows else ["item_id"]), str(meta_path), dropped
        )
    return RawData(str(reviews), inter, items, dropped=dropped)


def read_amazon_2014(path: str | Path, meta: str | Path | None = None) -> RawData:
    """`reviews_<Cat>_5.json.gz` (JSON lines) + `meta_<Cat>.json.gz` (Python literals)."""
    return read_amazon(AMAZON_2014, path, meta)


def read_amazon_2018(path: str | Path, meta: str | Path | None = None) -> RawData:
    """`<Cat>_5.json.gz` / `<Cat>.json.gz` reviews + `meta_<Cat>.json.gz`, all JSON lines."""
    return read_amazon(AMAZON_2018, path, meta)


def read_amazon_2023(path: str | Path, meta: str | Path | None = None) -> RawData:
    """`<Cat>.jsonl` reviews keyed by `parent_asin` + `meta_<Cat>.jsonl` with an `images` list."""
    return read_amazon(AMAZON_2023, path, meta)
