"""Distributed extraction on Ray: the same extractors, chunks and FeatureSet as the local engine.

The catalogue's chunks flow through a Ray Data pipeline (`map_batches` over an actor pool), so each
worker loads its model weights once; GPUs are requested per actor when the cluster has them.
Every chunk is written atomically to `out/.partial/` by the worker that computed it, so:
  * a failed run resumes by skipping the chunks already written;
  * a killed worker's chunk is retried (actor restarts, then a further pass over missing chunks);
  * the FeatureSet is assembled only when every chunk (every item, processed or failed) is there.
Extractor models are built inside the workers from (name, validated options), never pickled, and
fitted there on the item table (the fit is deterministic, so every worker learns the same state).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vlmrec.data.dataset import Dataset
from vlmrec.errors import ConfigError, DataError
from vlmrec.features.extraction import MISSING_POLICIES, ExtractorOptions, assemble, prepare_partial
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
    """A Ray Data actor: builds and fits the extractor once, then processes whole chunks."""

    def __init__(self, dataset_dir: str, extractor: str, options: dict, out: str, chunk_size: int):
        from vlmrec.features.registry import build
        from vlmrec.provenance import set_threads

        set_threads(1)
        self.dataset = Dataset.load(dataset_dir)
        self.extractor = build(extractor, options, Path(out))
        self.extractor.fit(self.dataset.items)
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
            "own_missing_policy": np.array([self.extractor.own_missing_policy or ""] * len(chunks)),
        }


def _checked_options(
    extractor: str,
    model: str | None,
    options: Mapping[str, Any] | ExtractorOptions | None,
    missing: str,
) -> ExtractorOptions:
    """The extractor's options validated before any cluster starts (with `model` folded in)."""
    from vlmrec.features.registry import get_spec, parse_options

    if missing not in MISSING_POLICIES:
        raise ConfigError(f"missing-item policy {missing!r}: choose one of {MISSING_POLICIES}")
    if not get_spec(extractor).distributable:
        raise ConfigError(
            f"extractor {extractor!r} fits on generated output of the whole catalogue; run it with --engine local"
        )
    if model is not None:
        given = options.model_dump(exclude_unset=True) if isinstance(options, ExtractorOptions) else options
        options = {**(given or {}), "model": model}
    return parse_options(extractor, options)


def _local_manifest(
    extractor: str, validated: ExtractorOptions, out: Path, ds: Dataset
) -> tuple[dict, str | None]:
    """The extractor's manifest built here, when every chunk was done by an earlier run."""
    from vlmrec.features.registry import build

    local = build(extractor, validated, out)
    local.fit(ds.items)
    return local.manifest(), local.own_missing_policy


def _ray_pass(
    ray: Any, todo: list, worker_kwargs: dict, n_workers: int, gpus: int, attempt: int
) -> tuple[dict, str | None] | None:
    """One pass of the chunk pipeline over `todo` on an actor pool: (the extractor's manifest,
    its own missing-item policy) from the last chunk done, or None when no chunk came back. A
    pass can fail when a worker dies: what is missing is redone in the next pass."""
    from ray.data import ActorPoolStrategy

    pipeline = ray.data.from_items([{"chunk": c} for c in todo]).map_batches(
        ChunkWorker,
        fn_constructor_kwargs=worker_kwargs,
        batch_size=1,
        compute=ActorPoolStrategy(size=n_workers),
        num_cpus=1,
        num_gpus=gpus,
        max_restarts=2,
        max_task_retries=2,
    )
    found: tuple[dict, str | None] | None = None
    try:
        for row in pipeline.iter_rows():
            manifest = found[0] if found else json.loads(row["manifest"])
            found = (manifest, str(row["own_missing_policy"]) or None)
    except Exception as e:  # a worker died: the missing chunks are redone in the next pass
        log.warning(
            "ray pass %d ended with %s: %s; retrying missing chunks", attempt + 1, type(e).__name__, e
        )
    return found


def extract_ray(
    dataset_dir: str | Path,
    extractor: str,
    out: str | Path,
    model: str | None = None,
    options: Mapping[str, Any] | ExtractorOptions | None = None,
    chunk_size: int = 256,
    missing: str = "mean",
    address: str | None = None,
    num_workers: int | None = None,
    max_passes: int = 3,
) -> FeatureSet:
    """Extract on a Ray cluster (started locally unless `address` names one): the same chunks,
    resume and FeatureSet as `extraction.extract`. `options` are the extractor's (validated here,
    before the cluster starts); `model` is one of them, given separately as in `build_extractor`."""
    validated = _checked_options(extractor, model, options, missing)
    ray = _ray()

    dataset_dir, out = Path(dataset_dir).resolve(), Path(out).resolve()
    ds = Dataset.load(dataset_dir)
    payload = validated.model_dump(mode="json")  # what the workers rebuild the extractor from
    spec = {
        "engine": "chunks-v1",
        "extractor": extractor,
        "options": payload,
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
        manifest: dict | None = None
        own_policy: str | None = None
        t0 = time.perf_counter()
        worker_kwargs = {
            "dataset_dir": str(dataset_dir),
            "extractor": extractor,
            "options": payload,
            "out": str(out),
            "chunk_size": chunk_size,
        }
        for attempt in range(max_passes):
            todo = prepare_partial(out, ds, spec)
            if not todo:
                break
            log.info("ray pass %d: %d chunks on %d workers", attempt + 1, len(todo), n_workers)
            found = _ray_pass(ray, todo, worker_kwargs, n_workers, gpus, attempt)
            if found is not None:
                manifest, own_policy = manifest or found[0], found[1]
        if prepare_partial(out, ds, spec):
            raise DataError(f"{out}: chunks still missing after {max_passes} passes; re-run to resume")
        if manifest is None:  # every chunk was done by an earlier run: build the manifest here
            manifest, own_policy = _local_manifest(extractor, validated, out, ds)
        return assemble(
            ds,
            out,
            manifest,
            chunk_size,
            missing,
            time.perf_counter() - t0,
            own_missing_policy=own_policy,
            engine="ray",
            ray_workers=n_workers,
        )
    finally:
        if started_here:
            ray.shutdown()
