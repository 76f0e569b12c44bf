"""The grid on Ray (`engine: ray`) gives the local engine's results row for row, survives a killed
worker and a lost node, records a cell's own error and resumes. Small grids: each test is meant to
take well under a minute on 2 shared cores (one small Ray cluster per test, no dashboard)."""

import json
import threading
import time

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from vlmrec.errors import ConfigError  # noqa: E402
from vlmrec.experiments.config import parse_config  # noqa: E402
from vlmrec.experiments.engines.ray import (  # noqa: E402
    CRASH_ENV,
    FAIL_ENV,
    RayEngine,
    check_probe,
    probe_task,
)
from vlmrec.experiments.runner import Runner  # noqa: E402
from vlmrec.features.featureset import FeatureSet  # noqa: E402

RAY_INIT = {"log_to_driver": False, "include_dashboard": False}
FAILING = "'lr': 0.05} seed 1"  # one bprmf grid cell: its point cannot be compared on every seed


def config(base, run, **over):
    raw = {
        "name": "grid",
        "output_dir": str(base / run),
        "seeds": [0, 1],
        "threads": 1,
        "dataset": {"prepared": str(base / "ds")},
        "features": [{"name": "comm", "path": str(base / "feat")}],
        "controls": ["shuffled"],
        "models": [  # the content row first: its twins must not wait for the rows after it
            {"name": "profilematch", "features": ["comm"]},
            {"name": "bprmf", "params": {"epochs": 3, "batch_size": 256}, "grid": {"lr": [0.001, 0.05]}},
            {"name": "mostpop"},
        ],
        "evaluation": {"ks": [10, 20], "metrics": ["recall", "ndcg"], "n_boot": 1000},
    }
    raw.update(over)
    return parse_config(raw)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, multi_community_dataset):
    """The inputs, and an undisturbed run of the local engine to compare with."""
    base = tmp_path_factory.mktemp("grid")
    ds = multi_community_dataset
    ds.save(base / "ds")
    comm = np.array(ds.info["item_community"])
    x = np.random.default_rng(0).normal(scale=0.3, size=(ds.n_items, 8))
    x[np.arange(ds.n_items), comm] += 1
    FeatureSet.create(x, ds, extractor="synthetic", model="synthetic", modality="text").save(base / "feat")
    out = Runner(config(base, "local")).run()
    assert out.cells_run == 10 and not out.failures
    return base


def _table(path):
    df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    return df.sort_values(list(df.columns)).reset_index(drop=True)


def assert_same_run(a, b):
    """results.csv and per_user.parquet identical after sorting; the same selection and verdict."""
    for name in ("results.csv", "per_user.parquet"):
        pd.testing.assert_frame_equal(_table(a / name), _table(b / name))
    sel = [json.loads((d / "run.json").read_text())["selection"] for d in (a, b)]
    assert sel[0] == sel[1]
    verdicts = [json.loads((d / "verdict.json").read_text())["verdicts"] for d in (a, b)]
    assert verdicts[0] == verdicts[1]
    res = pd.read_csv(b / "results.csv")
    key = ["model", "features", "seed", "metric", "k", "segment"]
    assert not res.duplicated(key).any()


def test_ray_grid_matches_local_with_a_killed_worker_a_failed_cell_and_resume(reference, tmp_path):
    base = reference
    marker = tmp_path / "crashed"
    ray.init(num_cpus=2, runtime_env={"env_vars": {CRASH_ENV: str(marker), FAIL_ENV: FAILING}}, **RAY_INIT)
    try:
        cfg = config(base, "ray", engine="ray")
        events: list[str] = []
        out = Runner(cfg, events.append, RayEngine(max_retries=2)).run()
    finally:
        ray.shutdown()
    assert marker.exists()  # a worker really died, and its cell was retried
    summary = json.loads((base / "ray" / "run.json").read_text())
    assert summary["engine"] == "ray" and summary["cells_retried"] == 1
    # the cell's own error is recorded, the grid went on: the other 9 cells ran
    assert [f["seed"] for f in out.failures] == [1] and "injected failure" in out.failures[0]["error"]
    assert summary["failures"] == out.failures and out.cells_run == 9
    assert any(e.startswith("FAILED bprmf") for e in events)
    # phase two of a row starts when its grid is complete, ahead of the later rows' grids
    first_twin = next(i for i, e in enumerate(events) if "[comm~shuffled]" in e)
    assert first_twin < max(i for i, e in enumerate(events) if e.startswith("mostpop"))
    bpr = next(s for s in summary["selection"] if s["model"] == "bprmf")
    assert bpr["params"]["lr"] == 0.001 and bpr["points"][1]["failed"]
    # rerun (the fault gone): only the failed cell runs, and the run equals the local one
    ray.init(num_cpus=2, **RAY_INIT)
    try:
        again = Runner(cfg, engine=RayEngine()).run()
    finally:
        ray.shutdown()
    assert again.cells_run == 1 and again.cells_skipped == 9 and not again.failures
    assert_same_run(base / "local", base / "ray")


def test_ray_grid_survives_a_lost_node(reference):
    from ray.cluster_utils import Cluster

    base = reference
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, **{"include_dashboard": False}})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    cells = base / "lost" / "cells"
    removed = threading.Event()

    def running_cell_on(node) -> bool:  # a worker of `node` runs a bprmf cell (seconds, not ms)
        import psutil  # ray's own copy (ray.thirdparty_files), on the path once ray is imported

        raylet = psutil.Process(node.all_processes["raylet"][0].process.pid)
        titles = []
        for child in raylet.children(recursive=True):
            try:
                titles.append(" ".join(child.cmdline()))
            except psutil.Error:
                continue
        return any(t.startswith("ray::cell bprmf ") for t in titles)

    def kill_when_started():  # lose the worker node mid-grid, while it runs a cell
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if cells.is_dir() and any(cells.glob("*/cell.json")) and running_cell_on(worker):
                cluster.remove_node(worker, allow_graceful=False)
                removed.set()
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_when_started, daemon=True)
    killer.start()
    try:
        out = Runner(config(base, "lost", engine="ray"), engine=RayEngine(max_retries=3)).run()
    finally:
        killer.join(timeout=70)
        ray.shutdown()
        cluster.shutdown()
    assert removed.is_set(), "the grid finished before the node could be removed"
    assert not out.failures and out.cells_run == 10
    # the node died with a cell on it, and that cell ran again
    assert json.loads((base / "lost" / "run.json").read_text())["cells_retried"] >= 1
    assert_same_run(base / "local", base / "lost")


def test_ray_refuses_cells_no_node_can_hold(reference):
    ray.init(num_cpus=1, **RAY_INIT)
    try:
        cfg = config(base := reference, "gpu", engine="ray")
        cfg.models[0].resources.num_gpus = 1
        with pytest.raises(ConfigError, match=r"profilematch\).resources: .*num_gpus=1"):
            Runner(cfg, engine=RayEngine()).run()
        assert not (base / "gpu" / "cells").exists()
    finally:
        ray.shutdown()


def test_resources_are_validated():
    base = {"name": "r", "dataset": {"prepared": "x"}}
    with pytest.raises(ConfigError, match=r"models.0.resources.num_gpus"):
        parse_config({**base, "models": [{"name": "mostpop", "resources": {"num_gpus": 1.5}}]})
    with pytest.raises(ConfigError, match=r"models.0.resources.num_cpus"):
        parse_config({**base, "models": [{"name": "mostpop", "resources": {"num_cpus": True}}]})
    with pytest.raises(ConfigError, match=r"engine"):
        parse_config({**base, "engine": "spark", "models": [{"name": "mostpop"}]})
    cfg = parse_config(
        {**base, "engine": "ray", "models": [{"name": "mostpop", "resources": {"num_gpus": 0.25}}]}
    )
    assert cfg.models[0].resources.num_gpus == 0.25 and cfg.models[0].resources.num_cpus is None


def test_cli_engine_options_are_checked(reference, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from vlmrec.cli import app

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config(reference, "cli").model_dump(mode="json", exclude_none=True)))
    for args, message in (
        (["--engine", "spark"], "--engine 'spark': choose one of local, ray"),
        (["--address", "auto"], "--address names a Ray cluster: add --engine ray"),
    ):
        result = CliRunner().invoke(app, ["run", str(path), *args])
        assert result.exit_code != 0 and message in " ".join(result.output.split()), result.output
    assert not (reference / "cli" / "cells").exists()


def test_a_node_that_cannot_see_the_run_folder_is_refused(tmp_path):
    """The probe's answers, as a node without the shared mount (or with another folder of the
    same name) gives them: the run is refused naming the node and the shared-filesystem rule."""
    run = tmp_path / "run"
    run.mkdir()
    token = run / ".probe-x"
    token.write_text("x")
    seen = probe_task([str(run), str(tmp_path / "ds")], str(token), "x")
    assert seen["missing"] == [str(tmp_path / "ds")] and seen["same"] and seen["writable"]
    with pytest.raises(ConfigError, match=r"node .* cannot see .*/ds: .*filesystem every node"):
        check_probe([seen], run, seen["code"])
    other = probe_task([str(run)], str(token), "another run's token")  # a local folder of that name
    with pytest.raises(ConfigError, match=r"another folder of that name, or read-only"):
        check_probe([other], run, other["code"])
    with pytest.raises(ConfigError, match=r"runs other vlmrec model/evaluation code"):
        check_probe([probe_task([str(run)], str(token), "x")], run, "0" * 16)


def test_local_engine_records_a_failed_cell_and_resumes(reference, monkeypatch):
    """The local engine handles a cell's own error as the Ray engine does (one runner)."""
    import vlmrec.experiments.engines as engines

    real = engines.run_cell

    def failing(ds, name, params, features=None, seed=0, **kw):
        if name == "bprmf" and params["lr"] == 0.05 and seed == 1:
            raise ValueError("boom")
        return real(ds, name, params, features, seed=seed, **kw)

    cfg = config(reference, "local-fail")
    monkeypatch.setattr(engines, "run_cell", failing)
    out = Runner(cfg).run()
    assert [(f["model"], f["seed"], f["error"]) for f in out.failures] == [("bprmf", 1, "ValueError: boom")]
    assert json.loads((reference / "local-fail" / "run.json").read_text())["failures"] == out.failures
    monkeypatch.setattr(engines, "run_cell", real)
    again = Runner(cfg).run()
    assert again.cells_run == 1 and not again.failures
    assert_same_run(reference / "local", reference / "local-fail")
