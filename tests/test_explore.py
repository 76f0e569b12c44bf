"""`vlmrec explore`: the page's API gives each saved model's evaluator top-K for a user and scores
ad-hoc histories by the stated rules; unknown ids are 404 pages, images come only from the
dataset's table by item id; and the page itself, driven in headless Chromium, picks a user, shows
every model's recommendations with images, switches K and models, opens an item's nearest items
and builds an ad-hoc history, each view a URL (screenshots saved at 1,280 px)."""

from __future__ import annotations

import copy
import socket
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.browser import Browser
from tests.visual_run import visual_run
from vlmrec.evaluation.evaluator import Evaluator
from vlmrec.serving.explore import Explorer, _image_files
from vlmrec.serving.explore_app import create_explore_app


@pytest.fixture(scope="module")
def explorer(tmp_path_factory):
    return Explorer(visual_run(tmp_path_factory.mktemp("explore")))


@pytest.fixture(scope="module")
def client(explorer):
    return TestClient(create_explore_app(explorer))


def _ids(explorer: Explorer, items: np.ndarray) -> list[str]:
    return [str(explorer.ds.item_ids[i]) for i in items]


def test_user_view_is_the_evaluators_topk_of_every_saved_model(explorer, client):
    info = client.get("/api/info").json()
    names = [m["name"] for m in info["models"]]
    assert set(names) == {"itemknn", "mostpop", "profilematch.f", "profilematch.f-shuffled"}
    assert info["default_models"][1:] == ["profilematch.f", "profilematch.f-shuffled"]
    ds, ev = explorer.ds, Evaluator(explorer.ds, "test", ks=[10])
    for u in ev.users[:5]:
        uid = str(ds.user_ids[u])
        view = client.get("/api/recommend", params={"user": uid, "k": 7, "models": ",".join(names)}).json()
        assert [c["name"] for c in view["columns"]] == names
        test = set(ds.matrix("test")[u].indices)
        for col in view["columns"]:
            expected = _ids(explorer, ev.topk(explorer.served[col["name"]].model, np.array([u]), 7)[0])
            assert [i["id"] for i in col["items"]] == expected
            assert [i["hit"] for i in col["items"]] == [explorer.item_index[i] in test for i in expected]
        assert view["n_test"] == len(test) and len(view["history"]) == min(20, view["n_history"])
    assert client.get("/api/users", params={"q": str(ds.user_ids[ev.users[0]])}).json()[0]["id"] == str(
        ds.user_ids[ev.users[0]]
    )


def test_adhoc_history_rules(explorer, client):
    """ItemKNN scores a history exactly; ProfileMatch (mean profiles) folded in ranks as the user
    it came from; MostPop ranks as for everyone."""
    ds = explorer.ds
    ev = Evaluator(ds, "test", ks=[10], mask=("train",))  # a history masks only itself
    train = ds.matrix("train")
    for u in ev.users[:4]:
        items = _ids(explorer, train[u].indices)
        view = client.get(
            "/api/recommend",
            params={"items": ",".join(items), "k": 10, "models": "itemknn,profilematch.f,mostpop"},
        ).json()
        got = {c["name"]: [i["id"] for i in c["items"]] for c in view["columns"]}
        for name in got:
            assert got[name] == _ids(explorer, ev.topk(explorer.served[name].model, np.array([u]), 10)[0]), (
                name
            )
    assert {c["adhoc"] for c in view["columns"]} == {"exact", "fold-in", "same for everyone"}


def test_item_view_nearest_by_content_and_descriptions(explorer, client):
    view = client.get("/api/items/i007", params={"k": 5}).json()
    assert view["item"]["title"] == "Community 1 thing 7" and view["similar_by"] == "f"
    assert len(view["similar"]) == 5 and "i007" not in [s["id"] for s in view["similar"]]
    x = explorer.content
    assert x is not None
    i = explorer.item_index["i007"]
    sims = x @ x[i]
    sims[i] = -np.inf
    assert [s["id"] for s in view["similar"]] == _ids(explorer, np.argsort(-sims, kind="stable")[:5])
    assert view["item"]["description"] == "a round thing of community 1"
    last = str(explorer.ds.item_ids[-1])
    assert client.get(f"/api/items/{last}").json()["item"]["description"] is None


def test_unknown_ids_are_404_pages_and_images_come_only_from_the_table(explorer, client, tmp_path):
    for path in (
        "/?user=nobody",
        "/?item=nothing",
        "/?items=i001,nothing",
        "/images/nothing",
        "/no/such/page",
    ):
        r = client.get(path)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), path
        assert "Traceback" not in r.text
    assert "Back to the explorer" in client.get("/images/..%2F..%2Fetc%2Fpasswd").text
    r = client.get("/api/recommend", params={"user": "nobody"})
    assert r.status_code == 404 and r.json()["detail"] == "no user 'nobody' in this run's dataset"
    r = client.get("/api/recommend", params={"user": "u1", "models": "itemknn,bogus"})
    assert r.status_code == 400 and "choose from itemknn" in r.json()["detail"]
    assert client.get("/api/recommend", params={"user": "u1", "k": 0}).status_code == 422
    assert client.get("/api/recommend").status_code == 400
    img = client.get("/images/i003")
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"
    assert img.content == explorer.images[explorer.item_index["i003"]].read_bytes()
    # a table entry that is not an image file, or a link out of its folder, is never served
    ds = copy.deepcopy(explorer.ds)
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"secret")
    link = explorer.images[0].parent / "link.png"
    link.symlink_to(outside)
    try:
        ds.items.loc[0, "image_path"] = "/etc/passwd"
        ds.items.loc[1, "image_path"] = str(link)
        files = _image_files(ds)
    finally:
        link.unlink()
    assert files[0] is None and files[1] is None and files[2] is not None


def _serve(explorer):
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_explore_app(explorer), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the explore server did not start"
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


ALL_IMAGES_OK = "[...document.images].every(i => i.complete && i.naturalWidth > 0)"


def test_explore_page_in_chromium(explorer, tmp_path):
    server, thread, base = _serve(explorer)
    user = str(explorer.ds.user_ids[explorer.ev.users[3]])
    try:
        with Browser.start(tmp_path) as b:
            b.goto(base + "/")
            b.wait_for("document.querySelectorAll('#suggest button').length > 0")
            b.screenshot(tmp_path / "explore-welcome-1280.png")
            # pick a user: search by id and submit
            b.type("#user-q", user)
            b.click("#user-go")
            b.wait_for("document.querySelectorAll('.col .it').length === 30")
            assert b.eval("location.search") == f"?user={user}&k=10"
            assert b.eval("[...document.querySelectorAll('.col')].map(c => c.dataset.model)") == [
                *explorer.default_models
            ]
            b.wait_for(ALL_IMAGES_OK)
            assert b.eval("document.querySelectorAll('.col img').length") == 30
            assert b.broken_images() == []
            b.screenshot(tmp_path / "explore-user-1280.png")
            # switch K and the models; each is a new URL
            b.eval("const s=document.querySelector('#k');s.value='5';s.dispatchEvent(new Event('change'))")
            b.wait_for("document.querySelectorAll('.col .it').length === 15")
            b.click("#models input[value='mostpop']")
            b.wait_for("document.querySelectorAll('.col').length === 4")
            assert "models=" in b.eval("location.search") and "mostpop" in b.eval("location.search")
            # open an item: its nearest items by content
            b.click(".col .it .t")
            b.wait_for("document.querySelectorAll('#similar .card').length === 5")
            b.wait_for(ALL_IMAGES_OK)
            assert "item=" in b.eval("location.search")
            b.screenshot(tmp_path / "explore-item-1280.png")
            # compose an ad-hoc history from it
            b.click("#item [data-add]")
            b.wait_for(
                "location.search.startsWith('?items=') && document.querySelectorAll('.col').length === 4"
            )
            # ... and add one more item found by searching the catalogue
            n_items = "new URLSearchParams(location.search).get('items').split(',').length"
            before = b.eval(n_items)
            b.click("#compose summary")
            b.type("#item-q", "thing 11")
            b.wait_for("document.querySelectorAll('#item-results .card').length > 0")
            b.click("#item-results [data-add]")
            b.wait_for(f"{n_items} === {before + 1}")
            b.wait_for("document.querySelectorAll('#history .card').length === " + str(before + 1))
            b.wait_for(ALL_IMAGES_OK)
            b.screenshot(tmp_path / "explore-history-1280.png")
            # a shared URL loads straight into its state, also on a phone-width window
            b.goto(f"{base}/?user={user}&k=3&models=profilematch.f,itemknn")
            b.wait_for("document.querySelectorAll('.col .it').length === 6")
            assert b.eval("[...document.querySelectorAll('.col')].map(c => c.dataset.model)") == [
                "profilematch.f",
                "itemknn",
            ]
            b.resize(390, 800)
            b.wait_for(ALL_IMAGES_OK)
            assert b.eval("document.documentElement.scrollWidth") <= 390
            b.screenshot(tmp_path / "explore-user-390.png")
            b.pump(0.2)
            assert b.errors == [] and b.broken_images() == []
            # an unknown user: the page says so (and was answered 404)
            b.goto(f"{base}/?user=nobody")
            b.wait_for("document.querySelector('#message').textContent.includes('no user')")
    finally:
        server.should_exit = True
        thread.join(10)
    for view in ("welcome", "user", "item", "history"):
        assert (tmp_path / f"explore-{view}-1280.png").stat().st_size > 5_000


def test_explore_command_refuses_what_is_not_a_run(tmp_path):
    from typer.testing import CliRunner

    from vlmrec.cli import app

    result = CliRunner().invoke(app, ["explore", str(tmp_path)])
    assert result.exit_code == 2 and "not a run folder" in result.output
