"""Config values that cannot be honoured are refused at load, naming the key (issue 23): empty
seed and model lists, an empty grid list, negative, repeated or huge seeds, `threads: 0` or
absurdly many, YAML's `true` where a number belongs, and a grid of millions of points (counted,
not listed, and refused above `max_grid_points` unless the config raises it)."""

from __future__ import annotations

import time

import pytest
import yaml
from typer.testing import CliRunner

from vlmrec.cli import app
from vlmrec.errors import ConfigError
from vlmrec.experiments.config import MAX_GRID_POINTS, parse_config

runner = CliRunner()


def invoke(*args) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output


def base(**changes) -> dict:
    raw = {
        "name": "t",
        "dataset": {"prepared": "x"},
        "models": [{"name": "itemknn"}],
    }
    raw.update(changes)
    return raw


CASES = {
    "seeds empty": ({"seeds": []}, "seeds: List should have at least 1 item"),
    "seeds negative": ({"seeds": [0, -1]}, "seeds.1: Input should be greater than or equal to 0"),
    "seeds huge": ({"seeds": [2**64]}, "seeds.0: Input should be less than or equal to 4294967295"),
    "seeds repeated": ({"seeds": [1, 2, 1]}, "seed 1 is listed twice"),
    "seeds true": ({"seeds": [True]}, "seeds.0: Input should be a valid integer (got true)"),
    "seeds text": ({"seeds": ["1"]}, "seeds.0: Input should be a valid integer (got '1')"),
    "models empty": ({"models": []}, "models: List should have at least 1 item"),
    "threads 0": ({"threads": 0}, "threads: Input should be greater than or equal to 1"),
    "threads huge": ({"threads": 10**6}, "threads: Input should be less than or equal to 256"),
    "threads true": ({"threads": True}, "threads: Input should be a valid integer (got true)"),
    "grid list empty": (
        {"models": [{"name": "itemknn", "grid": {"k": []}}]},
        "models.0.grid.k: List should have at least 1 item",
    ),
    "param k true": (
        {"models": [{"name": "itemknn", "params": {"k": True}}]},
        "models[0] (itemknn): k: true is a true/false value, not a whole number",
    ),
    "grid k true": (
        {"models": [{"name": "itemknn", "grid": {"k": [10, True]}}]},
        "k: true is a true/false value",
    ),
    "ks true": ({"evaluation": {"ks": [True, 10]}}, "evaluation.ks.0: Input should be a valid integer"),
    "n_boot true": ({"evaluation": {"n_boot": True}}, "evaluation.n_boot: Input should be a valid integer"),
    "alpha 7": ({"evaluation": {"alpha": 7}}, "evaluation.alpha: Input should be less than 0.5"),
    "k_core true": (
        {"dataset": {"prepared": "x", "k_core": True}},
        "dataset.k_core: Input should be a valid integer",
    ),
    "split seed negative": (
        {"dataset": {"prepared": "x", "seed": -3}},
        "dataset.seed: Input should be greater",
    ),
    "ratios true": (
        {"dataset": {"prepared": "x", "ratios": [True, 0, 0]}},
        "dataset.ratios.0: Input should be a valid number",
    ),
    "features empty combination": (
        {
            "features": [{"name": "t", "path": "f"}],
            "models": [{"name": "profilematch", "features": [[]]}],
        },
        "an empty combination",
    ),
    "features twice in one combination": (
        {
            "features": [{"name": "t", "path": "f"}],
            "models": [{"name": "profilematch", "features": [["t", "t"]]}],
        },
        "lists 't' twice",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_value_that_cannot_be_honoured_is_refused_naming_the_key(case):
    changes, words = CASES[case]
    with pytest.raises(ConfigError) as e:
        parse_config(base(**changes))
    assert words in str(e.value), str(e.value)


def test_a_true_bool_param_of_a_switch_is_kept():
    cfg = parse_config(base(models=[{"name": "itemknn", "params": {"k": 7}}]))
    assert cfg.models[0].params == {"k": 7} and cfg.seeds == [0]


def test_a_grid_of_millions_of_points_is_counted_and_refused_at_once():
    grid = {"k": list(range(1, 41)), "shrink": list(range(40)), "alpha": [i / 40 for i in range(40)]}
    grid["similarity"] = ["cosine"] * 40
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as e:
        parse_config(base(models=[{"name": "itemknn", "grid": grid}]))
    assert time.perf_counter() - t0 < 5
    assert (
        f"2,560,000 points (40 alpha x 40 k x 40 shrink x 40 similarity), above max_grid_points = {MAX_GRID_POINTS:,}"
        in str(e.value)
    )
    small = {"k": [5, 10, 20], "shrink": [0, 10]}
    with pytest.raises(ConfigError, match="6 points"):
        parse_config(base(models=[{"name": "itemknn", "grid": small}], max_grid_points=5))
    assert parse_config(base(models=[{"name": "itemknn", "grid": small}], max_grid_points=6))


def test_cli_run_of_a_bad_config_is_one_line_per_key_and_exit_2(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(base(seeds=[], threads=0)))
    code, out = invoke("run", path)
    assert code == 2 and "Traceback" not in out, out
    assert "seeds: List should have at least 1 item" in out and "threads: Input should be greater" in out


def test_cli_evaluate_param_true_for_a_number_is_refused(tmp_path, community_dataset):
    community_dataset.save(tmp_path / "ds")
    code, out = invoke(
        "evaluate",
        "--dataset",
        tmp_path / "ds",
        "--model",
        "itemknn",
        "--param",
        "k=true",
        "--out",
        tmp_path / "r",
    )
    assert code == 2 and "--param k: true is a true/false value, not a whole number" in out, out
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


@pytest.mark.parametrize("port", ["70000", "0", "-1"])
def test_serve_port_out_of_range_is_refused(port):
    code, out = invoke("serve", "--dataset", "x", "--features", "y", "--port", port)
    assert code == 2 and "--port" in out and "Traceback" not in out, out
