"""Extraction speed: items/s and peak memory per extractor and batch size, against a naive loop
that encodes one item at a time and writes one file per item (the Ducho layout).

    python benchmarks/extract_speed.py [--items 200] [--batch-sizes 1,8,32] [--extractors text,image,describe-ocr]

Each configuration runs in its own subprocess, so peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import write  # noqa: E402

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import numpy as np
sys.path.insert(0, sys.argv[6])
from vlmrec.provenance import set_threads
set_threads(int(sys.argv[5]))
from vlmrec.data import Dataset
from vlmrec.features.registry import build_extractor
from vlmrec.features.extraction import extract
ds_dir, name, batch, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ds = Dataset.load(ds_dir)
out = Path(ds_dir).parent / f"out-{name}-{batch}-{mode}"
t_load = time.perf_counter()
ex = build_extractor(name, out, batch_size=batch)
for attr in ("batch_size",):
    if hasattr(ex, attr):
        setattr(ex, attr, batch)
load_s = time.perf_counter() - t_load
t = time.perf_counter()
if mode == "naive":
    out.mkdir(parents=True, exist_ok=True)
    for pos in range(ds.n_items):
        v, _ = ex.process(ds.items.iloc[pos : pos + 1])
        np.save(out / f"{ds.items['item_id'].iloc[pos]}.npy", v[0])
else:
    extract(ds, ex, out, chunk_size=256, progress=False)
secs = time.perf_counter() - t
print(json.dumps({"extractor": name, "batch": batch, "mode": mode, "items": ds.n_items, "seconds": secs,
                  "items_per_s": ds.n_items / secs, "model_load_s": load_s,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--batch-sizes", default="1,8,32")
    ap.add_argument("--extractors", default="text,image,describe-ocr")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from vlmrec.data import prepare_dataset

    src = str(Path(__file__).resolve().parents[1] / "src")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        prepare_dataset(
            "planted",
            out=Path(d) / "ds",
            planted_options={"n_users": 50, "n_items": args.items, "image_size": 128},
        )
        for name in args.extractors.split(","):
            configs = [(b, "chunked") for b in map(int, args.batch_sizes.split(","))] + [(1, "naive")]
            for batch, mode in configs:
                out = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        CHILD,
                        str(Path(d) / "ds"),
                        name,
                        str(batch),
                        mode,
                        str(args.threads),
                        src,
                    ],
                    capture_output=True,
                    text=True,
                )
                if out.returncode == 0:
                    rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                else:
                    rows.append(
                        {"extractor": name, "batch": batch, "mode": mode, "error": out.stderr.strip()[-300:]}
                    )
                print(rows[-1], flush=True)
    md = [
        f"# extract_speed ({args.items} planted items, 128x128 PNG, {args.threads} CPU threads)",
        "",
        "| extractor | mode | batch | items/s | model load s | peak RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            md.append(f"| {r['extractor']} | {r['mode']} | {r['batch']} | error | | |")
        else:
            md.append(
                f"| {r['extractor']} | {'naive, one file per item' if r['mode'] == 'naive' else 'vlmrec chunked'} | "
                f"{r['batch']} | {r['items_per_s']:.1f} | {r['model_load_s']:.1f} | {r['peak_rss_mb']:.0f} |"
            )
    write("extract_speed", {"config": vars(args), "rows": rows}, "\n".join(md))


if __name__ == "__main__":
    main()
