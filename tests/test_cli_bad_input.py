"""The bad-input matrix through the command line: each case exits 2 with one `error:` line that
names the option, file or field, never a traceback (issue 13)."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from vlmrec.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def prepared(community_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("ds")
    community_dataset.save(out)
    return out


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


@pytest.mark.parametrize(
    "k,expected",
    [
        ("0", "cutoffs must be >= 1"),
        ("-5", "cutoffs must be >= 1"),
        ("ten", "positive integers"),
        ("", "positive integers"),
        ("1000", "larger than the catalogue (80 items)"),
        ("10,10", "each cutoff once"),
    ],
)
def test_evaluate_bad_cutoffs(prepared, tmp_path, k, expected):
    code, out = invoke(
        "evaluate", "--dataset", prepared, "--model", "mostpop", "--k", k, "--out", tmp_path / "r"
    )
    assert code == 2 and "error:" in out and expected in out, out


@pytest.mark.parametrize(
    "param,expected",
    [
        ("epochs=abc", "epochs='abc'"),
        ("epochs=2.5", "epochs=2.5"),
        ("epochs=-3", "epochs=-3"),
        ("lr=-1", "lr=-1"),
        ("embedding_dim=0", "embedding_dim=0"),
        ("epcohs=3", "no parameter 'epcohs'"),
    ],
)
def test_evaluate_bad_params_refused_before_training(prepared, tmp_path, param, expected):
    code, out = invoke(
        "evaluate", "--dataset", prepared, "--model", "bprmf", "--param", param, "--out", tmp_path / "r"
    )
    assert code == 2 and expected in out, out
    assert not (tmp_path / "r").exists()  # nothing written


def test_out_pointing_at_a_file(prepared, tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    code, out = invoke("evaluate", "--dataset", prepared, "--model", "mostpop", "--out", f)
    assert code == 2 and "is a file" in out
    code, out = invoke("prepare", "--format", "planted", "--out", f)
    assert code == 2 and "is a file" in out


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--ratios", "a,b,c"], "--ratios 'a,b,c'"),
        (["--seed", "-1"], "--seed"),
        # checked by the same DatasetSpec as a config's dataset section
        (["--split", "user"], "--split 'user': Input should be 'random', 'loo', 'temporal' or"),
        (["--k-core", "-1"], "--k-core -1: Input should be greater than or equal to 0"),
        (["--ratios", "0.5,0.5"], "--ratios (0.5, 0.5): give three shares train,valid,test"),
    ],
)
def test_prepare_bad_options(tmp_path, args, expected):
    code, out = invoke("prepare", "--format", "planted", "--out", tmp_path / "p", *args)
    assert code == 2 and expected in out, out


def test_bracketed_labels_survive_in_errors(tmp_path):
    """rich would read `[text]` as markup and drop it."""
    code, out = invoke("evaluate", "--dataset", tmp_path / "missing[text]", "--model", "mostpop")
    assert code == 2 and "missing[text]" in out, out


def test_version_and_a_real_subprocess_without_traceback(prepared, tmp_path):
    exe = [sys.executable, "-m", "vlmrec.cli"]
    v = subprocess.run([*exe, "--version"], capture_output=True, text=True)
    assert v.returncode == 0 and v.stdout.startswith("vlmrec 0."), v.stdout + v.stderr
    bad = subprocess.run(
        [*exe, "evaluate", "--dataset", str(prepared), "--model", "bprmf", "--param", "epochs=abc"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stdout + bad.stderr
    assert "epochs" in bad.stdout + bad.stderr


@pytest.mark.parametrize(
    "evaluation,expected",
    [
        ({"ks": [10, 20], "select": "recall@50"}, "K=50 is not among the cutoffs"),
        ({"ks": [10, 10]}, "distinct"),
        ({"ks": [0]}, "distinct integers >= 1"),
        ({"select": "auc@20"}, "expected METRIC@K"),
    ],
)
def test_config_evaluation_is_checked_at_load(evaluation, expected):
    from vlmrec.errors import ConfigError
    from vlmrec.experiments.config import parse_config

    with pytest.raises(ConfigError, match=expected):
        parse_config(
            {
                "name": "t",
                "dataset": {"prepared": "x"},
                "models": [{"name": "mostpop"}],
                "evaluation": evaluation,
            },
            "t.yaml",
        )


def test_config_grid_points_are_validated_before_training():
    from vlmrec.errors import ConfigError
    from vlmrec.experiments.config import parse_config

    bad = {"name": "bprmf", "grid": {"epochs": [5, 0]}}
    with pytest.raises(ConfigError, match="epochs=0"):
        parse_config({"name": "t", "dataset": {"prepared": "x"}, "models": [bad]}, "t.yaml")


def test_select_follows_the_cutoffs_and_ks_above_the_catalogue_fail_before_training(prepared, tmp_path):
    from vlmrec.errors import ConfigError
    from vlmrec.experiments.config import parse_config
    from vlmrec.experiments.runner import Runner

    small = parse_config(
        {
            "name": "t",
            "dataset": {"prepared": "x"},
            "models": [{"name": "mostpop"}],
            "evaluation": {"ks": [5, 10]},
        },
        "t.yaml",
    )
    assert small.evaluation.select == "recall@10"
    cfg = parse_config(
        {
            "name": "t",
            "output_dir": str(tmp_path / "run"),
            "dataset": {"prepared": str(prepared)},
            "models": [{"name": "mostpop"}],
            "evaluation": {"ks": [10, 500], "select": "recall@10"},
        },
        "t.yaml",
    )
    with pytest.raises(ConfigError, match="above the catalogue size"):
        Runner(cfg).run()
    assert not (tmp_path / "run" / "cells").exists()


@pytest.mark.parametrize(
    "content,args,expected",
    [
        (b"user_id,item_id\nu1,caf\xe9\n", [], "not valid utf-8 text (line 2, byte 0xe9 at offset 22)"),
        ("user_id,item_id\nu1,caf\u00e9\n".encode(), ["--encoding", "latin-1"], "holds UTF-8 text (line 2"),
        (b"user_id,item_id\nu1,a\n", ["--encoding", "nope"], "--encoding 'nope': unknown encoding"),
        (b"user_id,item_id\nu1,a\n", ["--sep", "ab"], "--sep 'ab': expected one character"),
        (
            b"user_id,item_id,timestamp\nu1,a,2021-01-01\nu1,b,yesterday\n",
            [],
            "row 2: time column 'timestamp'",
        ),
    ],
)
def test_prepare_bad_text_files(tmp_path, content, args, expected):
    """Real files as users have them: each a one-line error naming the file, option or row."""
    (tmp_path / "i.csv").write_bytes(content)
    code, out = invoke("prepare", "--interactions", tmp_path / "i.csv", *args, "--out", tmp_path / "o")
    assert code == 2 and out.count("error:") == 1 and expected in out, out
    assert not (tmp_path / "o").exists()


def test_evaluate_checks_the_model_first_and_stops_early_at_the_asked_cutoff(prepared, tmp_path):
    # an unknown model is named before the cutoffs are checked against the catalogue
    code, out = invoke("evaluate", "--dataset", prepared, "--model", "nope", "--k", "1000")
    assert code == 2 and "unknown model 'nope'" in out
    # --k 5 alone: early stopping reads recall@5, not a recall@20 that was never asked for
    code, out = invoke(
        "evaluate", "--dataset", prepared, "--model", "mostpop", "--k", "5", "--out", tmp_path / "e"
    )
    assert code == 0, out
    import pandas as pd

    from vlmrec.data.dataset import Dataset
    from vlmrec.evaluation.evaluator import Evaluator
    from vlmrec.models import create_model

    ds = Dataset.load(prepared)
    expected = Evaluator(ds, "valid", ks=[5], metrics=["recall"]).evaluate(create_model("mostpop").fit(ds))
    recorded = pd.read_csv(tmp_path / "e" / "results.csv")["valid_score"]
    assert recorded.iloc[0] == pytest.approx(expected.mean("recall", 5))
