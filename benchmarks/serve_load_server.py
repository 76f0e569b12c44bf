"""The server process of benchmarks/serve_load.py (started by it; not run by hand).

The configuration comes as JSON in the environment variable BENCH_SERVER_CONFIG (keys: src, vectors,
users, code, kind, params, state_dir, port, report, workers, breakdown). `src` is put first on the
import path, so that the same file serves the current code ("new") or the serving code of an
earlier git revision ("old", exported by serve_load.py); vlmrec is therefore imported inside the
functions, after the path is set.

    python serve_load_server.py build   # open (build or load) the persisted index; print JSON
    python serve_load_server.py         # load the state, time each layer in-process, serve (uvicorn)
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

CFG: dict[str, Any] = json.loads(os.environ.get("BENCH_SERVER_CONFIG", "{}"))
if CFG.get("src"):
    sys.path.insert(0, CFG["src"])

Timing = tuple[float, float]  # mean (CPU, wall) microseconds per call


def build_index() -> dict[str, Any]:
    """The first start of a server: open the persisted index in an empty state folder (building
    it), with the build time and this process's peak memory."""
    from vlmrec.serving.index import IndexParams, open_index
    from vlmrec.serving.server import pin_threads

    pin_threads(1)
    x = np.load(CFG["vectors"], mmap_mode="r")
    t = time.perf_counter()
    index = open_index(
        os.path.join(CFG["state_dir"], "index"), x, CFG["kind"], IndexParams(**CFG["params"]), normalise=True
    )
    return {
        "build_s": time.perf_counter() - t,
        "loaded": index.info["loaded"],
        "kind": index.kind,
        "detail": index.describe(),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def load_state() -> Any:
    """The serving state of the configured code: the new code with its own index, or the baseline
    exactly as its benchmark ran it (a flat state, HNSW built at every start)."""
    items = np.load(CFG["vectors"], mmap_mode="r" if CFG["code"] == "new" else None)
    hist = [set(h) for h in json.loads(Path(CFG["users"]).read_text())]
    ids = np.arange(len(items)).astype(str)
    users = np.array([f"u{u}" for u in range(len(hist))])
    if CFG["code"] == "new":
        from vlmrec.serving.index import IndexParams
        from vlmrec.serving.server import pin_threads
        from vlmrec.serving.state import ServingState

        pin_threads(1)
        return ServingState(
            ids,
            items,
            users,
            None,
            hist,
            "profile",
            CFG["state_dir"],
            index_kind=CFG["kind"],
            index_params=IndexParams(**CFG["params"]),
        )
    _baseline("vlmrec.provenance").set_threads(1)
    state = _baseline("vlmrec.serving.state").ServingState(
        ids, items, users, None, hist, "profile", CFG["state_dir"], index_kind="flat"
    )
    if CFG["kind"] == "hnsw":
        vector_index = _baseline("vlmrec.serving.index").VectorIndex
        state.index = vector_index.build(state.item_vectors, kind="hnsw", **CFG["params"])
    return state


def _baseline(module: str) -> Any:
    """A module of the baseline revision: its names are that revision's, not this tree's, so they
    are looked up at run time (and typed Any)."""
    return importlib.import_module(module)


def make_app() -> Any:
    """The web app on a freshly loaded state (the factory each uvicorn worker calls)."""
    from vlmrec.serving.service import create_app

    return create_app(load_state())


async def asgi_get(app: Any, path: str, query: bytes) -> list[dict[str, Any]]:
    """The messages `app` sends for one GET, called in-process (no sockets)."""
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def cpu_us(fn: Callable[[int], object], n: int) -> Timing:
    """Mean CPU and wall microseconds of `fn(i)` over n calls, after n warm-up calls (every page
    this layer touches is mapped before timing)."""
    for i in range(n):
        fn(i)
    t, w = time.process_time(), time.perf_counter()
    for i in range(n):
        fn(i)
    return 1e6 * (time.process_time() - t) / n, 1e6 * (time.perf_counter() - w) / n


def _json_encode(recs: list[Any], n: int) -> Timing:
    """The response encoding of the configured code."""
    if CFG["code"] == "new":
        from vlmrec.serving.service import dumps

        return cpu_us(lambda i: dumps({"items": recs[i].item_ids, "scores": recs[i].scores}), n)
    from fastapi.encoders import jsonable_encoder

    recommendations = _baseline("vlmrec.serving.service").Recommendations

    return cpu_us(
        lambda i: json.dumps(
            jsonable_encoder(recommendations(items=recs[i].item_ids, scores=recs[i].scores))
        ).encode(),
        n,
    )


def _profile(whole: Callable[[int], None], n: int) -> str | None:
    """A sampling profile (text) of the same in-process requests, when pyinstrument is installed."""
    try:
        profiler = importlib.import_module("pyinstrument").Profiler  # optional, untyped
    except ImportError:
        return None
    p = profiler(interval=0.0002)
    p.start()
    for i in range(n):
        whole(i)
    p.stop()
    return str(p.output_text(unicode=False, color=False, show_all=False))


def breakdown(state: Any, app: Any, n: int = 1000) -> dict[str, Any]:
    """Mean CPU (and wall) microseconds per request in each layer, in this process."""
    rng = np.random.default_rng(3)
    users = [f"u{u}" for u in rng.integers(1000, size=n + 1)]
    pos = state.users.position if CFG["code"] == "new" else state.user_index.__getitem__
    out: dict[str, Any] = {}

    def search(i: int) -> None:
        u = pos(users[i])
        state.index.search(state.user_vector(u)[None, :], 20, [set(state.history[u])])

    out["index_search"] = cpu_us(search, n)
    out["profile_vector"] = cpu_us(lambda i: state.user_vector(pos(users[i])), n)
    recs = [state.recommend_user(users[i], 20) for i in range(n + 1)]
    out["state_recommend"] = cpu_us(lambda i: state.recommend_user(users[i], 20), n)
    out["json_encode"] = _json_encode(recs, n)
    loop = asyncio.new_event_loop()

    async def noop_app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    out["harness"] = cpu_us(lambda i: loop.run_until_complete(asgi_get(noop_app, "/", b"")), n)

    def whole(i: int) -> None:
        sent = loop.run_until_complete(asgi_get(app, f"/recommend/{users[i]}", b"k=20"))
        assert sent[0]["status"] == 200, sent

    out["asgi_app"] = cpu_us(whole, n)
    profile = _profile(whole, n)
    if profile is not None:
        out["pyinstrument"] = profile
    loop.close()
    return out


def serve() -> None:
    """Load the state, write the load time (and the breakdown) to CFG["report"], then serve."""
    import uvicorn

    t0 = time.perf_counter()
    state = load_state()
    load_s = time.perf_counter() - t0
    from vlmrec.serving.service import create_app

    app = create_app(state)
    report: dict[str, Any] = {"state_load_s": load_s}
    if CFG.get("breakdown"):
        report["breakdown"] = breakdown(state, app)
    Path(CFG["report"]).write_text(json.dumps(report))
    opts: dict[str, Any] = {"host": "127.0.0.1", "port": CFG["port"], "log_level": "warning"}
    if CFG["code"] == "new":
        opts["access_log"] = False
    if CFG["workers"] > 1:
        del state, app
        gc.collect()
        module = Path(__file__).stem
        uvicorn.run(
            f"{module}:make_app",
            factory=True,
            workers=CFG["workers"],
            app_dir=str(Path(__file__).resolve().parent),
            **opts,
        )
    else:
        uvicorn.run(app, **opts)


if __name__ == "__main__":
    if sys.argv[1:] == ["build"]:
        print(json.dumps(build_index()))
    else:
        serve()
