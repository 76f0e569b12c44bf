"""vlmrec vs the MMRec reference implementation (enoche/MMRec): same data, same split, both trained
to convergence with MMRec's early stopping, several seeds per model on both sides.

    git clone https://github.com/enoche/MMRec /tmp/mmrec   # outside this project; nothing is copied in
    python3 -m venv /tmp/mmvenv && /tmp/mmvenv/bin/pip install torch==2.13.0 numpy==1.23.5 scipy==1.11.4 "pandas<2.2" pyyaml lmdb pillow "matplotlib<3.8" "contourpy<1.3"
    nice -n 10 python benchmarks/mmrec_side_by_side.py --mmrec-src /tmp/mmrec/src \
        --mmrec-python /tmp/mmvenv/bin/python --scale 0.2 --seeds 0,1,2 --threads 1 [--max-epochs 1000]

Data: a synthetic catalogue the size of Amazon Baby (scale 1.0: ~19k users, ~7k items, ~160k
interactions) with planted clusters, so Recall@20 means something; 4096-d "image" and 384-d
"text" features that carry the cluster signal plus noise. MMRec reads it in its own format
(`<name>.inter` with x_label 0/1/2, image_feat.npy, text_feat.npy).

Training, as MMRec's trainer (`common/trainer.py`, `utils.early_stopping`, `configs/overall.yaml`):
validation Recall@20 (training items masked) after every epoch; training stops once
`stopping_step` (MMRec's default 20) evaluations in a row have not beaten the best (strictly
greater; MMRec stops when its counter exceeds `stopping_step`, so vlmrec gets
`patience = stopping_step + 1`: both sides stop 21 epochs after the best); `--max-epochs` caps the
run (MMRec's default 1000). The figure compared is test Recall@20 at the best validation epoch
(the first maximum), which is what MMRec's quick_start reports; both sides also record test after
every epoch, so the curves are in the JSON. Seconds per epoch exclude validation on both sides.
Both sides use each model's reference defaults (lr 1e-3, batch 2048, LATTICE's lr decay 0.96/50)
and the same point of each MMRec grid (PAIRS).

Every model runs every seed on both sides; the table gives each side's mean and min-max, the
relative gap of the means, each side's seed spread (half the min-max range over the mean, "±"),
and calls a row equal when |gap| <= max(3%, twice the larger of the two spreads). Results are
written after every run, so a cut-off run leaves its finished rows; `--resume` skips the runs the
results file already holds (same scale, cap and stopping step).

Fixed-epoch mode (`--equal-within F`, with `--max-epochs N --stopping-step` above N): every run
trains N epochs; the table reads test Recall@20 after the last epoch and at the best validation epoch
on both sides, seconds per epoch beside, and a row is equal when both gaps are within F. The eight
later models (MMGCN ... SMORE) need torch_geometric on MMRec's side (`--mmrec-extra-path`, e.g. a
`pip install --target` folder) and the run-time patches in PATCHES below:

    nice -n 10 python benchmarks/mmrec_side_by_side.py --mmrec-src /tmp/mmrec/src \
        --mmrec-python /tmp/mmvenv/bin/python --mmrec-extra-path /tmp/pyg --scale 0.2 \
        --max-epochs 20 --stopping-step 1000 --equal-within 0.05 --seeds 0 --threads 1 \
        --models mmgcn,grcn,dualgnn,slmrec,dragon,mgcn,lgmrec,smore --out-name mmrec_side_by_side_zoo

MMRec's LATTICE moves its item graphs with `.cuda()` unconditionally; in the temporary copy (never
in this project) those calls become `.to(self.device)` so it runs on a CPU. Nothing else of the
reference is changed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, environment  # noqa: E402

# one point of each MMRec grid: (vlmrec name, vlmrec params, MMRec name, MMRec overrides)
PAIRS = [
    ("bprmf", {"reg": 1e-4}, "BPR", {"reg_weight": 1e-4}),
    ("lightgcn", {"n_layers": 2, "reg": 1e-4}, "LightGCN", {"n_layers": 2, "reg_weight": 1e-4}),
    ("vbpr", {"reg": 1e-4}, "VBPR", {"reg_weight": 1e-4}),
    ("lattice", {"reg": 1e-4}, "LATTICE", {"reg_weight": 1e-4, "learning_rate": 1e-3}),
    ("freedom", {"dropout": 0.8, "reg_weight": 1e-4}, "FREEDOM", {"dropout": 0.8, "reg_weight": 1e-4}),
    (
        "bm3",
        {"dropout": 0.3, "reg_weight": 0.01, "n_layers": 1},
        "BM3",
        {"dropout": 0.3, "reg_weight": 0.01, "n_layers": 1},
    ),
    # the eight later models (issue 22): vlmrec's defaults, the same point of MMRec's grid (MMRec's
    # list-valued settings are given as scalars, since hyper_parameters is emptied)
    ("mmgcn", {"reg_weight": 1e-4}, "MMGCN", {"reg_weight": 1e-4}),
    ("grcn", {"reg_weight": 1e-4}, "GRCN", {"reg_weight": 1e-4, "n_layers": 3}),
    ("dualgnn", {"reg_weight": 1e-4}, "DualGNN", {"reg_weight": 1e-4, "aggr_mode": "add"}),
    (
        "slmrec",
        {"ssl_alpha": 0.1, "ssl_temp": 0.2},
        "SLMRec",
        {"ssl_alpha": 0.1, "ssl_temp": 0.2, "reg": 1e-4},
    ),
    ("dragon", {"reg_weight": 1e-3}, "DRAGON", {"reg_weight": 1e-3, "aggr_mode": "add"}),
    ("mgcn", {"cl_loss": 0.01}, "MGCN", {"cl_loss": 0.01}),
    (
        "lgmrec",
        {},
        "LGMRec",
        {
            "n_ui_layers": 2,
            "n_mm_layers": 2,
            "n_hyper_layer": 1,
            "hyper_num": 4,
            "keep_rate": 0.5,
            "alpha": 0.3,
            "cl_weight": 1e-4,
            "reg_weight": 1e-6,
        },
    ),
    (
        "smore",
        {},
        "SMORE",
        {"n_ui_layers": 4, "image_knn_k": 40, "text_knn_k": 15, "reg_weight": 1e-4, "dropout_rate": 0.1},
    ),
]

DRIVER = r"""
import sys, os
sys.path.insert(0, os.getcwd())
import json
overrides = json.loads(sys.argv[3])
if os.environ.get("MMREC_PATCHES"):
    exec(open("patches.py").read())
from utils.quick_start import quick_start
quick_start(model=sys.argv[1], dataset=sys.argv[2], config_dict=overrides, save_model=False)
"""


# Run-time patches for the later models' MMRec code on a CPU and on today's stack, written into the
# temporary copy as patches.py and run by the driver before quick_start (nothing of MMRec is changed on
# disk, nothing is installed into any venv):
# - torch_geometric (MMGCN, GRCN, DualGNN, DRAGON) comes from --mmrec-extra-path (a pip --target dir),
#   appended to sys.path;
# - `.cuda()` is a no-op when no GPU is present (the models call it unconditionally);
# - torch_scatter (absent): scatter_add, which MMRec's utils.get_sparse_laplacian calls (MGCN, SMORE),
#   is index_add_ along dim 0; scatter, imported but never called by SLMRec, fails loudly if used;
# - sklearn (absent): SLMRec imports KMeans for its clustering task only (not FAC): a stub that fails
#   loudly if used;
# - scipy >= 1.12 removed dok_matrix._update (LightGCN-style adjacency builders): a setitem loop;
# - DualGNN/DRAGON index features with a nested Python list (the sampled user graph), which current
#   torch refuses: topk_sample's index is returned as a tensor (same advanced indexing);
# - DualGNN/DRAGON register `result_embed` as an nn.Parameter and then `.to(device)` it: on a GPU that
#   yields a plain tensor (no parameter), on a CPU the Parameter itself, so the later tensor assignment
#   raises TypeError; the CPU run drops the Parameter after __init__, as the GPU run has it;
# - DualGNN/DRAGON read user_graph_dict.npy, which MMRec's preprocessing/dualgnn-gen-u-u-matrix.py
#   writes: it is generated here with that script's gen_user_matrix and top-200 loop on the training split.
PATCHES = r"""
import sys, os, types
import numpy as np
import torch
if os.environ.get("MMREC_EXTRA_PATH"):
    sys.path.append(os.environ["MMREC_EXTRA_PATH"])
if not torch.cuda.is_available():
    torch.Tensor.cuda = lambda self, *a, **k: self
def _stub(name, **attrs):
    # a module with a spec (torch._dynamo's trace rules call find_spec on known packages)
    import importlib.machinery
    m = types.ModuleType(name)
    m.__spec__ = importlib.machinery.ModuleSpec(name, None)
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m
try:
    import torch_scatter  # noqa: F401
except ImportError:
    def _unused(*a, **k):
        raise NotImplementedError("torch_scatter stub")
    def _scatter_add(src, index, dim=0, dim_size=None):
        # torch_scatter.scatter_add along dim 0 (MMRec's utils.get_sparse_laplacian calls it on 1-d edges)
        if dim != 0:
            raise NotImplementedError("torch_scatter stub: dim != 0")
        size = int(index.max()) + 1 if dim_size is None else dim_size
        out = torch.zeros((size,) + tuple(src.shape[1:]), dtype=src.dtype, device=src.device)
        return out.index_add_(0, index, src)
    _stub("torch_scatter", scatter=_unused, scatter_add=_scatter_add)
if sys.argv[1] == "SLMRec":
    try:
        import sklearn.cluster  # noqa: F401
    except ImportError:
        class _KMeans:
            def __init__(self, *a, **k):
                raise NotImplementedError("sklearn stub: KMeans")
        _stub("sklearn").cluster = _stub("sklearn.cluster", KMeans=_KMeans)
import scipy.sparse as _sp
if not hasattr(_sp.dok_matrix, "_update"):
    def _update(self, d):
        for k, v in d.items():
            self[k] = v
    _sp.dok_matrix._update = _update
_model = sys.argv[1]
if _model in ("DualGNN", "DRAGON"):
    import importlib
    import pandas as pd
    mod = importlib.import_module("models." + _model.lower())
    cls = getattr(mod, _model)
    _topk, _init = cls.topk_sample, cls.__init__
    def topk_sample(self, k):
        index, weight = _topk(self, k)
        return torch.tensor(index, dtype=torch.long), weight
    def __init__(self, *a, **k):
        _init(self, *a, **k)
        p = self._parameters.pop("result_embed", None)
        if p is not None:
            self.result_embed = p.detach()
    cls.topk_sample, cls.__init__ = topk_sample, __init__
    # user_graph_dict.npy as MMRec's preprocessing script writes it
    sys.path.append(os.environ["MMREC_PREPROCESSING"])
    gen = importlib.import_module("dualgnn-gen-u-u-matrix")
    folder = os.path.join(overrides["data_path"], sys.argv[2])
    df = pd.read_csv(os.path.join(folder, sys.argv[2] + ".inter"), sep="\t")
    num_user = len(pd.unique(df["userID"]))
    train = df[df["x_label"] == 0][["userID", "itemID"]].to_numpy()
    g = gen.gen_user_matrix(train, num_user)
    d = {}
    for i in range(num_user):
        n = int(len(torch.nonzero(g[i])))
        top = torch.topk(g[i], min(n, 200))
        d[i] = [top.indices.numpy().tolist(), top.values.numpy().tolist()]
    np.save(os.path.join(folder, "user_graph_dict.npy"), d, allow_pickle=True)
"""


def synthetic(scale: float, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The planted-cluster catalogue at `scale` of Amazon Baby: interactions (userID, itemID,
    x_label 0/1/2 = train/valid/test) and item "image" and "text" features."""
    rng = np.random.default_rng(seed)
    n_users, n_items, n_inter, n_clusters = int(19445 * scale), int(7050 * scale), int(160792 * scale), 50
    item_c = rng.integers(n_clusters, size=n_items)
    user_c = rng.integers(n_clusters, size=n_users)
    users = rng.integers(0, n_users, n_inter)
    same = rng.random(n_inter) < 0.7
    by_cluster = [np.flatnonzero(item_c == c) for c in range(n_clusters)]
    items = np.where(
        same, [rng.choice(by_cluster[user_c[u]]) for u in users], rng.integers(0, n_items, n_inter)
    )
    df = pd.DataFrame({"userID": users, "itemID": items}).drop_duplicates().reset_index(drop=True)
    # reindex to contiguous ids (MMRec expects 0..n-1)
    df["userID"] = pd.factorize(df["userID"])[0]
    codes, uniques = pd.factorize(df["itemID"])
    df["itemID"] = codes
    item_c = item_c[uniques]
    r = rng.random(len(df))
    df["x_label"] = np.where(r < 0.8, 0, np.where(r < 0.9, 1, 2))
    centres_v = rng.normal(size=(n_clusters, 4096)).astype(np.float32)
    centres_t = rng.normal(size=(n_clusters, 384)).astype(np.float32)
    image = (centres_v[item_c] + rng.normal(scale=2.0, size=(len(item_c), 4096))).astype(np.float32)
    text = (centres_t[item_c] + rng.normal(scale=2.0, size=(len(item_c), 384))).astype(np.float32)
    return df, image, text


def run_ours(
    df: pd.DataFrame,
    image: np.ndarray,
    text: np.ndarray,
    name: str,
    params: dict,
    max_epochs: int,
    stopping_step: int,
    seed: int,
) -> dict:
    """Train one vlmrec model with MMRec's early stopping; validation and test Recall@20 per epoch."""
    from vlmrec.data.dataset import build_dataset
    from vlmrec.evaluation import Evaluator
    from vlmrec.features.featureset import FeatureSet
    from vlmrec.models import create_model

    def split(k: int) -> pd.DataFrame:
        part = df[df["x_label"] == k]
        return pd.DataFrame(
            {"user_id": part["userID"].map("{:06d}".format), "item_id": part["itemID"].map("{:06d}".format)}
        )

    ds = build_dataset("synthetic-baby", split(0), split(1), split(2))
    order = np.array([int(i) for i in ds.item_ids])
    feats = None
    if name not in ("bprmf", "lightgcn"):
        feats = {
            "image": FeatureSet.create(
                image[order], ds, extractor="img", model="x", name="image", modality="image"
            ),
            "text": FeatureSet.create(
                text[order], ds, extractor="txt", model="x", name="text", modality="text"
            ),
        }
    # MMRec stops when its no-improvement counter exceeds stopping_step; vlmrec when it reaches patience
    m = create_model(
        name,
        epochs=max_epochs,
        batch_size=2048,
        lr=1e-3,
        patience=stopping_step + 1,
        eval_every=1,
        **params,
    )
    # as MMRec's trainer: validation and test Recall@20 (training items masked) after every epoch
    valid_eval, test_eval = (
        Evaluator(ds, part, ks=[20], metrics=["recall"], mask=("train",)) for part in ("valid", "test")
    )
    tests: list[float] = []

    def validator(model) -> float:
        tests.append(test_eval.evaluate(model).mean("recall", 20))
        return valid_eval.evaluate(model).mean("recall", 20)

    t = time.perf_counter()
    m.fit(ds, feats, seed=seed, validator=validator)
    wall = time.perf_counter() - t
    # per-epoch training time, as MMRec's "training [time: ...]" (validation and kNN graphs excluded)
    secs = float(np.mean(m.epoch_seconds_))
    return {"seconds_per_epoch": secs, "wall_s": wall, **summarise(m.valid_history_, tests, max_epochs)}


def summarise(valid: list[float], test: list[float], max_epochs: int) -> dict:
    """Test Recall@20 at the best validation epoch (the first maximum: MMRec's early stopping keeps
    the earlier epoch on a tie) and after the last epoch, the epochs run, whether the run stopped
    early (False: it hit the cap), and the per-epoch curves."""
    best = int(np.argmax(valid)) if valid else len(test) - 1
    return {
        "recall@20_best_valid": test[best] if test else None,
        "recall@20_last": test[-1] if test else None,
        "best_valid_epoch": best + 1,
        "epochs_run": len(valid),
        "stopped_early": len(valid) < max_epochs,
        "valid_curve": valid,
        "test_curve": test,
    }


def run_mmrec(
    src: Path,
    python: str,
    df: pd.DataFrame,
    image: np.ndarray,
    text: np.ndarray,
    model: str,
    max_epochs: int,
    stopping_step: int,
    extra: dict,
    seed: int,
    threads: int,
    extra_path: Path | None = None,
) -> dict:
    """Run MMRec's quick_start on the same data in a temporary copy of its source; parse its log."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        work = d / "src"
        shutil.copytree(src, work)
        lattice = work / "models" / "lattice.py"
        lattice.write_text(lattice.read_text().replace(".cuda()", ".to(self.device)"))
        data = d / "data" / "synth"
        data.mkdir(parents=True)
        df.to_csv(data / "synth.inter", sep="\t", index=False)
        np.save(data / "image_feat.npy", image)
        np.save(data / "text_feat.npy", text)
        (work / "configs" / "dataset" / "synth.yaml").write_text(
            "USER_ID_FIELD: userID\nITEM_ID_FIELD: itemID\nTIME_FIELD: timestamp\nfilter_out_cod_start_users: True\n"
            "inter_file_name: 'synth.inter'\nvision_feature_file: 'image_feat.npy'\ntext_feature_file: 'text_feat.npy'\n"
            "user_graph_dict_file: 'user_graph_dict.npy'\nfield_separator: \"\\t\"\n"
        )
        overrides = {
            "gpu_id": 0,
            "use_gpu": False,
            "epochs": max_epochs,
            "stopping_step": stopping_step,
            "eval_step": 1,
            "valid_metric": "Recall@20",
            "hyper_parameters": [],
            "seed": [seed],
            "data_path": str(d / "data") + "/",
            "learning_rate": 1e-3,
            "train_batch_size": 2048,
            **extra,
        }
        (work / "driver.py").write_text(DRIVER)
        (work / "patches.py").write_text(PATCHES)
        # MMRec imports torchvision for image preprocessing that feature-based runs never call, and
        # PyPI's torchvision does not import beside the CPU torch wheel here: give the import a shim
        # (in the temporary copy only) that fails loudly if it is ever used
        shim = work / "torchvision" / "transforms"
        shim.mkdir(parents=True)
        (work / "torchvision" / "__init__.py").write_text("")
        (shim / "__init__.py").write_text("def __getattr__(name):\n    raise NotImplementedError(name)\n")
        (shim / "functional.py").write_text(
            "def pad(*a, **k):\n    raise NotImplementedError('pad')\n\n"
            "def resize(*a, **k):\n    raise NotImplementedError('resize')\n"
        )
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
        env["MMREC_PATCHES"] = "1"
        env["MMREC_PREPROCESSING"] = str(Path(src).resolve().parent / "preprocessing")
        if extra_path is not None:
            env["MMREC_EXTRA_PATH"] = str(Path(extra_path).resolve())
        t = time.perf_counter()
        out = subprocess.run(
            [python, "driver.py", model, "synth", json.dumps(overrides)],
            cwd=work,
            capture_output=True,
            text=True,
            env=env,
        )
        wall = time.perf_counter() - t
        # the console stream only: the log files repeat it
        log = out.stdout + out.stderr
    if out.returncode != 0:
        err = [ln for ln in (out.stderr or log).strip().splitlines() if ln.strip()]
        return {
            "error": err[-1] if err else "failed",
            "log_tail": (out.stderr or log)[-3000:],
            "wall_s": wall,
        }
    times = [float(x) for x in re.findall(r"training \[time: ([0-9.]+)s", log)]
    # the trainer logs "valid result: \n..." and "test result: \n..." after every epoch; quick_start
    # ends with "test result: {...}" (no line break), the test result at the best validation epoch
    valid = [float(x) for x in re.findall(r"valid result: \n[^\n]*?recall@20: ([0-9.]+)", log)]
    test = [float(x) for x in re.findall(r"test result: \n[^\n]*?recall@20: ([0-9.]+)", log)]
    final = re.findall(r"test result: [^\n]*?recall@20: ([0-9.]+)", log)
    row = {"seconds_per_epoch": float(np.mean(times)) if times else None, "wall_s": wall}
    row.update(summarise(valid, test, max_epochs))
    if final:
        row["recall@20_reported"] = float(final[-1])
    return row


def spread(values: list[float]) -> float:
    """Seed spread: half the min-max range over the mean (the "±" of a row)."""
    return (max(values) - min(values)) / 2 / float(np.mean(values)) if len(values) > 1 else 0.0


def compare(ours: list[float], theirs: list[float], floor: float = 0.03) -> dict:
    """Relative gap of the means, each side's seed spread, the tolerance max(floor, 2 x the larger
    spread) and whether the row is equal (|gap| <= tolerance)."""
    gap = (np.mean(ours) - np.mean(theirs)) / np.mean(theirs)
    s_ours, s_theirs = spread(ours), spread(theirs)
    tolerance = max(floor, 2 * max(s_ours, s_theirs))
    return {
        "gap": float(gap),
        "spread_vlmrec": s_ours,
        "spread_mmrec": s_theirs,
        "tolerance": tolerance,
        "equal": bool(abs(gap) <= tolerance),
    }


def table(runs: list[dict], header: str, seeds: list[int]) -> tuple[list[dict], str]:
    """Per-model rows (over the finished runs) and the Markdown table."""
    md = [
        header,
        "",
        "Test Recall@20 (training items masked) at the epoch with the best validation Recall@20 (what",
        "MMRec's quick_start reports), both sides trained with MMRec's early stopping. Mean over seeds",
        "[min-max]; gap = (vlmrec - MMRec) / MMRec; spread = half the min-max range over the mean, per",
        "side; equal when |gap| <= max(3%, 2 x the larger spread). `best ep` is the mean best validation",
        "epoch, `epochs` the mean epochs run (`capped` when a run hit --max-epochs before stopping).",
        "",
        "| model | seeds | vlmrec | MMRec | gap | spread vlmrec / MMRec | tolerance | equal "
        "| best ep vlmrec / MMRec | epochs vlmrec / MMRec | s/epoch vlmrec / MMRec |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(vals: list[float]) -> str:
        if len(vals) == 1:
            return f"{vals[0]:.4f}"
        return f"{np.mean(vals):.4f} [{min(vals):.4f}-{max(vals):.4f}]"

    rows = []
    for ours, params, _, _ in PAIRS:
        mine = [r for r in runs if r["model"] == ours]
        errors = [r["result"]["error"] for r in mine if "error" in r["result"]]
        if errors:
            md.append(f"| {ours} | | | error: {errors[0][:80]} | | | | | | | |")
            continue
        # a seed counts once both sides have finished it
        done = sorted(
            {r["seed"] for r in mine if r["side"] == "vlmrec"}
            & {r["seed"] for r in mine if r["side"] == "mmrec"}
        )
        if not done:
            continue
        a = [r["result"] for r in mine if r["side"] == "vlmrec" and r["seed"] in done]
        b = [r["result"] for r in mine if r["side"] == "mmrec" and r["seed"] in done]
        va = [x["recall@20_best_valid"] for x in a]
        vb = [y.get("recall@20_reported", y["recall@20_best_valid"]) for y in b]
        c = compare(va, vb)

        def epochs(side: list[dict]) -> str:
            capped = sum(not x["stopped_early"] for x in side)
            return f"{np.mean([x['epochs_run'] for x in side]):.0f}" + (
                f" ({capped} capped)" if capped else ""
            )

        row = {
            "model": ours,
            "params": params,
            "seeds": done,
            "vlmrec": va,
            "mmrec": vb,
            "best_epoch_vlmrec": [x["best_valid_epoch"] for x in a],
            "best_epoch_mmrec": [y["best_valid_epoch"] for y in b],
            "epochs_vlmrec": [x["epochs_run"] for x in a],
            "epochs_mmrec": [y["epochs_run"] for y in b],
            **c,
        }
        rows.append(row)
        n = f"{len(done)}" + ("" if len(done) >= len(seeds) else f" of {len(seeds)}")
        md.append(
            f"| {ours} | {n} | {cell(va)} | {cell(vb)} | {c['gap']:+.1%} "
            f"| ±{c['spread_vlmrec']:.1%} / ±{c['spread_mmrec']:.1%} | {c['tolerance']:.1%} "
            f"| {'yes' if c['equal'] else 'no'} "
            f"| {np.mean(row['best_epoch_vlmrec']):.0f} / {np.mean(row['best_epoch_mmrec']):.0f} "
            f"| {epochs(a)} / {epochs(b)} "
            f"| {np.mean([x['seconds_per_epoch'] for x in a]):.2f} "
            f"/ {np.mean([y['seconds_per_epoch'] for y in b]):.2f} |"
        )
    return rows, "\n".join(md)


def table_fixed(runs: list[dict], header: str, seeds: list[int], within: float) -> tuple[list[dict], str]:
    """A fixed number of epochs (no early stopping): test Recall@20 read after the last epoch and at the
    best validation epoch, seconds per epoch beside; a row is equal when both gaps are within `within`."""
    md = [
        header,
        "",
        "Test Recall@20 (training items masked), mean over seeds (min-max in brackets when more than one),",
        "read two ways on both sides: after the last epoch, and at the epoch with the best validation",
        "Recall@20 (what MMRec's quick_start reports; `(ep N)` is that epoch, mean over seeds). gap =",
        f"(vlmrec - MMRec) / MMRec; equal when both gaps are within {within:.0%}.",
        "",
        "| model | seeds | vlmrec last | MMRec last | gap | vlmrec best-valid | MMRec best-valid | gap "
        "| equal | vlmrec s/epoch | MMRec s/epoch |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(vals: list[float]) -> str:
        if len(vals) == 1:
            return f"{vals[0]:.4f}"
        return f"{np.mean(vals):.4f} [{min(vals):.4f}-{max(vals):.4f}]"

    rows = []
    for ours, params, _, _ in PAIRS:
        mine = [r for r in runs if r["model"] == ours]
        errors = [r for r in mine if "error" in r["result"]]
        if errors:
            side = "MMRec" if errors[0]["side"] == "mmrec" else "vlmrec"
            reason = errors[0]["result"]["error"][:120].replace("|", "/")
            rows.append({"model": ours, "params": params, "error": f"{side}: {reason}"})
            md.append(f"| {ours} | | | | | | | | {side} side not runnable: {reason} | | |")
            continue
        done = sorted(
            {r["seed"] for r in mine if r["side"] == "vlmrec"}
            & {r["seed"] for r in mine if r["side"] == "mmrec"}
        )
        if not done:
            continue
        a = [r["result"] for r in mine if r["side"] == "vlmrec" and r["seed"] in done]
        b = [r["result"] for r in mine if r["side"] == "mmrec" and r["seed"] in done]
        last_a, last_b = [x["recall@20_last"] for x in a], [y["recall@20_last"] for y in b]
        best_a = [x["recall@20_best_valid"] for x in a]
        best_b = [y.get("recall@20_reported", y["recall@20_best_valid"]) for y in b]
        gap_last = float((np.mean(last_a) - np.mean(last_b)) / np.mean(last_b))
        gap_best = float((np.mean(best_a) - np.mean(best_b)) / np.mean(best_b))
        equal = abs(gap_last) <= within and abs(gap_best) <= within
        sa = float(np.mean([x["seconds_per_epoch"] for x in a]))
        sb = float(np.mean([y["seconds_per_epoch"] for y in b]))
        rows.append(
            {
                "model": ours,
                "params": params,
                "seeds": done,
                "vlmrec_last": last_a,
                "mmrec_last": last_b,
                "gap_last": gap_last,
                "vlmrec_best_valid": best_a,
                "mmrec_best_valid": best_b,
                "gap_best_valid": gap_best,
                "best_epoch_vlmrec": [x["best_valid_epoch"] for x in a],
                "best_epoch_mmrec": [y["best_valid_epoch"] for y in b],
                "epochs_vlmrec": [x["epochs_run"] for x in a],
                "epochs_mmrec": [y["epochs_run"] for y in b],
                "seconds_per_epoch_vlmrec": sa,
                "seconds_per_epoch_mmrec": sb,
                "equal": equal,
            }
        )
        ea = np.mean(rows[-1]["best_epoch_vlmrec"])
        eb = np.mean(rows[-1]["best_epoch_mmrec"])
        md.append(
            f"| {ours} | {len(done)} | {cell(last_a)} | {cell(last_b)} | {gap_last:+.1%} "
            f"| {cell(best_a)} (ep {ea:.0f}) | {cell(best_b)} (ep {eb:.0f}) | {gap_best:+.1%} "
            f"| {'yes' if equal else 'no'} | {sa:.2f} | {sb:.2f} |"
        )
    return rows, "\n".join(md)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mmrec-src", required=True, type=Path)
    ap.add_argument(
        "--mmrec-python",
        default=sys.executable,
        help="a Python with MMRec's pinned stack (it needs scipy < 1.12, numpy < 2, lmdb)",
    )
    ap.add_argument("--max-epochs", type=int, default=1000, help="cap on epochs (MMRec's overall.yaml: 1000)")
    ap.add_argument(
        "--stopping-step",
        type=int,
        default=20,
        help="stop after this many validations without improvement, as MMRec counts them (overall.yaml: 20)",
    )
    ap.add_argument(
        "--mmrec-extra-path",
        type=Path,
        default=None,
        help="a folder appended to sys.path on MMRec's side (e.g. a pip --target dir holding torch_geometric)",
    )
    ap.add_argument(
        "--equal-within",
        type=float,
        default=None,
        help="fixed-epoch table: both readings (last epoch, best validation epoch), equal when both gaps "
        "are within this fraction (use with --max-epochs N and a --stopping-step above N)",
    )
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--models", default=",".join(p[0] for p in PAIRS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, run on both sides")
    ap.add_argument(
        "--out-name", default="mmrec_side_by_side_converged", help="results file name (without extension)"
    )
    ap.add_argument(
        "--resume", action="store_true", help="keep the runs the results file already holds (same settings)"
    )
    args = ap.parse_args()
    from vlmrec.provenance import set_threads

    set_threads(args.threads)
    df, image, text = synthetic(args.scale)
    seeds = [int(x) for x in args.seeds.split(",")]
    models = args.models.split(",")
    unknown = sorted(set(models) - {p[0] for p in PAIRS})
    if unknown:
        ap.error(f"unknown model(s) {unknown}; choose from {[p[0] for p in PAIRS]}")
    same = {"scale": args.scale, "max_epochs": args.max_epochs, "stopping_step": args.stopping_step}

    def make_table(runs: list[dict]) -> tuple[list[dict], str]:
        if args.equal_within is not None:
            return table_fixed(runs, header, seeds, args.equal_within)
        return table(runs, header, seeds)

    runs: list[dict] = []
    previous = RESULTS / f"{args.out_name}.json"
    if args.resume and previous.exists():
        old = json.loads(previous.read_text())
        if old.get("settings") == same:
            runs = [r for r in old.get("runs", []) if "error" not in r["result"]]
            print(f"resuming: {len(runs)} finished runs kept", flush=True)
        else:
            print(f"not resuming: {previous} has other settings {old.get('settings')}", flush=True)
    header = (
        f"# vlmrec vs MMRec, {args.max_epochs} epochs, no early stopping ({df['userID'].nunique():,} users, "
        f"{df['itemID'].nunique():,} items, {len(df):,} interactions = scale {args.scale} of Amazon Baby; "
        f"lr 1e-3, batch 2048, seeds {args.seeds}, CPU {args.threads} thread(s))"
        if args.equal_within is not None
        else f"# vlmrec vs MMRec, to convergence ({df['userID'].nunique():,} users, {df['itemID'].nunique():,} "
        f"items, {len(df):,} interactions = scale {args.scale} of Amazon Baby; early stopping "
        f"{args.stopping_step}, max {args.max_epochs} epochs, lr 1e-3, batch 2048, seeds {args.seeds}, "
        f"CPU {args.threads} thread(s))"
    )
    started = time.perf_counter()

    def save() -> None:
        rows, md = make_table(runs)
        payload = {
            "settings": same,
            "config": {k: str(v) for k, v in vars(args).items()},
            "data": {
                "users": int(df["userID"].nunique()),
                "items": int(df["itemID"].nunique()),
                "interactions": len(df),
            },
            "wall_s": time.perf_counter() - started,
            "rows": rows,
            "runs": runs,
        }
        # written after every run (a cut-off run keeps what finished); printed once at the end
        RESULTS.mkdir(parents=True, exist_ok=True)
        payload = {"environment": environment(), **payload}
        (RESULTS / f"{args.out_name}.json").write_text(json.dumps(payload, indent=1, default=str))
        (RESULTS / f"{args.out_name}.md").write_text(md + "\n")

    for ours, params, theirs, extra in PAIRS:
        if ours not in models:
            continue
        for seed in seeds:
            for side in ("vlmrec", "mmrec"):
                if any(r["model"] == ours and r["seed"] == seed and r["side"] == side for r in runs):
                    continue
                if side == "vlmrec":
                    result = run_ours(
                        df, image, text, ours, params, args.max_epochs, args.stopping_step, seed
                    )
                else:
                    result = run_mmrec(
                        args.mmrec_src,
                        args.mmrec_python,
                        df,
                        image,
                        text,
                        theirs,
                        args.max_epochs,
                        args.stopping_step,
                        extra,
                        seed,
                        args.threads,
                        args.mmrec_extra_path,
                    )
                runs.append({"model": ours, "side": side, "seed": seed, "result": result})
                shown = result.get("error") or (
                    f"test {result['recall@20_best_valid']:.4f} at best-valid epoch {result['best_valid_epoch']}"
                    f" of {result['epochs_run']}, {result['wall_s']:.0f} s"
                )
                print(f"{ours} {side} seed {seed}: {shown}", flush=True)
                save()
    save()
    print(make_table(runs)[1])


if __name__ == "__main__":
    main()
