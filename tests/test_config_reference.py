"""docs/config.md is the schema rendered: it stays current, and every key has a meaning."""

from pathlib import Path

from vlmrec.experiments.config import ExperimentConfig
from vlmrec.experiments.config_reference import config_reference
from vlmrec.features.registry import SPECS
from vlmrec.models import MODELS

DOC = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def test_docs_config_md_is_current():
    assert DOC.read_text() == config_reference(), (
        "docs/config.md is out of date: python -m vlmrec.experiments.config_reference > docs/config.md"
    )


def test_every_key_model_and_extractor_is_documented_with_a_meaning():
    text = config_reference()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert rows and all(not line.rstrip().endswith("|  |") for line in rows), "a key without a meaning"
    for name in ExperimentConfig.model_fields:
        assert f"| `{name}` |" in text
    assert "| `dataset.split` | text | `random` | `random`, `loo`, `temporal`, `cold-items` |" in text
    assert "| `evaluation.mask` |" in text and "| `features[].method` |" in text
    for model in MODELS:
        assert f"### `{model}`" in text
    for spec in SPECS:
        assert f"### `{spec.name}`" in text
    # a model's range and default come from its spec
    vbpr = text.split("### `vbpr`", 1)[1].split("###", 1)[0]
    assert "| `lr` | float | `0.001` | > 0 |" in vbpr and "| `epochs` | int | `1000` | >= 1 |" in vbpr
