"""Readers for the catalogue formats users bring. Each returns a `RawData`: string ids, an
optional item table and, for pre-split folders, the given splits."""

from __future__ import annotations

import ast
import gzip
import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vlmrec.errors import DataError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
MOVIELENS_100K_GENRES = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]


@dataclass
class RawData:
    source: str
    interactions: pd.DataFrame | None
    items: pd.DataFrame | None = None
    presplit: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] | None = None


# ---- helpers ---------------------------------------------------------------------------------
def _open_text(path: Path, encoding: str = "utf-8") -> io.TextIOBase:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding)
    return open(path, encoding=encoding)


def _iter_records(path: Path, parser: Callable[[str], Any], what: str) -> Iterator[dict]:
    """Yield one dict per non-empty line; a bad line raises DataError with its number."""
    with _open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = parser(line)
            except (ValueError, SyntaxError) as e:
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
    return pd.DataFrame(rows, columns=list(fields.values()))


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


def attach_images(items: pd.DataFrame, image_dir: str | Path | None) -> pd.DataFrame:
    """Set `image_path` to `<image_dir>/<item_id>.<ext>` where such a file exists."""
    items = items.copy()
    if image_dir is None:
        if "image_path" not in items.columns:
            items["image_path"] = None
        return items
    d = Path(image_dir)
    if not d.is_dir():
        raise DataError(f"{d}: image directory not found")
    by_stem: dict[str, Path] = {}
    for p in d.iterdir():
        if p.suffix.lower() in IMAGE_EXTENSIONS:
            by_stem.setdefault(p.stem, p.resolve())
    items["image_path"] = [str(by_stem[i]) if i in by_stem else None for i in items["item_id"].astype(str)]
    log.info("%s: images found for %d of %d items", d, items["image_path"].notna().sum(), len(items))
    return items


def read_delimited(path: Path, sep: str | None = None, **kwargs) -> pd.DataFrame:
    """CSV/TSV/Parquet by extension, with the file named in any parse error."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if sep is None:
            sep = "\t" if path.suffix in (".tsv", ".tab") or path.name.endswith(".tsv.gz") else ","
        return pd.read_csv(path, sep=sep, **kwargs)
    except pd.errors.ParserError as e:
        raise DataError(f"{path}: cannot parse: {e}") from None


# ---- Amazon ------------------------------------------------------------------------------
def read_amazon_2014(path: str | Path, meta: str | Path | None = None) -> RawData:
    """`reviews_<Cat>_5.json.gz` (JSON lines) + `meta_<Cat>.json.gz` (Python literals)."""
    p = Path(path)
    reviews = _find(p, ["reviews_*.json.gz", "reviews_*.json"], "Amazon 2014 reviews")
    inter = _records_frame(
        reviews,
        json.loads,
        "JSON",
        {"reviewerID": "user_id", "asin": "item_id", "overall": "rating", "unixReviewTime": "timestamp"},
        ("reviewerID", "asin"),
    )
    meta_path = Path(meta) if meta else _maybe(reviews.parent, ["meta_*.json.gz", "meta_*.json"])
    items = None
    if meta_path:
        rows = []
        for rec in _iter_records(meta_path, ast.literal_eval, "Python literal"):
            rows.append(
                {
                    "item_id": rec.get("asin"),
                    "title": _join_text(rec.get("title")),
                    "description": _join_text(rec.get("description")),
                    "brand": _join_text(rec.get("brand")),
                    "categories": _join_text(rec.get("categories")),
                    "image_url": rec.get("imUrl"),
                }
            )
        items = pd.DataFrame(rows)
    return RawData(str(reviews), inter, items)


def read_amazon_2018(path: str | Path, meta: str | Path | None = None) -> RawData:
    """`<Cat>_5.json.gz` / `<Cat>.json.gz` reviews + `meta_<Cat>.json.gz`, all JSON lines."""
    p = Path(path)
    reviews = _find(p, ["*_5.json.gz", "[!m]*.json.gz", "*.json"], "Amazon 2018 reviews")
    inter = _records_frame(
        reviews,
        json.loads,
        "JSON",
        {"reviewerID": "user_id", "asin": "item_id", "overall": "rating", "unixReviewTime": "timestamp"},
        ("reviewerID", "asin"),
    )
    meta_path = Path(meta) if meta else _maybe(reviews.parent, ["meta_*.json.gz", "meta_*.json"])
    items = None
    if meta_path:
        rows = []
        for rec in _iter_records(meta_path, json.loads, "JSON"):
            urls = rec.get("imageURLHighRes") or rec.get("imageURL") or []
            rows.append(
                {
                    "item_id": rec.get("asin"),
                    "title": _join_text(rec.get("title")),
                    "description": _join_text(rec.get("description")),
                    "brand": _join_text(rec.get("brand")),
                    "categories": _join_text(rec.get("category")),
                    "image_url": urls[0] if urls else None,
                }
            )
        items = pd.DataFrame(rows)
    return RawData(str(reviews), inter, items)


def read_amazon_2023(path: str | Path, meta: str | Path | None = None) -> RawData:
    """`<Cat>.jsonl` reviews keyed by `parent_asin` + `meta_<Cat>.jsonl` with an `images` list."""
    p = Path(path)
    reviews = _find(p, ["[!m]*.jsonl", "[!m]*.jsonl.gz"], "Amazon 2023 reviews")
    inter = _records_frame(
        reviews,
        json.loads,
        "JSON",
        {"user_id": "user_id", "parent_asin": "item_id", "rating": "rating", "timestamp": "timestamp"},
        ("user_id", "parent_asin"),
    )
    meta_path = Path(meta) if meta else _maybe(reviews.parent, ["meta_*.jsonl", "meta_*.jsonl.gz"])
    items = None
    if meta_path:
        rows = []
        for rec in _iter_records(meta_path, json.loads, "JSON"):
            images = rec.get("images") or []
            first = images[0] if images else {}
            url = (
                first.get("large") or first.get("hi_res") or first.get("thumb")
                if isinstance(first, dict)
                else first
            )
            rows.append(
                {
                    "item_id": rec.get("parent_asin"),
                    "title": _join_text(rec.get("title")),
                    "description": _join_text(rec.get("description")),
                    "features": _join_text(rec.get("features")),
                    "brand": _join_text(rec.get("store")),
                    "categories": _join_text(rec.get("categories") or rec.get("main_category")),
                    "image_url": url,
                }
            )
        items = pd.DataFrame(rows)
    return RawData(str(reviews), inter, items)


def _maybe(directory: Path, patterns: list[str]) -> Path | None:
    for pat in patterns:
        hits = sorted(directory.glob(pat))
        if hits:
            return hits[0]
    return None


# ---- MovieLens ---------------------------------------------------------------------------
def read_movielens_100k(path: str | Path) -> RawData:
    d = Path(path)
    data = _find(d, ["u.data"], "MovieLens-100k u.data")
    inter = _read_fixed(data, "\t", ["user_id", "item_id", "rating", "timestamp"])
    items = None
    item_file = data.parent / "u.item"
    if item_file.exists():
        raw = _read_fixed(item_file, "|", None, encoding="latin-1")
        if raw.shape[1] < 5 + len(MOVIELENS_100K_GENRES):
            raise DataError(f"{item_file}: expected 24 '|'-separated fields per line, found {raw.shape[1]}")
        flags = raw.iloc[:, 5 : 5 + len(MOVIELENS_100K_GENRES)].astype(int).to_numpy()
        genres = [", ".join(g for g, f in zip(MOVIELENS_100K_GENRES, row) if f) for row in flags]
        items = pd.DataFrame(
            {"item_id": raw.iloc[:, 0].astype(str), "title": raw.iloc[:, 1], "genres": genres}
        )
    return RawData(str(data), inter, items)


def read_movielens_1m(path: str | Path) -> RawData:
    d = Path(path)
    data = _find(d, ["ratings.dat"], "MovieLens-1M ratings.dat")
    inter = _read_fixed(data, "::", ["user_id", "item_id", "rating", "timestamp"])
    items = None
    if (data.parent / "movies.dat").exists():
        raw = _read_fixed(
            data.parent / "movies.dat", "::", ["item_id", "title", "genres"], encoding="latin-1"
        )
        raw["genres"] = raw["genres"].str.replace("|", ", ", regex=False)
        items = raw
    return RawData(str(data), inter, items)


def read_movielens_latest(path: str | Path) -> RawData:
    d = Path(path)
    data = _find(d, ["ratings.csv"], "MovieLens ratings.csv")
    inter = read_delimited(data).rename(columns={"userId": "user_id", "movieId": "item_id"})
    items = None
    if (data.parent / "movies.csv").exists():
        items = read_delimited(data.parent / "movies.csv").rename(columns={"movieId": "item_id"})
        items["genres"] = items["genres"].str.replace("|", ", ", regex=False)
    return RawData(str(data), inter, items)


def read_recbole_atomic(path: str | Path) -> RawData:
    """RecBole atomic files (`<name>.inter` / `<name>.item`, header `field:type`), as shipped
    for MovieLens-100k inside the recbole wheel."""
    d = Path(path)
    inter_file = _find(d, ["*.inter"], "RecBole .inter")
    inter = read_delimited(inter_file, sep="\t", encoding="latin-1")
    inter.columns = [c.split(":")[0] for c in inter.columns]
    items = None
    item_file = inter_file.with_suffix(".item")
    if item_file.exists():
        items = read_delimited(item_file, sep="\t", encoding="latin-1")
        items.columns = [c.split(":")[0] for c in items.columns]
        items = items.rename(columns={"movie_title": "title", "class": "genres"})
        if "genres" in items.columns:
            items["genres"] = items["genres"].fillna("").str.replace(" ", ", ", regex=False)
    return RawData(str(inter_file), inter, items)


def _read_fixed(path: Path, sep: str, names: list[str] | None, encoding: str = "utf-8") -> pd.DataFrame:
    """Headerless delimited file with a known number of fields; names the bad line."""
    rows = []
    with _open_text(path, encoding=encoding) as f:
        for lineno, line in enumerate(f, 1):
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
    return pd.DataFrame(rows, columns=names)


# ---- generic table and pre-split folders -----------------------------------------------------
def read_table(
    interactions: str | Path,
    items: str | Path | None = None,
    columns: dict[str, str] | None = None,
    sep: str | None = None,
) -> RawData:
    """Any CSV/TSV/Parquet interactions table. `columns` maps our names (user_id, item_id,
    rating, timestamp) to the file's; the item table needs `item_id` (or its mapped name)."""
    p = Path(interactions)
    df = read_delimited(p, sep=sep)
    columns = columns or {}
    df = df.rename(columns={v: k for k, v in columns.items()})
    item_df = None
    if items is not None:
        item_df = read_delimited(Path(items), sep=sep).rename(
            columns={columns.get("item_id", "item_id"): "item_id"}
        )
        if "item_id" not in item_df.columns:
            raise DataError(
                f"{items}: missing column 'item_id' in the item table (found {list(item_df.columns)})"
            )
    return RawData(str(p), df, item_df)


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
            item_df = read_delimited(Path(items)) if items else None
            return RawData(str(d), None, item_df, tuple(frames))  # type: ignore[arg-type]
    raise DataError(f"{d}: no train.tsv/test.tsv or train.txt/test.txt found")


def _read_pairs(path: Path) -> pd.DataFrame:
    rows = []
    with _open_text(path) as f:
        for lineno, line in enumerate(f, 1):
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
    df = pd.DataFrame([r + [None] * (width - len(r)) for r in rows], columns=names)
    for c in ("rating", "timestamp"):
        if c in df.columns:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def _read_lists(path: Path) -> pd.DataFrame:
    rows = []
    with _open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                log.debug("%s: line %d: user with no items", path, lineno)
            rows.extend((parts[0], it) for it in parts[1:])
    return pd.DataFrame(rows, columns=["user_id", "item_id"])
