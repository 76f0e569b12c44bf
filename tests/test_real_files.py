"""Real files as users have them (issue 13): Book-Crossing style `;`-separated latin-1 CSVs with
backslash-escaped quotes, files mixing UTF-8 and latin-1, ISO dates in the time column, the rows
dropped for each reason in the prepare summary and the manifest. Each test failed before the
fix (the last one guards the subprocess path)."""

import json
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from vlmrec.cli import app
from vlmrec.data import prepare_dataset
from vlmrec.data.interactions import validate_interactions
from vlmrec.data.prepare import DUPLICATE_INTERACTION, NO_TRAIN_ITEM
from vlmrec.data.readers import (
    DUPLICATE_ITEM,
    MALFORMED_ID,
    MISSING_ITEM_ID,
    read_table,
    table_dialect,
)
from vlmrec.errors import DataError

BX_COLUMNS = ["--user-col", "User-ID", "--item-col", "ISBN", "--rating-col", "Book-Rating"]
BX_MAP = {"user_id": "User-ID", "item_id": "ISBN", "rating": "Book-Rating"}


def _bx(tmp_path, books_extra: bytes = b""):
    """A small Book-Crossing: `;`-separated, every field quoted, CRLF line ends, latin-1 text,
    `\\"` escapes in titles and in one ISBN, commas inside fields, ISBNs with leading zeros and a
    trailing X, a latin-1 byte inside one ISBN (all as in the real files)."""
    ratings = (
        b'"User-ID";"ISBN";"Book-Rating"\r\n'
        b'"276725";"034545104X";"0"\r\n'
        b'"276726";"0155061224";"5"\r\n'
        b'"276726";"034545104X";"7"\r\n'
        b'"11676";"8475560806\xba";"6"\r\n'
        b'"11676";"0155061224";"8"\r\n'
        b'"11676";"0140292918";"9"\r\n'
        b'"276725";"0140292918";"3"\r\n'
        b'"11676";"\\"0432534220\\"";"6"\r\n'
    )
    books = (
        b'"ISBN";"Book-Title";"Book-Author";"Year-Of-Publication";"Publisher"\r\n'
        b'"034545104X";"Flesh Tones: A Novel";"M. J. Rose";"2002";"Ballantine Books"\r\n'
        b'"0155061224";"Rites of Passage";"Judith Rae";"2001";"Heinle"\r\n'
        b'"0140292918";"Of Mice and Men (Steinbeck \\"Essentials\\")";"John Steinbeck";"2001";'
        b'"Penguin Books Ltd"\r\n'
        b'"8475560806\xba";"Caf\xe9 de la Paix, a \\"novel\\"";"Cort\xe1zar, Julio";"1980";"Alfaguara"\r\n'
        + books_extra
    )
    (tmp_path / "BX-Book-Ratings.csv").write_bytes(ratings)
    (tmp_path / "BX-Books.csv").write_bytes(books)
    return tmp_path / "BX-Book-Ratings.csv", tmp_path / "BX-Books.csv"


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


# ---- the Book-Crossing files end to end -------------------------------------------------------
def test_book_crossing_files_prepare_through_the_cli(tmp_path):
    """Before: "Expected 1 fields in line ..." (`;` read as `,`), then a decode error with no
    way to name the encoding (no --encoding), and titles cut at their `\\"` escapes."""
    ratings, books = _bx(tmp_path)
    out = tmp_path / "ds"
    code, text = invoke(
        "prepare",
        "--interactions",
        ratings,
        "--items",
        books,
        *BX_COLUMNS,
        "--encoding",
        "latin-1",
        "--out",
        out,
    )
    assert code == 0, text
    manifest = json.loads((out / "manifest.json").read_text())
    for role in ("interactions", "items"):
        assert manifest["read_options"][role] == {
            "sep": ";",
            "sep_sniffed": True,
            "escapechar": "\\",
            "encoding": "latin-1",
        }
    items = pd.read_parquet(out / "items.parquet").set_index("item_id")
    verbatim = {"034545104X", "0155061224", "0140292918", "8475560806\u00ba", '"0432534220"'}
    assert set(items.index) == verbatim  # leading zeros, trailing X, odd bytes, escaped quotes
    assert items.loc["0140292918", "Book-Title"] == 'Of Mice and Men (Steinbeck "Essentials")'
    assert items.loc["8475560806\u00ba", "Book-Title"] == 'Caf\u00e9 de la Paix, a "novel"'
    assert items.loc["8475560806\u00ba", "Book-Author"] == "Cort\u00e1zar, Julio"
    assert manifest["stats"]["interactions"] == 8


def test_sep_is_sniffed_per_file_and_can_be_named(tmp_path):
    cases = {  # file: (content, separator)
        "semi.csv": ("user;item;rating\nu1;a,b;1\nu2;c;2\n", ";"),
        "tabs.csv": ("user\titem\nu1\ta\nu2\tb\n", "\t"),
        "pipes.txt": ("user|item\nu1|a\nu2|b\n", "|"),
        "commas.tsv": ("user,item\nu1,a\nu2,b\n", ","),  # the extension is wrong, the lines are not
        "plain.csv": ('user,item,title\nu1,a,"x; y; z"\nu2,b,"p; q; r"\n', ","),  # `;` in fields
        "plain.tsv": ("user\titem\ttitle\nu1\ta\tx,y\nu2\tb\tp,q\n", "\t"),  # `,` in fields
    }
    for name, (text, sep) in cases.items():
        (tmp_path / name).write_text(text)
        d = table_dialect(tmp_path / name)
        assert d.sep == sep and d.sniffed, name
        assert d.escapechar is None, name  # no `\"` in these files: backslashes stay literal
    # --sep wins over the sniffed separator, and is read as typed (`tab`, `\t`)
    assert table_dialect(tmp_path / "semi.csv", sep=",").sep == ","
    assert table_dialect(tmp_path / "tabs.csv", sep="tab").sep == "\t"
    assert table_dialect(tmp_path / "tabs.csv", sep="\\t").sep == "\t"
    raw = read_table(tmp_path / "semi.csv", columns={"user_id": "user", "item_id": "item"})
    assert list(raw.interactions["item_id"]) == ["a,b", "c"]


def test_sep_option_through_the_cli(tmp_path):
    (tmp_path / "i.csv").write_text("user_id|item_id\nu1|a;b\nu1|c\nu2|a;b\nu2|c\nu3|c\n")
    code, text = invoke(
        "prepare", "--interactions", tmp_path / "i.csv", "--sep", "|", "--out", tmp_path / "o"
    )
    assert code == 0, text
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["read_options"]["interactions"]["sep"] == "|"
    assert not manifest["read_options"]["interactions"]["sep_sniffed"]
    assert "a;b" in set(pd.read_parquet(tmp_path / "o" / "items.parquet")["item_id"])
    # a wrong separator named explicitly: the parser's complaint says how the file was read
    code, text = invoke(
        "prepare", "--interactions", tmp_path / "i.csv", "--sep", ";", "--out", tmp_path / "p"
    )
    assert code == 2 and "error:" in text and "i.csv" in text, text


# ---- encodings ---------------------------------------------------------------------------------
def test_wrong_encoding_is_one_error_naming_file_and_offset(tmp_path):
    """Before: a traceback-free error existed for UTF-8, but nothing could be done about it (no
    --encoding), and a latin-1 read of a UTF-8 file gave mojibake without a word."""
    ratings, books = _bx(tmp_path)
    offset = ratings.read_bytes().index(b"\xba")
    code, text = invoke("prepare", "--interactions", ratings, *BX_COLUMNS, "--out", tmp_path / "o")
    assert code == 2 and text.count("error:") == 1 and "Traceback" not in text, text
    assert "BX-Book-Ratings.csv" in text and f"offset {offset}" in text
    assert "not valid utf-8" in text and "--encoding" in text
    # a UTF-8 file read as latin-1 would decode into mojibake: refused, naming the first sequence
    utf8 = tmp_path / "u.csv"
    utf8.write_text("user_id,item_id,title\nu1,i1,Caf\u00e9\nu2,i2,M\u00fcller\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"holds UTF-8 text \(line 2, bytes c3 a9 at offset \d+ are 'é'"):
        read_table(utf8, encoding="latin-1")
    code, text = invoke("prepare", "--interactions", utf8, "--encoding", "latin-1", "--out", tmp_path / "p")
    assert code == 2 and "would garble" in text and "u.csv" in text, text
    # and read as UTF-8 it is right
    assert list(read_table(utf8).interactions["title"]) == ["Caf\u00e9", "M\u00fcller"]


def test_unknown_encoding_and_encoding_for_other_formats_are_refused(tmp_path):
    (tmp_path / "i.csv").write_text("user_id,item_id\nu1,a\n")
    code, text = invoke(
        "prepare", "--interactions", tmp_path / "i.csv", "--encoding", "klingon", "--out", tmp_path / "o"
    )
    assert code == 2 and "unknown encoding" in text, text
    code, text = invoke("prepare", "--format", "planted", "--encoding", "latin-1", "--out", tmp_path / "p")
    assert code == 2 and "--encoding applies to --format table only" in text, text
    code, text = invoke(
        "prepare", "--interactions", tmp_path / "i.csv", "--sep", ";;", "--out", tmp_path / "q"
    )
    assert code == 2 and "--sep ';;'" in text, text


def test_a_file_mixing_utf8_and_latin1_reads_with_the_mixed_encoding(tmp_path):
    """BX-Books.csv holds both: latin-1 alone garbles the UTF-8 lines (refused), UTF-8 alone
    fails on the latin-1 bytes; utf-8+latin-1 reads each as written."""
    ratings, books = _bx(
        tmp_path, books_extra='"0002005018";"Der Schlu\u00dfstrich";"Anne";"2001";"X"\r\n'.encode()
    )
    with pytest.raises(DataError, match="BX-Books.csv: holds UTF-8 text"):
        read_table(ratings, books, columns=BX_MAP, encoding="latin-1")
    with pytest.raises(DataError, match="BX-Book-Ratings.csv: not valid utf-8"):
        read_table(ratings, books, columns=BX_MAP)
    raw = read_table(ratings, books, columns=BX_MAP, encoding="utf-8+latin-1")
    titles = dict(zip(raw.items["item_id"], raw.items["Book-Title"]))
    assert titles["0002005018"] == "Der Schlu\u00dfstrich"
    assert titles["8475560806\u00ba"] == 'Caf\u00e9 de la Paix, a "novel"'


# ---- escaped quotes ----------------------------------------------------------------------------
def test_backslash_escapes_only_where_the_file_uses_them(tmp_path):
    """`\\"` inside a quoted field (Book-Crossing) is a quote; a standard CSV keeps its
    backslashes and its doubled quotes."""
    bx = tmp_path / "bx.csv"
    bx.write_text('item_id;title\n"1";"\\"O\\" Is for Outlaw"\n"2";"Plain"\n')
    assert table_dialect(bx).escapechar == "\\"
    raw = read_table(bx, columns={"user_id": "item_id", "item_id": "title"})
    assert list(raw.interactions["item_id"]) == ['"O" Is for Outlaw', "Plain"]
    std = tmp_path / "std.csv"
    std.write_text(
        "user_id,item_id,title\n"
        'u1,i1,"C:\\dir\\"\n'  # a field ending in a backslash
        'u2,i2,"say \\""hi\\"""\n'  # RFC doubled quotes around backslashes (as pandas writes them)
        "u3,i3,a\\b\n"
    )
    assert table_dialect(std).escapechar is None
    titles = list(read_table(std).interactions["title"])
    assert titles == ["C:\\dir\\", 'say \\"hi\\"', "a\\b"]
    eof = tmp_path / "eof.csv"  # the backslash-ended field at the very end of the file
    eof.write_text('user_id,item_id,path\nu1,i1,"C:\\dir\\"')
    assert table_dialect(eof).escapechar is None
    assert list(read_table(eof).interactions["path"]) == ["C:\\dir\\"]


# ---- ISO dates in the time column --------------------------------------------------------------
def test_iso_dates_become_unix_seconds_and_split_by_time(tmp_path):
    """Before: `row 1: 'timestamp' is '2021-01-01'; expected a number`."""
    (tmp_path / "i.csv").write_text(
        "user_id,item_id,date\n"
        "u1,a,2021-01-03\nu1,b,2021-01-01T10:00:00\nu1,c,2021-01-02 00:00:00+02:00\n"
        "u2,a,2021-02-01\nu2,b,2021-01-05\nu2,c,2021-01-04T23:59:59Z\n"
    )
    raw = read_table(tmp_path / "i.csv", columns={"timestamp": "date"})
    times = validate_interactions(raw.interactions, raw.source)["timestamp"]
    assert times.dtype == "float64"
    assert times.iloc[0] == pd.Timestamp("2021-01-03", tz="UTC").timestamp() == 1609632000.0
    assert times.iloc[1] == 1609495200.0 and times.iloc[2] == 1609538400.0  # 2021-01-01T22:00Z
    ds = prepare_dataset("table", interactions=tmp_path / "i.csv", columns={"timestamp": "date"}, split="loo")
    last = {ds.user_ids[u]: ds.item_ids[i] for u, i in zip(ds.test["user"], ds.test["item"])}
    assert last == {"u1": "a", "u2": "a"}  # the latest by date, not by file order
    assert ds.test["timestamp"].dtype == "float64"
    # Parquet date-times: the same seconds (before: nanoseconds, through pd.to_numeric)
    when = pd.to_datetime(["2021-01-03", "2021-01-01 10:00"], format="ISO8601")
    pd.DataFrame({"user_id": ["u1", "u1"], "item_id": ["a", "b"], "timestamp": when}).to_parquet(
        tmp_path / "i.parquet"
    )
    raw = read_table(tmp_path / "i.parquet")
    assert list(validate_interactions(raw.interactions, raw.source)["timestamp"]) == [
        1609632000.0,
        1609495200.0,
    ]
    code, text = invoke(
        "prepare", "--interactions", tmp_path / "i.csv", "--time-col", "date", "--split", "temporal",
        "--out", tmp_path / "o",
    )  # fmt: skip
    assert code == 0, text


@pytest.mark.parametrize("bad", ["garbage", "01/02/2021", "2021-13-01", "1609459200"])
def test_garbage_in_the_time_column_names_column_and_row(tmp_path, bad):
    (tmp_path / "i.csv").write_text(f"user_id,item_id,when\nu1,a,2021-01-01\nu1,b,{bad}\nu2,a,2021-01-02\n")
    with pytest.raises(DataError, match=rf"i.csv: row 2: time column 'when' is '{bad}'; expected a Unix"):
        read_table(tmp_path / "i.csv", columns={"timestamp": "when"})
    code, text = invoke(
        "prepare", "--interactions", tmp_path / "i.csv", "--time-col", "when", "--out", tmp_path / "o"
    )
    assert code == 2 and "row 2: time column 'when'" in text, text


# ---- rows dropped for each reason --------------------------------------------------------------
def test_rows_dropped_for_each_reason_are_printed_and_in_the_manifest(tmp_path):
    """Before: nothing dropped was reported (the item table's counts stayed in RawData), and an
    empty id stopped the whole preparation."""
    (tmp_path / "i.csv").write_text(
        "user_id,item_id,rating\n"
        "u1,a,5\nu1,b,4\nu1,c,3\nu1,a,5\n"  # duplicate (u1, a)
        "u2,a,4\nu2,,4\nu2,b,4\nu2,d,2\n"  # an empty item id; d is not in the item table
        " ,b,3\n"  # a blank user id
    )
    (tmp_path / "items.csv").write_text("item_id,title\na,A\nb,B\nb,B again\n,no id\nc,C\nz,unrated\n")
    out = tmp_path / "o"
    code, text = invoke(
        "prepare", "--interactions", tmp_path / "i.csv", "--items", tmp_path / "items.csv", "--out", out
    )
    assert code == 0, text
    dropped = json.loads((out / "manifest.json").read_text())["dropped"]
    assert dropped[MALFORMED_ID] == 2
    assert dropped[DUPLICATE_INTERACTION] == 1
    assert dropped[DUPLICATE_ITEM] == 1 and dropped[MISSING_ITEM_ID] == 1
    assert NO_TRAIN_ITEM in dropped  # checked, whatever the count
    words = " ".join(text.split())
    assert "rows dropped:" in words
    for reason in (MALFORMED_ID, DUPLICATE_INTERACTION, DUPLICATE_ITEM, MISSING_ITEM_ID):
        assert f"{dropped[reason]} {reason}" in words
    table = json.loads((out / "manifest.json").read_text())["item_table"]
    assert table == {
        "rows": 4,
        "items_without_row": 1,
        "interactions_on_items_without_row": 1,
        "rows_without_interactions": 1,
    }
    assert "1 items of the interactions have no row" in words and "1 rows name items" in words


def test_threshold_and_k_core_drops_are_counted(tmp_path):
    rows = [f"u{u},i{i},{5 if (u + i) % 3 else 1}" for u in range(6) for i in range(6)] + ["u9,i0,5"]
    (tmp_path / "i.csv").write_text("user_id,item_id,rating\n" + "\n".join(rows) + "\n")
    ds = prepare_dataset("table", interactions=tmp_path / "i.csv", rating_threshold=4, k_core_min=2)
    below = sum(1 for r in rows if r.endswith(",1"))
    assert ds.info["dropped"]["rating below --rating-threshold"] == below
    assert ds.info["dropped"]["removed by the --k-core filter"] == 1  # u9 has one interaction


def test_no_traceback_for_a_wrong_encoding_in_a_real_process(tmp_path):
    ratings, _ = _bx(tmp_path)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "vlmrec.cli",
            "prepare",
            "--interactions",
            str(ratings),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "Traceback" not in r.stdout + r.stderr
    assert "error:" in r.stdout and "offset" in r.stdout


def test_recbole_atomic_files_read_utf8_titles_right(tmp_path):
    """The recbole wheel's ml-100k.item is UTF-8; read as latin-1 it gave "MisÃ©rables, Les"
    (the latin-1 read is now refused as mojibake, which is how this was found)."""
    from vlmrec.data.readers import read_recbole_atomic

    (tmp_path / "x.inter").write_text("user_id:token\titem_id:token\n1\t543\n1\t7\n")
    (tmp_path / "x.item").write_bytes(
        "item_id:token\tmovie_title:token_seq\n543\tMis\u00e9rables, Les\n".encode()
        + "7\tCaf\u00e9 au Lait\n".encode("latin-1")  # a latin-1 line still reads right
    )
    titles = dict(zip(*read_recbole_atomic(tmp_path).items[["item_id", "title"]].T.to_numpy()))
    assert titles == {"543": "Mis\u00e9rables, Les", "7": "Caf\u00e9 au Lait"}


def test_the_config_dataset_spec_takes_sep_and_encoding(tmp_path):
    """The YAML `dataset:` section reaches the same reader options as the CLI."""
    from vlmrec.data.spec import DatasetSpec

    ratings, books = _bx(tmp_path)
    spec = dict(format="table", interactions=ratings, items=books, columns=BX_MAP)
    with pytest.raises(DataError, match="not valid utf-8"):
        prepare_dataset(DatasetSpec(**spec))
    ds = prepare_dataset(DatasetSpec(**spec, encoding="latin-1", sep=";"))
    assert ds.info["read_options"]["items"] == {
        "sep": ";",
        "sep_sniffed": False,
        "escapechar": "\\",
        "encoding": "latin-1",
    }
    with pytest.raises(DataError, match="--encoding 'klingon': unknown encoding"):
        prepare_dataset(DatasetSpec(**spec, encoding="klingon"))


def test_errors_name_the_files_row_after_rows_with_bad_ids_were_dropped(tmp_path):
    f = tmp_path / "rows.csv"
    f.write_text("user_id,item_id,rating\n,a,1\nu1,b,2\nu2,c,abc\n")  # data row 3 is the bad one
    result = CliRunner().invoke(
        app, ["prepare", "--format", "table", "--interactions", str(f), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "row 3: 'rating' is 'abc'" in result.output


def test_compact_dates_in_the_time_column_are_flagged(caplog):
    import logging

    from vlmrec.data.readers import parse_times

    compact = pd.Series([20210101, 20210315, 20191231])
    with caplog.at_level(logging.WARNING, logger="vlmrec.data.readers"):
        assert parse_times(compact, "f.csv", "ts").tolist() == compact.tolist()  # order kept, as is
    assert "look like compact dates (e.g. 20210101)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vlmrec.data.readers"):
        parse_times(pd.Series([1609459200, 1615766400]), "f.csv", "ts")  # real Unix seconds
        parse_times(pd.Series(["20211301", "20210101"]), "f.csv", "ts")  # month 13: not dates
    assert "compact dates" not in caplog.text
