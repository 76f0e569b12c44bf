"""The Recommender contract and the model registry.

A recommender is a small class: hyperparameters only in `__init__`, `fit` learns from a Dataset
(and optionally FeatureSets handed over by the caller), `score` returns users x items scores,
higher is better. Masking of seen items and top-K belong to the evaluator.
"""

from __future__ import annotations

import inspect
import json
import logging
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypedDict

import numpy as np
import pydantic
import scipy.sparse as sp

from vlmrec.data.dataset import Dataset
from vlmrec.errors import ModelError
from vlmrec.features.featureset import FeatureSet
from vlmrec.models.param_docs import describe_param
from vlmrec.provenance import code_version

log = logging.getLogger(__name__)

Validator = Callable[["Recommender"], float]
"""Returns a validation score for the current state (higher is better); used for early stopping."""

MODELS: dict[str, type[Recommender]] = {}


def register(name: str):
    def deco(cls: type[Recommender]) -> type[Recommender]:
        cls.name = name
        MODELS[name] = cls
        return cls

    return deco


def get_model_class(name: str) -> type[Recommender]:
    key = name.lower()
    if key not in MODELS:
        raise ModelError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    return MODELS[key]


class Bounds(TypedDict, total=False):
    """The range keywords of `pydantic.Field` that PARAM_BOUNDS uses."""

    ge: float
    gt: float
    le: float
    lt: float


# Ranges of hyperparameters, by name: a name means the same thing, with the same range, in every
# model. Types come from each model's `__init__` annotations.
PARAM_BOUNDS: dict[str, Bounds] = {
    **dict.fromkeys(["epochs", "batch_size", "patience", "eval_every", "lr_decay_step"], Bounds(ge=1)),
    **dict.fromkeys(["embedding_dim", "feat_embed_dim", "content_dim", "factors"], Bounds(ge=1)),
    **dict.fromkeys(["k", "knn_k", "block", "iterations", "cg_steps", "max_items", "last_n"], Bounds(ge=1)),
    **dict.fromkeys(["id_dim", "n_layers", "n_ui_layers", "n_mm_layers"], Bounds(ge=0)),
    **dict.fromkeys(["reg", "reg_weight", "cl_weight", "alpha", "shrink"], Bounds(ge=0)),
    **dict.fromkeys(["lambda_coeff", "image_weight", "decay"], Bounds(ge=0, le=1)),
    "lr": Bounds(gt=0),
    "lr_decay": Bounds(gt=0, le=1),
    "dropout": Bounds(ge=0, lt=1),
    "init_std": Bounds(gt=0),
}


def _check_device(value: str) -> str:
    import torch

    if value not in ("auto", "cpu") and not value.startswith("cuda"):
        raise ValueError(f"device {value!r}: choose auto, cpu or cuda[:N]")
    if value.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device {value!r}: no CUDA device is available here (torch {torch.__version__}); use auto or cpu"
        )
    return value


def param_spec(cls: type[Recommender]) -> type[pydantic.BaseModel]:
    """The typed hyperparameter spec of a model, built from its `__init__` signature (types and
    defaults), PARAM_BOUNDS (ranges) and param_docs (one line of meaning each); unknown names
    are rejected."""
    # include_extras keeps Annotated[..., Field(ge=...)] ranges a model declares itself
    hints = typing.get_type_hints(cls.__init__, include_extras=True)
    fields: dict[str, Any] = {}
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name == "self":
            continue
        default: Any = p.default if p.default is not inspect.Parameter.empty else ...
        kind = hints.get(name, Any)
        if name == "device":
            kind = Annotated[str, pydantic.AfterValidator(_check_device)]
        # a model's own Annotated[..., Field(...)] (ranges, description) wins over the shared tables
        own = typing.get_origin(kind) is Annotated
        extra: dict[str, Any] = {} if own else dict(PARAM_BOUNDS.get(name, {}))
        meaning = describe_param(cls.name, name)
        if meaning:
            extra["description"] = meaning
        fields[name] = (kind, pydantic.Field(default, **extra))
    return pydantic.create_model(
        f"{cls.__name__}Params", __config__=pydantic.ConfigDict(extra="forbid"), **fields
    )


def validate_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The given hyperparameters of model `name`, checked (types, ranges, names) and coerced;
    raises ModelError naming each bad parameter, what it got and what it expects."""
    cls = get_model_class(name)
    try:
        checked = param_spec(cls)(**params)
    except pydantic.ValidationError as e:
        problems = []
        for err in e.errors():
            key = ".".join(str(x) for x in err["loc"]) or "?"
            if err["type"] == "extra_forbidden":
                problems.append(f"no parameter {key!r} (its parameters are {cls.param_names()})")
            else:
                problems.append(f"{key}={err.get('input')!r}: {err['msg']}")
        raise ModelError(f"model {name!r}: " + "; ".join(problems)) from None
    return {k: getattr(checked, k) for k in params}


def create_model(name: str, **params: Any) -> Recommender:
    """A model from the registry with validated hyperparameters (see `validate_params`)."""
    return get_model_class(name)(**validate_params(name, params))


class Recommender:
    name: ClassVar[str] = "base"
    uses_features: ClassVar[bool] = False
    """True when the model reads item content (so content controls apply to it)."""
    cold_items_: np.ndarray = np.empty(0, dtype=np.int64)
    """Items with no training interaction, set by `fit` in models that apply a cold-item rule."""

    def fit(
        self,
        dataset: Dataset,
        features: dict[str, FeatureSet] | None = None,
        *,
        seed: int = 0,
        validator: Validator | None = None,
    ) -> Recommender:
        """Train on the dataset's train split.

        Args:
            dataset: the prepared interactions (ids, splits, item table).
            features: FeatureSets by label, aligned with `dataset.item_ids`; required by models
                with `uses_features`, ignored by ID-only ones.
            seed: seeds every random step of training (same seed, same scores).
            validator: called with the model after evaluation rounds; returns a score (higher is
                better) for early stopping and best-state restore. None trains all epochs.

        Returns:
            self, fitted: `score` can be called.
        """
        raise NotImplementedError

    def score(self, user_ids: np.ndarray) -> np.ndarray:
        """Raw relevance scores.

        Args:
            user_ids: internal user indices (0..n_users-1).

        Returns:
            float32 array (len(user_ids), n_items); higher ranks first. Seen items are not
            masked here: the evaluator and the service mask them.
        """
        raise NotImplementedError

    # ---- parameters (scikit-learn style) --------------------------------------------------
    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        return {p: getattr(self, p) for p in self.param_names()}

    def clone(self, **changes: Any) -> Recommender:
        params = self.get_params()
        params.update(changes)
        return type(self)(**params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ---- persistence ---------------------------------------------------------------------
    # A fitted model is its hyperparameters plus its public fitted state: the attributes whose
    # names end in "_" holding numpy arrays, scipy sparse matrices or JSON values. That is what
    # `score` reads, so a loaded model scores exactly as the saved one (training internals such
    # as torch modules and graphs are not kept: a loaded model scores, it does not resume).
    MODEL_FORMAT: ClassVar[int] = 1

    def save(self, directory: str | Path) -> Path:
        """Write `model.json` (name, params, JSON state), `arrays.npz` and one `<attr>.npz` per
        sparse matrix into `directory`; returns the folder."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        sparse: list[str] = []
        values: dict[str, Any] = {}
        for key, value in vars(self).items():
            if not key.endswith("_") or key.startswith("_"):
                continue
            if isinstance(value, np.ndarray):
                arrays[key] = value
            elif sp.issparse(value):
                sp.save_npz(d / f"{key}.npz", sp.csr_matrix(value))
                sparse.append(key)
            elif _is_json_value(value):
                values[key] = value
        # numpy's stub lets **kwds collide with `allow_pickle: bool`; the keys here all end in "_"
        np.savez(d / "arrays.npz", **arrays)  # type: ignore[arg-type]
        record = {
            "format": self.MODEL_FORMAT,
            "model": self.name,
            "params": self.get_params(),
            "arrays": sorted(arrays),
            "sparse": sorted(sparse),
            "values": values,
            "code_version": code_version(),
        }
        (d / "model.json").write_text(json.dumps(record, indent=1, default=str))
        return d

    @staticmethod
    def load(directory: str | Path) -> Recommender:
        """A fitted model written by `save` (of any registered class)."""
        d = Path(directory)
        try:
            record = json.loads((d / "model.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ModelError(f"{d}: not a saved model ({e})") from None
        if record.get("format") != Recommender.MODEL_FORMAT:
            raise ModelError(
                f"{d}: saved model format {record.get('format')!r}, this vlmrec reads {Recommender.MODEL_FORMAT}"
            )
        model = create_model(record["model"], **record["params"])
        with np.load(d / "arrays.npz") as arrays:
            for key in record["arrays"]:
                setattr(model, key, arrays[key])
        for key in record["sparse"]:
            setattr(model, key, sp.load_npz(d / f"{key}.npz").tocsr())
        for key, value in record["values"].items():
            setattr(model, key, value)
        return model

    # ---- helpers -------------------------------------------------------------------------
    def _require_features(self, features: dict[str, FeatureSet] | None, dataset: Dataset) -> list[FeatureSet]:
        if not features:
            raise ModelError(
                f"model {self.name!r} needs item features; pass --features (e.g. a FeatureSet from `vlmrec extract`)"
            )
        for key, fs in features.items():
            fs.check_matches(dataset, f"feature set {key!r}")
        return list(features.values())


def _is_json_value(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_json_value(v) for v in value)
    return False


# ---- cold items ---------------------------------------------------------------------------
# A cold item has no training interaction. A model that cannot know anything about it (an ID-only
# model) gives it the lowest score, below every warm item, never an untrained random value; cold
# items tie among themselves and the evaluator orders ties by item index. Content models score it
# from its features (each model's docstring says how; docs/cold_start.md has the table).


def cold_items_of(dataset: Dataset) -> np.ndarray:
    """Item ids (int64, ascending) with no interaction in the training split."""
    train = dataset.matrix("train")
    return np.flatnonzero(np.bincount(train.indices, minlength=dataset.n_items) == 0).astype(np.int64)


def demote_cold_scores(scores: np.ndarray, cold: np.ndarray) -> np.ndarray:
    """`scores` (users x items) with the cold columns set below every warm score of their row
    (in place; returned). The value is finite: masked items (-inf) stay below it."""
    if not len(cold) or not scores.size:
        return scores
    warm = np.ones(scores.shape[1], dtype=bool)
    warm[cold] = False
    if warm.any():
        floor = np.nanmin(np.where(np.isfinite(scores[:, warm]), scores[:, warm], np.inf), axis=1)
        floor = np.where(np.isfinite(floor), floor, 0.0)
    else:
        floor = np.zeros(len(scores))
    scores[:, cold] = (floor - 1.0 - np.abs(floor))[:, None].astype(scores.dtype)
    return scores


def demote_cold_factors(user: Any, item: Any, cold: np.ndarray) -> tuple[Any, Any]:
    """Factor matrices (numpy or torch) whose dot product ranks every cold item below every warm
    one: the cold items' rows are zeroed and one column is appended, 1 for every user and -B for
    a cold item (0 for a warm one), with B = max ||p_u|| * max ||q_i|| + 1 > any |<p_u, q_i>|.
    Warm scores are unchanged; every cold item scores -B (ties ordered by item index)."""
    import torch

    if isinstance(user, torch.Tensor):
        item = item.clone()
        item[torch.as_tensor(cold, device=item.device)] = 0
        bound = float(user.norm(dim=1).max()) * float(item.norm(dim=1).max()) + 1.0
        extra = torch.zeros(len(item), 1, dtype=item.dtype, device=item.device)
        extra[torch.as_tensor(cold, device=item.device)] = -bound
        ones = torch.ones(len(user), 1, dtype=user.dtype, device=user.device)
        return torch.cat([user, ones], 1), torch.cat([item, extra], 1)
    item_np = np.array(item, copy=True)
    item_np[cold] = 0
    bound = float(np.linalg.norm(user, axis=1).max()) * float(np.linalg.norm(item_np, axis=1).max()) + 1.0
    extra_np = np.zeros((len(item_np), 1), dtype=item_np.dtype)
    extra_np[cold] = -bound
    return np.hstack([user, np.ones((len(user), 1), user.dtype)]), np.hstack([item_np, extra_np])


class FactorModel(Recommender):
    """A model whose scores are dot products of user and item factor matrices, exposed as
    `user_factors_` and `item_factors_` (so serving and evaluation share one scoring rule)."""

    user_factors_: np.ndarray
    item_factors_: np.ndarray

    def score(self, user_ids: np.ndarray) -> np.ndarray:
        return self.user_factors_[np.asarray(user_ids)] @ self.item_factors_.T
