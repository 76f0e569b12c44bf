"""From raw files to a saved Dataset: read -> validate -> implicit -> dedupe -> k-core -> split."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vlmrec.data import readers
from vlmrec.data.dataset import Dataset, build_dataset
from vlmrec.data.interactions import drop_duplicates, k_core, to_implicit, validate_interactions
from vlmrec.data.planted import GENERATED_LABEL, generate_planted
from vlmrec.data.splits import split_cold_items, split_interactions
from vlmrec.errors import ConfigError
from vlmrec.provenance import code_hash, code_version, path_signature

log = logging.getLogger(__name__)

READERS: dict[str, Callable[..., readers.RawData]] = {
    "amazon-2014": readers.read_amazon_2014,
    "amazon-2018": readers.read_amazon_2018,
    "amazon-2023": readers.read_amazon_2023,
    "movielens-100k": readers.read_movielens_100k,
    "movielens-1m": readers.read_movielens_1m,
    "movielens-latest": readers.read_movielens_latest,
    "recbole": readers.read_recbole_atomic,
    "presplit": readers.read_presplit,
    "table": readers.read_table,
    "planted": None,  # type: ignore[dict-item]  # generated, see prepare_dataset
}
FORMATS = tuple(READERS)


def input_signature(
    fmt: str,
    *,
    path: str | Path | None = None,
    interactions: str | Path | None = None,
    items: str | Path | None = None,
    images: str | Path | None = None,
) -> dict[str, Any]:
    """What the prepared dataset is made from, for cache keys and the fingerprint.

    Files given directly (interactions, items, a `path` that is a file): the sha256 of their
    bytes. Folders (a `path` folder, `images`): name, size and mtime of every file in them.
    `planted` generates its own files from the config (seed, options), so has no inputs here.
    """
    if fmt == "planted":
        return {}
    given = {"path": path, "interactions": interactions, "items": items}
    sig = {role: path_signature(p) for role, p in given.items() if p is not None}
    if images is not None:
        sig["images"] = path_signature(images, content=False)
    return sig


def data_code_version() -> dict[str, str]:
    """The package version/commit and a content hash of the data-preparation code."""
    return {"version": code_version(), "data_code": code_hash("data")}


def prepare_dataset(
    fmt: str,
    *,
    path: str | Path | None = None,
    interactions: str | Path | None = None,
    items: str | Path | None = None,
    images: str | Path | None = None,
    columns: dict[str, str] | None = None,
    name: str | None = None,
    rating_threshold: float | None = None,
    k_core_min: int = 0,
    split: str = "random",
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 42,
    cold_fraction: float = 0.2,
    planted_options: dict[str, Any] | None = None,
    out: str | Path | None = None,
) -> Dataset:
    """Read one of FORMATS and return (and, with `out`, save) a Dataset.

    The manifest records `inputs` (see `input_signature`, plus `item_images`: size and mtime of
    every item image) and `code` (package version, hash of the data code); the dataset's
    fingerprint covers the inputs, so editing an input file gives a new fingerprint.
    Logs how many users each split covers; the counts are in `Dataset.stats()` and so in the
    saved manifest (`stats.users_train`, `users_valid`, `users_test`). The split rule (who gets
    a validation and a test item) is documented in `vlmrec.data.splits.split_interactions`.
    `split="cold-items"` holds `cold_fraction` of the items out of training
    (`vlmrec.data.splits.split_cold_items`); the manifest's `split` records the cold item ids
    (`cold_items.valid`, `cold_items.test`) and their count.
    """
    if fmt not in READERS:
        raise ConfigError(f"--format {fmt!r} is not known; choose one of {', '.join(FORMATS)}")
    info: dict[str, Any] = {"format": fmt}
    inputs = input_signature(fmt, path=path, interactions=interactions, items=items, images=images)
    if fmt == "planted":
        raw_dir = Path(path) if path else (Path(out) / "raw" if out else None)
        if raw_dir is None:
            raise ConfigError("--format planted needs --path (where to generate) or --out")
        generate_planted(raw_dir, seed=seed, **(planted_options or {}))
        raw = readers.read_table(raw_dir / "interactions.csv", raw_dir / "items.csv")
        images = raw_dir / "images"
        name = name or "planted-synthetic"
        info.update(
            generated=True, label=GENERATED_LABEL, ground_truth=str((raw_dir / "ground_truth.json").resolve())
        )
    elif fmt == "table":
        if interactions is None:
            raise ConfigError("--format table needs --interactions FILE")
        raw = readers.read_table(interactions, items, columns)
    elif fmt == "presplit":
        raw = readers.read_presplit(_need(path, fmt), items)
    elif fmt.startswith("amazon"):
        raw = READERS[fmt](_need(path, fmt), items)
    else:
        raw = READERS[fmt](_need(path, fmt))
    name = name or Path(raw.source).parent.name or fmt
    info.update(source=raw.source, rating_threshold=rating_threshold, k_core=k_core_min)

    if raw.presplit is not None:
        parts = [
            validate_interactions(df, f"{raw.source} ({s})")
            for df, s in zip(raw.presplit, ("train", "valid", "test"))
        ]
        parts = [drop_duplicates(to_implicit(p, rating_threshold)) for p in parts]
        train, valid, test = parts
        info["split"] = {"method": "given"}
    else:
        df = validate_interactions(raw.interactions, raw.source)
        df = drop_duplicates(to_implicit(df, rating_threshold))
        df = k_core(df, k_core_min, raw.source)
        info["split"] = {"method": split, "ratios": list(ratios), "seed": seed}
        if split == "cold-items":
            train, valid, test, cold = split_cold_items(df, cold_fraction, ratios, seed)
            info["split"].update(
                cold_fraction=cold_fraction,
                n_cold_items=len(cold.all),
                cold_items={"valid": cold.valid, "test": cold.test},
            )
        else:
            train, valid, test = split_interactions(df, split, ratios, seed)
    item_table = raw.items
    if item_table is not None or images is not None:
        base = item_table if item_table is not None else train[["item_id"]].drop_duplicates()
        item_table = readers.attach_images(base.astype({"item_id": str}), images)
    # before the fingerprint is first computed: the images as they are on disk now
    info.update(inputs=inputs, code=data_code_version())
    ds = build_dataset(name, train, valid, test, item_table, info)
    ds.info["inputs"]["item_images"] = ds.image_signature()
    stats = ds.stats()
    log.info(
        "%s: %d users; split %s covers %d users in train, %d in validation, %d in test",
        ds.name,
        stats["users"],
        info["split"]["method"],
        stats["users_train"],
        stats["users_valid"],
        stats["users_test"],
    )
    if out is not None:
        ds.save(out)
    return ds


def _need(path, fmt: str) -> Path:
    if path is None:
        raise ConfigError(f"--format {fmt} needs --path (the file or folder to read)")
    return Path(path)
