"""What the verdict and report refuse before writing anything: a metric or cutoff the run did not
measure, a selection metric not among the measured ones, the removed rank-test option."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from vlmrec.cli import app
from vlmrec.errors import ConfigError
from vlmrec.experiments.config import parse_config
from vlmrec.features.featureset import FeatureSet

BASE = {"name": "t", "dataset": {"prepared": "x"}, "models": [{"name": "mostpop"}]}


@pytest.fixture(scope="module")
def finished_run(multi_community_dataset, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    ds = multi_community_dataset
    ds.save(tmp / "ds")
    comm = np.array(ds.info["item_community"])
    x = np.random.default_rng(0).normal(scale=0.3, size=(ds.n_items, 8))
    x[np.arange(ds.n_items), comm] += 1
    FeatureSet.create(x, ds, extractor="synthetic", model="synthetic", modality="text").save(tmp / "feat")
    config = {
        "name": "refusals",
        "output_dir": str(tmp / "run"),
        "seeds": [0, 1, 2],
        "threads": 1,
        "dataset": {"prepared": str(tmp / "ds")},
        "features": [{"name": "comm", "path": str(tmp / "feat")}],
        "controls": ["shuffled"],
        "models": [{"name": "mostpop"}, {"name": "profilematch", "features": ["comm"]}],
        "evaluation": {"ks": [10, 20], "metrics": ["recall", "ndcg"]},
    }
    (tmp / "c.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["run", str(tmp / "c.yaml")], terminal_width=200)
    assert result.exit_code == 0, result.output
    return tmp / "run"


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--metric", "bogus"], "no per-user values of bogus@20"),
        (["--k", "7"], "no per-user values of recall@7"),
        (["--metric", "precision"], "measured: ndcg@10, ndcg@20, recall@10, recall@20"),
    ],
)
def test_report_refuses_an_unmeasured_metric_and_leaves_the_report_alone(finished_run, args, expected):
    before = {p.name: p.read_bytes() for p in finished_run.glob("report.*")}
    assert set(before) == {"report.html", "report.md"}
    result = CliRunner().invoke(app, ["report", str(finished_run), *args], terminal_width=200)
    assert result.exit_code == 2 and expected in result.output, result.output
    assert "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in finished_run.glob("report.*")} == before


def test_the_selection_metric_must_be_measured():
    with pytest.raises(ConfigError, match="recall is not among metrics"):
        parse_config({**BASE, "evaluation": {"metrics": ["ndcg"], "select": "recall@20"}})
    # without `select`, the default follows the measured metrics
    assert parse_config({**BASE, "evaluation": {"metrics": ["ndcg"]}}).evaluation.select == "ndcg@20"
    with pytest.raises(ConfigError, match="at least one ranking metric"):
        parse_config({**BASE, "evaluation": {"metrics": ["coverage"]}})


def test_the_removed_rank_test_option_is_refused_with_the_reason():
    with pytest.raises(ConfigError, match="one paired bootstrap over users and seeds"):
        parse_config({**BASE, "evaluation": {"test": "wilcoxon"}})
    with pytest.raises(ConfigError, match="n_boot"):
        parse_config({**BASE, "evaluation": {"n_boot": 10}})
