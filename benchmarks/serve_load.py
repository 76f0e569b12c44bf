"""Load test of the recommendation service at up to 1M items x 384 dims (synthetic vectors), before
and after, with where each millisecond of a request goes.

    python benchmarks/serve_load.py [--sizes 1000000] [--workers 1,2] [--baseline REV]
    python benchmarks/serve_load.py --recall-only          # index build / recall section only

For each size and configuration:
  1. build: a separate process opens the persisted index in an empty state folder (the first start
     of a server): build time and that process's peak memory;
  2. restart: the server starts on the built folder under uvicorn (its own process, threads
     pinned to 1; `--workers N` processes sharing the folder): start-up time;
  3. breakdown: inside the server process, before it serves, N requests are timed through each
     layer (index search, the state's recommend, JSON encoding, the whole ASGI app) in CPU time;
  4. load: GET /recommend/{user}?k=20 from a lean keep-alive HTTP client in this process (8
     concurrent connections, then 1): req/s, p50/p99, errors, server CPU per request, server
     peak memory (VmHWM) per process and proportional set size (shared pages split).
`--baseline REV` runs the same measurements on the serving code of git revision REV (exported to
a temporary folder), as it was configured in its own benchmark (HNSW M=16, efConstruction=40 at
1M, built at every start). The recall section builds IVF and HNSW on clustered and isotropic data
and reports recall@20 against exact search, build time and query time.

The load average (`os.getloadavg()`) is recorded around every measurement: on a shared 2-core
machine, throughput and tail latency measured while other jobs run are depressed; the CPU-time
columns (per request, per layer) are far less sensitive to that than wall-clock ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, write  # noqa: E402

RESULTS_JSON = RESULTS / "serve_load.json"
ROOT = Path(__file__).resolve().parents[1]
N_USERS = 1000
HISTORY = 20
OLD_HNSW = {"hnsw_m": 16, "ef_construction": 40, "ef_search": 128}  # the baseline's 1M build


# ---- data ---------------------------------------------------------------------------------------
def vectors(n: int, dim: int, kind: str, seed: int = 0, n_queries: int = 200):
    """Item vectors, queries and each item's topic, L2-normalised (ProfileMatch serves cosine).

    clustered: items around 2,000 topic centres (as embeddings of a real catalogue are), queries
    the mean of 20 items of one topic (as a user profile is); gaussian: isotropic noise, the
    worst case for any approximate index (all neighbours nearly equidistant)."""
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        x = rng.normal(size=(n, dim)).astype(np.float32)
        q = rng.normal(size=(n_queries, dim)).astype(np.float32)
        topic = np.zeros(n, np.int64)
    else:
        centres = rng.normal(size=(2000, dim)).astype(np.float32)
        topic = rng.integers(2000, size=n)
        x = np.empty((n, dim), np.float32)
        for s in range(0, n, 100_000):  # block by block: one copy of the data, not two
            t = topic[s : s + 100_000]
            x[s : s + len(t)] = centres[t] + rng.normal(scale=0.8, size=(len(t), dim)).astype(np.float32)
        by_topic = np.argsort(topic, kind="stable")
        starts = np.searchsorted(topic[by_topic], np.arange(2001))
        q = np.stack(
            [
                x[rng.choice(by_topic[starts[t] : starts[t + 1]], 20)].mean(0)
                for t in rng.integers(2000, size=n_queries)
            ]
        )
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return x, q, topic


def prepare_data(workdir: Path, n: int, dim: int) -> dict:
    """Clustered vectors on disk plus 1,000 users, each with 20 items of one topic."""
    path = workdir / f"items_{n}_{dim}.npy"
    users = workdir / f"users_{n}_{dim}.json"
    if not path.exists():
        x, _, topic = vectors(n, dim, "clustered")
        np.save(path, x)
        rng = np.random.default_rng(7)
        by_topic = np.argsort(topic, kind="stable")
        starts = np.searchsorted(topic[by_topic], np.arange(2001))
        hist = []
        for t in rng.integers(2000, size=N_USERS):
            pool = by_topic[starts[t] : starts[t + 1]]
            hist.append(sorted(rng.choice(pool, min(HISTORY, len(pool)), replace=False).tolist()))
        users.write_text(json.dumps(hist))
        del x
    return {"vectors": str(path), "users": str(users), "n": n, "dim": dim}


def exact_top(x: np.ndarray, q: np.ndarray, k: int = 20) -> tuple[np.ndarray, float]:
    t = time.perf_counter()
    s = q @ x.T
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return top, 1000 * (time.perf_counter() - t) / len(q)


# ---- the server process: serve_load_server.py, started with the configuration in its environment ----
SERVER_PY = Path(__file__).resolve().parent / "serve_load_server.py"


def proc_tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return out


def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


def memory(pids: list[int]) -> dict:
    """Peak RSS per process (VmHWM) and the current proportional set size of all of them."""
    peaks, pss = [], 0.0
    for p in pids:
        try:
            status = Path(f"/proc/{p}/status").read_text()
            peaks.append(int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024)
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
            pss += int(re.search(r"^Pss:\s+(\d+)", rollup, re.M).group(1)) / 1024
        except (OSError, AttributeError):
            pass
    return {"peak_mb_per_process": [round(x) for x in peaks], "pss_total_mb": round(pss)}


def child_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


# ---- the load generator -------------------------------------------------------------------------
async def drive(port: int, n_requests: int, seconds: float, concurrency: int, k: int = 20) -> dict:
    """Keep-alive HTTP/1.1 GETs over `concurrency` connections (a lean client, so that the
    measurement is the server's cost, not the client's)."""
    lat: list[float] = []
    errors = 0
    counter = iter(range(n_requests))
    rng = np.random.default_rng(1)
    users = rng.integers(N_USERS, size=n_requests)
    deadline = time.perf_counter() + seconds

    async def connection(reader, writer):
        nonlocal errors
        try:
            for i in counter:
                if time.perf_counter() > deadline:
                    return
                req = f"GET /recommend/u{users[i]}?k={k} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
                t = time.perf_counter()
                writer.write(req)
                head = await reader.readuntil(b"\r\n\r\n")
                m = re.search(rb"(?i)content-length:\s*(\d+)", head)
                body = await reader.readexactly(int(m.group(1))) if m else b""
                lat.append(time.perf_counter() - t)
                if head[9:12] != b"200" or not body.startswith(b'{"items"'):
                    errors += 1
        finally:
            writer.close()

    # connect one at a time, a little apart: a worker's event loop accepts every pending connection
    # at once, so simultaneous connects would all land on one worker (a proxy in front spreads them)
    conns = []
    for _ in range(concurrency):
        conns.append(await asyncio.open_connection("127.0.0.1", port))
        await asyncio.sleep(0.05)
    deadline = time.perf_counter() + seconds
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    await asyncio.gather(*(connection(r, w) for r, w in conns))
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    ms = np.array(lat) * 1000
    return {
        "concurrency": concurrency,
        "requests": len(ms),
        "errors": errors,
        "wall_s": round(wall, 2),
        "rps": len(ms) / wall,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "client_cpu_ms_per_request": 1000
        * ((cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime))
        / max(len(ms), 1),
    }


def run_drive(*args) -> dict:
    try:
        import uvloop

        return uvloop.run(drive(*args))
    except ImportError:
        return asyncio.run(drive(*args))


def wait_ready(port: int, proc: subprocess.Popen, log_path: Path) -> None:
    import httpx

    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(log_path.read_text()[-3000:])
        time.sleep(0.2)


# ---- one configuration --------------------------------------------------------------------------
def measure(cfg: dict, args, workdir: Path) -> dict:
    """Build (new code: in its own process), restart, breakdown, load at 8 and 1 clients."""
    port = args.port
    row = {k: cfg[k] for k in ("label", "code", "kind", "workers", "n", "dim")} | {"params": cfg["params"]}
    row["raw_vectors_mb"] = cfg["n"] * cfg["dim"] * 4 / 2**20
    if cfg["code"] == "new":  # first start: the build, in its own process
        env = {**os.environ, "BENCH_SERVER_CONFIG": json.dumps(cfg), "OMP_NUM_THREADS": "1"}
        row["load_before_build"] = os.getloadavg()
        out = subprocess.run(
            [sys.executable, str(SERVER_PY), "build"], env=env, capture_output=True, text=True, check=False
        )
        if out.returncode:
            raise RuntimeError(out.stderr[-3000:])
        info = json.loads(out.stdout.strip().splitlines()[-1])
        row.update(
            build_s=info["build_s"],
            build_peak_mb=info["peak_mb"],
            index=info["kind"],
            index_detail=info["detail"],
            build_reused=info["loaded"],
        )
        print(f"  build: {info['build_s']:.0f} s, peak {info['peak_mb']:.0f} MB ({info['kind']})", flush=True)
    else:
        row["index"] = cfg["kind"]
    report = workdir / "report.json"
    report.unlink(missing_ok=True)
    cfg = {**cfg, "port": port, "report": str(report), "breakdown": True}
    env = {**os.environ, "BENCH_SERVER_CONFIG": json.dumps(cfg), "OMP_NUM_THREADS": "1"}
    log_path = workdir / "server.log"
    row["load_before_start"] = os.getloadavg()
    t0 = time.perf_counter()
    with open(log_path, "w") as log_f:
        proc = subprocess.Popen(
            [sys.executable, str(SERVER_PY)], env=env, stdout=log_f, stderr=subprocess.STDOUT
        )
    try:
        wait_ready(port, proc, log_path)
        row["startup_s"] = time.perf_counter() - t0  # includes the in-process breakdown
        rep = json.loads(report.read_text())
        row["state_load_s"] = rep["state_load_s"]
        bd = rep.get("breakdown", {})
        prof = bd.pop("pyinstrument", None)
        row["breakdown_us"] = {k: {"cpu": v[0], "wall": v[1]} for k, v in bd.items()}
        if prof:
            (workdir / f"profile_{cfg['label']}.txt").write_text(prof)
            row["profile_file"] = str(workdir / f"profile_{cfg['label']}.txt")
        pids = proc_tree(proc.pid)
        row["load"] = []
        per0 = {p: cpu_seconds([p]) for p in pids}
        for conc, n_req, secs in (
            (args.concurrency, args.requests, args.seconds),
            (1, args.requests // 2, args.seconds / 2),
        ):
            cpu0 = cpu_seconds(pids)
            la0 = os.getloadavg()
            res = run_drive(port, n_req, secs, conc)
            res["server_cpu_ms_per_request"] = 1000 * (cpu_seconds(pids) - cpu0) / max(res["requests"], 1)
            res["loadavg_before"], res["loadavg_after"] = la0, os.getloadavg()
            row["load"].append(res)
            print(
                f"  {conc} clients: {res['rps']:.0f} req/s p50 {res['p50_ms']:.2f} p99 {res['p99_ms']:.2f} ms, "
                f"server {res['server_cpu_ms_per_request']:.2f} CPU-ms/req, load {la0[0]:.1f}",
                flush=True,
            )
        row["cpu_s_per_process"] = {str(p): round(cpu_seconds([p]) - per0[p], 2) for p in pids}
        row["memory"] = memory(pids)
        row["server_peak_mb"] = max(row["memory"]["peak_mb_per_process"])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return row


# ---- recall -------------------------------------------------------------------------------------
def recall_section(n: int, dim: int, data: str, kinds: list[str]) -> dict:
    from vlmrec.serving.index import IndexParams, VectorIndex
    from vlmrec.serving.server import pin_threads

    x, q, _ = vectors(n, dim, data)
    exact, exact_ms = exact_top(x, q)
    out = {"items": n, "data": data, "exact_ms_per_query": exact_ms, "indexes": []}
    for kind in kinds:
        params = IndexParams(hnsw_m=32, ef_construction=100) if kind == "hnsw" else IndexParams()
        pin_threads(1)
        la = os.getloadavg()
        t = time.perf_counter()
        idx = VectorIndex.build(x, kind=kind, params=params)
        build = time.perf_counter() - t
        entry = {
            "kind": kind,
            "build_s": build,
            "build_threads": os.cpu_count(),
            "loadavg_at_build": la,
            "params": idx.describe()["params"],
            "by_search": [],
        }
        import faiss

        sweep = (4, 8, 16, 32) if kind == "ivf" else (64, 128, 256)
        for v in sweep:
            if kind == "ivf":
                faiss.extract_index_ivf(idx._faiss).nprobe = v
            else:
                faiss.downcast_index(idx._faiss).hnsw.efSearch = v
            t = time.perf_counter()
            got = idx.search(q, 20)[1]
            ms = 1000 * (time.perf_counter() - t) / len(q)
            r = float(np.mean([len(set(a) & set(b)) / 20 for a, b in zip(exact, got)]))
            entry["by_search"].append(
                {"nprobe" if kind == "ivf" else "efSearch": v, "recall@20": r, "ms_per_query": ms}
            )
        out["indexes"].append(entry)
        print(json.dumps({k: v for k, v in entry.items() if k != "loadavg_at_build"}), flush=True)
        del idx
    return out


# ---- main ---------------------------------------------------------------------------------------
def export_baseline(rev: str, workdir: Path) -> Path:
    dest = workdir / f"baseline-{rev}"
    if not dest.exists():
        dest.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, "src"], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest / "src"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--index", default="auto", help="index of the new code (auto, flat, hnsw, ivf)")
    ap.add_argument("--workers", default="1,2", help="worker counts of the new code")
    ap.add_argument("--baseline", default=None, help="git revision of the 'before' serving code")
    ap.add_argument("--baseline-index", default="hnsw")
    ap.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="KIND:JSON",
        help='extra new-code rows (1 worker), e.g. hnsw:{"hnsw_m":16,"ef_construction":40}',
    )
    ap.add_argument("--requests", type=int, default=6000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--port", type=int, default=8790)
    ap.add_argument("--workdir", type=Path, default=None, help="keeps data and state between runs")
    ap.add_argument(
        "--recall-only", action="store_true", help="skip the load test (keeps its previous results)"
    )
    ap.add_argument(
        "--no-recall", action="store_true", help="skip the recall section (keeps its previous results)"
    )
    ap.add_argument(
        "--render", action="store_true", help="only rewrite the Markdown (and notes) from the JSON"
    )
    ap.add_argument(
        "--merge", action="store_true", help="keep previous load rows that this run does not measure again"
    )
    ap.add_argument("--recall-sizes", default="1000000")
    ap.add_argument("--recall-data", default="clustered,gaussian")
    ap.add_argument("--recall-kinds", default="ivf,hnsw")
    ap.add_argument(
        "--notes", default="", help="Markdown text appended to the results (a file name reads the file)"
    )
    args = ap.parse_args()
    if args.notes and Path(args.notes).is_file():
        args.notes = Path(args.notes).read_text()
    if args.render:
        previous = json.loads(RESULTS_JSON.read_text())
        previous["notes"] = args.notes
        RESULTS_JSON.write_text(json.dumps(previous, indent=1, default=str))
        text = markdown(args, previous["load"], previous["recall"])
        (RESULTS / "serve_load.md").write_text(text + "\n")
        print(text)
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="serve_load-"))
    workdir.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    rows: list[dict] = []
    if not args.recall_only:
        for n in map(int, args.sizes.split(",")):
            data = prepare_data(workdir, n, args.dim)
            configs = []
            if args.baseline:
                src = export_baseline(args.baseline, workdir)
                kind = args.baseline_index if n > 1000 else "flat"
                params = OLD_HNSW if kind == "hnsw" else {}
                configs.append(
                    {
                        "label": f"before-{n}",
                        "code": "old",
                        "kind": kind,
                        "workers": 1,
                        "params": params,
                        "src": str(src),
                    }
                )
            for w in [int(x) for x in args.workers.split(",") if x.strip()]:
                configs.append(
                    {
                        "label": f"after-{n}-w{w}",
                        "code": "new",
                        "kind": args.index,
                        "workers": w,
                        "params": {},
                        "src": str(ROOT / "src"),
                    }
                )
            for extra in args.also:
                kind, _, raw = extra.partition(":")
                params = json.loads(raw or "{}")
                short = {
                    "hnsw_m": "M",
                    "ef_construction": "efC",
                    "ef_search": "ef",
                    "nlist": "nlist",
                    "nprobe": "nprobe",
                }
                tag = "".join(f"-{short.get(k, k)}{v}" for k, v in sorted(params.items()))
                configs.append(
                    {
                        "label": f"after-{n}-{kind}{tag}",
                        "code": "new",
                        "kind": kind,
                        "workers": 1,
                        "params": params,
                        "src": str(ROOT / "src"),
                    }
                )
            for c in configs:
                tag = "".join(f"-{k}{v}" for k, v in sorted(c["params"].items()))
                state_dir = workdir / f"state-{c['code']}-{n}-{c['kind']}{tag}"
                c.update(data, state_dir=str(state_dir))
                print(
                    f"{c['label']}: {c['code']} code, index {c['kind']}, {c['workers']} worker(s)", flush=True
                )
                rows.append(measure(c, args, workdir))
        if args.merge:
            fresh = {r["label"] for r in rows}
            kept = [r for r in previous.get("load", []) if "label" in r and r["label"] not in fresh]
            rows = kept + rows
    else:
        rows = [r for r in previous.get("load", []) if "label" in r]
    if args.no_recall:  # keep the previous recall section (if it has this script's format)
        recalls = [r for r in previous.get("recall", []) if "indexes" in r]
    else:
        recalls = [
            recall_section(n, args.dim, data, args.recall_kinds.split(","))
            for n in map(int, args.recall_sizes.split(","))
            for data in args.recall_data.split(",")
        ]
    payload = {"config": {k: str(v) for k, v in vars(args).items()}, "load": rows, "recall": recalls}
    payload["loadavg_end"] = os.getloadavg()
    for r in rows:
        if r.get("profile_file") and Path(r["profile_file"]).exists():
            (RESULTS / f"serve_load.profile-{r['label']}.txt").write_text(Path(r["profile_file"]).read_text())
    write("serve_load", payload, markdown(args, rows, recalls))


def markdown(args, rows: list[dict], recalls: list[dict]) -> str:
    md = [
        "# serve_load: GET /recommend/{user}?k=20, 384-dim clustered vectors, 1,000 users x 20-item histories",
        "",
        f"Machine: {os.cpu_count()} cores. Load generator: lean keep-alive HTTP client in its own process. "
        "`load` = `os.getloadavg()` (1-minute) when the measurement started: above ~2 on this 2-core "
        "machine, other jobs compete for the CPU and wall-clock throughput / tails are depressed; the "
        "CPU-ms columns are much less affected.",
        "",
        "| run | code | index | workers | clients | req/s | p50 ms | p99 ms | errors | server CPU ms/req | load | server peak MB (x raw) | start-up s | build s (peak MB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        raw = r["raw_vectors_mb"]
        if "build_s" not in r:
            build = "at every start"
        elif r.get("build_reused"):
            build = "reused (persisted)"
        else:
            build = f"{r['build_s']:.0f} ({r['build_peak_mb']:.0f})"
        for ld in r["load"]:
            md.append(
                f"| {r['label']} | {r['code']} | {r['index']} | {r['workers']} | {ld['concurrency']} | {ld['rps']:.0f} | "
                f"{ld['p50_ms']:.2f} | {ld['p99_ms']:.1f} | {ld['errors']} | {ld['server_cpu_ms_per_request']:.2f} | "
                f"{ld['loadavg_before'][0]:.1f} | {r['server_peak_mb']:.0f} ({r['server_peak_mb'] / raw:.2f}) | "
                f"{r['startup_s']:.0f} | {build} |"
            )
    if rows:
        md += [
            "",
            "Where the CPU time of one request goes (microseconds). The first three columns are timed inside the "
            "server process before it serves (mean over 1,000 requests); 'web stack' is the rest of the server's "
            "CPU per request under load (8 clients): HTTP parsing and sockets (uvicorn), routing and parameter "
            "validation (FastAPI / Starlette), the thread-pool hop of a sync endpoint (before), and the response. "
            "'of which framework' is the same ASGI app timed in-process without sockets (for the before code this "
            "sequential timing wakes a sleeping thread-pool thread on every request and overstates the hop, so it "
            "is left out):",
            "",
            "| run | index search | profile + exclusions + ids | JSON encode | web stack | of which framework (in-process) | total CPU ms/req under load |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            b = r.get("breakdown_us", {})
            if not b:
                continue
            total = r["load"][0]["server_cpu_ms_per_request"] * 1000
            search, state = b["index_search"]["cpu"], b["state_recommend"]["cpu"]
            encode = b["json_encode"]["cpu"]
            web = total - state - encode
            framework = b["asgi_app"]["cpu"] - b.get("harness", {}).get("cpu", 0) - state - encode
            shown = f"{framework:.0f}" if r["code"] == "new" else "n/a"
            md.append(
                f"| {r['label']} | {search:.0f} | {state - search:.0f} | {encode:.0f} | {web:.0f} | {shown} | "
                f"{total / 1000:.2f} |"
            )
    if recalls:
        md += [
            "",
            "Index build and recall@20 against exact search (L2-normalised vectors, inner product = cosine; "
            f"builds use every core ({os.cpu_count()}), queries one thread, 200 queries):",
            "",
            "| items | data | index | parameters | build s | load at build | exact ms/query (numpy, full sort) | search | recall@20 | ms/query |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in recalls:
            for e in r["indexes"]:
                for s in e["by_search"]:
                    knob = " ".join(
                        f"{k}={v}" for k, v in s.items() if k not in ("recall@20", "ms_per_query")
                    )
                    params = ", ".join(
                        f"{k}={v}" for k, v in e["params"].items() if k not in ("nprobe", "ef_search")
                    )
                    md.append(
                        f"| {r['items']:,} | {r['data']} | {e['kind']} | {params} | {e['build_s']:.0f} | "
                        f"{e['loadavg_at_build'][0]:.1f} | {r['exact_ms_per_query']:.1f} | {knob} | "
                        f"{s['recall@20']:.3f} | {s['ms_per_query']:.2f} |"
                    )
    if args.notes:
        md += ["", "## Notes", "", args.notes]
    return "\n".join(md)


if __name__ == "__main__":
    main()
