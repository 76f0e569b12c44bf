"""Image-feature extraction throughput on a GPU (EfficientNet-Lite0 through vlmrec's extractor and
chunked engine), for the per-item cost in docs/scaling.md.

    PYTHONPATH=src python benchmarks/gpu_extract_speed.py [--items 4000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from vlmrec.data import prepare_dataset  # noqa: E402
from vlmrec.features.encoders.image import (
    EfficientNetLite0,  # noqa: E402
    ImageExtractor,  # noqa: E402
)
from vlmrec.features.extraction import extract  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=4000)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        ds = prepare_dataset(
            "planted",
            out=Path(d) / "ds",
            planted_options={"n_users": 100, "n_items": args.items, "image_size": 128},
        )
        gen_s = time.perf_counter() - t
        enc = EfficientNetLite0()
        for batch in (32, 128, 256):
            t = time.perf_counter()
            extract(
                ds,
                ImageExtractor(enc, batch_size=batch),
                Path(d) / f"f{batch}",
                chunk_size=1024,
                progress=False,
            )
            secs = time.perf_counter() - t
            rows.append(
                {"batch": batch, "items": ds.n_items, "seconds": secs, "items_per_s": ds.n_items / secs}
            )
            print(rows[-1], flush=True)
    report = {
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "cpu_count": os.cpu_count(),
        "generate_catalogue_s": gen_s,
        "rows": rows,
        "note": "includes PNG decoding and resizing on the CPU (single process)",
    }
    out = Path(os.environ.get("OUT") or Path(__file__).parent / "results")
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_extract_speed.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
