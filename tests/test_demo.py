"""CI smoke test: the quick demo runs the whole pipeline offline end to end."""

import pandas as pd
from typer.testing import CliRunner

from vlmrec.cli import app


def test_demo_quick(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "report:" in result.output and "vs shuffled" in result.output
    for name in ("movielens-100k", "planted"):
        res = pd.read_csv(tmp_path / name / "results.csv")
        assert {"dataset", "split", "features", "model", "seed", "metric", "k", "value"} <= set(res.columns)
        assert {
            "mostpop",
            "itemknn",
            "bprmf",
            "lightgcn",
            "vbpr",
            "freedom",
            "profilematch",
            "attributeknn",
        } <= set(res["model"])
        assert (tmp_path / name / "report.html").stat().st_size > 10_000
    planted = pd.read_csv(tmp_path / "planted" / "results.csv")
    assert {"image", "describe", "text+image", "image~shuffled"} <= set(planted["features"])
    report = (tmp_path / "planted" / "report.html").read_text()
    assert "GENERATED" in report and "not an LVLM" in report
