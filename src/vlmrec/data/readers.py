"""Readers for the catalogue formats users bring. Each returns a `RawData`: string ids, an
optional item table and, for pre-split folders, the given splits.

Ids are text, verbatim, in every reader: `007` and `7` are two items, `0.0` stays `0.0`, and an
image `00099.jpg` belongs to item `00099` (not `99`). Delimited files read their id columns as
text with only the empty cell counting as missing (`NA`, `null`, `None` are ids like any other);
ids that a binary format stored as numbers are converted by `interactions.ids_as_text`.

Item tables: rows without an id are dropped, and a duplicated id keeps its *first* row, with a
warning naming how many ids were duplicated and the first few (Amazon metadata files repeat
records; refusing them would make real catalogues unreadable). The counts are in
`RawData.dropped`.
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import logging
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from vlmrec.data.interactions import ids_as_text
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


@dataclass
class RawData:
    """What a reader found: interactions (or given splits), an optional item table, and the
    number of rows it dropped for each reason (`dropped`)."""

    source: str
    interactions: pd.DataFrame | None
    items: pd.DataFrame | None = None
    presplit: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] | None = None
    dropped: dict[str, int] = field(default_factory=dict)


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


def _decode_error(path: Path, e: UnicodeDecodeError, encoding: str) -> DataError:
    """A DataError naming the file and the line, file offset and value of the first byte that is
    not `encoding` (the position in `e` is relative to a read buffer, so the file is scanned)."""
    bad = _first_undecodable(path, encoding)
    at = (
        f"line {bad[0]}, byte 0x{bad[2]:02x} at offset {bad[1]}" if bad else f"byte 0x{e.object[e.start]:02x}"
    )
    return DataError(f"{path}: not valid {encoding} text ({at}); is it a text file in another encoding?")


def _first_undecodable(path: Path, encoding: str, chunk: int = 1 << 20) -> tuple[int, int, int] | None:
    """(line number, file offset, byte value) of the first byte `encoding` cannot decode."""
    import codecs

    decoder = codecs.getincrementaldecoder(encoding)()
    opener = gzip.open if path.suffix == ".gz" else open
    done, lines = 0, 1
    try:
        with opener(path, "rb") as f:
            while block := f.read(chunk):
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as err:
                    held = len(err.object) - len(block)  # bytes held back from the previous block
                    offset = done - held + err.start
                    lines += block[: max(0, offset - done)].count(b"\n")
                    return lines, offset, err.object[err.start]
                done += len(block)
                lines += block.count(b"\n")
    except (OSError, EOFError, LookupError):
        return None
    return None


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
    for p in sorted(d.iterdir(), key=lambda q: q.name):
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file():
            by_stem.setdefault(p.stem, p.resolve())
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


def _table_kind(path: Path, sep: str | None) -> str | None:
    """None for Parquet, else the field separator (by extension unless given)."""
    if path.suffix == ".parquet":
        return None
    if sep is not None:
        return sep
    return "\t" if path.suffix in (".tsv", ".tab") or path.name.endswith(".tsv.gz") else ","


def _guard_table(path: Path, sep: str | None, what: str, hint: str) -> None:
    _check_file(path, what, hint)
    if _table_kind(path, sep) is None:
        _sniff_binary(path, what, allowed=(b"PAR1",))
    elif path.suffix != ".gz":
        _sniff_binary(path, what)


def _read_or_explain(path: Path, what: str, encoding: str, read: Callable[[], Any]) -> Any:
    """Run `read`, turning the errors pandas/pyarrow raise for bad files into DataErrors."""
    try:
        return read()
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: no header row or columns found; expected {what}") from None
    except pd.errors.ParserError as e:
        raise DataError(f"{path}: cannot parse: {e}") from None
    except UnicodeDecodeError as e:
        raise _decode_error(path, e, encoding) from None
    except DataError:
        raise
    except Exception as e:  # pyarrow, gzip and zlib raise several unrelated types for a bad file
        raise DataError(f"{path}: cannot read {what}: {type(e).__name__}: {e}") from None


def read_delimited_header(
    path: Path, sep: str | None = None, *, what: str = "a table", hint: str = "", encoding: str = "utf-8"
) -> list[str]:
    """The column names of a CSV/TSV/Parquet file, with `read_delimited`'s checks."""
    path = Path(path)
    _guard_table(path, sep, what, hint)
    kind = _table_kind(path, sep)
    if kind is None:
        import pyarrow.parquet as pq

        return _read_or_explain(path, what, encoding, lambda: [str(c) for c in pq.read_schema(path).names])
    return _read_or_explain(
        path,
        what,
        encoding,
        lambda: [str(c) for c in pd.read_csv(path, sep=kind, nrows=0, encoding=encoding).columns],
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

    `id_columns` (file column names, or a test on them) are read as verbatim text where only the
    empty cell is missing; the other columns get pandas' usual type inference and missing
    markers. A folder, an empty file, an image or another binary file is refused with a
    DataError saying it expected `what` (then `hint`).
    """
    path = Path(path)
    header = read_delimited_header(path, sep, what=what, hint=hint, encoding=encoding)
    is_id = id_columns if callable(id_columns) else set(id_columns).__contains__
    ids = [c for c in header if is_id(c)]
    kind = _table_kind(path, sep)
    if kind is None:
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
            sep=kind,
            encoding=encoding,
            dtype={c: str for c in ids},
            keep_default_na=False,
            na_values={c: ([""] if c in ids else _NA_CELLS) for c in header},
        ),
    )


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
    dropped: dict[str, int] = {}
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
        items = _item_table(
            pd.DataFrame(rows, columns=list(rows[0]) if rows else ["item_id"]), str(meta_path), dropped
        )
    return RawData(str(reviews), inter, items, dropped=dropped)


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
    dropped: dict[str, int] = {}
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
        items = _item_table(
            pd.DataFrame(rows, columns=list(rows[0]) if rows else ["item_id"]), str(meta_path), dropped
        )
    return RawData(str(reviews), inter, items, dropped=dropped)


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
    dropped: dict[str, int] = {}
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
        items = _item_table(
            pd.DataFrame(rows, columns=list(rows[0]) if rows else ["item_id"]), str(meta_path), dropped
        )
    return RawData(str(reviews), inter, items, dropped=dropped)


def _maybe(directory: Path, patterns: list[str]) -> Path | None:
    for pat in patterns:
        hits = sorted(directory.glob(pat))
        if hits:
            return hits[0]
    return None


# ---- MovieLens ---------------------------------------------------------------------------
def read_movielens_100k(path: str | Path) -> RawData:
    """`u.data` (tab-separated user, item, rating, timestamp) + `u.item` (latin-1, '|'-separated,
    19 genre flags), ids kept as written."""
    d = Path(path)
    data = _find(d, ["u.data"], "MovieLens-100k u.data")
    inter = _read_fixed(data, "\t", ["user_id", "item_id", "rating", "timestamp"])
    items = None
    dropped: dict[str, int] = {}
    item_file = data.parent / "u.item"
    if item_file.exists():
        raw = _read_fixed(item_file, "|", None, encoding="latin-1")
        if raw.shape[1] < 5 + len(MOVIELENS_100K_GENRES):
            raise DataError(f"{item_file}: expected 24 '|'-separated fields per line, found {raw.shape[1]}")
        try:
            flags = raw.iloc[:, 5 : 5 + len(MOVIELENS_100K_GENRES)].astype(int).to_numpy()
        except ValueError as e:
            raise DataError(f"{item_file}: genre flags must be 0 or 1: {e}") from None
        genres = [", ".join(g for g, f in zip(MOVIELENS_100K_GENRES, row) if f) for row in flags]
        items = _item_table(
            pd.DataFrame({"item_id": raw.iloc[:, 0], "title": raw.iloc[:, 1], "genres": genres}),
            str(item_file),
            dropped,
        )
    return RawData(str(data), inter, items, dropped=dropped)


def read_movielens_1m(path: str | Path) -> RawData:
    """`ratings.dat` + `movies.dat` ('::'-separated, latin-1), ids kept as written."""
    d = Path(path)
    data = _find(d, ["ratings.dat"], "MovieLens-1M ratings.dat")
    inter = _read_fixed(data, "::", ["user_id", "item_id", "rating", "timestamp"])
    items = None
    dropped: dict[str, int] = {}
    if (data.parent / "movies.dat").exists():
        raw = _read_fixed(
            data.parent / "movies.dat", "::", ["item_id", "title", "genres"], encoding="latin-1"
        )
        raw["genres"] = raw["genres"].str.replace("|", ", ", regex=False)
        items = _item_table(raw, str(data.parent / "movies.dat"), dropped)
    return RawData(str(data), inter, items, dropped=dropped)


def read_movielens_latest(path: str | Path) -> RawData:
    """`ratings.csv` (userId, movieId, rating, timestamp) + `movies.csv`, ids read as text."""
    d = Path(path)
    data = _find(d, ["ratings.csv"], "MovieLens ratings.csv")
    inter = read_delimited(data, id_columns=("userId", "movieId"), what="a MovieLens ratings.csv").rename(
        columns={"userId": "user_id", "movieId": "item_id"}
    )
    items = None
    dropped: dict[str, int] = {}
    movies = data.parent / "movies.csv"
    if movies.exists():
        items = read_delimited(movies, id_columns=("movieId",), what="a MovieLens movies.csv")
        items = _item_table(items.rename(columns={"movieId": "item_id"}), str(movies), dropped)
        if "genres" in items.columns:
            items["genres"] = items["genres"].fillna("").astype(str).str.replace("|", ", ", regex=False)
            items["genres"] = items["genres"].astype(object)
    return RawData(str(data), inter, items, dropped=dropped)


def read_recbole_atomic(path: str | Path) -> RawData:
    """RecBole atomic files (`<name>.inter` / `<name>.item`, header `field:type`), as shipped
    for MovieLens-100k inside the recbole wheel."""
    d = Path(path)
    inter_file = _find(d, ["*.inter"], "RecBole .inter")
    what = "a RecBole atomic file (tab-separated, header 'name:type')"
    inter = read_delimited(inter_file, sep="\t", encoding="latin-1", id_columns=_recbole_token, what=what)
    inter.columns = [c.split(":")[0] for c in inter.columns]
    items = None
    dropped: dict[str, int] = {}
    item_file = inter_file.with_suffix(".item")
    if item_file.exists():
        items = read_delimited(item_file, sep="\t", encoding="latin-1", id_columns=_recbole_token, what=what)
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
) -> RawData:
    """Any CSV/TSV/Parquet interactions table. `columns` maps our names (user_id, item_id,
    rating, timestamp) to the file's (see `resolve_columns`); the item table needs `item_id` or
    the interactions' mapped item column name. Id columns are read as verbatim text."""
    p = Path(interactions)
    mapping = resolve_columns(
        columns, read_delimited_header(p, sep, what=_INTERACTIONS, hint=_FOLDER_HINT), str(p)
    )
    id_cols = (mapping["user_id"], mapping["item_id"])
    df = read_delimited(p, sep=sep, id_columns=id_cols, what=_INTERACTIONS, hint=_FOLDER_HINT)
    df = _apply_columns(df, mapping, str(p))
    item_df = None
    dropped: dict[str, int] = {}
    if items is not None:
        ip = Path(items)
        what = "an item table (CSV, TSV or Parquet with a header row: item_id, text columns)"
        found = read_delimited_header(ip, sep, what=what)
        item_col = mapping["item_id"] if mapping["item_id"] in found else "item_id"
        if item_col not in found:
            raise DataError(f"{ip}: missing column {mapping['item_id']!r} in the item table (found {found})")
        item_df = read_delimited(ip, sep=sep, id_columns=(item_col,), what=what)
        if item_col != "item_id" and "item_id" in item_df.columns:
            item_df = item_df.drop(columns="item_id")
        item_df = _item_table(item_df.rename(columns={item_col: "item_id"}), str(ip), dropped)
    return RawData(str(p), df, item_df, dropped=dropped)


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
    for c in ("rating", "timestamp"):
        if c in df.columns:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def _read_lists(path: Path) -> pd.DataFrame:
    rows = []
    for lineno, line in _lines(path, what="'user item1 item2 ...' lines"):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            log.debug("%s: line %d: user with no items", path, lineno)
        rows.extend((parts[0], it) for it in parts[1:])
    return pd.DataFrame(rows, columns=["user_id", "item_id"], dtype=object)
