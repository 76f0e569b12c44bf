"""Readers for the catalogue formats users bring, one module per format family. Each returns a `RawData`: string ids, an
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

Modules: `common` (RawData, drop reasons, file and line helpers, the item table), `dialect`
(separator, escape character and encoding of text files), `delimited` (CSV/TSV/Parquet),
`table` (any table with a column map), `presplit` (given splits), `amazon` (the three Amazon
releases, one reader parameterised by `AmazonSchema`), `movielens`, `recbole`, `images` (item
images by id). `vlmrec.data.formats` maps each `--format` to its reader.
"""

from vlmrec.data.readers.amazon import (
    AMAZON_2014,
    AMAZON_2018,
    AMAZON_2023,
    AmazonSchema,
    read_amazon,
    read_amazon_2014,
    read_amazon_2018,
    read_amazon_2023,
)
from vlmrec.data.readers.common import (
    DUPLICATE_ITEM,
    MALFORMED_ID,
    MISSING_ITEM_ID,
    RawData,
    drop_malformed_ids,
)
from vlmrec.data.readers.delimited import read_delimited, read_delimited_header
from vlmrec.data.readers.dialect import MIXED_ENCODING, SEPARATORS, Dialect, check_sep, table_dialect
from vlmrec.data.readers.images import IMAGE_EXTENSIONS, attach_images
from vlmrec.data.readers.movielens import (
    MOVIELENS_100K_GENRES,
    read_movielens_1m,
    read_movielens_100k,
    read_movielens_latest,
)
from vlmrec.data.readers.presplit import read_presplit
from vlmrec.data.readers.recbole import read_recbole_atomic
from vlmrec.data.readers.table import COLUMN_NAMES, parse_times, read_table, resolve_columns

__all__ = [
    "AMAZON_2014",
    "AMAZON_2018",
    "AMAZON_2023",
    "COLUMN_NAMES",
    "DUPLICATE_ITEM",
    "IMAGE_EXTENSIONS",
    "MALFORMED_ID",
    "MISSING_ITEM_ID",
    "MIXED_ENCODING",
    "MOVIELENS_100K_GENRES",
    "SEPARATORS",
    "AmazonSchema",
    "Dialect",
    "RawData",
    "attach_images",
    "check_sep",
    "drop_malformed_ids",
    "parse_times",
    "read_amazon",
    "read_amazon_2014",
    "read_amazon_2018",
    "read_amazon_2023",
    "read_delimited",
    "read_delimited_header",
    "read_movielens_100k",
    "read_movielens_1m",
    "read_movielens_latest",
    "read_presplit",
    "read_recbole_atomic",
    "read_table",
    "resolve_columns",
    "table_dialect",
]
