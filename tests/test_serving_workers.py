"""Several processes serving one state folder (issue 15): one index build, shared logs written
under a lock, and every worker seeing every acknowledged event before its next answer."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from vlmrec.features.featureset import FeatureSet
from vlmrec.serving.loader import ServeSpec, load_state


@pytest.fixture()
def on_disk(multi_community_dataset, tmp_path):
    ds = multi_community_dataset
    x = np.random.default_rng(0).normal(size=(ds.n_items, 16)).astype(np.float32)
    ds.save(tmp_path / "ds")
    FeatureSet.create(x, ds, extractor="synthetic", model="synthetic", name="f").save(tmp_path / "feat")
    return ServeSpec(dataset=tmp_path / "ds", features=str(tmp_path / "feat"), state_dir=tmp_path / "state")


def test_two_states_on_one_folder_see_each_others_events_and_items(on_disk, multi_community_dataset):
    a, b = load_state(on_disk), load_state(on_disk)
    assert a.index.info["loaded"] is False and b.index.info["loaded"] is True  # built once
    item = str(multi_community_dataset.item_ids[5])
    assert a.add_event("shared-user", item) is True
    assert item not in b.recommend_user("shared-user", 200).item_ids  # b follows a's log
    assert b.add_event("shared-user", item) is False  # and knows the user already exists
    b.add_item("from-b", np.ones(16, np.float32))
    assert "from-b" in a.similar(item, 200).item_ids
    with pytest.raises(Exception, match="already exists"):
        a.add_item("from-b", np.ones(16, np.float32))  # the duplicate check sees b's item


WRITER = textwrap.dedent(
    """
    import sys
    from vlmrec.serving.loader import ServeSpec, load_state
    spec = ServeSpec.model_validate_json(sys.argv[1])
    state = load_state(spec)
    print("loaded" if state.index.info["loaded"] else "built", flush=True)
    items = state.items.names(range(40))
    for j in range(int(sys.argv[3])):
        state.add_event(f"{sys.argv[2]}-{j % 7}", items[j % len(items)])
    """
)


def test_concurrent_processes_build_once_and_append_without_loss(on_disk):
    n = 60
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, on_disk.model_dump_json(), name, str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("p", "q", "r")
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    assert sorted(o[0].strip() for o in outs) == ["built", "loaded", "loaded"]  # one builder
    lines = (on_disk.state_dir / "events.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 3 * n + 1
    assert all(isinstance(json.loads(line), dict) for line in lines[:-1])  # no interleaved writes
    state = load_state(on_disk)
    assert state.events_log.bad_lines == 0
    assert {f"{w}-{j}" for w in "pqr" for j in range(7)} <= set(state.users)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# the two entry points: `python -m vlmrec.serving` and `vlmrec serve` take the same options
ENTRY_POINTS = {
    "module": [sys.executable, "-m", "vlmrec.serving"],
    "cli": [sys.executable, "-c", "from vlmrec.cli import app; app()", "serve"],
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_uvicorn_workers_share_the_index_and_stay_consistent(on_disk, multi_community_dataset, entry):
    port = _free_port()
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [*ENTRY_POINTS[entry], "--dataset", str(on_disk.dataset)]
    cmd += ["--features", on_disk.features, "--state-dir", str(on_disk.state_dir)]
    cmd += ["--workers", "2", "--port", str(port), "--index", "ivf", "--nprobe", "3"]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    fresh = httpx.Limits(max_keepalive_connections=0)  # a new connection per request: any worker
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, limits=fresh, timeout=30) as client:
            pids: set[int] = set()
            answered = refused = 0
            while len(pids) < 2 and answered < 500 and refused < 1500:  # until both have answered
                if server.poll() is not None:
                    pytest.fail(server.stderr.read()[-3000:])
                try:
                    pids.add(client.get("/health").json()["pid"])
                    answered += 1
                except httpx.TransportError:
                    refused += 1
                    time.sleep(0.2)  # still starting: a pause between tries, not a time limit
            assert len(pids) == 2, pids
            items = [str(i) for i in multi_community_dataset.item_ids[:12]]
            for j, item in enumerate(items):
                r = client.post("/events", json={"user_id": "everywhere", "item_id": item})
                assert r.status_code == 201 and r.json()["new_user"] is (j == 0)
                for _ in range(4):  # whichever worker answers has applied every acknowledged event
                    got = client.get("/recommend/everywhere", params={"k": 120}).json()["items"]
                    assert not set(items[: j + 1]) & set(got)
            health = client.get("/health").json()
            assert health["bad_log_lines"] == {"events.jsonl": 0, "items.jsonl": 0}
            assert health["index"] == "ivf" and health["index_detail"]["params"]["nprobe"] == 3
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    lines = (on_disk.state_dir / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["item_id"] for line in lines] == items
