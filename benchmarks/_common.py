"""Shared helpers for benchmarks: results folder, peak memory, environment description."""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def environment() -> dict:
    import torch

    from vlmrec.provenance import code_version

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "code_version": code_version(),
        "machine": platform.machine(),
    }


def write(name: str, payload: dict, markdown: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"environment": environment(), **payload}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=1, default=str))
    (RESULTS / f"{name}.md").write_text(markdown + "\n")
    print(markdown)
    return RESULTS / f"{name}.json"
