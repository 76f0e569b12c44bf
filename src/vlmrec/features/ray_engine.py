"""Distributed extraction on Ray: the same extractors, chunks and FeatureSet as the local engine.

The catalogue's chunks flow through a Ray Data pipeline (`map_batches` over an actor pool), so each
worker loads its model weights once; GPUs are requested per actor when the cluster has them.
Every chunk is written atomically to `out/.partial/` by the worker that computed it, so:
  * a failed run resumes by skipping the chunks already written;
  * a killed worker's chunk is retried (actor restarts, then a further pass over missing chunks);
  * the FeatureSet is assembled only when every chunk (every item, processed or failed) is there.
Extractor models are built inside the workers from (name, model, options), never pickled.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from vlmrec.data.dataset import Dataset
from vlmrec.errors import ConfigError, DataError
from vlmrec.features.extraction import MISSING_POLICIES, assemble, prepare_partial
from vlmrec.features.featureset import FeatureSet

log = logging.getLogger(__name__)

INSTALL_HINT = "the Ray engine needs `pip install 'vlmrec[ray]'` (ray[data]); without it use --engine local"
CRASH_ENV = "VLMREC_TEST_CRASH_ONCE"  # "<marker file>:<chunk>": tests simulate a killed worker with it


def _ray():
    try:
        import ray
    except ImportError as e:
        raise ConfigError(INSTALL_HINT) from e
    return ray


class ChunkWorker:
    """A Ray Data actor: builds the extractor once, then processes whole chunks."""

    def __init__(
        self, dataset_dir: str, extractor: str, model: str | None, options: dict, out: str, chunk_size: int
    ):
        from vlmrec.features.extractors import build_extractor
        from vlmrec.provenance import set_threads

        set_threads(1)
        self.dataset = Dataset.load(dataset_dir)
        self.extractor = build_extractor(
            extractor, Path(out), model=model, items=self.dataset.items, **options
        )
        self.out, self.chunk_size = Path(out), chunk_size

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        from vlmrec.features.extraction import process_chunk

        chunks = [int(c) for c in batch["chunk"]]
        done = []
        for c in chunks:
            crash = os.environ.get(CRASH_ENV)
            if crash:
                marker, chunk = crash.rsplit(":", 1)
                if int(chunk) == c and not Path(marker).exists():
                    Path(marker).write_text(str(os.getpid()))
                    os._exit(1)  # die like a killed worker, mid-run, without writing the chunk
            done.append(
                process_chunk(self.extractor, self.dataset.items, c, self.chunk_size, self.out / ".partial")
            )
        return {
            "chunk": np.array(chunks),
            "items": np.array(done),
            "manifest": np.array([json.dumps(self.extractor.manifest(), default=str)] * len(chunks)),
        }


def extract_ray(
    dataset_dir: str | Path,
    extractor: str,
    out: str | Path,
    model: str | None = None,
    options: dict[str, Any] | None = None,
    chunk_size: int = 256,
    missing: str = "mean",
    address: str | None = None,
    num_workers: int | None = None,
    max_passes: int = 3,
) -> FeatureSet:
    if missing not in MISSING_POLICIES:
        raise ConfigError(f"missing-item policy {missing!r}: choose one of {MISSING_POLICIES}")
    ray = _ray()

    dataset_dir, out = Path(dataset_dir).resolve(), Path(out).resolve()
    ds = Dataset.load(dataset_dir)
    options = {k: v for k, v in (options or {}).items() if k != "items"}
    spec = {
        "engine": "chunks-v1",
        "extractor": extractor,
        "model": model,
        "options": options,
        "chunk_size": chunk_size,
    }
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=address,
            ignore_reinit_error=True,
            log_to_driver=False,
            runtime_env={"env_vars": {k: v for k, v in os.environ.items() if k == CRASH_ENV}},
        )
    try:
        free = ray.available_resources()
        gpus = 1 if free.get("GPU", 0) >= 1 else 0
        # an actor pool larger than the free CPUs deadlocks: size it from what is available
        cap = int(free.get("GPU", 0)) if gpus else max(1, int(free.get("CPU", 1)))
        n_workers = max(1, min(num_workers or cap, cap))
        manifest, t0 = None, time.perf_counter()
        for attempt in range(max_passes):
            todo = prepare_partial(out, ds, spec)
            if not todo:
                break
            log.info("ray pass %d: %d chunks on %d workers", attempt + 1, len(todo), n_workers)
            from ray.data import ActorPoolStrategy

            pipeline = ray.data.from_items([{"chunk": c} for c in todo]).map_batches(
                ChunkWorker,
                fn_constructor_kwargs={
                    "dataset_dir": str(dataset_dir),
                    "extractor": extractor,
                    "model": model,
                    "options": options,
                    "out": str(out),
                    "chunk_size": chunk_size,
                },
                batch_size=1,
                compute=ActorPoolStrategy(size=n_workers),
                num_cpus=1,
                num_gpus=gpus,
                max_restarts=2,
                max_task_retries=2,
            )
            try:
                for row in pipeline.iter_rows():
                    manifest = manifest or json.loads(row["manifest"])
            except Exception as e:  # a pass can fail when a worker dies; missing chunks are redone next pass
                log.warning(
                    "ray pass %d ended with %s: %s; retrying missing chunks", attempt + 1, type(e).__name__, e
                )
        if prepare_partial(out, ds, spec):
            raise DataError(f"{out}: chunks still missing after {max_passes} passes; re-run to resume")
        if manifest is None:  # every chunk was done by an earlier run: build the manifest here
            from vlmrec.features.extractors import build_extractor

            manifest = build_extractor(extractor, out, model=model, items=ds.items, **options).manifest()
        return assemble(
            ds,
            out,
            manifest,
            chunk_size,
            missing,
            time.perf_counter() - t0,
            engine="ray",
            ray_workers=n_workers,
        )
    finally:
        if started_here:
            ray.shutdown()
