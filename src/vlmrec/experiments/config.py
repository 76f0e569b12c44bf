"""The experiment config: one YAML file, validated by pydantic; errors name the key."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic import Strict as StrictMode

from vlmrec.data.spec import DatasetSpec
from vlmrec.errors import ConfigError
from vlmrec.evaluation.metrics import METRICS
from vlmrec.evaluation.segments import BEYOND_METRICS, SegmentGroup
from vlmrec.features.combine.controls import ControlKind
from vlmrec.features.combine.fusion import FusionMethod
from vlmrec.features.extraction import MissingPolicy
from vlmrec.names import SafeName

ALL_METRICS = METRICS + BEYOND_METRICS
MAX_SEED = 2**32 - 1
"""The largest seed (numpy's legacy seeding takes 32 bits)."""
MAX_THREADS = 256
"""The most CPU threads a config may ask for (a typo such as 20000 would start that many)."""
MAX_GRID_POINTS = 1000
"""Default of `max_grid_points`: a larger grid is refused at load unless the config raises it."""
Int = Annotated[int, StrictMode()]
"""An integer that is an integer: `true` is not 1 (YAML's booleans are refused, not counted)."""
Seed = Annotated[int, StrictMode(), Field(ge=0, le=MAX_SEED)]


class Strict(BaseModel):
    # the docstring under each field is its description (docs/config.md is generated from them)
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class FeatureConfig(Strict):
    """An extracted set (`extractor`), a fusion of earlier sets (`fuse` + `method`), or an
    existing FeatureSet folder (`path`)."""

    name: SafeName
    """the label models refer to under `features`; also its folder name, so a name, not a path (no
    '/', '\\', leading '.', control characters or '~', which marks control twins; at most
    100 characters)"""
    extractor: str | None = None
    """a registered extractor (see 'Extractor options' below)"""
    model: str | None = None
    """the extractor's model option (a name or a local folder)"""
    prompt: str | None = None
    """LVLM extractors: the prompt template name or YAML file"""
    fields: list[str] | None = None
    """item-table fields the extractor reads"""
    options: dict[str, Any] = Field(default_factory=dict)
    """the extractor's other options (see 'Extractor options' below)"""
    fuse: list[str] | None = None
    """names of feature sets defined earlier, fused into one"""
    method: FusionMethod = "concat"
    """fusion method (docs: README 'Item features')"""
    weights: list[float] | None = None
    """method weighted: one weight per fused input"""
    path: Path | None = None
    """an existing FeatureSet folder (refused if made from another item table)"""
    missing: MissingPolicy = "mean"
    """items the extractor could not process: the mean vector, zeros, or an error"""

    @model_validator(mode="after")
    def _one_kind(self):
        kinds = [self.extractor is not None, self.fuse is not None, self.path is not None]
        if sum(kinds) != 1:
            raise ValueError(f"feature {self.name!r}: give exactly one of 'extractor', 'fuse' or 'path'")
        if "~" in self.name:
            raise ValueError(f"feature {self.name!r}: '~' is reserved for control names")
        return self


EngineName = Literal["local", "ray"]
"""Where a run's cells execute: in the `vlmrec run` process, or as tasks on a Ray cluster."""
Amount = Annotated[float, StrictMode()]
"""A resource quantity: a number (`true` is not 1)."""


class ResourcesConfig(Strict):
    """What one cell of the model asks of the cluster with `engine: ray` (the local engine runs
    one cell at a time in its own process and ignores it). Ray's rules: a quantity above 1 is a
    whole number; below 1 a fraction shares the device (num_gpus 0.25 packs four cells on a GPU)."""

    num_cpus: Amount | None = Field(None, gt=0, le=MAX_THREADS)
    """CPUs reserved per cell (default: the config's `threads`, the threads a cell uses)"""
    num_gpus: Amount = Field(0.0, ge=0, le=64)
    """GPUs reserved per cell; 0 runs the cell on CPU, a fraction packs cells on one GPU"""

    @field_validator("num_cpus", "num_gpus")
    @classmethod
    def _ray_quantity(cls, v: float | None) -> float | None:
        if v is not None and v > 1 and not float(v).is_integer():
            raise ValueError(
                f"{v}: a quantity above 1 must be a whole number (Ray packs fractions only below 1)"
            )
        return v


class ModelConfig(Strict):
    name: str
    """a registered model (see 'Model hyperparameters' below)"""
    label: SafeName | None = None
    """the row's name in reports (default: the model name); two models with the same name need
    distinct labels (a name, not a path: no '/', '\\', leading '.' or control characters)"""
    params: dict[str, Any] = Field(default_factory=dict)
    """fixed hyperparameters"""
    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] = Field(default_factory=dict)
    """hyperparameter values to try (each list non-empty); the best point on validation (mean
    over seeds) is kept"""
    features: list[list[str]] = Field(default_factory=list)
    """feature sets to train with: each entry a name or a list of names (one cell each)"""
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    """CPUs / GPUs each of its cells reserves with `engine: ray` (see models[].resources below)"""

    @field_validator("features", mode="before")
    @classmethod
    def _listify(cls, v):
        if isinstance(v, str):  # `features: text`, one name
            v = [v]
        if not isinstance(v, list):
            return v  # pydantic names the type error
        return [[x] if isinstance(x, str) else list(x) if isinstance(x, list | tuple) else x for x in v]

    def grid_size(self) -> int:
        """How many points the grid has (counted, not listed)."""
        return math.prod(len(v) for v in self.grid.values())

    def grid_points(self) -> list[dict[str, Any]]:
        """Every point of the grid, each with the fixed `params`."""
        keys = sorted(self.grid)
        return [
            {**self.params, **dict(zip(keys, combo))}
            for combo in itertools.product(*(self.grid[k] for k in keys))
        ]

    @property
    def display(self) -> str:
        return self.label or self.name


MaskSplit = Literal["train", "valid"]


def _default_mask() -> list[MaskSplit]:
    """The default test-time mask: train and validation items."""
    return ["train", "valid"]


class EvaluationConfig(Strict):
    """How every cell is evaluated.

    `mask`: the splits whose items are removed from each user's test ranking. `[train, valid]`
    (default) masks everything the user interacted with before the test split; `[train]` leaves
    validation items rankable, the convention of MMRec and the multimodal papers' tables.
    Validation always masks train items only.

    `metrics`: ranking metrics (recall, ndcg, ...) and beyond-accuracy ones (coverage, novelty,
    tail_share; segment "all" only). `segments`: extra result rows per item segment, "cold"
    (warm / cold) and "popularity" (head / torso / tail); see docs/cold_start.md.
    """

    ks: list[Int] = Field(default_factory=lambda: [10, 20])
    """ranking cutoffs K"""
    metrics: list[str] = Field(default_factory=lambda: list(METRICS))
    """metrics reported at every K"""
    segments: list[SegmentGroup] = Field(default_factory=list)
    """extra rows per item segment: cold (warm/cold items), popularity (head/torso/tail)"""
    select: str | None = None
    """METRIC@K chosen on validation; default recall@20 when 20 is a cutoff, else recall@max(ks)."""
    mask: list[MaskSplit] = Field(default_factory=_default_mask)
    """splits whose items are removed from each user's test ranking"""
    alpha: float = Field(0.05, gt=0, lt=0.5)
    """significance level of the verdicts (Holm over every comparison of a run)"""
    n_boot: Int = Field(5000, ge=1000, le=100_000)
    """draws of the paired bootstrap over users and seeds that gives every interval and p"""

    @model_validator(mode="before")
    @classmethod
    def _no_rank_test(cls, data):
        # the rank test and the bootstrap interval measured different things (issue 20): one
        # procedure now gives both, so an old config naming a test gets told, not ignored
        if isinstance(data, dict) and "test" in data:
            raise ValueError(
                f"test: {data['test']!r} is no longer an option: every verdict's interval and p now come "
                "from one paired bootstrap over users and seeds (docs/verdict.md); delete the key"
            )
        return data

    @field_validator("mask")
    @classmethod
    def _mask(cls, v):
        if "train" not in v:
            raise ValueError(f"{v}: the test-time mask must include 'train' ([train] or [train, valid])")
        return [s for s in ("train", "valid") if s in v]  # canonical order, no duplicates

    @field_validator("metrics")
    @classmethod
    def _known(cls, v):
        bad = [m for m in v if m not in ALL_METRICS]
        if bad:
            raise ValueError(f"unknown metric(s) {bad}; choose from {list(ALL_METRICS)}")
        return v

    @field_validator("segments")
    @classmethod
    def _segments(cls, v):
        return list(dict.fromkeys(v))  # no duplicates

    @field_validator("ks")
    @classmethod
    def _ks(cls, v):
        if not v or any(k < 1 for k in v) or len(set(v)) != len(v):
            raise ValueError(f"{v}: cutoffs must be distinct integers >= 1")
        return v

    @model_validator(mode="after")
    def _select_is_measured(self):
        # checked here, at load, so a bad value fails before any grid trains
        ranking = [m for m in self.metrics if m in METRICS]
        if not ranking:
            raise ValueError(
                f"metrics {self.metrics}: at least one ranking metric of {list(METRICS)} is needed"
            )
        if self.select is None:
            default = "recall" if "recall" in ranking else ranking[0]
            self.select = f"{default}@{20 if 20 in self.ks else max(self.ks)}"
        metric, _, k = self.select.partition("@")
        if metric not in METRICS or not k.isdigit():
            raise ValueError(
                f"select {self.select!r}: expected METRIC@K with METRIC in {list(METRICS)}, e.g. recall@20"
            )
        if int(k) not in self.ks:
            raise ValueError(f"select {self.select!r}: K={k} is not among the cutoffs ks={self.ks}")
        # the verdict and the leaderboard read the selection metric's test values: it must be measured
        if metric not in ranking:
            raise ValueError(f"select {self.select!r}: {metric} is not among metrics {self.metrics}; add it")
        return self

    @property
    def select_metric(self) -> tuple[str, int]:
        metric, _, k = str(self.select).partition("@")
        if metric not in METRICS or not k.isdigit():
            raise ConfigError(f"evaluation.select {self.select!r}: expected METRIC@K, e.g. recall@20")
        return metric, int(k)


class ExperimentConfig(Strict):
    name: SafeName
    """the experiment's name (default run folder: runs/NAME), so a name, not a path (no '/', '\\',
    leading '.' or control characters)"""
    output_dir: Path | None = None
    """the run folder (results, cells, report); a rerun resumes in it"""
    description: str = ""
    """free text shown at the top of the report"""
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)
    """training seeds (distinct, 0..2**32-1); every model runs every seed, results show their
    mean and CI"""
    threads: Int = Field(2, ge=1, le=MAX_THREADS)
    """CPU threads for training and scoring"""
    max_grid_points: Int = Field(MAX_GRID_POINTS, ge=1)
    """the most points one model's grid may have (the product of its list lengths; each point
    runs once per seed); a larger grid is refused at load, before anything is validated or
    trained: raise this to run it anyway"""
    dataset: DatasetSpec  # the data layer's own spec (also built by `vlmrec prepare`)
    """where the interactions and items come from and how they are split"""
    features: list[FeatureConfig] = Field(default_factory=list)
    """item feature sets: extracted, fused or loaded"""
    controls: list[ControlKind] = Field(default_factory=list)
    """content controls made for every feature set a model uses (shuffled, random, zero twins)"""
    models: list[ModelConfig] = Field(min_length=1)
    """the models to compare (at least one), each with params, grid and feature sets"""
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    """cutoffs, metrics, segments, mask and significance"""
    engine: EngineName = "local"
    """where cells run: `local` (one after another in this process) or `ray` (each cell a Ray
    task, on a local Ray cluster or the one `vlmrec run --address` names; docs/scaling.md);
    results are identical, so either engine resumes the other's run"""

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, v: list[int]) -> list[int]:
        twice = sorted({s for s in v if v.count(s) > 1})
        if twice:
            raise ValueError(
                f"{v}: seed {twice[0]} is listed twice; each seed once (a repeat would count as another seed)"
            )
        return v

    @model_validator(mode="after")
    def _references(self):
        names = [f.name for f in self.features]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"features: duplicate name(s) {sorted(dupes)}")
        for i, f in enumerate(self.features):
            for ref in f.fuse or []:
                if ref not in names[:i]:
                    raise ValueError(
                        f"features[{i}] ({f.name}): fuse refers to {ref!r}, which is not defined before it"
                    )
        from vlmrec.models import MODELS

        self._distinct_rows()
        for i, m in enumerate(self.models):
            if m.name not in MODELS:
                raise ValueError(f"models[{i}].name: unknown model {m.name!r}; available: {sorted(MODELS)}")
            valid = MODELS[m.name].param_names()
            bad = [p for p in [*m.params, *m.grid] if p not in valid]
            if bad:
                raise ValueError(f"models[{i}] ({m.name}): unknown parameter(s) {bad}; valid: {valid}")
            if m.grid_size() > self.max_grid_points:
                sizes = " x ".join(f"{len(v)} {k}" for k, v in sorted(m.grid.items()))
                raise ValueError(
                    f"models[{i}] ({m.name}).grid: {m.grid_size():,} points ({sizes}), above "
                    f"max_grid_points = {self.max_grid_points:,}; each point trains once per seed: "
                    "shrink the grid, or raise max_grid_points to run it"
                )
            problem = bool_problem(m.name, {**m.params, **{k: x for k, v in m.grid.items() for x in v}})
            if problem:
                raise ValueError(f"models[{i}] ({m.name}): {problem}")
            from vlmrec.errors import ModelError
            from vlmrec.models.base import validate_params

            for point in m.grid_points():  # types and ranges of every grid point, before any training
                try:
                    validate_params(m.name, point)
                except ModelError as e:
                    raise ValueError(f"models[{i}] ({m.name}): {e}") from None
            for combo in m.features:
                for ref in combo:
                    if ref not in names:
                        raise ValueError(
                            f"models[{i}] ({m.name}).features: {ref!r} is not a defined feature set {names}"
                        )
            if MODELS[m.name].uses_features and not m.features:
                raise ValueError(
                    f"models[{i}] ({m.name}) uses item content: list the feature sets under 'features'"
                )
        return self

    def _distinct_rows(self) -> None:
        """Each result row once: two models with one display name (or a model listing one feature
        combination twice) would be averaged into one row and reported as extra seeds."""
        seen: dict[str, int] = {}
        for i, m in enumerate(self.models):
            if m.display in seen:
                j = seen[m.display]
                key = "label" if m.label is not None else "name"
                raise ValueError(
                    f"models[{i}].{key}: {m.display!r} is already the row name of models[{j}]; two "
                    "entries with one name would be averaged into one row: give them distinct "
                    "`label`s (e.g. label: " + repr(f"{m.display}-2") + ")"
                )
            seen[m.display] = i
            labels: dict[str, int] = {}
            for c, combo in enumerate(m.features):
                if not combo:
                    raise ValueError(
                        f"models[{i}] ({m.display}).features[{c}]: an empty combination; name at least one feature set"
                    )
                twice = sorted({n for n in combo if combo.count(n) > 1})
                if twice:
                    raise ValueError(
                        f"models[{i}] ({m.display}).features[{c}]: {combo} lists {twice[0]!r} twice; "
                        "a combination names each feature set once"
                    )
                label = "+".join(combo)
                if label in labels:
                    raise ValueError(
                        f"models[{i}] ({m.display}).features[{c}]: {label!r} is already "
                        f"features[{labels[label]}]; list each feature combination once"
                    )
                labels[label] = c


def load_config(path: str | Path) -> ExperimentConfig:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: config file not found")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    return parse_config(raw, str(p), base_dir=p.parent)


def parse_config(raw: dict, source: str = "config", base_dir: Path | None = None) -> ExperimentConfig:
    try:
        cfg = ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            key = ".".join(str(x) for x in err["loc"])
            msg = f"{err['msg']}{_got(err)}"
            lines.append(f"  {key}: {msg}" if key else f"  {msg.removeprefix('Value error, ')}")
        raise ConfigError(f"{source}: invalid configuration\n" + "\n".join(lines)) from None
    if cfg.output_dir is None:
        cfg.output_dir = Path("runs") / cfg.name
    return cfg


def _got(err: Any) -> str:
    """` (got VALUE)` for a scalar input of a type error (YAML's `true` read as a number, a
    string where a number belongs), else nothing."""
    value = err.get("input")
    if not err["type"].endswith(("_type", "_parsing")) or not isinstance(value, bool | int | float | str):
        return ""
    text = repr(value) if not isinstance(value, bool) else str(value).lower()
    return f" (got {text[:60]})"


def bool_problem(model: str, values: dict[str, Any]) -> str | None:
    """What is wrong when a hyperparameter that is not a switch got `true`/`false` (YAML or JSON
    would otherwise make it 1 or 0: `k: true` is not k = 1), or None."""
    from vlmrec.models import MODELS
    from vlmrec.models.params import param_spec

    fields = param_spec(MODELS[model]).model_fields
    for name, value in values.items():
        if not isinstance(value, bool) or name not in fields:
            continue
        try:
            TypeAdapter(fields[name].annotation or Any).validate_python(value, strict=True)
        except ValidationError:
            return (
                f"{name}: {str(value).lower()} is a true/false value, not a {_kind(fields[name].annotation)}"
            )
    return None


def _kind(annotation: Any) -> str:
    name = getattr(annotation, "__name__", None) or str(annotation)
    return {"int": "whole number", "float": "number"}.get(name, name)
