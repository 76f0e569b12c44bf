"""Given splits (format presplit) sharing (user, item) pairs: counted, reported, dropped from the later split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from vlmrec.cli import app
from vlmrec.data.dataset import Dataset
from vlmrec.data.prepare import (
    OVERLAP_TRAIN_TEST,
    OVERLAP_TRAIN_VALID,
    OVERLAP_VALID_TEST,
    drop_split_overlaps,
    prepare_dataset,
)
from vlmrec.evaluation import Evaluator


def _folder(d: Path) -> Path:
    """A tiny pre-split folder: u1's test holds i1 (also in train) and i4 (also in validation),
    u2's validation holds i1 (also in train); the other pairs are clean."""
    d.mkdir()
    (d / "train.tsv").write_text("u1\ti1\nu1\ti2\nu2\ti1\nu2\ti2\nu3\ti3\n")
    (d / "val.tsv").write_text("u1\ti4\nu2\ti1\nu2\ti3\nu3\ti1\n")
    (d / "test.tsv").write_text("u1\ti1\nu1\ti4\nu1\ti5\nu2\ti4\nu3\ti2\n")
    return d


class Oracle:
    """Scores every user's test items highest (a perfect ranker for the test split)."""

    def __init__(self, ds: Dataset):
        self.target = ds.matrix("test").toarray()

    def score(self, user_ids: np.ndarray) -> np.ndarray:
        """Test items score 1, all others 0."""
        return self.target[user_ids].astype(np.float32)


def _pairs(ds: Dataset, split: str) -> set[tuple[str, str]]:
    m = ds.matrix(split).tocoo()
    return {(str(ds.user_ids[u]), str(ds.item_ids[i])) for u, i in zip(m.row, m.col)}


def test_overlaps_counted_and_dropped_from_the_later_split(tmp_path):
    ds = prepare_dataset("presplit", path=_folder(tmp_path / "a"))
    assert ds.info["split"]["overlap"] == {"train_valid": 1, "train_test": 1, "valid_test": 1}
    assert ds.info["dropped"][OVERLAP_TRAIN_VALID] == 1
    assert ds.info["dropped"][OVERLAP_TRAIN_TEST] == 1
    assert ds.info["dropped"][OVERLAP_VALID_TEST] == 1
    train, valid, test = (_pairs(ds, s) for s in ("train", "valid", "test"))
    assert not (train & valid) and not (train & test) and not (valid & test)
    assert ("u2", "i1") not in valid and ("u2", "i3") in valid
    assert test == {("u1", "i5"), ("u2", "i4"), ("u3", "i2")}


def test_recall_denominator_counts_only_recommendable_items(tmp_path):
    ds = prepare_dataset("presplit", path=_folder(tmp_path / "a"))
    # u1 keeps one test item (i5): a perfect ranker reaches recall 1 for every user under both
    # masks (with i1 left in test, u1's recall could not exceed 1/2, i4's 2/3)
    for mask in (("train",), ("train", "valid")):
        res = Evaluator(ds, "test", ks=[2], metrics=["recall"], mask=mask).evaluate(Oracle(ds))
        assert res.mean("recall", 2) == 1.0


def test_manifest_and_cli_summary_report_the_counts(tmp_path):
    src = _folder(tmp_path / "a")
    out = tmp_path / "prepared"
    result = CliRunner().invoke(
        app, ["prepare", "--format", "presplit", "--path", str(src), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for reason in (OVERLAP_TRAIN_VALID, OVERLAP_TRAIN_TEST, OVERLAP_VALID_TEST):
        assert f"1 {reason}" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["split"]["overlap"] == {"train_valid": 1, "train_test": 1, "valid_test": 1}
    assert manifest["dropped"][OVERLAP_TRAIN_TEST] == 1


def test_disjoint_splits_report_zero(tmp_path):
    d = tmp_path / "b"
    d.mkdir()
    (d / "train.txt").write_text("0 1 2\n1 2 3\n")
    (d / "validation.txt").write_text("0 3\n")
    (d / "test.txt").write_text("1 1\n")
    ds = prepare_dataset("presplit", path=d)
    assert ds.info["split"]["overlap"] == {"train_valid": 0, "train_test": 0, "valid_test": 0}
    assert len(ds.valid) == 1 and len(ds.test) == 1


def test_a_pair_in_all_three_is_counted_once_per_later_split():
    def df(rows: list[tuple[str, str]]) -> pd.DataFrame:
        return pd.DataFrame(rows, columns=["user_id", "item_id"], dtype=object)

    train, valid, test, overlap = drop_split_overlaps(
        df([("u", "a")]), df([("u", "a"), ("u", "b")]), df([("u", "a"), ("u", "b"), ("u", "c")])
    )
    assert overlap == {"train_valid": 1, "train_test": 1, "valid_test": 1}
    assert list(valid["item_id"]) == ["b"] and list(test["item_id"]) == ["c"]
