"""The experiment grid on Ray vs the local engine (issue 24): wall time of a 24-cell CPU grid.

A 24-cell grid on the planted catalogue (BPR-MF: 4 learning rates x 3 embedding sizes x 2 seeds,
`threads: 1` per cell, so a cell uses one core) runs once with the local engine (one cell after
another in this process) and once with the Ray engine on a local cluster of `--workers` CPUs
(one cell per CPU). Reported: wall times, the speed-up, the scheduling overhead per cell (the
worker time not spent inside cells: `(ray wall x workers - sum of cell seconds) / cells`, and the
same for a grid of near-empty cells, where it is all overhead), Ray's start-up, and the machine's
load average sampled during each phase: on a shared machine a loaded CPU makes the speed-up
unjudgeable, and the report says so. The two runs' results.csv / per_user.parquet are compared
row for row. No GPU here: cells per hour with 1, 2, 4 cells packed per GPU are not measured.

    python benchmarks/grid_scale.py [--workers 2] [--epochs 20] [--users 600] [--items 400]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, write  # noqa: E402

SPEED_UP_TARGET = 1.7
LOADED = 0.5
"""Load beyond this run's own (load average minus the cells it runs, per CPU) that makes the
speed-up unjudgeable: other people's work took that share of the CPUs."""


class LoadSampler:
    """The 1-minute load average, sampled every second while a phase runs."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        """Sample until stopped."""
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(1.0)

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        """Mean and max of the samples."""
        s = self.samples or [os.getloadavg()[0]]
        return {"mean": round(sum(s) / len(s), 2), "max": round(max(s), 2)}


def grid_config(base: Path, run: str, engine: str, epochs: int, trivial: bool) -> Any:
    """The 24-cell grid (`trivial`: ItemKNN on the same data, 12 k values x 2 seeds, ~ms cells)."""
    from vlmrec.experiments.config import parse_config

    if trivial:
        model = {"name": "itemknn", "grid": {"k": [5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60]}}
    else:
        model = {
            "name": "bprmf",
            "params": {"epochs": epochs, "batch_size": 256, "patience": 1000},
            "grid": {"lr": [0.001, 0.005, 0.01, 0.05], "embedding_dim": [16, 32, 64]},
        }
    return parse_config(
        {
            "name": run,
            "output_dir": str(base / run),
            "seeds": [0, 1],
            "threads": 1,
            "engine": engine,
            "dataset": {"prepared": str(base / "ds")},
            "models": [model],
            "evaluation": {"ks": [10, 20], "metrics": ["recall", "ndcg"], "n_boot": 1000},
        }
    )


def timed_run(cfg: Any, engine: Any | None = None) -> dict[str, Any]:
    """Run a config; wall time, load and the cells' own seconds."""
    from vlmrec.experiments.runner import Runner

    with LoadSampler() as load:
        t0 = time.perf_counter()
        out = Runner(cfg, lambda msg: None, engine).run()
        wall = time.perf_counter() - t0
    seconds = [json.loads(p.read_text())["seconds"] for p in Path(cfg.output_dir).glob("cells/*/cell.json")]
    assert out.cells_run == len(seconds) == 24 and not out.failures, (out.cells_run, out.failures)
    return {
        "wall_s": round(wall, 2),
        "cells": len(seconds),
        "cell_s_sum": round(sum(seconds), 2),
        "load": load.summary(),
    }


def same_results(a: Path, b: Path) -> bool:
    """results.csv and per_user.parquet identical after sorting."""
    for name in ("results.csv", "per_user.parquet"):
        x, y = (
            pd.read_parquet(d / name) if name.endswith("parquet") else pd.read_csv(d / name) for d in (a, b)
        )
        x, y = (t.sort_values(list(t.columns)).reset_index(drop=True) for t in (x, y))
        if not x.equals(y):
            return False
    return True


def measure(base: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Both grids on both engines, Ray started once on `args.workers` CPUs."""
    import ray

    from vlmrec.experiments.engines.ray import RayEngine

    out: dict[str, Any] = {}
    for kind, trivial in (("grid", False), ("trivial", True)):
        out[f"{kind}_local"] = timed_run(grid_config(base, f"{kind}-local", "local", args.epochs, trivial))
    t0 = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    out["ray_start_s"] = round(time.perf_counter() - t0, 2)
    try:
        # the first grid on a new cluster pays the workers' start (python, torch imports): timed
        # apart on near-empty cells, so the two grids below run on warm workers
        out["trivial_ray_cold"] = timed_run(
            grid_config(base, "trivial-ray-cold", "ray", 0, True), RayEngine()
        )
        for kind, trivial in (("grid", False), ("trivial", True)):
            cfg = grid_config(base, f"{kind}-ray", "ray", args.epochs, trivial)
            out[f"{kind}_ray"] = timed_run(cfg, RayEngine())
            out[f"{kind}_identical"] = same_results(base / f"{kind}-local", base / f"{kind}-ray")
    finally:
        ray.shutdown()
    return out


def derive(m: dict[str, Any], workers: int) -> dict[str, Any]:
    """Speed-up, overhead per cell, and whether the machine was quiet enough to judge."""
    local, ray_ = m["grid_local"], m["grid_ray"]
    speed_up = local["wall_s"] / ray_["wall_s"]
    overhead = (ray_["wall_s"] * workers - ray_["cell_s_sum"]) / ray_["cells"]
    trivial = (m["trivial_ray"]["wall_s"] * workers - m["trivial_ray"]["cell_s_sum"]) / m["trivial_ray"][
        "cells"
    ]
    cpus = os.cpu_count() or 1
    # other people's load: the load average minus the cells this run had going, per CPU
    others = max(0.0, (ray_["load"]["mean"] - workers) / cpus, (local["load"]["mean"] - 1) / cpus)
    judged = others <= LOADED
    return {
        "speed_up": round(speed_up, 2),
        "speed_up_with_ray_start": round(local["wall_s"] / (ray_["wall_s"] + m["ray_start_s"]), 2),
        "overhead_ms_per_cell": round(1000 * overhead, 1),
        "overhead_ms_per_trivial_cell": round(1000 * trivial, 1),
        "cell_slowdown_under_ray": round(ray_["cell_s_sum"] / local["cell_s_sum"], 2),
        "other_load_per_cpu": round(others, 2),
        "target": SPEED_UP_TARGET,
        "target_judged": judged,
        "target_met": (speed_up >= SPEED_UP_TARGET) if judged else None,
    }


def markdown(m: dict[str, Any], d: dict[str, Any], args: argparse.Namespace) -> str:
    """The results table and the verdict on the target."""
    rows = [
        f"| {name} | {r['wall_s']:.1f} | {r['cell_s_sum']:.1f} | {r['load']['mean']:.2f} / {r['load']['max']:.2f} |"
        for name, r in (
            ("24 BPR-MF cells, local", m["grid_local"]),
            (f"24 BPR-MF cells, Ray ({args.workers} workers)", m["grid_ray"]),
            ("24 near-empty cells (ItemKNN), local", m["trivial_local"]),
            (f"24 near-empty cells, Ray, first grid on new workers ({args.workers})", m["trivial_ray_cold"]),
            (f"24 near-empty cells (ItemKNN), Ray ({args.workers} workers)", m["trivial_ray"]),
        )
    ]
    if not d["target_judged"]:
        verdict = (
            f"The speed-up target (>= {SPEED_UP_TARGET}x) could **not be judged**: the machine was shared and "
            f"loaded by other work ({d['other_load_per_cpu']:.2f} load per CPU beyond this benchmark's own "
            f"cells, above {LOADED}), by different amounts in the two phases (load "
            f"{m['grid_local']['load']['mean']:.1f} during the local grid, {m['grid_ray']['load']['mean']:.1f} "
            f"during the Ray grid); each BPR-MF cell took {d['cell_slowdown_under_ray']:.2f}x longer under "
            f"Ray than alone. The {d['speed_up']:.2f}x is what this shared machine gave, not a quiet-machine "
            "figure: rerun when the load average is below the CPU count."
        )
    else:
        verdict = (
            f"Target >= {SPEED_UP_TARGET}x: {'met' if d['target_met'] else 'NOT met'} ({d['speed_up']:.2f}x)."
        )
    return "\n".join(
        [
            "# Experiment grid: Ray engine vs local engine (benchmarks/grid_scale.py)",
            "",
            f"{os.cpu_count()} CPUs; planted catalogue {args.users} users x {args.items} items; `threads: 1` "
            f"per cell; Ray: local cluster of {args.workers} CPUs, one cell per CPU. No GPU on this machine: "
            "cells per hour with 1, 2 and 4 cells packed per GPU were not measured.",
            "",
            "| phase | wall s | sum of cell s | load avg (1 min) mean / max |",
            "|---|---|---|---|",
            *rows,
            "",
            f"- speed-up (wall, local / Ray): **{d['speed_up']:.2f}x** ({d['speed_up_with_ray_start']:.2f}x "
            f"counting Ray's start-up of {m['ray_start_s']:.1f} s)",
            f"- scheduling overhead per cell: {d['overhead_ms_per_cell']:.0f} ms on the BPR-MF grid, "
            f"{d['overhead_ms_per_trivial_cell']:.0f} ms on near-empty cells (worker time outside the cells: "
            "the probe task, submitting, loading the dataset once per worker, reading cell.json back); the "
            f"first grid on new workers pays their start too ({m['trivial_ray_cold']['wall_s']:.1f} s wall)",
            f"- results identical to the local engine row for row: BPR-MF grid {m['grid_identical']}, "
            f"near-empty grid {m['trivial_identical']}",
            f"- {verdict}",
        ]
    )


def main() -> None:
    """Prepare the catalogue, measure both engines, write the results."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--users", type=int, default=600)
    p.add_argument("--items", type=int, default=400)
    p.add_argument("--render", action="store_true", help="rewrite grid_scale.md from grid_scale.json")
    args = p.parse_args()
    if args.render:  # the text from the stored measurements, without measuring again
        saved = json.loads((RESULTS / "grid_scale.json").read_text())
        args = argparse.Namespace(**saved["config"])
        (RESULTS / "grid_scale.md").write_text(markdown(saved, derive(saved, args.workers), args) + "\n")
        return
    from vlmrec.data import prepare_dataset
    from vlmrec.provenance import set_threads

    set_threads(1)
    base = Path(tempfile.mkdtemp(prefix="grid_scale-"))
    try:
        prepare_dataset(
            "planted",
            out=base / "ds",
            path=base / "raw",
            planted_options={"n_users": args.users, "n_items": args.items, "image_size": 16},
        )
        load_before = os.getloadavg()
        m = measure(base, args)
        d = derive(m, args.workers)
        payload = {"config": vars(args), "load_before": load_before, "load_after": os.getloadavg(), **m, **d}
        write("grid_scale", payload, markdown(m, d, args))
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
