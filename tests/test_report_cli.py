"""`vlmrec run` ends its terminal output with the verdict block."""

from __future__ import annotations

import numpy as np
import yaml
from typer.testing import CliRunner

from vlmrec.cli import app
from vlmrec.features.featureset import FeatureSet


def test_vlmrec_run_ends_with_the_verdict_block(tmp_path, multi_community_dataset):
    ds = multi_community_dataset
    ds.save(tmp_path / "ds")
    comm = np.array(ds.info["item_community"])
    x = np.random.default_rng(0).normal(scale=0.3, size=(ds.n_items, 8))
    x[np.arange(ds.n_items), comm] += 1
    FeatureSet.create(x, ds, extractor="synthetic", model="synthetic", modality="text").save(
        tmp_path / "feat"
    )
    config = {
        "name": "tiny [cli]",  # brackets: rich markup must be escaped, not swallowed
        "output_dir": str(tmp_path / "run"),
        "seeds": [0],
        "threads": 1,
        "dataset": {"prepared": str(tmp_path / "ds")},
        "features": [{"name": "comm", "path": str(tmp_path / "feat")}],
        "controls": ["shuffled"],
        "models": [{"name": "mostpop"}, {"name": "profilematch", "features": ["comm"]}],
        "evaluation": {"ks": [20], "metrics": ["recall", "ndcg"]},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["run", str(path)], terminal_width=200)
    assert result.exit_code == 0, result.output
    out = result.output
    tail = out[out.index("verdict: tiny [cli]") :]
    assert "report:" in out[: out.index("verdict: tiny [cli]")]  # the verdict block comes last
    assert (
        "profilematch [comm]: content helps" in tail
        and "vs shuffled" in tail
        and "vs best ID (mostpop)" in tail
    )
    assert "p < 0.001" in tail and "better" in tail
