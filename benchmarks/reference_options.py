"""The measured effect of every option that departs from a model's reference behaviour.

Each reference model defaults to its reference (MMRec) equations; the options below are kept on
purpose (recorded in every cell's parameters) and this benchmark says what each one changes:
Recall@20 on test (training items masked, as MMRec) of the reference default against the
variant, same data, same epochs, same seeds.

Data: the planted-cluster catalogue of `mmrec_side_by_side.py` (Amazon-Baby sized at scale 1.0).
For the negative-sampling rows a seeded 10% of items lose their training interactions (they stay
in validation/test), because the choice only matters when some items never occur in training.

    python benchmarks/reference_options.py --epochs 20 --scale 0.5 --seeds 0,1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _common import write  # noqa: E402
from mmrec_side_by_side import synthetic  # noqa: E402

# (model, reference-default params, option name, variant value, what the variant is)
VARIANTS = [
    (
        "vbpr",
        {},
        "normalise_features",
        True,
        "L2-normalise each feature set before concatenation (vlmrec <= 0.1)",
    ),
    ("vbpr", {}, "item_bias", True, "the paper's beta_i + <beta', f_i> beside MMRec's linear bias"),
    ("bprmf", {}, "item_bias", True, "an item bias b_i (Cornac's BPR)"),
    (
        "lattice",
        {},
        "ui_norm",
        "symmetric",
        "LightGCN's D^-1/2 A D^-1/2 instead of the reference code's D^-1 (A+I)",
    ),
    ("lattice", {}, "train_features", False, "frozen raw features (the reference trains them)"),
    ("freedom", {}, "train_features", False, "frozen raw features (the reference trains them)"),
    ("bm3", {}, "train_features", False, "frozen raw features (the reference trains them)"),
    ("bprmf", {}, "negatives", "all", "negatives from the whole catalogue, cold items included"),
    ("lightgcn", {}, "negatives", "all", "negatives from the whole catalogue, cold items included"),
]


def build(df: pd.DataFrame, image, text, cold_fraction: float, seed: int):
    from vlmrec.data.dataset import build_dataset
    from vlmrec.features.featureset import FeatureSet

    def part(k):
        p = df[df["x_label"] == k]
        return pd.DataFrame(
            {"user_id": p["userID"].map("{:06d}".format), "item_id": p["itemID"].map("{:06d}".format)}
        )

    train, valid, test = part(0), part(1), part(2)
    if cold_fraction:
        items = np.sort(df["itemID"].unique())
        cold = np.random.default_rng(seed).choice(items, int(cold_fraction * len(items)), replace=False)
        cold_ids = {f"{i:06d}" for i in cold}
        train = train[~train["item_id"].isin(cold_ids)]
        # cold items still need to exist in the catalogue: keep them through valid/test
    ds = build_dataset("planted-baby", train, valid, test)
    order = np.array([int(i) for i in ds.item_ids])
    feats = {
        "image": FeatureSet.create(image[order], ds, name="image", modality="image"),
        "text": FeatureSet.create(text[order], ds, name="text", modality="text"),
    }
    return ds, feats


def recall(name, params, ds, feats, epochs, seed):
    from vlmrec.evaluation import Evaluator
    from vlmrec.models import create_model

    m = create_model(name, epochs=epochs, patience=10**6, **params)
    valid = Evaluator(ds, "valid", ks=[20], metrics=["recall"], mask=("train",))
    # the state of the best validation epoch is restored, as a user's early-stopped run would be
    # (and as MMRec reports); the last epoch would penalise an option that converges faster
    m.fit(
        ds,
        feats if m.uses_features else None,
        seed=seed,
        validator=lambda model: valid.evaluate(model).mean("recall", 20),
    )
    ev = Evaluator(ds, "test", ks=[20], metrics=["recall"], mask=("train",))
    return ev.evaluate(m).mean("recall", 20)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--scale", type=float, default=0.5)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from vlmrec.provenance import set_threads

    set_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    df, image, text = synthetic(args.scale)
    warm = build(df, image, text, 0.0, 0)
    cold = build(df, image, text, 0.1, 0)
    rows, cache = [], {}
    for name, base, option, value, what in VARIANTS:
        ds, feats = cold if option == "negatives" else warm
        data = "10% cold items" if option == "negatives" else "all items warm"
        key = (name, data)
        if key not in cache:
            cache[key] = [recall(name, base, ds, feats, args.epochs, s) for s in seeds]
        ref = cache[key]
        var = [recall(name, {**base, option: value}, ds, feats, args.epochs, s) for s in seeds]
        rows.append(
            {
                "model": name,
                "option": f"{option}={value}",
                "what": what,
                "data": data,
                "reference": ref,
                "variant": var,
            }
        )
        print(rows[-1], flush=True)
    md = [
        f"# Reference defaults vs deliberate options ({df['userID'].nunique():,} users, "
        f"{df['itemID'].nunique():,} items, {args.epochs} epochs, seeds {args.seeds}, CPU)",
        "",
        "Recall@20 on test at the best validation epoch, training items masked, mean over seeds.",
        "",
        "| model | option | data | reference default | variant | relative change | what the option does |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        a, b = np.mean(r["reference"]), np.mean(r["variant"])
        md.append(
            f"| {r['model']} | `{r['option']}` | {r['data']} | {a:.4f} | {b:.4f} | {(b - a) / a:+.1%} | {r['what']} |"
        )
    write("reference_options", {"config": vars(args), "rows": rows}, "\n".join(md))


if __name__ == "__main__":
    main()
