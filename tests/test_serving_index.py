"""Persisted, memory-mapped indexes (issue 15): reload instead of rebuild, rebuild when the vectors
change, one copy of the vectors, IVF beside HNSW, `auto` by catalogue size."""

import numpy as np
import pytest
from fastapi.testclient import TestClient

from vlmrec.errors import ConfigError, NotFoundError
from vlmrec.features.featureset import FeatureSet
from vlmrec.serving import index as index_mod
from vlmrec.serving.index import IndexParams, VectorIndex, choose_kind, exact_topk, open_index
from vlmrec.serving.service import create_app
from vlmrec.serving.state import ServingState


def clustered(n=3000, dim=24, topics=30, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(topics, dim)).astype(np.float32)
    topic = rng.integers(topics, size=n)
    x = centres[topic] + rng.normal(scale=0.5, size=(n, dim)).astype(np.float32)
    q = np.stack(
        [x[rng.choice(np.flatnonzero(topic == t), 10)].mean(0) for t in rng.integers(topics, size=40)]
    )
    return x / np.linalg.norm(x, axis=1, keepdims=True), q / np.linalg.norm(q, axis=1, keepdims=True)


def recall(a, b):
    return np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a, b)])


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_persisted_index_reloads_without_rebuilding_and_matches(tmp_path, kind):
    x, q = clustered()
    np.save(tmp_path / "vectors.npy", x)
    src = np.load(tmp_path / "vectors.npy", mmap_mode="r")
    params = IndexParams(nlist=32, nprobe=8, hnsw_m=16, ef_construction=64)
    built = open_index(tmp_path / "idx", src, kind, params)
    assert built.info["loaded"] is False and built.kind == kind
    again = open_index(tmp_path / "idx", src, kind, params)
    assert again.info["loaded"] is True  # reloaded, not rebuilt
    assert again.info["fingerprint"] == built.info["fingerprint"]
    s1, i1 = built.search(q, 10)
    s2, i2 = again.search(q, 10)
    assert np.array_equal(i1, i2) and np.allclose(s1, s2)
    exact = np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :10]
    assert recall(exact, i2) >= 0.95
    assert np.allclose(again.rows([0, 5, 17]), x[[0, 5, 17]], atol=1e-6)  # rows() without a copy of all
    # a search-time parameter is not a reason to rebuild
    assert open_index(tmp_path / "idx", src, kind, params.model_copy(update={"nprobe": 4})).info["loaded"]


def test_changed_vectors_trigger_a_rebuild_and_a_copied_file_does_not(tmp_path):
    x, _ = clustered(n=500)
    np.save(tmp_path / "a.npy", x)
    first = open_index(tmp_path / "idx", np.load(tmp_path / "a.npy", mmap_mode="r"), "flat")
    # the same content in another file: recognised by content, not rebuilt
    np.save(tmp_path / "b.npy", x)
    same = open_index(tmp_path / "idx", np.load(tmp_path / "b.npy", mmap_mode="r"), "flat")
    assert same.info["loaded"] is True
    # one changed value: a new fingerprint, so a rebuild, and the new vector is what is served
    y = x.copy()
    y[7] = -y[7]
    np.save(tmp_path / "b.npy", y)
    changed = open_index(tmp_path / "idx", np.load(tmp_path / "b.npy", mmap_mode="r"), "flat")
    assert changed.info["loaded"] is False and "fingerprint changed" in changed.info["rebuilt_because"]
    assert changed.info["fingerprint"] != first.info["fingerprint"]
    assert np.allclose(changed.rows([7])[0], y[7])
    # another kind is another index
    assert open_index(tmp_path / "idx", y, "ivf", IndexParams(nlist=8)).info["loaded"] is False


def test_one_copy_of_the_vectors(tmp_path):
    x, _ = clustered(n=2000)
    flat = open_index(tmp_path / "flat", x, "flat")
    assert isinstance(flat._vectors, np.memmap)  # the file's pages, shared by every worker
    hnsw = open_index(tmp_path / "hnsw", x, "hnsw", IndexParams(hnsw_m=8, ef_construction=32))
    import faiss

    storage = faiss.downcast_index(hnsw._faiss.storage)
    # the HNSW vectors are a view onto faiss's own storage (memory-mapped from index.faiss)
    assert hnsw._vectors.ctypes.data == int(storage.get_xb())
    assert hnsw._vectors.ctypes.data != x.ctypes.data
    ivf = open_index(tmp_path / "ivf", x, "ivf", IndexParams(nlist=16))
    assert ivf._vectors is None  # vectors live only in the inverted lists


def test_auto_chooses_by_catalogue_size_and_health_says_which(monkeypatch, tmp_path, multi_community_dataset):
    assert choose_kind(1_000) == "flat"
    assert choose_kind(index_mod.FLAT_MAX) == "hnsw"
    assert choose_kind(1_000_000) == "ivf"
    with pytest.raises(ConfigError, match="auto, flat, hnsw, ivf"):
        VectorIndex.build(np.ones((3, 2), np.float32), kind="annoy")
    ds = multi_community_dataset
    fs = FeatureSet.create(
        np.random.default_rng(0).normal(size=(ds.n_items, 8)).astype(np.float32), ds, extractor="x", name="f"
    )
    monkeypatch.setattr(index_mod, "FLAT_MAX", 10)
    monkeypatch.setattr(index_mod, "IVF_MIN", 100)  # the 120-item catalogue is now "large"
    state = ServingState.from_features(ds, fs, tmp_path, index_params=IndexParams(nlist=4, nprobe=4))
    health = TestClient(create_app(state)).get("/health").json()
    assert health["index"] == "ivf" and health["index_choice"] == "auto"
    assert health["index_detail"]["params"]["nlist"] == 4


def test_restart_reloads_the_index_and_replays_items_into_it(multi_community_dataset, tmp_path):
    ds = multi_community_dataset
    x = np.random.default_rng(1).normal(size=(ds.n_items, 8)).astype(np.float32)
    fs = FeatureSet.create(x, ds, extractor="x", name="f")
    for kind in ("flat", "hnsw", "ivf"):
        d = tmp_path / kind
        params = IndexParams(nlist=4, nprobe=4, hnsw_m=8)
        state = ServingState.from_features(ds, fs, d, index_kind=kind, index_params=params)
        assert state.index.info["loaded"] is False
        client = TestClient(create_app(state))
        assert client.post("/items", json={"item_id": "twin", "vector": x[3].tolist()}).status_code == 201
        restarted = ServingState.from_features(ds, fs, d, index_kind=kind, index_params=params)
        assert restarted.index.info["loaded"] is True
        sim = TestClient(create_app(restarted)).get(f"/items/{ds.item_ids[3]}/similar", params={"k": 1})
        assert sim.json()["items"] == ["twin"], kind


def test_exact_topk_breaks_ties_by_lower_index():
    s = np.array([0.5, 0.9, 0.5, 0.9, 0.1, np.nan, 0.5], np.float32)
    assert exact_topk(s, 3).tolist() == [1, 3, 0]
    assert exact_topk(s, 5).tolist() == [1, 3, 0, 2, 6]
    assert exact_topk(s, 10).tolist() == [1, 3, 0, 2, 6, 4, 5]


def test_serve_options_are_checked_before_any_work():
    from vlmrec.serving.server import make_spec

    spec = make_spec(index="ivf", nprobe=16, ef_search=256)
    assert spec.index == "ivf" and spec.index_params.nprobe == 16 and spec.index_params.ef_search == 256
    with pytest.raises(ConfigError, match="--index 'annoy': choose one of auto, flat, hnsw, ivf"):
        make_spec(index="annoy")
    with pytest.raises(ConfigError, match="--nprobe 0"):
        make_spec(nprobe=0)
    with pytest.raises(ConfigError, match="--ef-search 2"):
        make_spec(ef_search=2)


def test_id_map_round_trips_ids_and_refuses_duplicates():
    from vlmrec.errors import DataError
    from vlmrec.serving.ids import IdMap

    ids = ["007", "7", "b", "a", "ünï", "x y", "a\x00b", "0.0", "longest-id-of-all"]
    m = IdMap(np.array(ids, dtype=object), "item")
    assert [m.position(i) for i in ids] == list(range(len(ids))) and list(m) == ids
    assert m.names([4, 0, 1]) == ["ünï", "007", "7"]
    for unknown in ("", "00", "7\x00", "zzz", "longest-id-of-all-and-more", "\ud800"):
        assert m.get(unknown) is None and unknown not in m
    with pytest.raises(NotFoundError, match="unknown item 'zzz'"):
        m.position("zzz")
    assert m.append("new") == len(ids) and m.position("new") == len(ids) and m.name(len(ids)) == "new"
    assert m.names([0, len(ids)]) == ["007", "new"]
    with pytest.raises(DataError, match="already exists"):
        m.append("7")
    with pytest.raises(DataError, match="duplicate item '7'"):
        IdMap(["7", "8", "7"], "item")
    odd = IdMap(["a\x00", "a"], "user")  # a trailing NUL: kept exactly (dict fallback)
    assert odd.position("a\x00") == 0 and odd.position("a") == 1 and odd.names([1, 0]) == ["a", "a\x00"]


def test_loader_refuses_an_unknown_index_kind_with_the_choices(tmp_path):
    from vlmrec.serving.loader import from_dataset, from_run

    for load in (from_dataset, from_run):
        args = (tmp_path, tmp_path) if load is from_dataset else (tmp_path,)
        with pytest.raises(ConfigError, match="index 'annoy': choose one of auto, flat, hnsw, ivf"):
            load(*args, index_kind="annoy")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--workers", "0"], "--workers 0: give 1 or more"),
        (["--nprobe", "0"], "--nprobe 0"),
        (["--index", "annoy"], "--index 'annoy': choose one of auto, flat, hnsw, ivf"),
        ([], "give --run RUN_DIR, or --dataset DIR --features FEATURESET_DIR"),
    ],
)
def test_cli_serve_refuses_bad_options_with_one_line(tmp_path, args, expected):
    from typer.testing import CliRunner

    from vlmrec.cli import app

    if args:  # options are checked before anything is loaded: the folders need not exist
        args = ["--dataset", str(tmp_path / "ds"), "--features", str(tmp_path / "feat"), *args]
    result = CliRunner().invoke(app, ["serve", *args])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
