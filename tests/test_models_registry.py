"""The model layer (models/registry.py, params.py, torch_base.TrainingParams): adding a model is
one file. A decorated class is, with no other edit, a model that `create_model`,
`validate_params`, the experiment config, `vlmrec models` and docs/config.md know, its ranges
and meanings read from its signature; a file dropped into the package is imported and
registered; the training parameters are declared once and given flat."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Annotated

import numpy as np
import pytest
import torch
from pydantic import Field

from vlmrec.errors import ConfigError, ModelError
from vlmrec.experiments.config import parse_config
from vlmrec.experiments.config_reference import config_reference
from vlmrec.models import (
    MODELS,
    Recommender,
    TorchRecommender,
    TrainingParams,
    create_model,
    model_names,
    param_spec,
    register,
    validate_params,
)

MODELS_DIR = Path(__file__).resolve().parents[1] / "src" / "vlmrec" / "models"


@pytest.fixture()
def toy_model():
    """A torch model defined here, as a new model file would define it."""

    @register("toymf")
    class ToyMF(TorchRecommender):
        """x_ui = <p_u, q_i>, BPR loss."""

        def __init__(
            self,
            dim: Annotated[int, Field(ge=1, le=64, description="toy factor size")] = 4,
            training: TrainingParams = TrainingParams(epochs=3, lr=0.05),
        ) -> None:
            self.dim = dim
            self.training = training

        def _setup(self, dataset, features, rng):
            self.net = torch.nn.ParameterDict(
                {
                    "user": torch.nn.Parameter(0.1 * torch.randn(dataset.n_users, self.dim)),
                    "item": torch.nn.Parameter(0.1 * torch.randn(dataset.n_items, self.dim)),
                }
            )

        def _batch_loss(self, users, pos, neg):
            u, i, j = self.net["user"][users], self.net["item"][pos], self.net["item"][neg]
            return -torch.nn.functional.logsigmoid((u * i).sum(-1) - (u * j).sum(-1)).mean()

        def _final_embeddings(self):
            return self.net["user"], self.net["item"]

    yield ToyMF
    MODELS.pop("toymf", None)


def config(**model):
    return {"name": "t", "dataset": {"prepared": "x"}, "models": [{"name": "toymf", **model}]}


def test_a_decorated_class_is_a_model_everywhere(toy_model, community_dataset, tmp_path):
    assert "toymf" in model_names() and MODELS["toymf"] is toy_model
    # its spec: its own parameter, then the training parameters flat, with its own defaults
    fields = param_spec(toy_model).model_fields
    assert list(fields)[:3] == ["dim", "epochs", "batch_size"]
    assert (
        fields["epochs"].default == 3
        and fields["lr"].default == 0.05
        and fields["batch_size"].default == 2048
    )
    assert toy_model.param_names() == list(fields)
    # create_model and validate_params check names, types and ranges from the signature
    m = create_model("toymf", dim="8", lr=0.01)
    assert m.dim == 8 and m.training == TrainingParams(epochs=3, lr=0.01)
    assert m.get_params()["lr"] == 0.01 and m.get_params()["epochs"] == 3
    assert validate_params("toymf", {"dim": 2, "patience": 5}) == {"dim": 2, "patience": 5}
    for bad, named in [({"dim": 65}, "dim=65"), ({"lr": 0}, "lr=0"), ({"size": 2}, "no parameter 'size'")]:
        with pytest.raises(ModelError, match=named):
            create_model("toymf", **bad)
    with pytest.raises(ModelError, match="dim=0"):  # built directly, checked the same way
        toy_model(dim=0)
    # it trains with the shared loop and round-trips
    m.fit(community_dataset, seed=0)
    assert m.epochs_run_ == 3
    back = Recommender.load(m.save(tmp_path / "toy"))
    assert back.get_params() == m.get_params()
    np.testing.assert_array_equal(back.score(np.arange(5)), m.score(np.arange(5)))


def test_the_config_and_the_reference_pick_it_up(toy_model):
    cfg = parse_config(config(params={"dim": 2, "epochs": 7}, grid={"lr": [0.01, 0.1]}))
    assert cfg.models[0].name == "toymf"
    with pytest.raises(ConfigError, match="lr=-1"):
        parse_config(config(grid={"lr": [0.01, -1]}))
    with pytest.raises(ConfigError, match="size"):
        parse_config(config(params={"size": 2}))
    section = config_reference().split("### `toymf`", 1)[1].split("###", 1)[0]
    assert "| `dim` | int | `4` | >= 1, <= 64 | toy factor size |" in section
    assert "| `epochs` | int | `3` | >= 1 |" in section and "| `lr` | float | `0.05` | > 0 |" in section


def test_unknown_model_is_a_config_error_listing_the_names():
    with pytest.raises(ConfigError, match="unknown model 'bpr'; available: .*bprmf.*lightgcn"):
        create_model("bpr")


def test_a_name_is_registered_once(toy_model):
    with pytest.raises(ModelError, match="'toymf' is taken"):

        @register("toymf")
        class Other(Recommender):
            def fit(self, dataset, features=None, *, seed=0, validator=None):
                return self

            def score(self, user_ids):
                return np.zeros((len(user_ids), 1), np.float32)


def test_a_new_file_in_the_package_is_a_registered_model(tmp_path):
    # the package imports every module on its path: put one file beside the others (on a copy of
    # the search path, in a fresh interpreter) and nothing else
    (tmp_path / "dropped.py").write_text(
        textwrap.dedent(
            '''
            from typing import Annotated

            import numpy as np
            from pydantic import Field

            from vlmrec.models.cold import cold_items_of, demote_cold_scores
            from vlmrec.models.base import Recommender
            from vlmrec.models.registry import register


            @register("dropped")
            class Dropped(Recommender):
                """Popularity ** power."""

                def __init__(self, power: Annotated[float, Field(gt=0, description="exponent")] = 1.0) -> None:
                    self.power = power

                def fit(self, dataset, features=None, *, seed=0, validator=None):
                    self.pop_ = np.asarray(dataset.matrix("train").sum(0), np.float32).ravel() ** self.power
                    self.cold_items_ = cold_items_of(dataset)
                    return self

                def score(self, user_ids):
                    return demote_cold_scores(np.tile(self.pop_, (len(user_ids), 1)), self.cold_items_)
            '''
        )
    )
    code = textwrap.dedent(
        f"""
        import importlib.util, sys
        import vlmrec
        spec = importlib.util.find_spec("vlmrec.models")
        spec.submodule_search_locations.append({str(tmp_path)!r})
        package = importlib.util.module_from_spec(spec)
        sys.modules["vlmrec.models"] = package
        spec.loader.exec_module(package)
        from vlmrec.errors import ModelError
        from vlmrec.experiments.config_reference import config_reference
        from vlmrec.models import create_model
        assert create_model("dropped", power=2).power == 2.0
        try:
            create_model("dropped", power=0)
            raise SystemExit("power=0 accepted")
        except ModelError as e:
            assert "power=0" in str(e), e
        assert "| `power` | float | `1.0` | > 0 | exponent |" in config_reference()
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]


def test_every_model_module_is_registered_by_being_in_the_package():
    # no list of modules to keep in step: every registered class lives in a file of the package
    files = {p.stem for p in MODELS_DIR.glob("*.py")} - {"__init__"}
    outside = {
        name: cls.__module__ for name, cls in MODELS.items() if cls.__module__.rpartition(".")[2] not in files
    }
    assert not outside, outside
    assert all(f"vlmrec.models.{name}" in sys.modules for name in files)


def test_training_parameters_are_declared_once():
    # the torch models take one TrainingParams; none re-declares one of its fields
    training = set(TrainingParams.model_fields)
    for name, cls in MODELS.items():
        if issubclass(cls, TorchRecommender):
            own = [p for p in cls.param_names() if p not in training]
            assert cls.param_names() == own + list(TrainingParams.model_fields), name
    for path in MODELS_DIR.glob("*.py"):
        if path.stem == "torch_base":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name == "__init__":
                args = {a.arg for a in node.args.args + node.args.kwonlyargs}
                assert not args & training, f"{path.name}: {sorted(args & training)} re-declared"


def test_the_model_layer_has_no_import_cycle():
    """Among models/ modules, counting function-level imports (type-only imports excluded)."""
    names = {p.stem for p in MODELS_DIR.glob("*.py")} - {"__init__"}
    graph: dict[str, set[str]] = {}
    for name in names:
        tree = ast.parse((MODELS_DIR / f"{name}.py").read_text())
        type_only = {
            id(n)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
            for n in ast.walk(block)
        }
        deps = set()
        for node in ast.walk(tree):
            if id(node) in type_only or not isinstance(node, ast.ImportFrom) or not node.module:
                continue
            targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            deps |= {t.removeprefix("vlmrec.models.") for t in targets} & names
        graph[name] = deps - {name}
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as e:
        pytest.fail(f"import cycle: {' -> '.join(e.args[1])}")
