"""CI smoke test: the quick demo runs the whole pipeline offline end to end, under the warm and
the item cold-start protocols, and ends each run with its verdict block."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from vlmrec.cli import app
from vlmrec.experiments.comparisons import ComparisonSpec
from vlmrec.experiments.demo import demo_configs
from vlmrec.experiments.verdict import TERMINAL_SEGMENTS, compute_verdicts, verdict_lines

ID_ONLY = {"mostpop", "itemknn", "ease", "ials", "bprmf"}
CONTENT = {"vbpr", "freedom", "profilematch", "attributeknn"}
RUNS = ("movielens-100k", "movielens-100k-cold", "planted", "planted-cold")


@pytest.mark.slow
def test_demo_quick(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = result.output
    configs = {c.name: c for c in demo_configs(tmp_path, quick=True)}
    assert len(configs) == len(RUNS)
    assert "report:" in out and "vs shuffled" in out
    for name in RUNS:
        run = tmp_path / name
        res = pd.read_csv(run / "results.csv")
        assert {"dataset", "split", "features", "model", "seed", "metric", "k", "value", "segment"} <= set(
            res.columns
        )
        cfg = configs[f"demo-{name}"]
        assert set(res["model"]) == {m.name for m in cfg.models}
        assert ID_ONLY <= set(res["model"]) and CONTENT & set(res["model"])
        assert (run / "report.html").stat().st_size > 10_000
        report = (run / "report.html").read_text()  # what each model recommends (issue 26)
        assert "class='strip hist'" in report and "Where they disagree" in report
        info = json.loads((run / "run.json").read_text())
        cold = name.endswith("-cold")
        assert info["dataset_info"]["split"]["method"] == ("cold-items" if cold else "random")
        segments = set(res["segment"])
        assert {"all", "head", "torso", "tail"} <= segments
        assert ("cold" in segments and "warm" in segments) == cold

        # the verdict block printed at the end of the run is the one computed from its results,
        # and the one written to verdict.json
        per_user = pd.read_parquet(run / "per_user.parquet")
        spec = ComparisonSpec("recall", 20, n_boot=cfg.evaluation.n_boot)
        comparisons, verdicts = compute_verdicts(pd.read_parquet(run / "results.parquet"), per_user, spec)
        assert {v.segment for v in verdicts} >= {"all", "tail"}
        lines = verdict_lines(verdicts, TERMINAL_SEGMENTS)
        assert f"verdict: demo-{name}" in out
        for line in lines:
            assert line.strip() in out, line
        saved = json.loads((run / "verdict.json").read_text())
        assert [v["content_use"]["label"] for v in saved["verdicts"]] == [v.use for v in verdicts]
        # one seed: the figures are there, every label is withheld
        assert {v.use for v in verdicts} <= {"inconclusive (1 seed)", "no twin"}
        assert all(v.worth == "inconclusive (1 seed)" for v in verdicts if v.versus_id is not None)
        if cold:
            assert {"cold", "cold_only"} <= {v.segment for v in verdicts}

    # cold items: ID-only models rank them at the floor (recall 0 on the cold segment, never a
    # random fill), while a content model finds some of them
    for name in ("movielens-100k-cold", "planted-cold"):
        res = pd.read_csv(tmp_path / name / "results.csv")
        cold = res[(res["segment"] == "cold") & (res["metric"] == "recall") & (res["k"] == 20)]
        real = cold[cold["control"] == "none"]
        by_model = real.groupby("model")["value"].max()
        assert ID_ONLY <= set(by_model.index)
        assert (by_model[sorted(ID_ONLY)] == 0).all(), by_model
        assert by_model["profilematch"] > 0, by_model

    planted = pd.read_csv(tmp_path / "planted" / "results.csv")
    assert {"image", "describe", "text+image", "image~shuffled"} <= set(planted["features"])
    report = (tmp_path / "planted" / "report.html").read_text()
    assert "GENERATED" in report and "not an LVLM" in report
