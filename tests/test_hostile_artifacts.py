"""Damaged and poisoned artifacts (issue 23): a FeatureSet with NaN/inf rows, a truncated or
forged `vectors.npy`, a broken manifest, damaged dataset and run folders, Parquet ids stored as
bytes, and vectors replaced after a run: each ends in one clear error (exit 2 on the command
line) or in the right result, never in a traceback or in numbers computed from garbage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from vlmrec.cli import app
from vlmrec.data.dataset import Dataset
from vlmrec.errors import DataError
from vlmrec.experiments.config import parse_config
from vlmrec.experiments.runner import Runner
from vlmrec.features.extraction import Extractor, extract
from vlmrec.features.featureset import FeatureSet
from vlmrec.provenance import hash_arrays

runner = CliRunner()


def invoke(*args) -> tuple[int, str]:
    """Run the CLI at a fixed width; a traceback (an exception that is not an exit) fails."""
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output


def one_error(code: int, out: str, *words: str) -> None:
    """Exit 2 with one `error:` line (no traceback) holding every word."""
    assert code == 2, out
    assert "Traceback" not in out and out.count("error:") == 1, out
    flat = " ".join(out.split())
    for w in words:
        assert w in flat, (w, out)


@pytest.fixture()
def feat(tmp_path, community_dataset) -> tuple[Dataset, Path]:
    ds = community_dataset
    x = np.random.default_rng(0).normal(size=(ds.n_items, 4)).astype(np.float32)
    return ds, FeatureSet.create(x, ds, extractor="synthetic").save(tmp_path / "feat")


# ---- poisoned vectors -----------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_row_is_refused_at_load_naming_the_items(feat, bad):
    ds, d = feat
    x = np.load(d / "vectors.npy")
    x[[3, 7]] = bad
    np.save(d / "vectors.npy", x)
    with pytest.raises(DataError) as e:
        FeatureSet.load(d, ds)
    assert "2 item vector(s) hold NaN or infinite values" in str(e.value)
    assert repr(str(ds.item_ids[3])) in str(e.value) and repr(str(ds.item_ids[7])) in str(e.value)
    with pytest.raises(DataError, match="row 3, row 7"):  # no dataset: rows named
        FeatureSet.load(d, mmap=True)


def test_float64_values_beyond_float32_are_refused_too(feat):
    ds, d = feat
    x = np.load(d / "vectors.npy").astype(np.float64)
    x[5, 0] = 1e300  # finite in float64, infinite once read as float32
    np.save(d / "vectors.npy", x)
    with pytest.raises(DataError, match="NaN or infinite"):
        FeatureSet.load(d, ds)


def test_control_and_fuse_of_a_poisoned_set_end_in_one_error(feat, tmp_path):
    ds, d = feat
    x = np.load(d / "vectors.npy")
    x[0, 0] = np.nan
    np.save(d / "vectors.npy", x)
    one_error(*invoke("control", "--input", d, "--out", tmp_path / "ctl"), "NaN or infinite")
    assert not (tmp_path / "ctl").exists()


class _NaNExtractor(Extractor):
    """Returns a NaN row for item 2 without reporting it as failed."""

    name = "nan"

    def process(self, items):
        x = np.ones((len(items), 3), np.float32)
        if 2 in items["item"].to_numpy():
            x[list(items["item"]).index(2)] = np.nan
        return x, {}

    def manifest(self):
        return {"extractor": "nan"}


def test_extraction_lists_an_unreported_non_finite_row_as_failed_and_fills_it(tmp_path, community_dataset):
    fs = extract(community_dataset, _NaNExtractor(), tmp_path / "x", chunk_size=16, progress=False)
    assert fs is not None and np.isfinite(fs.vectors).all()
    assert [f["item"] for f in fs.manifest["failed"]] == [2]
    assert "NaN or infinite" in fs.manifest["failed"][0]["reason"]
    assert FeatureSet.load(tmp_path / "x", community_dataset).vectors.shape == (community_dataset.n_items, 3)


# ---- damaged FeatureSet folders ---------------------------------------------------------------
def _truncate(d: Path) -> None:
    data = (d / "vectors.npy").read_bytes()
    (d / "vectors.npy").write_bytes(data[: len(data) - 37])


def _object_dtype(d: Path) -> None:
    np.save(d / "vectors.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)


def _huge_header(d: Path) -> None:
    with open(d / "vectors.npy", "wb") as f:
        header = {"descr": "<f4", "fortran_order": False, "shape": (4000000000, 4000000000)}
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 64)


def _not_npy(d: Path) -> None:
    (d / "vectors.npy").write_bytes(b"this is not numpy\n")


def _one_dim(d: Path) -> None:
    np.save(d / "vectors.npy", np.zeros(80, np.float32))


def _strings(d: Path) -> None:
    np.save(d / "vectors.npy", np.array([["a", "b"]]))


def _manifest_broken(d: Path) -> None:
    (d / "manifest.json").write_text('{"extractor": "synthetic", ')


def _manifest_list(d: Path) -> None:
    (d / "manifest.json").write_text("[1, 2]")


def _manifest_not_utf8(d: Path) -> None:
    (d / "manifest.json").write_bytes(b'{"name": "\xff\xfe"}')


def _manifest_wrong_shape(d: Path) -> None:
    m = json.loads((d / "manifest.json").read_text())
    m["n_items"] = 3
    (d / "manifest.json").write_text(json.dumps(m))


def _manifest_failed_not_list(d: Path) -> None:
    m = json.loads((d / "manifest.json").read_text())
    m["failed"] = 5
    (d / "manifest.json").write_text(json.dumps(m))


def _manifest_format_text(d: Path) -> None:
    m = json.loads((d / "manifest.json").read_text())
    m["featureset_format"] = "new"
    (d / "manifest.json").write_text(json.dumps(m))


def _manifest_failed_entry_int(d: Path) -> None:
    m = json.loads((d / "manifest.json").read_text())
    m["failed"] = [1, 2]
    (d / "manifest.json").write_text(json.dumps(m))


def _manifest_failed_row_out_of_range(d: Path) -> None:
    m = json.loads((d / "manifest.json").read_text())
    m["failed"] = [{"item": 10_000, "reason": "x"}]
    (d / "manifest.json").write_text(json.dumps(m))


DAMAGE = {
    "manifest failed entry an int": (_manifest_failed_entry_int, "a 'failed' entry 1 is not"),
    "manifest failed row out of range": (_manifest_failed_row_out_of_range, "a 'failed' entry"),
    "truncated vectors.npy": (_truncate, "truncated"),
    "object dtype": (_object_dtype, "dtype object"),
    "a header claiming a huge shape": (_huge_header, "the header claims shape (4000000000, 4000000000)"),
    "not a .npy file": (_not_npy, "not a readable .npy file"),
    "one dimension": (_one_dim, "expected 2 dimensions"),
    "strings": (_strings, "expected floating-point numbers"),
    "broken manifest": (_manifest_broken, "damaged feature set manifest"),
    "manifest a list": (_manifest_list, "expected a JSON object"),
    "manifest not UTF-8": (_manifest_not_utf8, "damaged feature set manifest"),
    "manifest with another shape": (_manifest_wrong_shape, "n_items = 3"),
    "manifest failed not a list": (_manifest_failed_not_list, "'failed' is not a list"),
    "manifest format text": (_manifest_format_text, "featureset_format"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_feature_set_is_one_error_naming_the_file(feat, tmp_path, case):
    ds, d = feat
    damage, words = DAMAGE[case]
    damage(d)
    with pytest.raises(DataError) as e:
        FeatureSet.load(d, ds)
    assert words in str(e.value) and str(d) in str(e.value), e.value
    one_error(*invoke("control", "--input", d, "--out", tmp_path / "ctl"), words)


# ---- damaged dataset and run folders ----------------------------------------------------------
@pytest.fixture()
def prepared(tmp_path, community_dataset) -> Path:
    return community_dataset.save(tmp_path / "ds")


def _ds_manifest_without(key: str):
    def damage(d: Path) -> None:
        m = json.loads((d / "manifest.json").read_text())
        del m[key]
        (d / "manifest.json").write_text(json.dumps(m))

    return damage


def _truncate_file(name: str):
    def damage(d: Path) -> None:
        data = (d / name).read_bytes()
        (d / name).write_bytes(data[: len(data) // 2])

    return damage


def _drop_file(name: str):
    def damage(d: Path) -> None:
        (d / name).unlink()

    return damage


def _column_renamed(d: Path) -> None:
    pd.read_parquet(d / "train.parquet").rename(columns={"item": "thing"}).to_parquet(d / "train.parquet")


DATASET_DAMAGE = {
    "manifest without name": (_ds_manifest_without("name"), "'name'"),
    "manifest without fingerprint": (_ds_manifest_without("fingerprint"), "'fingerprint'"),
    "truncated train.parquet": (_truncate_file("train.parquet"), "train.parquet"),
    "truncated items.parquet": (_truncate_file("items.parquet"), "items.parquet"),
    "missing users.parquet": (_drop_file("users.parquet"), "users.parquet"),
    "train without item column": (_column_renamed, "no column 'item'"),
    "broken manifest": (lambda d: (d / "manifest.json").write_text("{"), "damaged dataset manifest"),
}


@pytest.mark.parametrize("case", sorted(DATASET_DAMAGE))
def test_a_damaged_dataset_folder_is_one_error_naming_the_file(prepared, tmp_path, case):
    damage, words = DATASET_DAMAGE[case]
    damage(prepared)
    with pytest.raises(DataError) as e:
        Dataset.load(prepared)
    assert words in str(e.value), e.value
    one_error(
        *invoke("evaluate", "--dataset", prepared, "--model", "mostpop", "--out", tmp_path / "r"), words
    )


# ---- Parquet ids stored as bytes --------------------------------------------------------------
def _bytes_parquet(path: Path, items: list[bytes]) -> None:
    users = [f"u{u}".encode() for u in range(20) for _ in range(6)]
    its = [items[(u + j) % len(items)] for u in range(20) for j in range(6)]
    pq.write_table(
        pa.table({"user_id": pa.array(users, pa.binary()), "item_id": pa.array(its, pa.binary())}), path
    )


def test_parquet_ids_stored_as_bytes_are_decoded_as_utf8(tmp_path):
    items = [f"P{i:05d}".encode() for i in range(10)] + ["Ü-7".encode()]
    _bytes_parquet(tmp_path / "in.parquet", items)
    code, out = invoke("prepare", "--out", tmp_path / "ds", "--interactions", tmp_path / "in.parquet")
    assert code == 0, out
    ds = Dataset.load(tmp_path / "ds")
    assert "P00000" in set(ds.item_ids) and "Ü-7" in set(ds.item_ids)
    assert not any(str(i).startswith("b'") for i in [*ds.item_ids, *ds.user_ids])


def test_parquet_bytes_that_are_not_utf8_are_refused_naming_the_column(tmp_path):
    _bytes_parquet(tmp_path / "in.parquet", [b"P1", b"P2", b"\xff\xfe"])
    code, out = invoke("prepare", "--out", tmp_path / "ds", "--interactions", tmp_path / "in.parquet")
    one_error(code, out, "'item_id' holds bytes that are not UTF-8")


# ---- vectors replaced after a run: the real cell and its twin stay tied ----------------------
def test_replaced_vectors_rerun_the_real_cell_with_its_twin(tmp_path, community_dataset):
    ds = community_dataset
    ds.save(tmp_path / "ds")
    rng = np.random.default_rng(0)
    FeatureSet.create(rng.normal(size=(ds.n_items, 6)), ds, extractor="synthetic").save(tmp_path / "feat")
    cfg = parse_config(
        {
            "name": "twin",
            "output_dir": str(tmp_path / "run"),
            "threads": 1,
            "dataset": {"prepared": str(tmp_path / "ds")},
            "features": [{"name": "f", "path": str(tmp_path / "feat")}],
            "controls": ["shuffled"],
            "models": [{"name": "mostpop"}, {"name": "profilematch", "features": ["f"]}],
            "evaluation": {"ks": [10], "metrics": ["recall"]},
        }
    )
    first = Runner(cfg).run()
    assert first.cells_run == 3
    # the run's own copy replaced by hand
    new = rng.normal(size=(ds.n_items, 6)).astype(np.float32)
    np.save(tmp_path / "run" / "features" / "f" / "vectors.npy", new)
    events: list[str] = []
    second = Runner(cfg, on_event=events.append).run()
    assert second.cells_run == 2 and any("vectors.npy changed" in e for e in events), events
    records = [json.loads(p.read_text()) for p in (tmp_path / "run" / "cells").glob("*/cell.json")]
    real = [r for r in records if r["model"] == "profilematch" and r["control"] == "none"]
    assert hash_arrays(new) in {r["features"]["f"] for r in real}
    # the source folder of a `path` set replaced: a new copy, and both cells again
    np.save(tmp_path / "feat" / "vectors.npy", rng.normal(size=(ds.n_items, 6)).astype(np.float32))
    assert Runner(cfg).run().cells_run == 2
    assert Runner(cfg).run().cells_run == 0
    shutil.rmtree(tmp_path / "run")


# ---- images: a decompression bomb, a file name that is not UTF-8 ------------------------------
def test_a_decompression_bomb_is_a_failed_item_not_an_aborted_extraction(tmp_path):
    from PIL import Image

    from vlmrec.features.encoders.image import ImageLoadError, load_image, load_images

    Image.new("1", (16000, 16000)).save(tmp_path / "bomb.png")  # ~30 KB on disk, 256 M pixels
    Image.new("L", (9000, 8000)).save(tmp_path / "big.png")  # under PIL's own limit, over ours
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    for name in ("bomb.png", "big.png"):
        with pytest.raises(ImageLoadError, match="pixels"):
            load_image(str(tmp_path / name))
    images, positions, failed = load_images([str(tmp_path / n) for n in ("bomb.png", "ok.png", "big.png")])
    assert positions == [1] and sorted(failed) == [0, 2] and "decompression bomb" in failed[0]


def test_a_file_name_that_is_not_utf8_does_not_abort_prepare(tmp_path, caplog):
    import os

    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (8, 8)).save(images / "P00001.jpg")
    Image.new("RGB", (8, 8)).save(os.fsdecode(bytes(images) + b"/\xff\xfeP.jpg"))
    _bytes_parquet(tmp_path / "in.parquet", [f"P{i:05d}".encode() for i in range(10)])
    code, out = invoke(
        "prepare", "--out", tmp_path / "ds", "--interactions", tmp_path / "in.parquet", "--images", images
    )
    assert code == 0, out
    ds = Dataset.load(tmp_path / "ds")
    assert ds.stats()["items_with_image"] == 1


# ---- a full or read-only disk -------------------------------------------------------------------
@pytest.mark.parametrize(
    "err, words",
    [
        (28, "No space left on device (the disk is full"),
        (30, "Read-only file system (the file system is read-only"),
        (13, "Permission denied (permission denied"),
    ],
)
def test_a_full_or_read_only_disk_is_one_error(tmp_path, community_dataset, monkeypatch, err, words):
    import errno
    import os

    community_dataset.save(tmp_path / "ds")
    real = pd.DataFrame.to_parquet

    def fail(self, path, *a, **k):
        if "results" in str(path):
            raise OSError(err, os.strerror(err), str(path))
        return real(self, path, *a, **k)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", fail)
    code, out = invoke(
        "evaluate", "--dataset", tmp_path / "ds", "--model", "mostpop", "--out", tmp_path / "r"
    )
    one_error(code, out, words, "results")
    assert errno.errorcode[err]
    monkeypatch.setattr(
        np, "save", lambda *a, **k: (_ for _ in ()).throw(OSError(err, os.strerror(err), "v.npy"))
    )
    code, out = invoke(
        "control", "--input", _featureset(tmp_path, community_dataset), "--out", tmp_path / "ctl"
    )
    one_error(code, out, words)


def _featureset(tmp_path: Path, ds: Dataset) -> Path:
    d = tmp_path / "fs-in"
    d.mkdir()
    with open(d / "vectors.npy", "wb") as f:
        np.lib.format.write_array(f, np.ones((ds.n_items, 3), np.float32))
    (d / "manifest.json").write_text(json.dumps({"extractor": "s", "dataset_fingerprint": ds.fingerprint}))
    return d
