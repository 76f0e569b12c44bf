"""The server against a hostile client (issue 23): writes need the token (required beyond
loopback, compared in constant time), item vectors that are non-finite, all zero or whose length
overflows float32 are 422, an oversized body is 413, a half-sent request is cut off after the
request-read timeout while /health keeps answering, /docs needs no CDN, and a --state-dir that
is a file is one error."""

from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from vlmrec.cli import app as cli_app
from vlmrec.errors import DataError
from vlmrec.features.featureset import FeatureSet
from vlmrec.serving import http
from vlmrec.serving.http import TOKEN_ENV, HttpLimits, check_token, is_loopback
from vlmrec.serving.service import create_app
from vlmrec.serving.state import ServingState

TOKEN = "s3cret-token-of-32-characters-ok"
DIM = 16


@pytest.fixture()
def state(multi_community_dataset, tmp_path) -> ServingState:
    ds = multi_community_dataset
    x = np.random.default_rng(0).normal(size=(ds.n_items, DIM)).astype(np.float32)
    fs = FeatureSet.create(x, ds, extractor="synthetic", model="synthetic", name="f")
    return ServingState.from_features(ds, fs, tmp_path / "state")


def client(state: ServingState, **limits) -> TestClient:
    return TestClient(create_app(state, HttpLimits(**limits)))


# ---- the write token ----------------------------------------------------------------------------
def test_writes_need_the_token_and_reads_do_not(state):
    c = client(state, token=TOKEN)
    item = str(state.items.names([0])[0])
    event = {"user_id": "u-new", "item_id": item}
    vector = {"item_id": "new", "vector": [1.0] * DIM}
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
    ):
        for path, body in (("/events", event), ("/items", vector)):
            r = c.post(path, json=body, headers=headers)
            assert r.status_code == 401 and "write token" in r.json()["detail"], (headers, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
    assert "u-new" not in state.users and "new" not in state.items  # nothing was written
    ok = {"Authorization": f"Bearer {TOKEN}"}
    assert c.post("/events", json=event, headers=ok).status_code == 201
    assert c.post("/items", json=vector, headers=ok).status_code == 201
    assert c.get("/recommend/u-new").status_code == 200  # reads stay open
    assert c.get("/health").json()["writes"] == "token required"
    # the 401 comes before the body is judged: an unauthenticated client learns nothing of it
    assert c.post("/items", json={"item_id": "x", "vector": [0.0] * DIM}).status_code == 401


def test_without_a_token_writes_are_open_and_health_says_so(state):
    c = client(state)
    assert c.get("/health").json()["writes"] == "open (loopback only)"


@pytest.mark.parametrize(
    "host, token, ok",
    [
        ("127.0.0.1", None, True),
        ("localhost", None, True),
        ("::1", None, True),
        ("127.5.6.7", None, True),
        ("0.0.0.0", None, False),
        ("::", None, False),
        ("192.168.1.5", None, False),
        ("example.org", None, False),
        ("0.0.0.0", TOKEN, True),
        ("127.0.0.1", "short", False),
        ("0.0.0.0", " " * 20, False),
        ("0.0.0.0", "with space inside the token", False),
        ("0.0.0.0", "ä" * 20, False),
    ],
)
def test_a_token_is_required_beyond_loopback(host, token, ok):
    assert is_loopback(host) == (host in ("127.0.0.1", "localhost", "::1", "127.5.6.7"))
    if ok:
        assert check_token(host, token) == token
    else:
        with pytest.raises(ValueError):
            check_token(host, token)


def test_cli_serve_beyond_loopback_without_a_token_is_refused_before_loading(tmp_path):
    env = {"COLUMNS": "200", TOKEN_ENV: ""}
    r = CliRunner().invoke(
        cli_app,
        ["serve", "--dataset", str(tmp_path / "nope"), "--features", "x", "--host", "0.0.0.0"],
        env=env,
    )
    assert r.exit_code == 2 and "needs a write token" in r.output and "Traceback" not in r.output, r.output
    r = CliRunner().invoke(
        cli_app, ["serve", "--dataset", "d", "--features", "x", "--token", "short"], env={"COLUMNS": "200"}
    )
    assert r.exit_code == 2 and "at least 16 characters" in r.output, r.output


# ---- item vectors that cannot be indexed ---------------------------------------------------------
@pytest.mark.parametrize(
    "vector, words",
    [
        ([0.0] * DIM, "all zeros"),
        ([1e38] * DIM, "overflows float32"),
        ([3e38] * DIM, "overflows float32"),
        ([1e-30] * DIM, "too small to normalise"),
        ([1e39] + [1.0] * (DIM - 1), "less than or equal to"),
        ([1.0] * (DIM - 1) + [-1e39], "greater than or equal to"),
        ([], "at least 1 item"),
        (["1"] * DIM, "valid number"),
        ([True] * DIM, "valid number"),
    ],
)
def test_post_items_refuses_vectors_that_cannot_be_indexed(state, vector, words):
    c = client(state)
    r = c.post("/items", json={"item_id": "bad", "vector": vector})
    assert r.status_code == 422 and words in r.text, r.text
    assert "bad" not in state.items


def test_non_finite_json_numbers_are_refused(state):
    c = client(state)
    body = '{"item_id": "bad", "vector": [' + ", ".join(["NaN"] + ["1.0"] * (DIM - 1)) + "]}"
    r = c.post("/items", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "bad" not in state.items


def test_a_zero_or_overflowing_vector_in_the_items_log_is_skipped_and_counted(state, multi_community_dataset):
    lines = [
        {"item_id": "zero", "vector": [0.0] * DIM},
        {"item_id": "huge", "vector": [1e38] * DIM},
        {"item_id": "fine", "vector": [1.0] * DIM},
    ]
    (state.state_dir / "items.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    state.sync()
    assert "fine" in state.items and "zero" not in state.items and "huge" not in state.items
    assert state.health()["bad_log_lines"]["items.jsonl"] == 2


# ---- request size ------------------------------------------------------------------------------------
def test_an_oversized_body_is_413_by_its_length_or_as_it_streams(state):
    c = client(state, max_body_bytes=4096)
    big = {"item_id": "big", "vector": [1.0] * 3000}
    r = c.post("/items", json=big)
    assert r.status_code == 413 and "over the limit of 4,096 bytes" in r.json()["detail"], r.text
    assert r.headers["connection"] == "close"

    def chunks():
        yield b'{"items": ["'
        for _ in range(100):
            yield b"x" * 100

    r = c.post("/recommend", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert c.post("/recommend", json={"items": [str(state.items.names([0])[0])]}).status_code == 200


# ---- a half-sent request ------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_half_sent_request_is_closed_after_the_timeout_and_health_keeps_answering(state):
    import httpx
    import uvicorn

    from vlmrec.serving.protocol import TimedProtocol

    port = _free_port()
    TimedProtocol.request_timeout = 1.0
    config = uvicorn.Config(
        create_app(state), host="127.0.0.1", port=port, http=http.PROTOCOL, log_level="error", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        stalled = []
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")  # no end of head
            stalled.append(s)
        body_cut = socket.create_connection(("127.0.0.1", port))
        body_cut.sendall(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")  # half a body
        stalled.append(body_cut)
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
        time.sleep(1.6)
        for s in stalled:
            s.settimeout(2)
            assert s.recv(100) == b"", "a half-sent request was still open after the timeout"
            s.close()
        # a slow but whole request within the timeout is served
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET /health HTTP/1.1\r\n")
            time.sleep(0.3)
            s.sendall(b"Host: x\r\n\r\n")
            s.settimeout(5)
            assert s.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        server.should_exit = True
        thread.join(10)
        TimedProtocol.request_timeout = http.DEFAULT_REQUEST_TIMEOUT


# ---- /docs without a CDN -------------------------------------------------------------------------------
def test_docs_load_their_assets_from_the_server_itself(state):
    pytest.importorskip("fastapi_offline")
    c = client(state)
    page = c.get("/docs")
    assert page.status_code == 200
    assert "cdn." not in page.text and "jsdelivr" not in page.text and "unpkg" not in page.text
    assert "/static-docs/swagger-ui-bundle.js" in page.text and "/static-docs/swagger-ui.css" in page.text
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
        assert c.get(f"/static-docs/{name}").status_code == 200, name
    assert c.get("/static-docs/..%2Fcore.py").status_code == 404
    assert c.get("/static-docs/core.py").status_code == 404
    assert c.get("/redoc").status_code == 404  # it would need a CDN too
    assert c.get("/health").json()["docs"] == "/docs"


def test_without_the_offline_assets_docs_are_off_and_the_schema_stays(state, monkeypatch):
    monkeypatch.setattr(http, "docs_assets", lambda: None)
    c = client(state)
    assert c.get("/docs").status_code == 404
    assert c.get("/openapi.json").status_code == 200
    assert "off" in c.get("/health").json()["docs"]


# ---- the state folder ---------------------------------------------------------------------------------
def test_a_state_dir_that_is_a_file_is_one_error(multi_community_dataset, tmp_path):
    ds = multi_community_dataset
    fs = FeatureSet.create(np.ones((ds.n_items, 4)), ds, extractor="synthetic")
    (tmp_path / "file").write_text("mine")
    with pytest.raises(DataError, match="is a file, not a folder"):
        ServingState.from_features(ds, fs, tmp_path / "file")
    with pytest.raises(DataError, match="cannot write there"):
        ServingState.from_features(ds, fs, tmp_path / "file" / "below")
    assert (tmp_path / "file").read_text() == "mine"
    ds.save(tmp_path / "ds")
    fs.save(tmp_path / "fs")
    r = CliRunner().invoke(
        cli_app,
        [
            "serve",
            "--dataset",
            str(tmp_path / "ds"),
            "--features",
            str(tmp_path / "fs"),
            "--state-dir",
            str(tmp_path / "file"),
        ],
        env={"COLUMNS": "200"},
    )
    assert r.exit_code == 2 and "is a file, not a folder" in r.output and "Traceback" not in r.output, (
        r.output
    )
