import gzip
import json

import pandas as pd
import pytest

from vlmrec.data import prepare_dataset
from vlmrec.data.readers import (
    read_amazon_2014,
    read_amazon_2018,
    read_amazon_2023,
    read_movielens_1m,
    read_movielens_100k,
    read_movielens_latest,
    read_presplit,
    read_table,
)
from vlmrec.errors import DataError


def test_amazon_2014_reviews_and_python_literal_meta(tmp_path):
    with gzip.open(tmp_path / "reviews_Baby_5.json.gz", "wt") as f:
        f.write(json.dumps({"reviewerID": "A1", "asin": "B1", "overall": 5.0, "unixReviewTime": 10}) + "\n")
        f.write(json.dumps({"reviewerID": "A2", "asin": "B2", "overall": 3.0, "unixReviewTime": 11}) + "\n")
    with gzip.open(tmp_path / "meta_Baby.json.gz", "wt") as f:
        # Python literal, not JSON: single quotes
        f.write(
            str(
                {
                    "asin": "B1",
                    "title": "Soft bib",
                    "categories": [["Baby", "Feeding"]],
                    "imUrl": "http://x/1.jpg",
                }
            )
            + "\n"
        )
    raw = read_amazon_2014(tmp_path)
    assert list(raw.interactions["user_id"]) == ["A1", "A2"]
    assert raw.interactions["rating"].tolist() == [5.0, 3.0]
    meta = raw.items.set_index("item_id")
    assert meta.loc["B1", "title"] == "Soft bib"
    assert meta.loc["B1", "categories"] == "Baby | Feeding"


def test_amazon_2018_and_bad_line_is_named(tmp_path):
    p = tmp_path / "Pet_Supplies_5.json.gz"
    with gzip.open(p, "wt") as f:
        f.write(json.dumps({"reviewerID": "A1", "asin": "B1", "overall": 4.0, "unixReviewTime": 1}) + "\n")
        f.write("{not json\n")
    with pytest.raises(DataError, match=r"line 2"):
        read_amazon_2018(p)


def test_amazon_2023_parent_asin_and_images(tmp_path):
    (tmp_path / "Baby_Products.jsonl").write_text(
        json.dumps({"user_id": "U1", "parent_asin": "P1", "rating": 5, "timestamp": 1700000000000}) + "\n"
    )
    (tmp_path / "meta_Baby_Products.jsonl").write_text(
        json.dumps(
            {
                "parent_asin": "P1",
                "title": "Crib",
                "description": ["Wooden", "crib"],
                "images": [{"large": "http://img/1.jpg"}],
                "store": "Acme",
            }
        )
        + "\n"
    )
    raw = read_amazon_2023(tmp_path)
    assert raw.interactions.loc[0, "item_id"] == "P1"
    assert raw.items.loc[0, "image_url"] == "http://img/1.jpg"
    assert raw.items.loc[0, "description"] == "Wooden | crib"


def test_movielens_variants(tmp_path):
    d100 = tmp_path / "ml100"
    d100.mkdir()
    (d100 / "u.data").write_text("1\t10\t5\t100\n2\t10\t3\t101\n")
    flags = "|".join(["0"] * 19)
    (d100 / "u.item").write_bytes(f"10|Caf\xe9 (1995)|01-Jan-1995||url|{flags[:-1]}1\n".encode("latin-1"))
    raw = read_movielens_100k(d100)
    assert raw.items.loc[0, "title"] == "Café (1995)" and raw.items.loc[0, "genres"] == "Western"
    d1m = tmp_path / "ml1m"
    d1m.mkdir()
    (d1m / "ratings.dat").write_text("1::20::4::5\n1::21::2\n")
    with pytest.raises(DataError, match=r"ratings.dat: line 2: expected 4"):
        read_movielens_1m(d1m)
    dl = tmp_path / "latest"
    dl.mkdir()
    (dl / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,5,4.5,9\n")
    (dl / "movies.csv").write_text("movieId,title,genres\n5,Heat (1995),Action|Crime\n")
    raw = read_movielens_latest(dl)
    assert raw.items.loc[0, "genres"] == "Action, Crime"


def test_generic_table_with_column_map_items_and_images(tmp_path):
    pd.DataFrame({"uid": ["a", "a", "b", "b", "c"], "pid": ["x", "y", "x", "z", "y"]}).to_csv(
        tmp_path / "i.csv", index=False
    )
    pd.DataFrame({"pid": ["x", "y", "z"], "title": ["X thing", "Y thing", "Z thing"]}).to_csv(
        tmp_path / "items.csv", index=False
    )
    (tmp_path / "img").mkdir()
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "img" / "x.png")
    raw = read_table(tmp_path / "i.csv", tmp_path / "items.csv", {"user_id": "uid", "item_id": "pid"})
    assert set(raw.interactions.columns) >= {"user_id", "item_id"}
    ds = prepare_dataset(
        "table",
        interactions=tmp_path / "i.csv",
        items=tmp_path / "items.csv",
        images=tmp_path / "img",
        columns={"user_id": "uid", "item_id": "pid"},
        ratios=(1.0, 0.0, 0.0),
    )
    table = ds.items.set_index("item_id")
    assert table.loc["x", "image_path"].endswith("x.png") and table.loc["y", "image_path"] is None
    assert table.loc["z", "title"] == "Z thing"


def test_missing_column_is_named(tmp_path):
    pd.DataFrame({"user": [1], "item_id": [2]}).to_csv(tmp_path / "i.csv", index=False)
    with pytest.raises(DataError, match=r"i.csv: missing column\(s\) \['user_id'\]"):
        prepare_dataset("table", interactions=tmp_path / "i.csv")


@pytest.mark.parametrize(
    "bad,msg", [("-1", "negative"), ("", "expected a number"), ("abc", "expected a number")]
)
def test_bad_ratings_are_named_with_row(tmp_path, bad, msg):
    (tmp_path / "i.csv").write_text(f"user_id,item_id,rating\nu1,i1,5\nu2,i2,{bad}\n")
    with pytest.raises(DataError, match=rf"row 2: .*{msg}"):
        prepare_dataset("table", interactions=tmp_path / "i.csv")


def test_presplit_pairs_and_lists(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    (a / "train.tsv").write_text("u1\ti1\nu1\ti2\nu2\ti1\n")
    (a / "val.tsv").write_text("u1\ti3\n")
    (a / "test.tsv").write_text("u2\ti3\nu9\ti1\n")  # u9 has no train item: dropped
    ds = prepare_dataset("presplit", path=a)
    assert ds.stats()["train"] == 3 and len(ds.valid) == 1 and len(ds.test) == 1
    b = tmp_path / "b"
    b.mkdir()
    (b / "train.txt").write_text("0 1 2 3\n1 2\n")
    (b / "validation.txt").write_text("0 4\n")
    (b / "test.txt").write_text("1 3\n")
    raw = read_presplit(b)
    assert len(raw.presplit[0]) == 4


def test_empty_after_k_core_is_explained(tmp_path):
    (tmp_path / "i.csv").write_text("user_id,item_id\nu1,i1\nu2,i2\n")
    with pytest.raises(DataError, match="nothing is left after the 5-core"):
        prepare_dataset("table", interactions=tmp_path / "i.csv", k_core_min=5)


def test_prepare_roundtrip_and_fingerprint_check(tmp_path):
    ds = prepare_dataset(
        "planted", out=tmp_path / "p", planted_options={"n_users": 40, "n_items": 30, "image_size": 48}
    )
    from vlmrec.data import Dataset

    back = Dataset.load(tmp_path / "p")
    assert back.fingerprint == ds.fingerprint
    assert (back.matrix("train") != ds.matrix("train")).nnz == 0
    assert back.info["generated"] is True
    # tamper with a split: the fingerprint check refuses
    tr = pd.read_parquet(tmp_path / "p" / "train.parquet")
    tr.iloc[:-1].to_parquet(tmp_path / "p" / "train.parquet", index=False)
    with pytest.raises(DataError, match="fingerprint"):
        Dataset.load(tmp_path / "p")
