"""Load test of the recommendation service at 1k, 100k and 1M items x 384 dims (synthetic vectors).

    python benchmarks/serve_load.py [--sizes 1000,100000,1000000] [--requests 2000] [--seconds 30]

For each size: start `vlmrec`'s FastAPI app under uvicorn in its own process on 127.0.0.1 (one
worker, threads pinned to 1), drive GET /recommend/{user} with a bounded async client (count and
time limited), and report p50/p99 latency, requests/s, errors and the server's peak memory; then
recall@20 of HNSW against exact search on the same vectors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, write  # noqa: E402

RESULTS_JSON = RESULTS / "serve_load.json"

HNSW_SMALL = {"hnsw_m": 32, "ef_construction": 200, "ef_search": 128}
HNSW_LARGE = {"hnsw_m": 16, "ef_construction": 40, "ef_search": 128}  # 1M on 2 cores: a build of minutes


def hnsw_params(n: int) -> dict:
    return HNSW_LARGE if n >= 1_000_000 else HNSW_SMALL


SERVER = r"""
import sys, numpy as np, uvicorn
def hnsw_params(n):
    return {"hnsw_m": 16, "ef_construction": 40, "ef_search": 128} if n >= 1_000_000 else {"hnsw_m": 32, "ef_construction": 200, "ef_search": 128}
sys.path.insert(0, sys.argv[5])
from vlmrec.provenance import set_threads
set_threads(1)
from vlmrec.serving.state import ServingState
from vlmrec.serving.service import create_app
n, dim, kind, port = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
rng = np.random.default_rng(0)
items = rng.normal(size=(n, dim)).astype(np.float32)
n_users = 1000
history = [set(rng.choice(n, 20, replace=False).tolist()) for _ in range(n_users)]
state = ServingState(np.arange(n).astype(str), items, np.array([f"u{u}" for u in range(n_users)]), None, history,
                     "profile", sys.argv[6], index_kind="flat")  # replaced below for hnsw, with size-dependent parameters
if kind == "hnsw":
    from vlmrec.serving.index import VectorIndex
    state.index = VectorIndex.build(state.item_vectors, kind="hnsw", **hnsw_params(n))
uvicorn.run(create_app(state), host="127.0.0.1", port=port, log_level="warning")
"""


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def drive(port: int, n_requests: int, seconds: float, concurrency: int, k: int = 20):
    import httpx

    lat, errors = [], 0
    deadline = time.perf_counter() + seconds
    counter = iter(range(n_requests))
    rng = np.random.default_rng(1)

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

        async def worker():
            nonlocal errors
            for _ in counter:
                if time.perf_counter() > deadline:
                    return
                t = time.perf_counter()
                try:
                    r = await client.get(f"/recommend/u{rng.integers(1000)}", params={"k": k})
                    if r.status_code != 200:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                lat.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    lat = np.array(lat) * 1000
    return {
        "requests": len(lat),
        "errors": errors,
        "wall_s": wall,
        "rps": len(lat) / wall,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
    }


def vectors(n: int, dim: int, kind: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Item vectors and queries, L2-normalised (ProfileMatch serves cosine).

    clustered: items around 2,000 topic centres (as embeddings of a real catalogue are), queries
    the mean of 20 items of one topic (as a user profile is); gaussian: isotropic noise, the
    worst case for any approximate index (all neighbours nearly equidistant)."""
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        x = rng.normal(size=(n, dim)).astype(np.float32)
        q = rng.normal(size=(200, dim)).astype(np.float32)
    else:
        centres = rng.normal(size=(2000, dim)).astype(np.float32)
        topic = rng.integers(2000, size=n)
        x = centres[topic] + rng.normal(scale=0.8, size=(n, dim)).astype(np.float32)
        q = np.stack(
            [x[rng.choice(np.flatnonzero(topic == t), 20)].mean(0) for t in rng.integers(2000, size=200)]
        )
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return x, q


def recall_hnsw(n: int, dim: int, kind: str) -> dict:
    from vlmrec.serving.index import VectorIndex

    x, q = vectors(n, dim, kind)
    t = time.perf_counter()
    exact = VectorIndex.build(x, kind="flat").search(q, 20)[1]
    t_exact = time.perf_counter() - t
    t = time.perf_counter()
    hnsw = VectorIndex.build(x, kind="hnsw", **hnsw_params(n))
    build = time.perf_counter() - t
    out = {
        "data": kind,
        "hnsw_build_s": build,
        "exact_ms_per_query": 1000 * t_exact / len(q),
        "M": hnsw.hnsw_m,
        "ef_construction": hnsw.ef_construction,
        "by_ef_search": {},
    }
    import faiss

    for ef in (128, 256, 512):
        faiss.downcast_index(hnsw.index.index).hnsw.efSearch = ef
        t = time.perf_counter()
        approx = hnsw.search(q, 20)[1]
        ms = 1000 * (time.perf_counter() - t) / len(q)
        recall = float(np.mean([len(set(a) & set(b)) / 20 for a, b in zip(exact, approx)]))
        out["by_ef_search"][ef] = {"recall@20": recall, "ms_per_query": ms}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,100000,1000000")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument(
        "--recall-only", action="store_true", help="skip the load test (keeps its previous results)"
    )
    args = ap.parse_args()
    src = str(Path(__file__).resolve().parents[1] / "src")
    rows = []
    import tempfile

    previous = RESULTS_JSON.exists() and json.loads(RESULTS_JSON.read_text()).get("load")
    for n in [] if args.recall_only else map(int, args.sizes.split(",")):
        for kind in ("flat", "hnsw") if n > 1000 else ("flat",):
            port = 8800 + len(rows)
            with tempfile.TemporaryDirectory() as state_dir:
                env = {**os.environ, "OMP_NUM_THREADS": "1"}
                proc = subprocess.Popen(
                    [sys.executable, "-c", SERVER, str(n), str(args.dim), kind, str(port), src, state_dir],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                try:
                    import httpx

                    t0 = time.perf_counter()
                    while True:
                        try:
                            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                                break
                        except httpx.HTTPError:
                            pass
                        if proc.poll() is not None:
                            raise RuntimeError(proc.stderr.read().decode()[-1000:])
                        time.sleep(0.5)
                    startup = time.perf_counter() - t0
                    res = asyncio.run(drive(port, args.requests, args.seconds, args.concurrency))
                    res.update(
                        items=n, dim=args.dim, index=kind, startup_s=startup, server_peak_mb=peak_mb(proc.pid)
                    )
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
            rows.append(res)
            print(res, flush=True)
    if args.recall_only and previous:
        rows = previous
    recalls = [
        recall_hnsw(n, args.dim, kind) | {"items": n}
        for n in map(int, args.sizes.split(","))
        if n > 1000
        for kind in ("clustered", "gaussian")
    ]
    for r in recalls:
        print(r, flush=True)
    write(
        "serve_load", {"config": vars(args), "load": rows, "recall": recalls}, markdown(args, rows, recalls)
    )


def markdown(args, rows: list[dict], recalls: list[dict]) -> str:
    md = [
        f"# serve_load (GET /recommend/{{user}}?k=20, {args.concurrency} concurrent clients, 1 uvicorn worker, 1 thread)",
        "",
        "| items | index | requests | errors | req/s | p50 ms | p99 ms | server peak MB | startup s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        md.append(
            f"| {r['items']:,} | {r['index']} | {r['requests']} | {r['errors']} | {r['rps']:.0f} | {r['p50_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {r['server_peak_mb']:.0f} | {r['startup_s']:.0f} |"
        )
    md += [
        "",
        "HNSW recall@20 against exact search (L2-normalised vectors, inner product = cosine):",
        "",
        "| items | data | HNSW M, efConstruction | build s | exact ms/query | efSearch | recall@20 | HNSW ms/query |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in recalls:
        for ef, v in r["by_ef_search"].items():
            md.append(
                f"| {r['items']:,} | {r['data']} | {r['M']}, {r['ef_construction']} | {r['hnsw_build_s']:.0f} | "
                f"{r['exact_ms_per_query']:.2f} | {ef} | {v['recall@20']:.3f} | {v['ms_per_query']:.2f} |"
            )
    md += [
        "",
        "clustered: items around 2,000 topics, queries = mean of 20 same-topic items (like user profiles); "
        "gaussian: isotropic noise, the worst case for any approximate index. The load test serves isotropic "
        "vectors (latency does not depend on the data). 1M uses a cheaper HNSW build (M=16, efConstruction=40) "
        "to fit this 2-core machine; 100k uses the library default (M=32, efConstruction=200).",
    ]
    return "\n".join(md)


if __name__ == "__main__":
    main()
