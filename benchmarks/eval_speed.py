"""Full-ranking evaluation speed: synthetic 50k users x 40k items, 1M interactions.

    python benchmarks/eval_speed.py [--users 50000 --items 40000 --interactions 1000000]

Reports users/s and peak memory of vlmrec's Evaluator (train items masked, full catalogue),
and, when cornac is importable (e.g. `--cornac-python /path/to/venv/bin/python`), the same
scores through cornac's ranking evaluation: metric values must agree to 1e-6.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _common import peak_rss_mb, write  # noqa: E402

from vlmrec.data.dataset import build_dataset  # noqa: E402
from vlmrec.evaluation import Evaluator  # noqa: E402
from vlmrec.provenance import set_threads  # noqa: E402


class Factors:
    def __init__(self, u, v):
        self.u, self.v = u, v

    def score(self, users):
        return self.u[users] @ self.v.T


def synthetic(n_users, n_items, n_inter, seed=0):
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    users = rng.integers(0, n_users, n_inter)
    items = rng.choice(n_items, n_inter, p=pop / pop.sum())
    df = pd.DataFrame({"user_id": users.astype(str), "item_id": items.astype(str)}).drop_duplicates()
    test_mask = rng.random(len(df)) < 0.2
    train, test = df[~test_mask], df[test_mask]
    # the catalogue is the set of training items, for every engine (cornac cannot rank unseen items)
    test = test[test["item_id"].isin(set(train["item_id"])) & test["user_id"].isin(set(train["user_id"]))]
    return train, test


CORNAC_SCRIPT = r"""
import json, sys, time, numpy as np
from cornac.eval_methods import ranking_eval
from cornac.data import Dataset as CDataset
from cornac.models import Recommender
from cornac.metrics import Recall, NDCG
d = np.load(sys.argv[1])
train, test, U, V = d["train"], d["test"], d["U"], d["V"]
uid = [str(x) for x in range(U.shape[0])]; iid = [str(x) for x in range(V.shape[0])]
tr = CDataset.build([(str(u), str(i), 1.0) for u, i in train], global_uid_map=None, global_iid_map=None)
te = CDataset.build([(str(u), str(i), 1.0) for u, i in test], global_uid_map=tr.uid_map, global_iid_map=tr.iid_map, exclude_unknowns=True)
class M(Recommender):
    def __init__(self): super().__init__("fixed")
    def score(self, user_idx, item_idx=None):
        u = int(tr.user_ids[user_idx]) if hasattr(tr, "user_ids") else user_idx
        s = U[u] @ V.T
        # cornac's internal item order
        order = np.array([int(x) for x in tr.item_ids])
        return s[order] if item_idx is None else s[order][item_idx]
m = M(); m.fit(tr)
t = time.perf_counter()
avg, user_res = ranking_eval(m, [Recall(k=20), NDCG(k=20)], tr, te, verbose=False)
print(json.dumps({"seconds": time.perf_counter() - t, "recall@20": avg[0], "ndcg@20": avg[1], "users": len(user_res[0])}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--items", type=int, default=40_000)
    ap.add_argument("--interactions", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--cornac-python", default=None, help="a python with cornac installed, for the side-by-side run"
    )
    ap.add_argument(
        "--cornac-users", type=int, default=2000, help="cornac evaluates this many users (it is slow)"
    )
    args = ap.parse_args()
    set_threads(args.threads)
    train, test = synthetic(args.users, args.items, args.interactions)
    ds = build_dataset("synthetic-eval", train, test.iloc[:0], test)
    rng = np.random.default_rng(1)
    U = rng.normal(size=(ds.n_users, args.dim)).astype(np.float32)
    V = rng.normal(size=(ds.n_items, args.dim)).astype(np.float32)
    ev = Evaluator(ds, "test", ks=[20], metrics=["recall", "ndcg"], batch_size=1024)
    t = time.perf_counter()
    res = ev.evaluate(Factors(U, V))
    secs = time.perf_counter() - t
    ours = {
        "users": len(ev.users),
        "seconds": secs,
        "users_per_s": len(ev.users) / secs,
        "recall@20": res.mean("recall", 20),
        "ndcg@20": res.mean("ndcg", 20),
        "peak_rss_mb": peak_rss_mb(),
    }
    payload = {"config": vars(args), "dataset": ds.stats(), "vlmrec": ours}
    md = [
        f"# eval_speed ({ds.n_users:,} users x {ds.n_items:,} items, {len(ds.train):,} train / {len(ds.test):,} test)",
        "",
        "| engine | users | seconds | users/s | recall@20 | ndcg@20 | peak RSS MB |",
        "|---|---|---|---|---|---|---|",
        f"| vlmrec | {ours['users']:,} | {secs:.1f} | {ours['users_per_s']:.0f} | {ours['recall@20']:.6f} | {ours['ndcg@20']:.6f} | {ours['peak_rss_mb']:.0f} |",
    ]
    if args.cornac_python:
        # same users, same scores: a subset keeps cornac's per-user Python loop affordable
        sub_users = ev.users[: args.cornac_users]
        sub = Evaluator(ds, "test", ks=[20], metrics=["recall", "ndcg"], users=sub_users)
        t = time.perf_counter()
        sub_res = sub.evaluate(Factors(U, V))
        sub_secs = time.perf_counter() - t
        keep_t = np.isin(ds.test["user"], sub_users)
        with tempfile.TemporaryDirectory() as d:
            np.savez(
                Path(d) / "data.npz",
                train=ds.train[["user", "item"]].to_numpy(),
                test=ds.test[keep_t][["user", "item"]].to_numpy(),
                U=U,
                V=V,
            )
            (Path(d) / "run.py").write_text(CORNAC_SCRIPT)
            out = subprocess.run(
                [args.cornac_python, str(Path(d) / "run.py"), str(Path(d) / "data.npz")],
                capture_output=True,
                text=True,
            )
        if out.returncode == 0:
            c = json.loads(out.stdout.strip().splitlines()[-1])
            mine = {
                "recall@20": sub_res.mean("recall", 20),
                "ndcg@20": sub_res.mean("ndcg", 20),
                "seconds": sub_secs,
            }
            payload["cornac_subset"] = {
                "users": len(sub_users),
                "vlmrec": mine,
                "cornac": c,
                "recall_abs_diff": abs(mine["recall@20"] - c["recall@20"]),
                "ndcg_abs_diff": abs(mine["ndcg@20"] - c["ndcg@20"]),
                "speed_ratio": c["seconds"] / sub_secs,
            }
            md += [
                f"| vlmrec (subset) | {len(sub_users):,} | {sub_secs:.2f} | {len(sub_users) / sub_secs:.0f} | {mine['recall@20']:.6f} | {mine['ndcg@20']:.6f} | |",
                f"| cornac (subset) | {c['users']:,} | {c['seconds']:.2f} | {c['users'] / c['seconds']:.0f} | {c['recall@20']:.6f} | {c['ndcg@20']:.6f} | |",
                "",
                f"Metric agreement: |Δrecall| = {payload['cornac_subset']['recall_abs_diff']:.2e}, "
                f"|Δndcg| = {payload['cornac_subset']['ndcg_abs_diff']:.2e}; cornac/vlmrec time = {payload['cornac_subset']['speed_ratio']:.1f}x",
            ]
        else:
            payload["cornac_subset"] = {"error": out.stderr[-2000:]}
            md += [
                "",
                f"cornac run failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else 'unknown'}",
            ]
    write("eval_speed", payload, "\n".join(md))


if __name__ == "__main__":
    main()
