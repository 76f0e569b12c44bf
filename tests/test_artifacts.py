"""The cell artifact: every cell's folder is written and read by one class; the chosen cells keep
their fitted model, which reloads and ranks exactly as it was evaluated; a cell is written
atomically."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vlmrec.evaluation import Evaluator
from vlmrec.experiments.artifacts import CellArtifact
from vlmrec.experiments.config import parse_config
from vlmrec.experiments.runner import Runner
from vlmrec.features.featureset import FeatureSet
from vlmrec.models import create_model


@pytest.fixture(scope="module")
def run(tmp_path_factory, multi_community_dataset):
    tmp = tmp_path_factory.mktemp("art")
    ds = multi_community_dataset
    ds.save(tmp / "ds")
    comm = np.array(ds.info["item_community"])
    x = np.random.default_rng(0).normal(scale=0.3, size=(ds.n_items, 8))
    x[np.arange(ds.n_items), comm] += 1
    FeatureSet.create(x, ds, name="comm", modality="text").save(tmp / "feat")
    cfg = parse_config(
        {
            "name": "art",
            "output_dir": str(tmp / "run"),
            "seeds": [0],
            "threads": 1,
            "dataset": {"prepared": str(tmp / "ds")},
            "features": [{"name": "comm", "path": str(tmp / "feat")}],
            "controls": [],
            "models": [
                {"name": "bprmf", "params": {"epochs": 3, "batch_size": 256}, "grid": {"lr": [0.001, 0.05]}},
                {
                    "name": "profilematch",
                    "params": {"aggregation": "last", "last_n": 2},
                    "features": ["comm"],
                },
                {"name": "itemknn", "params": {"k": 10}},
            ],
            "evaluation": {"ks": [10, 20], "metrics": ["recall", "ndcg"]},
        }
    )
    out = Runner(cfg).run()
    return ds, out, tmp


def test_chosen_cells_keep_a_model_that_reloads_and_scores_as_evaluated(run):
    ds, out, tmp = run
    chosen = set(out.results["cell"])
    cells = CellArtifact.all(tmp / "run")
    assert len(cells) == 4  # two bprmf grid points, profilematch, itemknn
    for cell in cells:
        record = cell.record()
        assert record["cell_format"] == 1 and record["key"] == cell.directory.name
        if cell.directory.name not in chosen:
            assert not cell.has_model  # the grid point model selection did not choose
            continue
        model = cell.load_model()
        assert (
            model.name == record["model"]
            and model.get_params() == create_model(record["model"], **record["params"]).get_params()
        )
        # the reloaded model reproduces the cell's test metrics exactly
        ev = Evaluator(ds, "test", ks=[10, 20], metrics=["recall", "ndcg"], mask=tuple(record["mask"]))
        again = ev.evaluate(model).summary()
        stored = cell.results()
        for _, row in again.iterrows():
            want = stored[(stored["metric"] == row["metric"]) & (stored["k"] == row["k"])]["value"]
            assert want.iloc[0] == pytest.approx(row["value"], abs=1e-12)


def test_profilematch_cell_keeps_its_aggregation(run):
    _, out, tmp = run
    pm = next(c for c in CellArtifact.all(tmp / "run") if c.record()["model"] == "profilematch")
    model = pm.load_model()
    assert model.aggregation == "last" and model.last_n == 2


def test_a_cell_is_written_atomically(tmp_path):
    class Exploding:
        def save(self, directory):
            (directory / "half-written").mkdir(parents=True)
            raise RuntimeError("killed")

    rows = pd.DataFrame({"metric": ["recall"], "k": [10], "value": [0.5]})
    with pytest.raises(RuntimeError):
        CellArtifact.write(tmp_path, "abc", {"model": "x"}, rows, rows, Exploding())
    assert CellArtifact.find(tmp_path, "abc") is None
    assert not CellArtifact.folder(tmp_path, "abc").exists()
    assert not list((tmp_path / "cells").iterdir())  # no temporary leftovers
    done = CellArtifact.write(tmp_path, "abc", {"model": "x"}, rows, rows, None)
    assert CellArtifact.find(tmp_path, "abc") is not None and not done.has_model
    pd.testing.assert_frame_equal(done.results(), rows)


def test_a_newer_cell_format_is_refused(tmp_path):
    import json

    from vlmrec.errors import ConfigError

    rows = pd.DataFrame({"value": [1.0]})
    cell = CellArtifact.write(tmp_path, "k", {}, rows, rows, None)
    record = cell.record()
    record["cell_format"] = 99
    (cell.directory / "cell.json").write_text(json.dumps(record))
    with pytest.raises(ConfigError, match="newer"):
        cell.record()


def test_run_artifact_reads_what_it_wrote_and_names_what_is_missing(tmp_path):
    from vlmrec.errors import DataError
    from vlmrec.experiments.artifacts import RunArtifact

    run = RunArtifact(tmp_path / "run")
    with pytest.raises(DataError, match="no results.parquet; run `vlmrec run CONFIG` first"):
        run.results()
    with pytest.raises(DataError, match="not a run folder"):
        run.dataset_dir()
    run.write_config('{"dataset": {"prepared": "/data/prepared"}}')
    assert run.dataset_dir() == Path("/data/prepared")  # no dataset/ of its own: the config's
    (run.directory / "dataset").mkdir()
    assert run.dataset_dir() == run.directory / "dataset"
    rows = pd.DataFrame({"metric": ["recall"], "k": [20], "value": [0.5]})
    run.write_results(rows, rows.assign(user=0))
    assert run.results()["value"].tolist() == [0.5] and run.results()["segment"].tolist() == ["all"]
    assert run.summary() == {}
    run.write_summary({"name": "x"})
    assert run.summary() == {"name": "x"} and not list(run.directory.glob(".*.tmp"))


def test_dataset_and_featureset_folders_are_versioned(tmp_path, multi_community_dataset):
    import json

    from vlmrec.data.dataset import Dataset
    from vlmrec.errors import DataError

    ds = multi_community_dataset
    ds.save(tmp_path / "ds")
    fs = FeatureSet.create(np.zeros((ds.n_items, 2)), ds, name="z")
    fs.save(tmp_path / "fs")
    for folder, key, cls, what in (
        (tmp_path / "ds", "dataset_format", Dataset, "dataset folder format 99"),
        (tmp_path / "fs", "featureset_format", FeatureSet, "feature set format 99"),
    ):
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest[key] == 1  # written by save, read back by load
        cls.load(folder)
        (folder / "manifest.json").write_text(json.dumps({**manifest, key: 99}))
        with pytest.raises(DataError, match=f"{what} is newer than this vlmrec reads"):
            cls.load(folder)
