"""Serving under hostile input and crashes (issue 13, serving items): a truncated events log, corrupt
log lines, degenerate numbers in requests, oversized error echoes. Each crash case restarts the
server from the same state folder."""

import json
import logging

import numpy as np
import pytest
from fastapi.testclient import TestClient

from vlmrec.features.featureset import FeatureSet
from vlmrec.serving.service import create_app
from vlmrec.serving.state import ServingState


@pytest.fixture()
def features(multi_community_dataset):
    ds = multi_community_dataset
    x = np.random.default_rng(0).normal(size=(ds.n_items, 16)).astype(np.float32)
    return FeatureSet.create(x, ds, extractor="synthetic", model="synthetic", name="f")


def start(ds, features, state_dir) -> tuple[ServingState, TestClient]:
    """A (re)started server on `state_dir`."""
    state = ServingState.from_features(ds, features, state_dir)
    return state, TestClient(create_app(state))


def test_crash_mid_write_then_append_then_restart_keeps_every_acknowledged_event(
    multi_community_dataset, features, tmp_path
):
    ds = multi_community_dataset
    item = [str(i) for i in ds.item_ids[:3]]
    _, client = start(ds, features, tmp_path)
    assert client.post("/events", json={"user_id": "before-1", "item_id": item[0]}).status_code == 201
    assert client.post("/events", json={"user_id": "before-2", "item_id": item[1]}).status_code == 201
    # the process dies while writing a third event: half a line, no newline, never acknowledged
    with open(tmp_path / "events.jsonl", "ab") as f:
        f.write(b'{"user_id": "never-acked", "item_id": "i0')
    _, client = start(ds, features, tmp_path)  # restart over the truncated log
    r = client.post("/events", json={"user_id": "after-crash", "item_id": item[2]})
    assert r.status_code == 201 and r.json()["new_user"] is True
    state, client = start(ds, features, tmp_path)  # and again: everything acknowledged is back
    for user in ("before-1", "before-2", "after-crash"):
        assert user in state.users, user
    assert "never-acked" not in state.users
    assert item[2] not in client.get("/recommend/after-crash", params={"k": 50}).json()["items"]
    assert client.get("/health").json()["bad_log_lines"]["events.jsonl"] == 1  # the cut line
    lines = (tmp_path / "events.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b"" and json.loads(lines[-2])["user_id"] == "after-crash"


def test_corrupt_lines_in_the_logs_are_skipped_counted_and_named(
    multi_community_dataset, features, tmp_path, caplog
):
    ds = multi_community_dataset
    a, b = str(ds.item_ids[0]), str(ds.item_ids[1])
    good = [json.dumps({"user_id": "good-1", "item_id": a}), json.dumps({"user_id": "good-2", "item_id": b})]
    (tmp_path / "events.jsonl").write_bytes(
        b"\n".join(
            [
                good[0].encode(),
                b'{"foo": 1}',  # line 2: an object without the fields
                b"[1,2]",  # line 3: not an object
                b'{"user_id": "bad-utf8", "item_id": "\xff\xfe"}',  # line 4: invalid UTF-8
                b'{"user_id": "x", "item_id": 5}',  # line 5: wrong type
                b'{"user_id": "y", "item_id": "' + a.encode() + b'", "timestamp": "soon"}',  # line 6
                good[1].encode(),
                b"",
            ]
        )
    )
    vec = [0.5] * features.dim
    (tmp_path / "items.jsonl").write_bytes(
        b'{"item_id": "new-1", "vector": ' + json.dumps(vec).encode() + b"}\n"
        b'{"item_id": "short", "vector": [1, 2]}\n'  # line 2: wrong dimension
        b"not json at all\n"  # line 3
    )
    with caplog.at_level(logging.WARNING):
        state, client = start(ds, features, tmp_path)
    assert {"good-1", "good-2"} <= set(state.users) and "bad-utf8" not in state.users
    assert "new-1" in state.items and "short" not in state.items
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["bad_log_lines"] == {"events.jsonl": 5, "items.jsonl": 2}
    for n in (2, 3, 4, 5, 6):
        assert f"events.jsonl line {n} skipped" in caplog.text
    assert "items.jsonl line 2 skipped" in caplog.text and "items.jsonl line 3 skipped" in caplog.text
    # and it keeps serving and appending after the corrupt lines
    assert client.get("/recommend/good-1", params={"k": 3}).status_code == 200
    assert client.post("/events", json={"user_id": "good-3", "item_id": a}).status_code == 201
    state, _ = start(ds, features, tmp_path)
    assert "good-3" in state.users


@pytest.mark.parametrize(
    "weights",
    ["[0, 0]", "[NaN, 1]", "[Infinity, 1]", "[-Infinity, 1]", "[1e39, 1]", "[-1, 2]", "[0]"],
)
def test_degenerate_weights_are_refused(multi_community_dataset, features, tmp_path, weights):
    ds = multi_community_dataset
    _, client = start(ds, features, tmp_path)
    items = [str(ds.item_ids[0]), str(ds.item_ids[1])]
    if weights == "[0]":
        items = items[:1]
    body = f'{{"items": {json.dumps(items)}, "weights": {weights}}}'
    r = client.post("/recommend", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, (weights, r.status_code, r.text)


def test_nan_timestamp_is_refused_and_never_written(multi_community_dataset, features, tmp_path):
    ds = multi_community_dataset
    _, client = start(ds, features, tmp_path)
    item = str(ds.item_ids[0])
    for ts in ("NaN", "Infinity", "-Infinity", "1e999"):
        body = f'{{"user_id": "u-nan", "item_id": "{item}", "timestamp": {ts}}}'
        r = client.post("/events", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422, ts
    assert (
        client.post("/events", json={"user_id": "u-ok", "item_id": item, "timestamp": 0}).status_code == 201
    )
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["user_id"] for line in lines] == ["u-ok"]
    assert json.loads(lines[0])["timestamp"] == 0  # an explicit 0 is kept, not replaced by now


def test_error_bodies_do_not_echo_the_input(multi_community_dataset, features, tmp_path):
    ds = multi_community_dataset
    _, client = start(ds, features, tmp_path)
    huge = {"items": ["x" * 60] * 30_000}  # ~1.9 MB, over the 10,000-item limit
    r = client.post("/recommend", json=huge)
    assert r.status_code == 422 and len(r.content) < 2_000
    r = client.post("/recommend", json={"items": [str(ds.item_ids[0])], "weights": ["y" * 100_000]})
    assert r.status_code == 422 and len(r.content) < 2_000
    r = client.get("/recommend/" + "z" * 5_000)
    assert r.status_code in (404, 422) and len(r.content) < 2_000
    r = client.post("/items", json={"item_id": "v", "vector": [1e39] * features.dim})
    assert r.status_code in (400, 422) and len(r.content) < 2_000


def test_hot_read_routes_validate_like_the_documented_ones(multi_community_dataset, features, tmp_path):
    ds = multi_community_dataset
    _, client = start(ds, features, tmp_path)
    user, item = str(ds.user_ids[0]), str(ds.item_ids[0])
    for path in (f"/recommend/{user}", f"/items/{item}/similar"):
        for k, kind in (("0", "greater_than_equal"), ("1001", "less_than_equal"), ("ten", "int_parsing")):
            r = client.get(path, params={"k": k})
            assert r.status_code == 422
            assert r.json()["detail"][0]["loc"] == ["query", "k"] and r.json()["detail"][0]["type"] == kind
        assert len(client.get(path, params={"k": 1000}).json()["items"]) > 0
    r = client.get("/recommend/" + "z" * 300)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "user_id"]
    schema = client.get("/openapi.json").json()["paths"]
    assert {"/recommend/{user_id}", "/items/{item_id}/similar"} <= set(schema)
    assert schema["/recommend/{user_id}"]["get"]["parameters"][1]["schema"]["maximum"] == 1000


def test_only_unknown_ids_are_404_and_a_bug_is_a_500(
    multi_community_dataset, features, tmp_path, monkeypatch
):
    state, _ = start(multi_community_dataset, features, tmp_path)
    client = TestClient(create_app(state), raise_server_exceptions=False)
    assert client.get("/recommend/nobody").status_code == 404

    def broken(user_id, k):
        raise KeyError("internal lookup")  # a programming error, not an unknown id

    monkeypatch.setattr(state, "recommend_user", broken)
    assert client.get(f"/recommend/{multi_community_dataset.user_ids[0]}").status_code == 500
