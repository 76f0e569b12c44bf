"""Local vs Ray engine throughput on this machine (default 10k items), for docs/scaling.md.

python benchmarks/extract_scale.py [--items 10000] [--extractor text] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import peak_rss_mb, write  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--extractor", default="text")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk-size", type=int, default=500)
    args = ap.parse_args()
    import ray

    from vlmrec.data import prepare_dataset
    from vlmrec.features.engines.ray import extract_ray
    from vlmrec.features.extraction import extract
    from vlmrec.features.registry import build_extractor
    from vlmrec.provenance import set_threads

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        ds = prepare_dataset(
            "planted",
            out=d / "ds",
            planted_options={
                "n_users": 200,
                "n_items": args.items,
                "interactions_per_user": 50,
                "image_size": 64,
            },
        )
        set_threads(2)
        t = time.perf_counter()
        ex = build_extractor(args.extractor, d / "local")
        local = extract(ds, ex, d / "local", chunk_size=args.chunk_size, progress=False)
        local_s = time.perf_counter() - t
        ray.init(num_cpus=args.workers, log_to_driver=False, include_dashboard=False)
        t = time.perf_counter()
        distributed = extract_ray(
            d / "ds", args.extractor, d / "ray", chunk_size=args.chunk_size, num_workers=args.workers
        )
        ray_s = time.perf_counter() - t
        ray.shutdown()
        same = float(np.abs(local.vectors - distributed.vectors).max())
    rows = {
        "items": ds.n_items,
        "extractor": args.extractor,
        "local_s": local_s,
        "local_items_per_s": ds.n_items / local_s,
        "ray_s": ray_s,
        "ray_items_per_s": ds.n_items / ray_s,
        "ray_workers": args.workers,
        "max_abs_diff": same,
        "peak_rss_mb_driver": peak_rss_mb(),
    }
    md = "\n".join(
        [
            f"# extract_scale ({ds.n_items:,} items, extractor {args.extractor}, this 2-core machine)",
            "",
            "| engine | seconds | items/s | ms/item |",
            "|---|---|---|---|",
            f"| local (2 threads) | {local_s:.1f} | {rows['local_items_per_s']:.0f} | {1000 * local_s / ds.n_items:.2f} |",
            f"| ray ({args.workers} actors x 1 thread) | {ray_s:.1f} | {rows['ray_items_per_s']:.0f} | {1000 * ray_s / ds.n_items:.2f} |",
            "",
            f"max |local - ray| = {same:.2e} (same FeatureSet)",
        ]
    )
    write(f"extract_scale_{args.extractor}", rows, md)


if __name__ == "__main__":
    main()
