import numpy as np
import pytest
from fastapi.testclient import TestClient

from vlmrec.evaluation import Evaluator
from vlmrec.features.featureset import FeatureSet
from vlmrec.models import create_model
from vlmrec.serving.index import VectorIndex
from vlmrec.serving.service import create_app
from vlmrec.serving.state import ServingState


@pytest.fixture()
def features(multi_community_dataset):
    ds = multi_community_dataset
    x = np.random.default_rng(0).normal(size=(ds.n_items, 16)).astype(np.float32)
    x[np.arange(ds.n_items), np.array(ds.info["item_community"])] += 2
    return FeatureSet.create(x, ds, extractor="synthetic", model="synthetic", name="f")


def test_service_matches_offline_evaluator_for_profilematch(multi_community_dataset, features, tmp_path):
    ds = multi_community_dataset
    model = create_model("profilematch").fit(ds, {"f": features})
    ev = Evaluator(ds, "test", ks=[10])
    users = ev.users[:25]
    offline = ev.topk(model, users, 10)
    state = ServingState.from_features(
        ds, features, tmp_path, history_splits=("train", "valid"), profile_splits=("train",)
    )
    client = TestClient(create_app(state))
    for row, u in enumerate(users):
        r = client.get(f"/recommend/{ds.user_ids[u]}", params={"k": 10})
        assert r.status_code == 200
        assert r.json()["items"] == [str(ds.item_ids[i]) for i in offline[row]]


def test_service_matches_offline_evaluator_for_trained_factors(multi_community_dataset, tmp_path):
    ds = multi_community_dataset
    model = create_model("bprmf", epochs=3, batch_size=256).fit(ds, seed=0)
    ev = Evaluator(ds, "test", ks=[10])
    users = ev.users[:25]
    offline = ev.topk(model, users, 10)
    state = ServingState.from_factors(
        ds, model.user_factors_, model.item_factors_, tmp_path, history_splits=("train", "valid")
    )
    client = TestClient(create_app(state))
    for row, u in enumerate(users):
        got = client.get(f"/recommend/{ds.user_ids[u]}", params={"k": 10}).json()["items"]
        assert got == [str(ds.item_ids[i]) for i in offline[row]]


def test_endpoints_errors_events_items_and_restart(multi_community_dataset, features, tmp_path):
    ds = multi_community_dataset
    state = ServingState.from_features(ds, features, tmp_path / "state")
    client = TestClient(create_app(state))
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["items"] == ds.n_items and h["index"] == "flat"
    assert "/recommend/{user_id}" in client.get("/openapi.json").json()["paths"]
    user = str(ds.user_ids[0])
    # errors: 4xx with a message, never 5xx
    assert client.get("/recommend/nobody").status_code == 404
    assert "unknown user" in client.get("/recommend/nobody").json()["detail"]
    assert client.get(f"/recommend/{user}", params={"k": 0}).status_code == 422
    assert client.get(f"/recommend/{user}", params={"k": 100000}).status_code == 422
    assert client.get(f"/recommend/{user}", params={"k": "ten"}).status_code == 422
    assert client.post("/recommend", json={"items": []}).status_code == 422
    assert client.post("/recommend", json={"items": ["nope"]}).status_code == 404
    assert (
        client.post("/recommend", json={"items": [str(ds.item_ids[0])], "weights": [1, 2]}).status_code == 422
    )
    assert (
        client.post(
            "/recommend", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    assert client.post("/events", json={"user_id": user}).status_code == 422
    assert client.post("/events", json={"user_id": user, "item_id": "nope"}).status_code == 404
    assert client.post("/items", json={"item_id": "x", "vector": [1.0, 2.0]}).status_code == 400
    assert client.post("/items", json={"item_id": "x"}).status_code == 422
    assert client.get("/items/nope/similar").status_code == 404
    # ad-hoc history: its items are excluded, ranking by the mean profile
    hist = [str(ds.item_ids[i]) for i in (0, 6, 12)]
    r = client.post("/recommend", json={"items": hist, "k": 5}).json()
    assert len(r["items"]) == 5 and not set(hist) & set(r["items"])
    # similar excludes the item itself and is sorted
    sim = client.get(f"/items/{ds.item_ids[3]}/similar", params={"k": 4}).json()
    assert str(ds.item_ids[3]) not in sim["items"] and sim["scores"] == sorted(sim["scores"], reverse=True)
    # events: the profile updates at once and the item is excluded afterwards
    before = client.get(f"/recommend/{user}", params={"k": 3}).json()["items"]
    target = before[0]
    assert client.post("/events", json={"user_id": user, "item_id": target}).status_code == 201
    after = client.get(f"/recommend/{user}", params={"k": 3}).json()["items"]
    assert target not in after
    # a brand-new user from events
    assert client.post("/events", json={"user_id": "new-user", "item_id": hist[0]}).json()["new_user"] is True
    assert len(client.get("/recommend/new-user", params={"k": 3}).json()["items"]) == 3
    # a new item by vector: identical to item 3's vector, so it is item 3's nearest neighbour
    v = np.asarray(features.vectors[3]).tolist()
    assert client.post("/items", json={"item_id": "brand-new", "vector": v}).status_code == 201
    assert client.post("/items", json={"item_id": "brand-new", "vector": v}).status_code == 400  # duplicate
    assert client.get(f"/items/{ds.item_ids[3]}/similar", params={"k": 1}).json()["items"] == ["brand-new"]
    final = client.get(f"/recommend/{user}", params={"k": 3}).json()["items"]
    assert "brand-new" in final  # a copy of item 3, which this user is recommended
    # restart from the same state folder: events and items are back
    state2 = ServingState.from_features(ds, features, tmp_path / "state")
    client2 = TestClient(create_app(state2))
    assert client2.get("/health").json()["items"] == ds.n_items + 1
    assert client2.get(f"/recommend/{user}", params={"k": 3}).json()["items"] == final
    assert len(client2.get("/recommend/new-user", params={"k": 3}).json()["items"]) == 3


def test_hnsw_recall_and_removal():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 32)).astype(np.float32)
    q = rng.normal(size=(100, 32)).astype(np.float32)
    exact = VectorIndex.build(x, kind="flat").search(q, 20)[1]
    approx = VectorIndex.build(x, kind="hnsw").search(q, 20)[1]
    recall = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(exact, approx)])
    assert recall >= 0.97
    # brute force agrees with the flat index
    brute = np.argsort(-(q @ x.T), axis=1)[:, :20]
    assert (brute == exact).mean() > 0.99
    for kind in ("flat", "hnsw"):
        idx = VectorIndex.build(x, kind=kind)
        top = idx.search(q[:1], 1)[1][0, 0]
        idx.remove(np.array([top]))
        assert idx.search(q[:1], 1)[1][0, 0] != top and len(idx) == 4999


def _run_folder(tmp_path, ds, features, models):
    """A finished `vlmrec run` over `ds` and one feature set "f", with the given model entries."""
    from vlmrec.experiments.config import parse_config
    from vlmrec.experiments.runner import Runner

    ds.save(tmp_path / "ds")
    features.save(tmp_path / "feat")
    cfg = parse_config(
        {
            "name": "s",
            "output_dir": str(tmp_path / "run"),
            "threads": 1,
            "dataset": {"prepared": str(tmp_path / "ds")},
            "features": [{"name": "f", "path": str(tmp_path / "feat")}],
            "models": models,
        }
    )
    return Runner(cfg).run()


def test_serve_from_run_folder(tmp_path, multi_community_dataset, features):
    from vlmrec.serving.loader import from_run

    ds = multi_community_dataset
    _run_folder(
        tmp_path,
        ds,
        features,
        [
            {"name": "bprmf", "params": {"epochs": 2}},
            {"name": "profilematch", "features": ["f"]},
            {"name": "mostpop"},
        ],
    )
    state = from_run(tmp_path / "run", model="profilematch")
    assert state.mode == "profile" and state.description["features"] == "f"
    state = from_run(tmp_path / "run", model="bprmf")
    assert state.mode == "factors"
    client = TestClient(create_app(state))
    assert client.get(f"/recommend/{ds.user_ids[0]}", params={"k": 5}).status_code == 200
    # the best cell has no servable artifact: another is served, and the service says which and why
    import pandas as pd

    res = pd.read_parquet(tmp_path / "run" / "results.parquet")
    res.loc[res["model"] == "mostpop", "valid_score"] = 2.0
    res.to_parquet(tmp_path / "run" / "results.parquet")
    state = from_run(tmp_path / "run")
    assert state.description["model"] != "mostpop" and "mostpop" in state.description["not_served"]
    assert "mostpop" in TestClient(create_app(state)).get("/health").json()["not_served"]


@pytest.mark.parametrize("aggregation", ["last", "mean"])
def test_served_top_k_is_the_cells_offline_top_k(tmp_path, multi_community_dataset, features, aggregation):
    """Serving loads the cell's fitted model: its top-K equals the offline evaluator's, for a
    factor model and for ProfileMatch with any aggregation (issue 12)."""
    from vlmrec.evaluation.evaluator import Evaluator
    from vlmrec.experiments.artifacts import CellArtifact
    from vlmrec.serving.loader import from_run

    ds = multi_community_dataset
    out = _run_folder(
        tmp_path,
        ds,
        features,
        [
            {"name": "bprmf", "params": {"epochs": 2}},
            {"name": "profilematch", "params": {"aggregation": aggregation, "last_n": 2}, "features": ["f"]},
        ],
    )
    for name in ("bprmf", "profilematch"):
        state = from_run(tmp_path / "run", model=name, index_kind="flat")
        cell = CellArtifact(CellArtifact.folder(tmp_path / "run", state.description["cell"]))
        # the service excludes everything the user interacted with, test items included
        offline = Evaluator(ds, "test", mask=("train", "valid", "test")).topk(
            cell.load_model(), np.arange(6), 10
        )
        client = TestClient(create_app(state))
        for u in range(6):
            got = client.get(f"/recommend/{ds.user_ids[u]}", params={"k": 10}).json()["items"]
            assert got == [str(ds.item_ids[i]) for i in offline[u]], (name, aggregation, u)
    assert len(out.results)
