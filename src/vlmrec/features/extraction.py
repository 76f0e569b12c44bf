"""Resumable, chunked extraction of a FeatureSet.

Items are processed in fixed chunks; each finished chunk is written atomically to
`<out>/.partial/chunk_XXXXX.npz`. A killed run restarts from the first missing chunk and,
because extractors are deterministic per item, assembles a byte-identical `vectors.npy`.
Items an extractor cannot process (missing or corrupt image...) are listed with the reason
in the manifest's `failed` list and filled by an explicit policy, never silently zeroed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from vlmrec.data.dataset import Dataset
from vlmrec.errors import ConfigError, DataError
from vlmrec.features.featureset import FeatureSet
from vlmrec.provenance import hash_text

log = logging.getLogger(__name__)

MISSING_POLICIES = ("mean", "zero", "error")


class Extractor(Protocol):
    name: str

    def process(self, items: pd.DataFrame) -> tuple[np.ndarray, dict[int, str]]:
        """Vectors for a chunk of item-table rows (NaN rows allowed for failures) and
        {row position in chunk: reason} for the failed ones."""
        ...

    def manifest(self) -> dict[str, Any]: ...


def extract(
    dataset: Dataset,
    extractor: Extractor,
    out: str | Path,
    chunk_size: int = 256,
    missing: str = "mean",
    progress: bool = True,
    max_chunks: int | None = None,
) -> FeatureSet | None:
    """Run `extractor` over every item of `dataset` and save the FeatureSet in `out`.

    `max_chunks` stops after that many new chunks (returns None): used to test resumption.
    """
    if missing not in MISSING_POLICIES:
        raise ConfigError(f"missing-item policy {missing!r}: choose one of {MISSING_POLICIES}")
    out = Path(out)
    if hasattr(extractor, "extract_all"):
        # extractors fitted on the whole catalogue (e.g. an attribute vocabulary) run in one go;
        # their own expensive steps checkpoint through their caches
        return extractor.extract_all(dataset, out, missing=missing)
    manifest = extractor.manifest()
    todo = prepare_partial(out, dataset, {"extractor": manifest, "chunk_size": chunk_size})
    n = dataset.n_items
    bar = tqdm(
        total=n,
        initial=n - sum(min(chunk_size, n - c * chunk_size) for c in todo),
        desc=f"extract {extractor.name}",
        unit="item",
        disable=None if progress else True,
    )
    t0 = time.perf_counter()
    for count, c in enumerate(todo):
        if max_chunks is not None and count >= max_chunks:
            bar.close()
            return None
        bar.update(process_chunk(extractor, dataset.items, c, chunk_size, out / ".partial"))
    bar.close()
    return assemble(dataset, out, manifest, chunk_size, missing, time.perf_counter() - t0)


def prepare_partial(out: Path, dataset: Dataset, spec: dict) -> list[int]:
    """Create `out/.partial` for this configuration (starting over if it was made with another)
    and return the chunk numbers still to do."""
    partial = out / ".partial"
    partial.mkdir(parents=True, exist_ok=True)
    config = {**spec, "dataset_fingerprint": dataset.fingerprint}
    config_key = hash_text(json.dumps(config, sort_keys=True, default=str))
    marker = partial / "config.json"
    if marker.exists() and json.loads(marker.read_text()).get("key") != config_key:
        log.warning("%s: partial results were made with another configuration; starting over", out)
        shutil.rmtree(partial)
        partial.mkdir(parents=True)
    marker.write_text(json.dumps({"key": config_key, **config}, default=str))
    n_chunks = (dataset.n_items + spec["chunk_size"] - 1) // spec["chunk_size"]
    return [c for c in range(n_chunks) if not (partial / f"chunk_{c:05d}.npz").exists()]


def process_chunk(extractor: Extractor, items: pd.DataFrame, c: int, chunk_size: int, partial: Path) -> int:
    """Extract one chunk and write it atomically (a kill leaves either the whole chunk or none)."""
    rows = items.iloc[c * chunk_size : (c + 1) * chunk_size]
    vectors, failed = extractor.process(rows)
    if len(vectors) != len(rows):
        raise DataError(f"extractor {extractor.name}: returned {len(vectors)} vectors for {len(rows)} items")
    tmp = partial / f"chunk_{c:05d}.tmp-{os.getpid()}.npz"
    np.savez(
        tmp,
        vectors=np.asarray(vectors, np.float32),
        failed_pos=np.array(list(failed), dtype=np.int64),
        failed_reason=np.array(list(failed.values()), dtype=str),
    )
    tmp.replace(partial / f"chunk_{c:05d}.npz")
    return len(rows)


def assemble(
    dataset: Dataset, out: Path, manifest: dict, chunk_size: int, missing: str, seconds: float, **extra: Any
) -> FeatureSet:
    """Join the chunks into `vectors.npy` once every item is accounted for (processed or failed)."""
    partial = out / ".partial"
    n = dataset.n_items
    n_chunks = (n + chunk_size - 1) // chunk_size
    absent = [c for c in range(n_chunks) if not (partial / f"chunk_{c:05d}.npz").exists()]
    if absent:
        raise DataError(f"{out}: chunks {absent[:10]} are missing; re-run the extraction to complete them")
    blocks, failed_all = [], []
    for c in range(n_chunks):
        with np.load(partial / f"chunk_{c:05d}.npz") as z:
            blocks.append(z["vectors"])
            failed_all += [
                {"item": int(c * chunk_size + p), "reason": str(r)}
                for p, r in zip(z["failed_pos"], z["failed_reason"])
            ]
    vectors = np.concatenate(blocks).astype(np.float32)
    vectors = _apply_missing_policy(vectors, failed_all, missing, manifest.get("extractor", "?"))
    for f in failed_all:
        f["item_id"] = str(dataset.item_ids[f["item"]])
    fs = FeatureSet.create(
        vectors,
        dataset,
        name=out.name,
        missing_policy=missing,
        failed=failed_all,
        **manifest,
        extraction_seconds=round(seconds, 3),
        **extra,
    )
    fs.save(out)
    shutil.rmtree(partial)
    if failed_all:
        log.warning(
            "%s: %d of %d items could not be processed (listed in manifest.json 'failed'; policy %s)",
            out,
            len(failed_all),
            n,
            missing,
        )
    return fs


def _apply_missing_policy(vectors: np.ndarray, failed: list[dict], policy: str, name: str) -> np.ndarray:
    if not failed:
        return vectors
    idx = np.array([f["item"] for f in failed])
    if policy == "error":
        first = failed[0]
        raise DataError(
            f"extractor {name}: {len(failed)} item(s) failed, e.g. item {first['item']}: {first['reason']} "
            "(use --missing mean|zero to continue with an explicit fill)"
        )
    ok = np.ones(len(vectors), bool)
    ok[idx] = False
    if policy == "zero" or not ok.any():
        vectors[idx] = 0.0
    else:
        vectors[idx] = vectors[ok].mean(0)
    return vectors
