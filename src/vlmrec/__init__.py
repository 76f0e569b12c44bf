"""vlmrec: item images and text -> recommender-ready representations, measured honestly.

The Python API uses the objects the CLI uses (docs/api.md):

    prepare / DatasetSpec / Dataset       data: read, clean, split; load a prepared folder
    build_extractor / extract / FeatureSet   features: extract per item, or load a folder
    create_model / model_names            models: by registered name, fit(dataset, features, seed=)
    Evaluator                             full-ranking evaluation of one fitted model
    ExperimentConfig / load_config / Runner   a whole grid (datasets x features x models x seeds)
    leaderboard / compute_verdicts / ComparisonSpec / verdict_lines / write_report   comparison

Names load on first use (PEP 562), so `import vlmrec` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vlmrec.errors import ConfigError, DataError, ModelError, VlmrecError

__version__ = "0.1.0"

# public name -> the module that defines it (imported when the name is first used)
_LAZY: dict[str, str] = {
    "prepare": "vlmrec.api",
    "Dataset": "vlmrec.data.dataset",
    "DatasetSpec": "vlmrec.data.spec",
    "FeatureSet": "vlmrec.features.featureset",
    "build_extractor": "vlmrec.features.registry",
    "extract": "vlmrec.features.extraction",
    "Recommender": "vlmrec.models.base",
    "create_model": "vlmrec.models",
    "model_names": "vlmrec.models",
    "Evaluator": "vlmrec.evaluation.evaluator",
    "ExperimentConfig": "vlmrec.experiments.config",
    "load_config": "vlmrec.experiments.config",
    "Runner": "vlmrec.experiments.runner",
    "leaderboard": "vlmrec.experiments.leaderboard",
    "ComparisonSpec": "vlmrec.experiments.comparisons",
    "compute_verdicts": "vlmrec.experiments.verdict",
    "verdict_lines": "vlmrec.experiments.verdict",
    "write_report": "vlmrec.experiments.report",
}

if TYPE_CHECKING:  # the same names, eagerly, for type checkers and editors
    from vlmrec.api import prepare as prepare
    from vlmrec.data.dataset import Dataset as Dataset
    from vlmrec.data.spec import DatasetSpec as DatasetSpec
    from vlmrec.evaluation.evaluator import Evaluator as Evaluator
    from vlmrec.experiments.comparisons import ComparisonSpec as ComparisonSpec
    from vlmrec.experiments.config import ExperimentConfig as ExperimentConfig
    from vlmrec.experiments.config import load_config as load_config
    from vlmrec.experiments.leaderboard import leaderboard as leaderboard
    from vlmrec.experiments.report import write_report as write_report
    from vlmrec.experiments.runner import Runner as Runner
    from vlmrec.experiments.verdict import compute_verdicts as compute_verdicts
    from vlmrec.experiments.verdict import verdict_lines as verdict_lines
    from vlmrec.features.extraction import extract as extract
    from vlmrec.features.featureset import FeatureSet as FeatureSet
    from vlmrec.features.registry import build_extractor as build_extractor
    from vlmrec.models import create_model as create_model
    from vlmrec.models import model_names as model_names
    from vlmrec.models.base import Recommender as Recommender

__all__ = ["__version__", "VlmrecError", "DataError", "ConfigError", "ModelError", *_LAZY]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vlmrec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
