"""configs/mmrec-zoo.yaml: all twelve multimodal models with MMRec's grids run end to end on the
planted catalogue, each with its shuffled twin and a verdict against a named ID reference."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vlmrec.experiments.config import parse_config
from vlmrec.experiments.runner import Runner

ZOO = Path(__file__).parents[1] / "configs" / "mmrec-zoo.yaml"
MULTIMODAL = {
    "vbpr",
    "lattice",
    "freedom",
    "bm3",
    "mmgcn",
    "grcn",
    "dualgnn",
    "slmrec",
    "dragon",
    "mgcn",
    "lgmrec",
    "smore",
}


def test_the_zoo_lists_all_twelve_with_mmrec_grids_and_twins():
    cfg = parse_config(yaml.safe_load(ZOO.read_text()), str(ZOO))
    content = {m.name for m in cfg.models if m.features}
    assert content == MULTIMODAL
    assert cfg.controls == ["shuffled"] and len(cfg.seeds) >= 3
    assert {"ease", "ials", "lightgcn"} <= {m.name for m in cfg.models}
    sizes = {m.name: len(m.grid_points()) for m in cfg.models}
    # MMRec's grids (src/configs/model/*.yaml); MMGCN's without its inert reg_weight axis
    assert sizes["smore"] == 128 and sizes["slmrec"] == 80 and sizes["mmgcn"] == 5 and sizes["lgmrec"] == 1
    assert sum(sizes.values()) == 362  # the header comment's count


@pytest.mark.slow
def test_the_zoo_runs_end_to_end_on_the_planted_catalogue(tmp_path):
    raw = yaml.safe_load(ZOO.read_text())
    # the same config, shrunk to run in seconds: a small catalogue, one seed, each model's first
    # grid point, three epochs
    raw["output_dir"] = str(tmp_path / "run")
    raw["dataset"]["path"] = str(tmp_path / "raw")
    raw["dataset"]["planted"] = {"n_users": 60, "n_items": 40, "interactions_per_user": 10}
    raw["seeds"] = [0]
    raw["threads"] = 1
    for model in raw["models"]:
        grid = model.pop("grid", {})
        first = {k: v[0] for k, v in grid.items()}
        if model["name"] not in ("mostpop", "ease", "ials"):
            first.update(epochs=3, batch_size=256)
        model["params"] = {**model.get("params", {}), **first}
    out = Runner(parse_config(raw, "zoo (shrunk)")).run()
    overall = [v for v in out.verdicts if v.segment == "all"]
    assert {v.model for v in overall} == MULTIMODAL
    for v in overall:
        assert [t.reference for t in v.twins] == ["shuffled twin"]
        assert v.reference in {"mostpop", "ease", "ials", "lightgcn"} and v.versus_id is not None
        assert v.use == "inconclusive (1 seed)"  # one seed: the figures, no claim
    assert (tmp_path / "run" / "verdict.json").exists()
