"""A small finished run with images, titles, cold items and saved models, for the tests that look
at recommendations (the report's strips, `vlmrec explore`): six communities of users and items,
each item a 32x32 PNG in its community's colour, six items held out of training (cold), and
MostPop, ItemKNN and ProfileMatch on community-aware features with its shuffled twin."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from tests.conftest import community_interactions
from vlmrec.data.dataset import Dataset, build_dataset
from vlmrec.data.splits import split_interactions
from vlmrec.features.featureset import FeatureSet

COLOURS = [(200, 40, 40), (40, 150, 60), (40, 80, 200), (220, 170, 30), (140, 50, 160), (30, 160, 170)]
COLD = [f"i{i:03d}" for i in range(6)]  # one per community, never seen in training


def visual_dataset(root: Path) -> Dataset:
    """The catalogue: titles, one image per item (under root/images), six cold items."""
    from PIL import Image, ImageDraw

    df, item_comm = community_interactions(n_users=180, n_items=120, n_comm=6, seed=2)
    train, valid, test = split_interactions(df, "random", (0.7, 0.1, 0.2), seed=1)
    held = pd.concat([train[train["item_id"].isin(COLD)], valid[valid["item_id"].isin(COLD)]])
    train, valid = train[~train["item_id"].isin(COLD)], valid[~valid["item_id"].isin(COLD)]
    test = pd.concat([test, held], ignore_index=True).drop_duplicates(["user_id", "item_id"])
    (root / "images").mkdir(parents=True)
    paths = []
    for i, c in enumerate(item_comm):
        im = Image.new("RGB", (32, 32), (250, 250, 250))
        ImageDraw.Draw(im).ellipse((4 + i % 5, 4, 28, 28 - i % 7), fill=COLOURS[c])
        p = root / "images" / f"i{i:03d}.png"
        im.save(p)
        paths.append(str(p))
    items = pd.DataFrame(
        {
            "item_id": [f"i{i:03d}" for i in range(120)],
            "title": [f"Community {c} thing {i}" for i, c in enumerate(item_comm)],
            "image_path": paths,
        }
    )
    ds = build_dataset("visual", train, valid, test, items)
    ds.info["item_community"] = [int(iid[1:]) % 6 for iid in ds.item_ids]
    return ds


def visual_run(root: Path) -> Path:
    """Prepare, extract (synthetic community features) and run; returns the run folder, which
    also holds describer-style descriptions for every item but the last."""
    from vlmrec.experiments.config import parse_config
    from vlmrec.experiments.runner import Runner

    ds = visual_dataset(root)
    ds.save(root / "ds")
    x = np.random.default_rng(0).normal(size=(ds.n_items, 16)).astype(np.float32)
    x[np.arange(ds.n_items), np.array(ds.info["item_community"])] += 3
    FeatureSet.create(x, ds, extractor="synthetic", model="synthetic", name="f").save(root / "feat")
    cfg = parse_config(
        {
            "name": "visual",
            "output_dir": str(root / "run"),
            "threads": 1,
            "dataset": {"prepared": str(root / "ds")},
            "features": [{"name": "f", "path": str(root / "feat")}],
            "controls": ["shuffled"],
            "models": [
                {"name": "mostpop"},
                {"name": "itemknn"},
                {"name": "profilematch", "features": ["f"]},
            ],
            "evaluation": {"ks": [10, 20], "segments": ["cold", "popularity"]},
        }
    )
    run = Runner(cfg).run().out_dir
    described = run / "features" / "describe"
    described.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"item_id": iid, "description": f"a round thing of community {int(iid[1:]) % 6}"})
        for iid in ds.item_ids[:-1]
    ]
    (described / "descriptions.jsonl").write_text("\n".join(lines) + "\n")
    return run
