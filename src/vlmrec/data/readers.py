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

Delimited text files (`read_delimited`) have their separator sniffed unless given, are read
with a backslash as escape character only when a field holds a backslash-escaped quote, and
are decoded with the encoding given (UTF-8 by default); a byte it cannot decode, or a
single-byte encoding applied to UTF-8 text, is an error naming the file and byte offset
(`table_dialect`).
"""

from __future__ import annotations

import ast
import codecs
import csv
import functools
import gzip
import io
import json
import logging
import re
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


def _decode_error(
    path: Path, e: UnicodeDecodeError, encoding: str, hint: str = "is it a text file in another encoding?"
) -> DataError:
    """A DataError naming the file and the line, file offset and value of the first byte that is
    not `encoding` (the position in `e` is relative to a read buffer, so the file is scanned)."""
    bad = _first_undecodable(path, encoding)
    at = (
        f"line {bad[0]}, byte 0x{bad[2]:02x} at offset {bad[1]}" if bad else f"byte 0x{e.object[e.start]:02x}"
    )
    return DataError(f"{path}: not valid {encoding} text ({at}); {hint}")


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


# ---- delimited text: separator, quoting, encoding ---------------------------------------------
SEPARATORS = (",", ";", "\t", "|")
"""The separators a delimited text file is sniffed for (`sep` can name any single character)."""
MIXED_ENCODING = "utf-8+latin-1"
"""The `encoding` for files that mix UTF-8 and latin-1 lines (Book-Crossing's BX-Books.csv):
bytes that form valid UTF-8 are read as UTF-8, every other byte as latin-1."""
_LATIN1_FALLBACK = "vlmrec-latin-1-fallback"


def _latin1_fallback(e: UnicodeError) -> tuple[str, int]:
    """Codec error handler: the undecodable bytes as latin-1 characters."""
    assert isinstance(e, UnicodeDecodeError)  # registered for decoding only
    return e.object[e.start : e.end].decode("latin-1"), e.end


codecs.register_error(_LATIN1_FALLBACK, _latin1_fallback)
_SNIFF_BYTES = 1 << 16
_SNIFF_ROWS = 200
# Single-byte encodings decode any byte, so a UTF-8 file read with one of them turns into
# mojibake ("é" -> "Ã©") without an error: such reads are checked for UTF-8 sequences. In UTF-8
# text every non-ASCII byte is in one, in a file mixing UTF-8 and latin-1 lines many are (75% in
# Book-Crossing's BX-Books.csv), in latin-1 text only the rare coincidental pair (a capital
# accented letter followed by a symbol such as "Ô½": 10% of BX-Book-Ratings.csv's 21 bytes).
_SINGLE_BYTE = ("iso8859", "latin", "cp125", "cp437", "cp850", "mac-")
_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
_NON_ASCII = bytes(range(128, 256))
_MOJIBAKE_SHARE = 0.25  # share of non-ASCII bytes in UTF-8 sequences from which a read is refused
_ENCODING_HINT = (
    "give the file's encoding with --encoding (e.g. latin-1, or utf-8+latin-1 for a file mixing both)"
)


@dataclass(frozen=True)
class Dialect:
    """How a delimited text file is read: field separator, escape character (`\\` when fields
    hold backslash-escaped quotes `\\"`), and encoding as the user named it."""

    sep: str
    escapechar: str | None
    encoding: str
    sniffed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "sep": self.sep,
            "sep_sniffed": self.sniffed,
            "escapechar": self.escapechar,
            "encoding": self.encoding,
        }

    def pandas(self) -> dict[str, Any]:
        codec, errors = _codec(self.encoding)
        return {"sep": self.sep, "escapechar": self.escapechar, "encoding": codec, "encoding_errors": errors}


def _codec(encoding: str) -> tuple[str, str]:
    """(Python codec, decode error handler) for an encoding name as users give it."""
    if encoding.strip().lower().replace("_", "-") in (MIXED_ENCODING, "utf8+latin1", "utf-8+latin1"):
        return "utf-8", _LATIN1_FALLBACK
    try:
        return codecs.lookup(encoding).name, "strict"
    except LookupError:
        raise DataError(
            f"--encoding {encoding!r}: unknown encoding; use a Python codec name such as utf-8, latin-1, "
            f"cp1252, or {MIXED_ENCODING} for files that mix UTF-8 and latin-1"
        ) from None


def check_sep(sep: str | None) -> str | None:
    """A separator as users type it (`;`, `tab`, `\\t`, `|`) -> one character, or an error."""
    if sep is None:
        return None
    value = {"tab": "\t", "\\t": "\t", "space": " "}.get(sep.lower() if len(sep) > 1 else sep, sep)
    if len(value) != 1 or value in ('"', "\n", "\r"):
        raise DataError(
            f"--sep {sep!r}: expected one character such as ',', ';', '|' or 'tab' (leave it out to have "
            "the separator sniffed from the file)"
        )
    return value


def _stem_suffix(path: Path) -> str:
    return Path(path.name[: -len(".gz")]).suffix.lower() if path.name.endswith(".gz") else path.suffix.lower()


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() == ".parquet"


def _open_bytes(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _sniff_sep(path: Path, default: str, encoding: str) -> str:
    """The separator under which the first lines of `path` split into the same number (> 1) of
    fields: the extension's default when it does, else the candidate giving the most fields,
    else the default (the parser then says where the file breaks)."""
    try:
        with _open_bytes(path) as f:
            head = f.read(_SNIFF_BYTES)
    except (OSError, EOFError):
        return default
    codec, _ = _codec(encoding)
    text = head.decode(codec, errors="replace")
    truncated = len(head) == _SNIFF_BYTES
    escapechar = "\\" if '\\"' in text else None
    fields: dict[str, int] = {}
    for sep in SEPARATORS:
        try:
            counts = [
                len(r) for r in csv.reader(io.StringIO(text), delimiter=sep, escapechar=escapechar) if r
            ]
        except csv.Error:
            continue
        counts = counts[: _SNIFF_ROWS + 1]
        if truncated and len(counts) > 1 and len(counts) <= _SNIFF_ROWS:
            counts = counts[:-1]  # the sample may end inside the last record
        if counts and counts[0] > 1 and all(n == counts[0] for n in counts):
            fields[sep] = counts[0]
    if default in fields or not fields:
        return default
    return max(fields, key=lambda s: (fields[s], -SEPARATORS.index(s)))


@dataclass
class _Scan:
    escaped_quote: bool = False
    utf8_first: tuple[int, int, bytes] | None = None  # line, offset, bytes of the first UTF-8 sequence
    utf8_bytes: int = 0
    non_ascii: int = 0


def _scan(path: Path, sep: str, count_utf8: bool, chunk: int = 1 << 20) -> _Scan:
    """One pass over the file's bytes: does a field hold a backslash-escaped quote (`\\"` not
    followed by the separator, a quote, a line end or the end of the file, which in a standard
    CSV would close the field in mid-text), and (with `count_utf8`) how many non-ASCII bytes form UTF-8 sequences."""
    escaped = re.compile(rb'\\"(?![' + re.escape(sep.encode()) + rb'"\r\n]|\Z)')
    scan = _Scan()
    carry, done, lines = b"", 0, 0
    try:
        with _open_bytes(path) as f:
            while block := f.read(chunk):
                buf = carry + block
                if not scan.escaped_quote and escaped.search(buf):
                    scan.escaped_quote = True
                    if not count_utf8:
                        break
                if count_utf8:
                    scan.non_ascii += len(block) - len(block.translate(None, _NON_ASCII))
                    for m in _UTF8_SEQUENCE.finditer(buf):
                        if m.end() <= len(carry):
                            continue  # counted with the previous block
                        scan.utf8_bytes += m.end() - m.start()
                        if scan.utf8_first is None:
                            start = m.start() - len(carry)
                            line = lines + 1 + block[: max(0, start)].count(b"\n")
                            scan.utf8_first = (line, done + start, m.group())
                done += len(block)
                lines += block.count(b"\n")
                carry = block[-3:]
    except (OSError, EOFError):
        pass  # a corrupt .gz: the reader says so
    return scan


@functools.lru_cache(maxsize=32)
def _dialect_cached(
    path: str, resolved: str, size: int, mtime_ns: int, sep: str | None, encoding: str
) -> Dialect:
    """`table_dialect`, once per file version (`resolved`, size, mtime) and options."""
    p = Path(path)
    default = "\t" if _stem_suffix(p) in (".tsv", ".tab") else ","
    sniffed = sep is None
    use = _sniff_sep(p, default, encoding) if sep is None else sep
    codec, _ = _codec(encoding)
    single_byte = codec.startswith(_SINGLE_BYTE)
    scan = _scan(p, use, count_utf8=single_byte)
    if single_byte and scan.utf8_first is not None:
        line, offset, seq = scan.utf8_first
        what = (
            f"{p}: holds UTF-8 text (line {line}, bytes {seq.hex(' ')} at offset {offset} are "
            f"{seq.decode('utf-8')!r} in UTF-8, {seq.decode(codec)!r} in {encoding})"
        )
        if scan.utf8_bytes >= _MOJIBAKE_SHARE * max(scan.non_ascii, 1):
            raise DataError(
                f"{what}; reading it as {encoding} would garble its text: use --encoding utf-8, or "
                f"{MIXED_ENCODING} if it mixes UTF-8 and {encoding} lines"
            )
        log.warning("%s; read as %s all the same (few such bytes)", what, encoding)
    if sniffed and use != default:
        log.info("%s: fields separated by %r (sniffed from the first lines)", p, use)
    if scan.escaped_quote:
        log.info("%s: fields hold backslash-escaped quotes (\\\"); reading with escape character '\\'", p)
    return Dialect(use, "\\" if scan.escaped_quote else None, encoding, sniffed)


def table_dialect(path: str | Path, sep: str | None = None, encoding: str = "utf-8") -> Dialect | None:
    """How `read_delimited` reads `path`: None for Parquet; else the separator (`sep`, or
    sniffed from the first lines among `SEPARATORS`, the extension's default winning when the
    lines are consistent under it), the escape character (`\\` only when a field holds a
    backslash-escaped quote that a standard CSV parser would misread, so standard CSVs keep
    their backslashes), and the encoding. A single-byte encoding (latin-1, cp1252, ...) on a
    file that holds UTF-8 text is refused: it would decode into mojibake without an error."""
    p = Path(path)
    if _is_parquet(p):
        return None
    sep = check_sep(sep)
    _codec(encoding)
    st = p.stat()
    return _dialect_cached(str(p), str(p.resolve()), st.st_size, st.st_mtime_ns, sep, encoding)


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
    encoding: str = "utf-8",
) -> RawData:
    """Any CSV/TSV/Parquet interactions table. `columns` maps our names (user_id, item_id,
    rating, timestamp) to the file's (see `resolve_columns`); the item table needs `item_id` or
    the interactions' mapped item column name. Id columns are read as verbatim text.

    Text files are read with `sep` (default: sniffed per file) and `encoding` (see
    `table_dialect`); `RawData.read_options` records how each file was read. The time column
    may hold numbers (Unix time) or ISO 8601 dates (see `parse_times`)."""
    p = Path(interactions)
    mapping = resolve_columns(
        columns,
        read_delimited_header(p, sep, what=_INTERACTIONS, hint=_FOLDER_HINT, encoding=encoding),
        str(p),
    )
    id_cols = (mapping["user_id"], mapping["item_id"])
    df = read_delimited(
        p, sep=sep, id_columns=id_cols, what=_INTERACTIONS, hint=_FOLDER_HINT, encoding=encoding
    )
    df = _apply_columns(df, mapping, str(p))
    if "timestamp" in df.columns:
        df["timestamp"] = parse_times(df["timestamp"], str(p), mapping["timestamp"])
    options = {"interactions": _read_options(p, sep, encoding)}
    item_df = None
    dropped: dict[str, int] = {}
    if items is not None:
        ip = Path(items)
        what = "an item table (CSV, TSV or Parquet with a header row: item_id, text columns)"
        found = read_delimited_header(ip, sep, what=what, encoding=encoding)
        item_col = mapping["item_id"] if mapping["item_id"] in found else "item_id"
        if item_col not in found:
            raise DataError(f"{ip}: missing column {mapping['item_id']!r} in the item table (found {found})")
        item_df = read_delimited(ip, sep=sep, id_columns=(item_col,), what=what, encoding=encoding)
        if item_col != "item_id" and "item_id" in item_df.columns:
            item_df = item_df.drop(columns="item_id")
        item_df = _item_table(item_df.rename(columns={item_col: "item_id"}), str(ip), dropped)
        options["items"] = _read_options(ip, sep, encoding)
    return RawData(str(p), df, item_df, dropped=dropped, read_options=options)


def _read_options(path: Path, sep: str | None, encoding: str) -> dict[str, Any]:
    dialect = table_dialect(path, sep, encoding)
    return {"format": "parquet"} if dialect is None else dialect.as_dict()


def parse_times(values: pd.Series, source: str, column: str) -> pd.Series:
    """A time column as numbers: Unix times are left as they are (`validate_interactions`
    makes them float); a column of ISO 8601 dates or date-times (`2021-01-01`,
    `2021-01-01T10:00:00`, `2021-01-01 10:00:00+02:00`) becomes float seconds since 1970-01-01
    UTC, the unit of the Unix times the other readers give (dates without a zone are taken as
    UTC). Any other cell is a DataError naming the column (`column`, as the file names it) and
    the first bad row; empty cells are left missing for `validate_interactions` to report."""
    if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_datetime64_any_dtype(values.dtype):
        if pd.api.types.is_datetime64_any_dtype(values.dtype):  # Parquet timestamps
            utc = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
            return (utc - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
        _warn_if_compact_dates(values, source, column)
        return values
    present = values.notna().to_numpy() & (values.astype(str).str.strip() != "").to_numpy()
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().to_numpy()[present].all():
        _warn_if_compact_dates(numbers, source, column)
        return values
    text = values.astype(object).where(present, None)
    dates = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    bad = present & dates.isna().to_numpy()
    if bad.any():
        row = int(bad.nonzero()[0][0])
        raise DataError(
            f"{source}: row {row + 1}: time column {column!r} is {values.iloc[row]!r}; expected a Unix "
            "timestamp (a number) or an ISO 8601 date such as 2021-01-01 or 2021-01-01T10:00:00, the "
            "same kind in every row"
        )
    return (dates - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)


def _warn_if_compact_dates(numbers: pd.Series, source: str, column: str) -> None:
    """Warn when every time value reads as a compact date (YYYYMMDD, e.g. 20210101): such numbers
    are taken as Unix seconds, which keeps their order (loo and temporal splits stay right) but
    not their meaning."""
    v = pd.to_numeric(numbers, errors="coerce").dropna()
    if v.empty or not (v == v.round()).all() or not v.between(19000101, 21001231).all():
        return
    as_dates = pd.to_datetime(v.astype("int64").astype(str), format="%Y%m%d", errors="coerce")
    if as_dates.notna().all():
        log.warning(
            "%s: time column %r holds numbers that look like compact dates (e.g. %d); they are read "
            "as Unix seconds, which keeps their order but not their meaning: write them as ISO dates "
            "(2021-01-01) for real times",
            source,
            column,
            int(v.iloc[0]),
        )


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
