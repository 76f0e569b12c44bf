"""One typed options model per extractor, built the same way by the CLI, a YAML config and the
Python API: unknown keys refused, batch_size honoured, options round-trip; the Extractor
protocol's fit step; no import cycle between the registry and the LVLM extractors (issue 12).

Model-backed encoders are replaced by fakes that record the batches they are called with, so the
tests are fast and check the wiring, not the models (test_features.py covers the real weights).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from vlmrec.cli import app
from vlmrec.data import prepare_dataset
from vlmrec.errors import ConfigError
from vlmrec.features.encoders.describer import LabelOCRDescriber
from vlmrec.features.encoders.image import EfficientNetLite0
from vlmrec.features.encoders.text import SentenceEncoder
from vlmrec.features.extraction import extract
from vlmrec.features.registry import build_extractor

N_ITEMS = 12
runner = CliRunner()


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    d = tmp_path_factory.mktemp("specs")
    ds = prepare_dataset(
        "planted", out=d / "ds", planted_options={"n_users": 20, "n_items": N_ITEMS, "image_size": 32}
    )
    return ds, d / "ds"


@pytest.fixture
def calls(monkeypatch):
    """Fake text encoder, image encoder and describer; `calls[kind]` lists what each call got."""
    seen: dict[str, list] = {"text": [], "image": [], "describe": []}

    def text_init(self, model="minilm", device=None, normalize=True):
        self.model_name, self.model_path, self.normalize, self.dim = model, "fake", normalize, 4
        self.model = SimpleNamespace(max_seq_length=16)

    def text_encode(self, texts, batch_size=64):
        seen["text"].append((len(texts), batch_size))
        return np.ones((len(texts), 4), np.float32)

    def image_init(self, device=None):
        self.model_path, self.dim = "fake", 3

    def image_encode(self, images):
        seen["image"].append(len(images))
        return np.ones((len(images), 3), np.float32)

    def describer_init(self, *args, **kwargs):
        self.top_k, self.min_prob, self.ocr, self.min_ocr_score = 3, 0.05, None, 0.5

    def describe(self, images, titles=None):
        seen["describe"].append(len(images))
        return [{"description": "a thing", "source": "fake"} for _ in images]

    monkeypatch.setattr(SentenceEncoder, "__init__", text_init)
    monkeypatch.setattr(SentenceEncoder, "encode", text_encode)
    monkeypatch.setattr(EfficientNetLite0, "__init__", image_init)
    monkeypatch.setattr(EfficientNetLite0, "encode", image_encode)
    monkeypatch.setattr(LabelOCRDescriber, "__init__", describer_init)
    monkeypatch.setattr(LabelOCRDescriber, "describe", describe)
    return seen


def _batches(calls: dict, name: str) -> list[int]:
    """The batch sizes the fake behind extractor `name` was called with."""
    if name == "text":
        return [size for _, size in calls["text"]]  # sentence-transformers loops over the batches itself
    return calls["image" if name == "image" else "describe"]


EXPECTED = {"text": [5], "image": [5, 5, 2], "describe-ocr": [5, 5, 2]}


def _invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def _one_error(code: int, out: str) -> str:
    """The CLI failed with exit 2 and a single `error:` message (no traceback, no usage box)."""
    assert code == 2, out
    assert out.startswith("error:") and out.count("error:") == 1 and "Traceback" not in out, out
    return " ".join(out.split())  # the console wraps long lines


# ---- batch_size honoured, from every front end ----------------------------------------------


@pytest.mark.parametrize("name", list(EXPECTED))
def test_batch_size_is_honoured_python_api(name, calls, planted, tmp_path):
    ds, _ = planted
    ex = build_extractor(name, tmp_path / name, batch_size=5)
    extract(ds, ex, tmp_path / name, chunk_size=N_ITEMS, progress=False)
    assert _batches(calls, name) == EXPECTED[name]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_batch_size_is_honoured_cli(name, calls, planted, tmp_path):
    _, ds_dir = planted
    code, out = _invoke(
        "extract", "--dataset", ds_dir, "--extractor", name, "--batch-size", 5, "--out", tmp_path / name
    )
    assert code == 0, out
    assert _batches(calls, name) == EXPECTED[name]


def _config(tmp_path: Path, ds_dir: Path, feature: dict) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "specs",
                "output_dir": str(tmp_path / "run"),
                "dataset": {"prepared": str(ds_dir)},
                "features": [feature],
                "models": [{"name": "mostpop"}],
            }
        )
    )
    return path


@pytest.mark.parametrize("name", list(EXPECTED))
def test_batch_size_is_honoured_config(name, calls, planted, tmp_path):
    from vlmrec.experiments.config import load_config
    from vlmrec.experiments.runner import Runner

    ds, ds_dir = planted
    cfg = load_config(
        _config(tmp_path, ds_dir, {"name": "f", "extractor": name, "options": {"batch_size": 5}})
    )
    Runner(cfg).features(ds)
    assert _batches(calls, name) == EXPECTED[name]


# ---- unknown or misplaced options are refused -----------------------------------------------


def test_unknown_option_refused_python_api(calls, tmp_path):
    with pytest.raises(ConfigError) as e:
        build_extractor("text", tmp_path / "t", batch_sz=4)
    msg = str(e.value)
    assert "'text'" in msg and "'batch_sz'" in msg and "valid options: batch_size, fields, model" in msg


def test_unknown_option_refused_in_config(calls, planted, tmp_path):
    from vlmrec.experiments.config import load_config
    from vlmrec.experiments.runner import Runner

    ds, ds_dir = planted
    cfg = load_config(
        _config(tmp_path, ds_dir, {"name": "f", "extractor": "image", "options": {"batchsize": 4}})
    )
    with pytest.raises(
        ConfigError, match=r"extractor 'image': unknown option 'batchsize'; valid options: batch_size"
    ):
        Runner(cfg).features(ds)
    assert calls["image"] == []  # refused before any item was encoded


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--extractor", "text", "--option", "batch_sz=4"], "extractor 'text': unknown option 'batch_sz'"),
        # an option another extractor takes is still an error here, and says where it belongs
        (["--extractor", "text", "--pooling", "last"], "'pooling' is an option of lvlm-embed"),
        (["--extractor", "image", "--model", "resnet"], "extractor 'image': unknown option 'model'"),
        (
            ["--extractor", "text", "--batch-size", "0"],
            "batch_size=0: Input should be greater than or equal to 1",
        ),
        (["--extractor", "onehot"], "option 'fields' is required"),
        (["--extractor", "lvlm-embed", "--pooling", "max"], "pooling='max': Input should be 'mean'"),
        (["--extractor", "lvlm-embed", "--layer", "top"], "expected a hidden-state index"),
    ],
)
def test_bad_options_refused_by_cli_with_one_error_line(calls, planted, tmp_path, args, expected):
    _, ds_dir = planted
    code, out = _invoke("extract", "--dataset", ds_dir, "--out", tmp_path / "o", *args)
    assert expected in _one_error(code, out)
    assert not (tmp_path / "o").exists() and calls["text"] == calls["image"] == []


def test_describe_takes_generation_options(planted, tmp_path, monkeypatch):
    from vlmrec.features.lvlm import extractors as lvlm_extractors

    _, ds_dir = planted
    seen = {}

    def fake_describe_catalogue(dataset, model, prompt, out, batch_size=None, **options):
        seen.update(options, batch_size=batch_size)
        return {}

    monkeypatch.setattr(lvlm_extractors, "describe_catalogue", fake_describe_catalogue)
    code, out = _invoke(
        "describe", "--dataset", ds_dir, "--gen", "num_beams=2", "--gen", "repetition_penalty=1.2",
        "--max-new-tokens", 12, "--option", "device=cpu", "--out", tmp_path / "d",
    )  # fmt: skip
    assert code == 0, out
    # the batch size is left to the LVLM (automatic), not fixed by the CLI
    assert seen == {
        "num_beams": 2,
        "repetition_penalty": 1.2,
        "max_new_tokens": 12,
        "device": "cpu",
        "batch_size": None,
    }
    code, out = _invoke("describe", "--dataset", ds_dir, "--gen", "max_new_tokn=3", "--out", tmp_path / "d")
    assert "max_new_tokn" in _one_error(code, out)
    code, out = _invoke("describe", "--dataset", ds_dir, "--gen", "device=cpu", "--out", tmp_path / "d")
    assert "generation options: device" in _one_error(code, out)


def test_extract_batch_size_defaults_to_the_extractors_own(planted, tmp_path, monkeypatch):
    from vlmrec.features import registry

    _, ds_dir = planted
    seen = {}

    def stop(name, options, out):
        seen[name] = options
        raise ConfigError("stop here")

    monkeypatch.setattr(registry, "build", stop)
    for name in ("text", "lvlm-embed"):
        _invoke("extract", "--dataset", ds_dir, "--extractor", name, "--out", tmp_path / name)
    assert seen["text"].batch_size == 64  # TextOptions' default
    assert seen["lvlm-embed"].batch_size is None  # chosen from free GPU memory at build time


@pytest.mark.parametrize(
    "args,expected",
    [
        (["fuse", "--inputs", "a,b", "--method", "avg", "--out", "x"], "--method 'avg': choose one of "),
        (
            ["fuse", "--inputs", "a,b", "--weights", "1,2", "--out", "x"],
            "--weights applies to --method weighted only",
        ),
        (["control", "--input", "a", "--kind", "shuffle", "--out", "x"], "--kind 'shuffle': choose one of "),
    ],
)
def test_fuse_and_control_choices_checked_first(args, expected):
    from vlmrec.features.combine.controls import CONTROL_KINDS
    from vlmrec.features.combine.fusion import FUSION_METHODS

    code, out = _invoke(*args)
    msg = _one_error(code, out)
    assert expected in msg  # before any feature set is read (the inputs do not exist)
    if "choose one of" in expected:  # the choices listed are the ones the library defines
        choices = FUSION_METHODS if args[0] == "fuse" else CONTROL_KINDS
        assert msg.split("choose one of ")[1].strip() == ", ".join(choices)


# ---- the registry: one options model per extractor --------------------------------------------


def test_every_registered_extractor_has_an_options_model():
    from vlmrec.features.extraction import ExtractorOptions
    from vlmrec.features.registry import EXTRACTORS, option_docs

    assert {"text", "image", "describe-ocr", "onehot", "lvlm-embed", "lvlm-describe"} <= set(EXTRACTORS)
    for name, spec in EXTRACTORS.items():
        assert spec.name == name and spec.summary
        assert issubclass(spec.options, ExtractorOptions), name
        assert spec.options.model_config.get("extra") == "forbid", name
        if name != "onehot":  # every extractor with a model has a batch size
            assert "batch_size" in spec.options.model_fields, name
        assert [d.name for d in option_docs(name)] and all(d.type for d in option_docs(name))


def test_extract_list_shows_options_with_types_and_defaults():
    code, out = _invoke("extract", "--list")
    assert code == 0, out
    text = out[out.index("text ") : out.index("text-mpnet")]
    assert "batch_size" in text and "int >= 1" in text and "= 64" in text and '= "minilm"' in text
    lvlm = out[out.index("lvlm-embed") : out.index("lvlm-describe")]
    assert "pooling" in lvlm and "mean|image|prompt|last" in lvlm
    code, out = _invoke("extract", "--list", "--extractor", "onehot")
    assert code == 0 and "required" in out and "categorical item fields" in out.replace("\n", " ")


def _example_options() -> dict[str, dict]:
    """Options with non-default values for every extractor (required ones filled in)."""
    return {
        "text": {"model": "mpnet", "fields": ["title", "description"], "batch_size": 8},
        "text-mpnet": {"fields": ["title"], "batch_size": 3},
        "image": {"batch_size": 7},
        "image-inception": {"batch_size": 2},
        "image-hf": {"model": "microsoft/resnet-50", "batch_size": 4},
        "describe-ocr": {"batch_size": 2, "top_k": 5, "ocr": False},
        "lvlm-embed": {"model": "ckpt", "prompt": "clothing", "layer": "mean_last_2", "pooling": "image"},
        "lvlm-describe": {"model": "ckpt", "batch_size": 0, "max_new_tokens": 12, "cache": "c.jsonl"},
        "lvlm-attributes": {
            "model": "ckpt",
            "prompt": "baby",
            "top": 20,
            "do_sample": True,
            "temperature": 0.7,
        },
        "onehot": {"fields": ["genres", "categories"], "top": 10},
    }


def test_options_round_trip_through_json_yaml_and_cli_text():
    from vlmrec.features.registry import EXTRACTORS, parse_assignments, parse_options

    examples = _example_options()
    assert set(examples) == set(EXTRACTORS)
    for name, raw in examples.items():
        opts = parse_options(name, raw)
        dumped = json.loads(json.dumps(opts.model_dump(mode="json")))
        assert parse_options(name, dumped) == opts, name
        assert parse_options(name, yaml.safe_load(yaml.safe_dump(dumped))) == opts, name
        # what the CLI's --option KEY=VALUE text gives is the same object
        cli = parse_assignments([f"{k}={json.dumps(v)}" for k, v in raw.items()], "--option")
        assert parse_options(name, cli) == opts, name
        assert parse_options(name, opts) is opts
    assert parse_options("lvlm-embed", {"layer": "-2"}).layer == -2  # the CLI's --layer text


# ---- the Extractor protocol: fit on the whole catalogue, then chunks --------------------------


def test_extract_fits_the_extractor_on_the_item_table_before_any_chunk(planted, tmp_path):
    ds, _ = planted
    ex = build_extractor("onehot", tmp_path / "o", fields=["title"])  # no item table needed to build it
    fs = extract(ds, ex, tmp_path / "o", chunk_size=5, progress=False)
    assert fs.vectors.shape[0] == N_ITEMS and fs.manifest["vocabulary"] == ex.vocab and ex.vocab


def test_lvlm_attributes_is_a_fitted_extractor_not_a_special_case():
    from vlmrec.features.extraction import Extractor
    from vlmrec.features.lvlm.extractors import LVLMAttributeExtractor

    assert issubclass(LVLMAttributeExtractor, Extractor)
    assert LVLMAttributeExtractor.fit is not Extractor.fit and not hasattr(
        LVLMAttributeExtractor, "extract_all"
    )
    assert LVLMAttributeExtractor.own_missing_policy  # its failed rows are kept, not mean-filled


# ---- no import cycle ---------------------------------------------------------------------------


def test_lvlm_extractors_import_without_the_registry():
    code = (
        "import sys\n"
        "import vlmrec.features.lvlm.extractors\n"
        "loaded = [m for m in ('vlmrec.features.registry',) if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "import vlmrec.features.registry as r\n"
        "assert r.EXTRACTORS['lvlm-embed'].options.__module__ == 'vlmrec.features.lvlm.extractors'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]


def _feature_imports() -> dict[str, set[str]]:
    """vlmrec.features module -> the vlmrec.features modules it imports (function-level included)."""
    root = Path(__file__).resolve().parents[1] / "src" / "vlmrec" / "features"
    files = {
        ".".join(p.relative_to(root).with_suffix("").parts): p
        for p in root.rglob("*.py")
        if p.stem != "__init__"
    }
    names = set(files)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            deps |= {
                t.removeprefix("vlmrec.features.") for t in targets if t.startswith("vlmrec.features.")
            } & names
        graph[name] = deps - {name}
    return graph


def test_no_import_cycle_among_feature_modules():
    graph = _feature_imports()
    assert "registry" not in graph["lvlm.extractors"]
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            assert state.get(dep) != 1, f"import cycle: {' -> '.join([*path, node, dep])}"
            if dep not in state:
                visit(dep, [*path, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
