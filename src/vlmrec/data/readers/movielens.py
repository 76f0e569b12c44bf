"""MovieLens-100k (`u.data` + `u.item`), MovieLens-1M (`ratings.dat` + `movies.dat`) and the
MovieLens "latest" CSVs (`ratings.csv` + `movies.csv`), ids kept as written.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from vlmrec.data.readers.common import RawData, _find, _item_table
from vlmrec.data.readers.delimited import _read_fixed, read_delimited
from vlmrec.errors import DataError

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
