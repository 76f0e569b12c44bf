"""`vlmrec demo`: the whole pipeline, offline, on two datasets, each labelled for what it is.

1. MovieLens-100k (REAL interactions; fetched from the recbole wheel on PyPI at set-up time):
   ID-only baselines (MostPop, tuned ItemKNN, EASE^R, iALS, BPR-MF, LightGCN) against
   text-content models on titles and genres.
2. The planted-signal catalogue (GENERATED; rendered images, known ground truth): the image,
   label+OCR describer and fusion paths, and the content controls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlmrec.experiments.config import ExperimentConfig, parse_config


def _models(epochs: int, with_image: bool, quick: bool) -> list[dict[str, Any]]:
    # the small planted catalogue needs small batches to get enough updates per epoch; on
    # MovieLens graph models propagate over the whole graph per batch, so batches are large
    train = {"epochs": epochs, "batch_size": 256 if with_image else 2048, "lr": 0.01}
    # strong ID-only baselines, each tuned on validation (grids around the values that won on
    # MovieLens-100k in benchmarks/id_baselines.py; EASE^R and ItemKNN fit in well under a second)
    knn_grid: dict[str, list[Any]] = {"k": [20, 100], "normalize": [False, True]}
    ease_grid: dict[str, list[Any]] = {"reg": [200.0, 500.0]}
    ials_grid: dict[str, list[Any]] = {}
    if not quick:
        # asymmetric cosine with alpha 0.5 is cosine, so this grid covers plain cosine too
        knn_grid = {
            "similarity": ["asymmetric"],
            "alpha": [0.2, 0.35, 0.5],
            "k": [20, 50, 100],
            "normalize": [False, True],
        }
        ease_grid = {"reg": [50.0, 100.0, 200.0, 500.0, 1000.0]}
        ials_grid = {"reg": [10.0, 30.0, 50.0], "alpha": [3.0, 10.0]}
    models: list[dict[str, Any]] = [
        {"name": "mostpop"},
        {"name": "itemknn", "grid": knn_grid},
        {"name": "ease", "grid": ease_grid},
        {"name": "ials", "grid": ials_grid},
        {"name": "bprmf", "params": {**train, "lr": 0.005}},
        {"name": "lightgcn", "params": train},
    ]
    if with_image:
        models += [
            {"name": "vbpr", "params": train, "features": ["image", "text+image"]},
            {"name": "freedom", "params": {**train, "dropout": 0.5}, "features": [["text", "image"]]},
            {"name": "profilematch", "features": ["text", "image", "describe", "text+image"]},
            {"name": "attributeknn", "features": ["text", "image", "describe"]},
        ]
        if not quick:
            models += [
                {"name": "lattice", "params": train, "features": [["text", "image"]]},
                {"name": "bm3", "params": {**train, "epochs": epochs * 2}, "features": [["text", "image"]]},
            ]
    else:
        models += [
            {"name": "vbpr", "params": train, "features": ["text"]},
            {"name": "freedom", "params": {**train, "dropout": 0.5}, "features": ["text"]},
            {"name": "profilematch", "features": ["text"]},
            {"name": "attributeknn", "features": ["genres", "text"]},
        ]
        if not quick:
            models += [{"name": "lattice", "params": train, "features": ["text"]}]
    return models


def demo_configs(out: str | Path, quick: bool = False) -> list[ExperimentConfig]:
    from vlmrec.data.bundled import movielens_100k

    out = Path(out)
    seeds = [0] if quick else [0, 1, 2]
    epochs = 15 if quick else 60
    ml = {
        "name": "demo-movielens-100k",
        "output_dir": str(out / "movielens-100k"),
        "description": "REAL MovieLens-100k (ratings >= 4 as positives), item text = title + genres.",
        "seeds": seeds,
        "dataset": {
            "format": "recbole",
            "path": str(movielens_100k()),
            "name": "movielens-100k",
            "rating_threshold": 4,
            "split": "random",
            "ratios": [0.8, 0.1, 0.1],
            "seed": 42,
        },
        "features": [
            {"name": "text", "extractor": "text", "fields": ["title", "genres"]},
            {"name": "genres", "extractor": "onehot", "fields": ["genres"]},
        ],
        "controls": ["shuffled"] if quick else ["shuffled", "random"],
        "models": _models(epochs, with_image=False, quick=quick),
    }
    n_users, n_items = (150, 120) if quick else (300, 240)
    planted = {
        "name": "demo-planted",
        "output_dir": str(out / "planted"),
        "description": "GENERATED planted-signal catalogue with rendered images; circular by construction.",
        "seeds": seeds,
        "dataset": {
            "format": "planted",
            "path": str(out / "planted" / "raw"),
            "split": "random",
            "ratios": [0.8, 0.1, 0.1],
            "seed": 42,
            "planted": {"n_users": n_users, "n_items": n_items, "interactions_per_user": 20},
        },
        "features": [
            {"name": "text", "extractor": "text"},
            {"name": "image", "extractor": "image"},
            {"name": "describe", "extractor": "describe-ocr"},
            {"name": "text+image", "fuse": ["text", "image"], "method": "mean"},
        ],
        "controls": ["shuffled"] if quick else ["shuffled", "random"],
        "models": _models(epochs, with_image=True, quick=quick),
    }
    return [parse_config(ml, "demo:movielens-100k"), parse_config(planted, "demo:planted")]
