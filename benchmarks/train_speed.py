"""Training speed per epoch and peak memory on a synthetic catalogue the size of Amazon Baby
(~19k users, ~7k items, ~160k interactions; 4096-d image + 384-d text features), CPU.

    python benchmarks/train_speed.py [--epochs 2] [--models bprmf,lightgcn,vbpr,lattice,freedom,bm3]

Each model runs in a fresh subprocess so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import write  # noqa: E402

CHILD = r"""
import json, resource, sys, time
import numpy as np, pandas as pd
sys.path.insert(0, sys.argv[4])
from vlmrec.provenance import set_threads
set_threads(int(sys.argv[3]))
from vlmrec.data.dataset import build_dataset
from vlmrec.features.featureset import FeatureSet
from vlmrec.models import create_model
name, epochs = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
n_users, n_items, n_inter = 19445, 7050, 160792
pop = 1.0 / np.arange(1, n_items + 1) ** 0.7
df = pd.DataFrame({"user_id": rng.integers(0, n_users, n_inter).astype(str),
                   "item_id": rng.choice(n_items, n_inter, p=pop / pop.sum()).astype(str)}).drop_duplicates()
ds = build_dataset("baby-sized", df, df.iloc[:0], df.iloc[:0])
feats = None
if name not in ("bprmf", "lightgcn"):
    img = FeatureSet.create(rng.random((ds.n_items, 4096), dtype=np.float32), ds, extractor="img", model="x", name="image", modality="image")
    txt = FeatureSet.create(rng.normal(size=(ds.n_items, 384)).astype(np.float32), ds, extractor="txt", model="x", name="text", modality="text")
    feats = {"image": img, "text": txt}
m = create_model(name, epochs=epochs, batch_size=2048)
t = time.perf_counter()
m.fit(ds, feats, seed=0)
secs = time.perf_counter() - t
print(json.dumps({"model": name, "users": ds.n_users, "items": ds.n_items, "interactions": len(ds.train),
                  "epochs": m.epochs_run_, "seconds_per_epoch": float(np.mean(m.epoch_seconds_)), "fit_total_s": secs,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default="bprmf,lightgcn,vbpr,lattice,freedom,bm3")
    args = ap.parse_args()
    src = str(Path(__file__).resolve().parents[1] / "src")
    rows = []
    for name in args.models.split(","):
        t = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", CHILD, name, str(args.epochs), str(args.threads), src],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            rows.append(
                {
                    "model": name,
                    "error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed",
                }
            )
        else:
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]) | {"wall_s": time.perf_counter() - t})
        print(rows[-1], flush=True)
    md = [
        "# train_speed (synthetic Amazon-Baby-sized catalogue, 4096-d image + 384-d text, batch 2048, CPU)",
        "",
        "| model | s/epoch | peak RSS MB |",
        "|---|---|---|",
    ]
    for r in rows:
        md.append(
            f"| {r['model']} | {r.get('seconds_per_epoch', float('nan')):.2f} | {r.get('peak_rss_mb', float('nan')):.0f} |"
            if "error" not in r
            else f"| {r['model']} | error: {r['error']} | |"
        )
    md += [
        "",
        "s/epoch: training only (validation and set-up such as kNN graphs excluded). "
        "The MMRec reference run on the same kind of data: mmrec_side_by_side.md.",
    ]
    write("train_speed", {"config": vars(args), "rows": rows}, "\n".join(md))


if __name__ == "__main__":
    main()
