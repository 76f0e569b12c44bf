"""Hostile inputs to the readers (issue 13, items 1, 5, 7 and the bad-file tracebacks).

One test per class of failure; each failed before the fix.
"""

import json
import logging

import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from vlmrec.data import prepare_dataset
from vlmrec.data.interactions import validate_interactions
from vlmrec.data.readers import (
    DUPLICATE_ITEM,
    read_amazon_2023,
    read_movielens_latest,
    read_presplit,
    read_recbole_atomic,
    read_table,
)
from vlmrec.errors import DataError

CLI_COLUMNS = {"user_id": "user_id", "item_id": "item_id", "rating": "rating", "timestamp": "timestamp"}


def _image(path):
    Image.new("RGB", (4, 4), "red").save(path)


# ---- 1. ids are text, verbatim -------------------------------------------------------------------
def test_ids_are_verbatim_text_and_images_match_the_verbatim_id(tmp_path):
    """Before: `007` and `7` merged into item '7', users `0.0` and `1` became '0.0' and '1.0',
    and `00099.jpg` was attached to item '99'."""
    (tmp_path / "i.csv").write_text(
        "user_id,item_id\n0.0,007\n0.0,7\n0.0,00099\n1,007\n1,99\n1,NA\nnull,7\nnull,99\n"
    )
    (tmp_path / "items.csv").write_text("item_id,title\n007,Agent\n7,Seven\n00099,Padded\n99,Plain\n")
    (tmp_path / "img").mkdir()
    _image(tmp_path / "img" / "00099.jpg")
    raw = read_table(tmp_path / "i.csv", tmp_path / "items.csv")
    inter = validate_interactions(raw.interactions, raw.source)
    assert list(inter["user_id"]) == ["0.0", "0.0", "0.0", "1", "1", "1", "null", "null"]
    assert list(inter["item_id"]) == ["007", "7", "00099", "007", "99", "NA", "7", "99"]
    ds = prepare_dataset(
        "table", interactions=tmp_path / "i.csv", items=tmp_path / "items.csv", images=tmp_path / "img"
    )
    assert sorted(ds.item_ids) == sorted(["007", "7", "00099", "99", "NA"])
    table = ds.items.set_index("item_id")
    assert table.loc["007", "title"] == "Agent" and table.loc["7", "title"] == "Seven"
    assert table.loc["00099", "image_path"].endswith("00099.jpg")
    assert table.loc["99", "image_path"] is None


def _latest(d):
    (d / "ratings.csv").write_text("userId,movieId,rating,timestamp\n01,007,4.0,9\n1,7,3.0,10\n")
    (d / "movies.csv").write_text("movieId,title,genres\n007,Bond,Action\n7,Seven,Crime|Drama\n")
    return read_movielens_latest(d)


def _recbole(d):
    (d / "x.inter").write_text("user_id:token\titem_id:token\trating:float\n01\t007\t4\n1\t7\t3\n")
    (d / "x.item").write_text("item_id:token\tmovie_title:token_seq\n007\tBond\n7\tSeven\n")
    return read_recbole_atomic(d)


def _presplit(d):
    (d / "train.tsv").write_text("01\t007\n1\t7\n")
    (d / "test.tsv").write_text("01\t7\n")
    (d / "items.csv").write_text("item_id,title\n007,Bond\n7,Seven\n")
    return read_presplit(d, d / "items.csv")


def _parquet(d):
    pd.DataFrame({"user_id": ["01", "1"], "item_id": ["007", "7"]}).to_parquet(d / "i.parquet")
    pd.DataFrame({"item_id": ["007", "7"], "title": ["Bond", "Seven"]}).to_parquet(d / "items.parquet")
    return read_table(d / "i.parquet", d / "items.parquet")


def _amazon_2023(d):
    (d / "Toys.jsonl").write_text(
        json.dumps({"user_id": "01", "parent_asin": "007", "rating": 5, "timestamp": 1})
        + "\n"
        + json.dumps({"user_id": 1, "parent_asin": 7, "rating": 4, "timestamp": 2})
        + "\n"
    )
    (d / "meta_Toys.jsonl").write_text(
        json.dumps({"parent_asin": "007", "title": "Bond"})
        + "\n"
        + json.dumps({"parent_asin": 7, "title": "Seven"})
        + "\n"
    )
    return read_amazon_2023(d)


@pytest.mark.parametrize("reader", [_latest, _recbole, _presplit, _parquet, _amazon_2023])
def test_every_reader_keeps_ids_verbatim(tmp_path, reader):
    raw = reader(tmp_path)
    inter = raw.interactions if raw.presplit is None else raw.presplit[0]
    inter = validate_interactions(inter, raw.source)
    assert list(inter["user_id"]) == ["01", "1"] and list(inter["item_id"]) == ["007", "7"]
    titles = dict(zip(raw.items["item_id"], raw.items["title"]))
    assert titles == {"007": "Bond", "7": "Seven"}


# ---- 5. items the item table leaves out; duplicated item ids -----------------------------------
def test_items_missing_from_the_item_table_keep_their_image_and_duplicates_are_reported(tmp_path, caplog):
    """Before: item 'c' (not in items.csv) got image_path and title NaN although c.png exists,
    and the duplicated id 'a' silently kept its last row."""
    (tmp_path / "i.csv").write_text("user_id,item_id\nu1,a\nu1,b\nu1,c\nu2,a\nu2,c\nu2,d\n")
    (tmp_path / "items.csv").write_text("item_id,title\na,First A\nb,Bee\na,Second A\nb,Bee again\n")
    (tmp_path / "img").mkdir()
    for name in ("a", "c"):
        _image(tmp_path / "img" / f"{name}.png")
    with caplog.at_level(logging.WARNING):
        ds = prepare_dataset(
            "table", interactions=tmp_path / "i.csv", items=tmp_path / "items.csv", images=tmp_path / "img"
        )
    table = ds.items.set_index("item_id")
    assert table.loc["c", "image_path"].endswith("c.png")
    assert table.loc["a", "image_path"].endswith("a.png")
    assert table.loc["d", "image_path"] is None
    assert table.loc["c", "title"] == "" and table.loc["d", "title"] == ""  # text: empty, never NaN
    assert table.loc["a", "title"] == "First A" and table.loc["b", "title"] == "Bee"  # first row kept
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert "2 item id(s) appear more than once" in warning and "'a', 'b'" in warning
    raw = read_table(tmp_path / "i.csv", tmp_path / "items.csv")
    assert raw.dropped == {DUPLICATE_ITEM: 2}


# ---- 7. a column map that collides with a default name ----------------------------------------
def test_column_map_colliding_with_a_default_name_is_honoured_or_refused(tmp_path):
    """Before: `--user-col item_id` was dropped without a word (the default item_id -> item_id
    mapping overwrote it), so users and items came from the wrong columns."""
    (tmp_path / "i.csv").write_text("user_id,item_id,product\nX,u1,p1\nY,u2,p2\nZ,u1,p2\n")
    # --user-col item_id alone: item_id has lost its column -> a clear error naming the flag
    with pytest.raises(DataError, match=r"'item_id' is mapped to user_id .*--item-col"):
        prepare_dataset(
            "table", interactions=tmp_path / "i.csv", columns={**CLI_COLUMNS, "user_id": "item_id"}
        )
    # --user-col item_id --item-col product: honoured; the file's own user_id column is not used
    raw = read_table(tmp_path / "i.csv", columns={**CLI_COLUMNS, "user_id": "item_id", "item_id": "product"})
    assert list(raw.interactions["user_id"]) == ["u1", "u2", "u1"]
    assert list(raw.interactions["item_id"]) == ["p1", "p2", "p2"]
    # a swap is honoured too
    raw = read_table(tmp_path / "i.csv", columns={**CLI_COLUMNS, "user_id": "item_id", "item_id": "user_id"})
    assert list(raw.interactions["user_id"]) == ["u1", "u2", "u1"]
    assert list(raw.interactions["item_id"]) == ["X", "Y", "Z"]
    # two explicit roles on one column, and a column the file lacks
    with pytest.raises(DataError, match="mapped to both"):
        read_table(tmp_path / "i.csv", columns={**CLI_COLUMNS, "user_id": "product", "item_id": "product"})
    with pytest.raises(DataError, match=r"--rating-col 'stars': no such column"):
        read_table(tmp_path / "i.csv", columns={**CLI_COLUMNS, "rating": "stars"})
    # through the CLI: exit 2 with a one-line error
    from vlmrec.cli import app

    r = CliRunner().invoke(
        app,
        [
            "prepare",
            "--interactions",
            str(tmp_path / "i.csv"),
            "--user-col",
            "item_id",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert r.exit_code == 2 and "error:" in r.output and "--item-col" in r.output, r.output


# ---- bad files as --interactions ---------------------------------------------------------------
@pytest.mark.parametrize("kind", ["empty", "folder", "jpeg", "blank-lines"])
def test_unusable_interactions_files_are_a_data_error_naming_the_file(tmp_path, kind):
    """Before: EmptyDataError, IsADirectoryError and UnicodeDecodeError tracebacks."""
    path = (
        tmp_path / {"empty": "i.csv", "folder": "splits", "jpeg": "photo.csv", "blank-lines": "b.csv"}[kind]
    )
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "folder":
        path.mkdir()
    elif kind == "jpeg":
        _image(tmp_path / "x.jpg")
        path.write_bytes((tmp_path / "x.jpg").read_bytes())  # a JPEG, whatever its name
    else:
        path.write_text("\n\n\n")
    expected = {
        "empty": "empty .*expected an interactions table",
        "folder": "is a folder; expected an interactions table .*--format presplit",
        "jpeg": "this is a JPEG image, not an interactions table",
        "blank-lines": "no header row or columns found; expected an interactions table",
    }[kind]
    with pytest.raises(DataError, match=expected) as err:
        prepare_dataset("table", interactions=path)
    assert str(path) in str(err.value)
    from vlmrec.cli import app

    r = CliRunner().invoke(app, ["prepare", "--interactions", str(path), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "error:" in r.output and path.name in r.output, r.output
    assert not isinstance(r.exception, Exception) or isinstance(r.exception, SystemExit)
