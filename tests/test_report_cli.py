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
        "seeds": [0, 1, 2],
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
    # one line per content row, both labels against named references; the procedure said once
    assert (
        "profilematch [comm]: uses content (+" in tail
        and "vs shuffled twin) · beats best ID mostpop (+" in tail
    )
    assert tail.count("Holm over") == 1 and "verdict.json" in tail
    assert (tmp_path / "run" / "verdict.json").exists()
