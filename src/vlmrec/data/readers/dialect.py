"""How a delimited text file is read: its separator (given or sniffed), its escape character and
its encoding (`table_dialect`), with the checks that refuse a wrong encoding instead of reading
mojibake, and decode errors that name the file, line and byte offset (`_decode_error`).
"""

from __future__ import annotations

import codecs
import csv
import functools
import gzip
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmrec.errors import DataError

log = logging.getLogger(__name__)

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
