"""Names are names, and vlmrec writes only into folders it created (issue 23): a run, feature or
label name that is a path is refused at config load naming the key; `--out` on a folder of the
user's, `fuse --out` an input and `control --input A --out A` are refused before anything is
written, leaving the files byte-identical; two rows that would be averaged into one are refused."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from vlmrec.cli import app
from vlmrec.errors import ConfigError
from vlmrec.experiments.artifacts import RunArtifact
from vlmrec.experiments.config import parse_config
from vlmrec.features.featureset import FeatureSet
from vlmrec.folders import MARKER, check_folder, claim_folder, folder_kind
from vlmrec.names import MAX_NAME_LENGTH, name_problem

runner = CliRunner()


def flat(text: str) -> str:
    """`text` without whitespace: rich wraps long lines at the terminal width (and paths at any
    length), so messages are compared with every space and line break taken out."""
    return "".join(text.split())


def invoke(*args) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def snapshot(d: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under `d`."""
    return {
        p.relative_to(d).as_posix(): (p.read_bytes() if p.is_file() else None) for p in sorted(d.rglob("*"))
    }


def user_folder(d: Path) -> Path:
    """A folder of the user's, holding files with the names vlmrec writes."""
    d.mkdir(parents=True)
    for name in (
        "vectors.npy",
        "manifest.json",
        "results.csv",
        "results.parquet",
        "train.parquet",
        "config.json",
    ):
        (d / name).write_bytes(f"the user's own {name}\n".encode())
    (d / "notes").mkdir()
    (d / "notes" / "thesis.tex").write_text("\\section{precious}\n")
    return d


def refused_message(option: str, d: Path, kind: str) -> str:
    return f"{option} {d}: the folder is not empty and vlmrec did not create it (no {kind} manifest in it)"


@pytest.fixture(scope="module")
def prepared(community_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "ds"
    community_dataset.save(out)
    return out


@pytest.fixture(scope="module")
def feature_sets(community_dataset, prepared, tmp_path_factory):
    root = tmp_path_factory.mktemp("fs")
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        x = rng.normal(size=(community_dataset.n_items, 4)).astype(np.float32)
        FeatureSet.create(x, community_dataset, extractor="synthetic", model="synthetic").save(root / name)
    return root


def config(**changes):
    base = {"name": "t", "dataset": {"prepared": "x"}, "models": [{"name": "mostpop"}]}
    base.update(changes)
    return base


# ---- names are names ---------------------------------------------------------------------------
BAD_NAMES = [
    ("../../../victim", "may not contain '/' or '\\'"),
    ("a/b", "may not contain '/' or '\\'"),
    ("a\\b", "may not contain '/' or '\\'"),
    ("..", "may not start with '.'"),
    (".", "may not start with '.'"),
    (".hidden", "may not start with '.'"),
    ("", "may not be empty"),
    ("   ", "may not be empty"),
    ("a\nb", "control characters (U+000A)"),
    ("a\x00b", "control characters (U+0000)"),
    ("x" * (MAX_NAME_LENGTH + 1), f"at most {MAX_NAME_LENGTH} characters, this one {MAX_NAME_LENGTH + 1}"),
]


@pytest.mark.parametrize("name,why", BAD_NAMES)
def test_a_feature_name_that_is_a_path_is_refused_naming_the_key(name, why):
    raw = config(features=[{"name": name, "path": "somewhere"}])
    with pytest.raises(ConfigError) as e:
        parse_config(raw, "t.yaml")
    assert "features.0.name: Value error" in str(e.value) and why in str(e.value), e.value


@pytest.mark.parametrize("name,why", BAD_NAMES)
def test_a_run_name_or_label_that_is_a_path_is_refused_naming_the_key(name, why):
    with pytest.raises(ConfigError) as e:
        parse_config(config(name=name), "t.yaml")
    assert "  name: Value error" in str(e.value) and why in str(e.value), e.value
    with pytest.raises(ConfigError) as e:
        parse_config(config(models=[{"name": "mostpop", "label": name}]), "t.yaml")
    assert "models.0.label: Value error" in str(e.value) and why in str(e.value), e.value


@pytest.mark.parametrize(
    "name", ["text", "text+image", "image|text", "lvlm-description", "ünï code_2", "x" * 100]
)
def test_ordinary_names_are_accepted(name):
    assert name_problem(name) is None
    cfg = parse_config(
        config(name=name, features=[{"name": name, "path": "p"}], models=[{"name": "mostpop", "label": name}])
    )
    assert cfg.output_dir == Path("runs") / name


def test_a_long_name_is_shown_cut_short():
    problem = name_problem("y" * 5000)
    assert problem is not None and len(problem) < 200 and "(5000 characters)" in problem


def test_a_feature_named_like_a_path_does_not_touch_the_victim(tmp_path):
    """The reported case: `features: [{name: ../../../victim}]` overwrote another folder's
    vectors.npy. Now `vlmrec run` refuses at load, exit 2, and the victim is byte-identical."""
    victim = user_folder(tmp_path / "victim")
    before = snapshot(victim)
    run_dir = tmp_path / "a" / "b" / "run"
    cfg = config(
        output_dir=str(run_dir),
        features=[{"name": "../../../victim", "path": str(tmp_path / "fs")}],
        models=[{"name": "mostpop"}],
    )
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code, out = invoke("run", path)
    assert code == 2 and "features.0.name" in out and "may not contain '/'" in out, out
    assert snapshot(victim) == before and not run_dir.exists()


def test_an_empty_or_escaping_run_name_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("../../escape", ""):
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(config(name=name, dataset={"prepared": str(tmp_path / "x")})))
        code, out = invoke("run", path)
        assert code == 2 and "name: Value error" in out, out
        assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_a_features_label_given_to_a_run_folder_is_a_name(tmp_path):
    with pytest.raises(ConfigError, match=r"features label: '\.\./\.\./x': a name may not contain '/'"):
        RunArtifact(tmp_path).features_dir("../../x")
    assert RunArtifact(tmp_path).features_dir("text+image") == tmp_path / "features" / "text+image"


def test_describe_refuses_a_prompt_whose_name_would_be_a_path(prepared, tmp_path):
    code, out = invoke("describe", "--dataset", prepared, "--prompt", "..")
    assert code == 2 and "--prompt '..' (names the folder): '..': a name may not start with '.'" in out, out


# ---- one row per model -------------------------------------------------------------------------
def test_two_models_with_one_name_are_refused_suggesting_a_label():
    with pytest.raises(ConfigError) as e:
        parse_config(config(models=[{"name": "mostpop"}, {"name": "mostpop"}]), "t.yaml")
    assert (
        "models[1].name: 'mostpop' is already the row name of models[0]; two entries with one name would "
        "be averaged into one row: give them distinct `label`s (e.g. label: 'mostpop-2')"
    ) in str(e.value)
    # the same display name through a label
    with pytest.raises(
        ConfigError, match=r"models\[1\]\.label: 'pop' is already the row name of models\[0\]"
    ):
        parse_config(
            config(models=[{"name": "mostpop", "label": "pop"}, {"name": "itemknn", "label": "pop"}])
        )
    with pytest.raises(
        ConfigError, match=r"models\[1\]\.name: 'mostpop' is already the row name of models\[0\]"
    ):
        parse_config(config(models=[{"name": "itemknn", "label": "mostpop"}, {"name": "mostpop"}]))
    # distinct labels: two rows
    cfg = parse_config(config(models=[{"name": "mostpop"}, {"name": "mostpop", "label": "mostpop-again"}]))
    assert [m.display for m in cfg.models] == ["mostpop", "mostpop-again"]


def test_duplicate_feature_names_are_refused():
    raw = config(features=[{"name": "t", "path": "a"}, {"name": "t", "path": "b"}])
    with pytest.raises(ConfigError, match=r"features: duplicate name\(s\) \['t'\]"):
        parse_config(raw)


@pytest.mark.parametrize(
    "features,expected",
    [
        ([["t", "t"]], "models[0] (profilematch).features[0]: ['t', 't'] lists 't' twice"),
        (["t", "t"], "models[0] (profilematch).features[1]: 't' is already features[0]"),
        ([["t"], "t"], "models[0] (profilematch).features[1]: 't' is already features[0]"),
        # a fused set named t+u and the combination [t, u] would share the row label "t+u"
        ([["t", "u"], "t+u"], "models[0] (profilematch).features[1]: 't+u' is already features[0]"),
    ],
)
def test_a_feature_combination_listed_twice_is_refused(features, expected):
    raw = config(
        features=[
            {"name": "t", "path": "a"},
            {"name": "u", "path": "b"},
            {"name": "t+u", "fuse": ["t", "u"], "method": "mean"},
        ],
        models=[{"name": "profilematch", "features": features}],
    )
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    assert expected in str(e.value), e.value


def test_one_feature_name_without_a_list_is_one_combination():
    raw = config(
        features=[{"name": "text", "path": "a"}], models=[{"name": "profilematch", "features": "text"}]
    )
    assert parse_config(raw).models[0].features == [["text"]]


# ---- --out on a folder vlmrec did not create ----------------------------------------------------
def test_prepare_refuses_a_users_folder(tmp_path):
    victim = user_folder(tmp_path / "mine")
    before = snapshot(victim)
    code, out = invoke("prepare", "--format", "planted", "--out", victim)
    assert code == 2 and flat(refused_message("--out", victim, "prepared dataset")) in flat(out), out
    assert snapshot(victim) == before


def test_prepare_refuses_to_generate_into_a_users_folder(tmp_path):
    victim = user_folder(tmp_path / "mine")
    before = snapshot(victim)
    code, out = invoke("prepare", "--format", "planted", "--path", victim, "--out", tmp_path / "ds")
    expected = refused_message("--path", victim, "generated planted catalogue")
    assert code == 2 and flat(expected) in flat(out), out
    assert snapshot(victim) == before and not (tmp_path / "ds").exists()


def test_extract_evaluate_describe_refuse_a_users_folder(prepared, tmp_path):
    victim = user_folder(tmp_path / "mine")
    before = snapshot(victim)
    cases = [
        (["extract", "--dataset", prepared, "--extractor", "text", "--out", victim], "FeatureSet"),
        (["evaluate", "--dataset", prepared, "--model", "mostpop", "--out", victim], "results"),
        (["describe", "--dataset", prepared, "--out", victim], "descriptions"),
    ]
    for args, kind in cases:
        code, out = invoke(*args)
        assert code == 2 and flat(refused_message("--out", victim, kind)) in flat(out), (args, out)
        assert "Traceback" not in out
        assert snapshot(victim) == before, args


def test_fuse_and_control_refuse_a_users_folder(feature_sets, tmp_path):
    victim = user_folder(tmp_path / "mine")
    before = snapshot(victim)
    a, b = feature_sets / "a", feature_sets / "b"
    code, out = invoke("fuse", "--inputs", f"{a},{b}", "--out", victim)
    assert code == 2 and flat(refused_message("--out", victim, "FeatureSet")) in flat(out), out
    code, out = invoke("control", "--input", a, "--out", victim)
    assert code == 2 and flat(refused_message("--out", victim, "FeatureSet")) in flat(out), out
    assert snapshot(victim) == before


def test_run_refuses_a_users_folder_from_the_config_or_out(prepared, tmp_path):
    victim = user_folder(tmp_path / "mine")
    before = snapshot(victim)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config(output_dir=str(victim), dataset={"prepared": str(prepared)})))
    code, out = invoke("run", path)
    assert code == 2 and flat(refused_message(f"{path}: output_dir", victim, "run")) in flat(out), out
    code, out = invoke("run", path, "--out", victim)
    assert code == 2 and flat(refused_message("--out", victim, "run")) in flat(out), out
    assert snapshot(victim) == before


def test_report_refuses_a_folder_that_is_not_a_run(tmp_path):
    victim = user_folder(tmp_path / "mine")
    before = snapshot(victim)
    code, out = invoke("report", victim)
    assert code == 2 and flat(refused_message("RUN_DIR", victim, "run")) in flat(out), out
    assert snapshot(victim) == before


def test_the_library_writers_refuse_a_users_folder_too(community_dataset, tmp_path):
    """Dataset.save, FeatureSet.save and a run folder (the Python API) claim their folder."""
    from vlmrec.experiments.runner import Runner

    victim = user_folder(tmp_path / "mine")
    before = snapshot(victim)
    with pytest.raises(ConfigError, match="vlmrec did not create it"):
        community_dataset.save(victim)
    fs = FeatureSet.create(np.zeros((community_dataset.n_items, 2)), community_dataset, extractor="x")
    with pytest.raises(ConfigError, match="vlmrec did not create it"):
        fs.save(victim)
    cfg = parse_config(config(output_dir=str(victim), dataset={"prepared": str(tmp_path / "ds")}))
    with pytest.raises(ConfigError, match="vlmrec did not create it"):
        Runner(cfg).run()
    assert snapshot(victim) == before


def test_a_folder_of_another_kind_is_refused_naming_both(prepared, feature_sets, tmp_path):
    before = snapshot(prepared)
    code, out = invoke("extract", "--dataset", prepared, "--extractor", "text", "--out", prepared)
    expected = f"--out {prepared}: a vlmrec prepared dataset folder, not a FeatureSet folder"
    assert code == 2 and flat(expected) in flat(out), out
    code, out = invoke("control", "--input", feature_sets / "a", "--out", prepared)
    assert code == 2 and flat(expected) in flat(out), out
    assert snapshot(prepared) == before


def test_vlmrecs_own_folders_stay_reusable(prepared, feature_sets, tmp_path):
    """A folder vlmrec made (its marker, or an older one's manifest) is written again: rerunning
    a command into its own --out keeps working."""
    out = tmp_path / "ev"
    for _ in range(2):
        code, text = invoke("evaluate", "--dataset", prepared, "--model", "mostpop", "--k", "5", "--out", out)
        assert code == 0, text
    assert folder_kind(out) == "results" and (out / MARKER).is_file()
    ctrl = tmp_path / "ctrl"
    for seed in (0, 1):
        code, text = invoke("control", "--input", feature_sets / "a", "--seed", seed, "--out", ctrl)
        assert code == 0, text
    assert FeatureSet.load(ctrl).manifest["control_seed"] == 1  # the second run wrote it
    # folders written before the marker existed are recognised by their manifests
    (ctrl / MARKER).unlink()
    assert folder_kind(ctrl) == "featureset"
    code, text = invoke("control", "--input", feature_sets / "a", "--out", ctrl)
    assert code == 0, text
    assert folder_kind(prepared) == "dataset"
    legacy_run = tmp_path / "old-run"
    legacy_run.mkdir()
    (legacy_run / "config.json").write_text('{"name": "t", "dataset": {}, "models": []}')
    assert check_folder(legacy_run, "run") == legacy_run


def test_an_empty_or_missing_folder_is_claimed_and_marked(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert claim_folder(empty, "featureset") == empty and folder_kind(empty) == "featureset"
    assert (
        claim_folder(tmp_path / "new" / "deeper", "run") and folder_kind(tmp_path / "new" / "deeper") == "run"
    )
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        check_folder(f, "dataset")


# ---- an output that is also an input -----------------------------------------------------------
def test_fuse_out_one_of_its_inputs_is_refused(feature_sets):
    a, b = feature_sets / "a", feature_sets / "b"
    before = snapshot(a)
    for out in (a, b.parent / "b" / ".." / "a"):
        code, text = invoke("fuse", "--inputs", f"{a},{b}", "--out", out)
        expected = f"--out {out}: is also the input {a}; writing there would destroy it"
        assert code == 2 and flat(expected) in flat(text), text
    assert snapshot(a) == before


def test_control_out_its_input_is_refused(feature_sets, tmp_path):
    a = feature_sets / "a"
    before = snapshot(a)
    link = tmp_path / "link"
    link.symlink_to(a)
    for out in (a, link):
        code, text = invoke("control", "--input", a, "--out", out)
        expected = (
            f"--out {out}: is the --input folder; writing the control there would destroy the real features"
        )
        assert code == 2 and flat(expected) in flat(text), text
    assert snapshot(a) == before
