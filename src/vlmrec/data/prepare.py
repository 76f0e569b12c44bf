"""From raw files to a saved Dataset: read -> validate -> implicit -> dedupe -> k-core -> split."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vlmrec.data import readers
from vlmrec.data.dataset import Dataset, build_dataset
from vlmrec.data.formats import FORMATS, GENERATED, READERS
from vlmrec.data.interactions import drop_duplicates, k_core, to_implicit, validate_interactions
from vlmrec.data.planted import GENERATED_LABEL, generate_planted
from vlmrec.data.spec import DatasetSpec
from vlmrec.data.splits import split_cold_items, split_interactions
from vlmrec.errors import ConfigError
from vlmrec.folders import check_folder, claim_folder
from vlmrec.provenance import code_hash, code_version, path_signature

log = logging.getLogger(__name__)

# Reasons rows are dropped, as the manifest's `dropped` and the prepare summary name them (the
# item table's own reasons are `readers.MISSING_ITEM_ID`, `readers.DUPLICATE_ITEM`, and
# `readers.MALFORMED_ID` for interactions without a usable id).
DUPLICATE_INTERACTION = "duplicate (user, item) interaction (latest kept)"
BELOW_THRESHOLD = "rating below --rating-threshold"
K_CORE = "removed by the --k-core filter"
NO_TRAIN_ITEM = "validation/test interaction of a user with no training item"
# Given splits (format presplit) that share a (user, item) pair: the pair is kept in the earlier
# split only (see `drop_split_overlaps`).
OVERLAP_TRAIN_VALID = "validation pair also in train (dropped from validation)"
OVERLAP_TRAIN_TEST = "test pair also in train (dropped from test)"
OVERLAP_VALID_TEST = "test pair also in validation (dropped from test)"
OVERLAPS = {
    "train_valid": OVERLAP_TRAIN_VALID,
    "train_test": OVERLAP_TRAIN_TEST,
    "valid_test": OVERLAP_VALID_TEST,
}


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
    spec: DatasetSpec | str,
    out: str | Path | None = None,
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
    sep: str | None = None,
    encoding: str | None = None,
) -> Dataset:
    """Read the data `spec` describes (one of FORMATS), clean and split it, and return (and, with
    `out`, save) a Dataset.

    `spec` is a DatasetSpec; a format name with the spec's fields as keywords (`k_core_min` for
    `k_core`, `planted_options` for `planted`) is the first API's form, kept for scripts: it is
    checked here exactly as before, not by the spec's validation. With a DatasetSpec those
    keywords must be left out.

    The manifest records `inputs` (see `input_signature`, plus `item_images`: size and mtime of
    every item image) and `code` (package version, hash of the data code); the dataset's
    fingerprint covers the inputs, so editing an input file gives a new fingerprint.
    Logs how many users each split covers; the counts are in `Dataset.stats()` and so in the
    saved manifest (`stats.users_train`, `users_valid`, `users_test`). The split rule (who gets
    a validation and a test item) is documented in `vlmrec.data.splits.split_interactions`.
    `split="cold-items"` holds `cold_fraction` of the items out of training
    (`vlmrec.data.splits.split_cold_items`); the manifest's `split` records the cold item ids
    (`cold_items.valid`, `cold_items.test`) and their count.

    `sep` and `encoding` (format table only) say how the text files are read; by default the
    separator is sniffed per file and the encoding is UTF-8 (see `readers.table_dialect`); the
    manifest's `read_options` records what was used. The manifest's `dropped` counts the rows
    dropped for each reason checked in this run, zeros included (the reasons are the constants
    above and those in `readers`), and `item_table` says how the item table and the
    interactions' items match (`item_table_coverage`).

    `out` (and, for `planted`, the folder it generates into) must be new, empty or vlmrec's own
    folder of that kind (`folders.check_folder`); anything else is refused before reading.
    """
    options: dict[str, Any] = {
        "path": path,
        "interactions": interactions,
        "items": items,
        "images": images,
        "columns": columns,
        "name": name,
        "rating_threshold": rating_threshold,
        "k_core": k_core_min,
        "split": split,
        "ratios": ratios,
        "seed": seed,
        "cold_fraction": cold_fraction,
        "planted": planted_options,
        "sep": sep,
        "encoding": encoding,
    }
    if isinstance(spec, str):
        spec = DatasetSpec.model_construct(format=spec, **options)  # type: ignore[arg-type]
    else:
        given = [k for k, v in options.items() if v != DatasetSpec.model_fields[k].default]
        if given:
            raise TypeError(f"prepare_dataset(spec, out): {given} belong in the spec, not beside it")
    return _prepare(spec, out)


def _prepare(spec: DatasetSpec, out: str | Path | None) -> Dataset:
    """`prepare_dataset` for a spec: read -> clean -> split -> build, record and save."""
    fmt = spec.reader_format()
    if out is not None:
        check_folder(out, "dataset", "dataset folder")
    _check_options(spec)
    info: dict[str, Any] = {"format": fmt}
    inputs = input_signature(
        fmt, path=spec.path, interactions=spec.interactions, items=spec.items, images=spec.images
    )
    raw, images, name = _read(spec, out, info)
    info.update(source=raw.source, rating_threshold=spec.rating_threshold, k_core=spec.k_core)
    dropped = _reasons(raw, spec)
    train, valid, test = _clean_and_split(raw, spec, dropped, info)
    item_table = raw.items
    if item_table is not None or images is not None:
        base = item_table if item_table is not None else train[["item_id"]].drop_duplicates()
        item_table = readers.attach_images(base.astype({"item_id": str}), images)
    # before the fingerprint is first computed: the images as they are on disk now
    info.update(inputs=inputs, code=data_code_version())
    if raw.read_options:
        info["read_options"] = raw.read_options
    n_split = len(train) + len(valid) + len(test)
    ds = build_dataset(name, train, valid, test, item_table, info)
    ds.info["inputs"]["item_images"] = ds.image_signature()
    dropped[NO_TRAIN_ITEM] += n_split - (len(ds.train) + len(ds.valid) + len(ds.test))
    ds.info["dropped"] = {reason: int(n) for reason, n in dropped.items()}
    if raw.items is not None:
        ds.info["item_table"] = item_table_coverage(ds, raw.items)
    _log_summary(ds, dropped)
    if out is not None:
        ds.save(out)
    return ds


def _check_options(spec: DatasetSpec) -> None:
    """A known format, and `sep`/`encoding` only where they are read (format table)."""
    fmt = spec.reader_format()
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not known; choose one of {', '.join(FORMATS)}")
    if fmt != "table" and (spec.sep is not None or spec.encoding is not None):
        given = " and ".join(
            o for o, v in (("--sep", spec.sep), ("--encoding", spec.encoding)) if v is not None
        )
        raise ConfigError(
            f"{given} applies to --format table only (format {fmt} reads its files its own way)"
        )


def _read(
    spec: DatasetSpec, out: str | Path | None, info: dict[str, Any]
) -> tuple[readers.RawData, str | Path | None, str]:
    """The raw data, the image folder and the dataset's name; `planted` is generated first (into
    `path`, else `<out>/raw`) and then read as a table."""
    fmt = spec.reader_format()
    if fmt != GENERATED:
        raw = READERS[fmt](spec)
        return raw, spec.images, spec.name or Path(raw.source).parent.name or fmt
    raw_dir = Path(spec.path) if spec.path else (Path(out) / "raw" if out else None)
    if raw_dir is None:
        raise ConfigError("--format planted needs --path (where to generate) or --out")
    check_folder(raw_dir, "planted", "--path")
    if out is not None:
        claim_folder(out, "dataset", "dataset folder")
    generate_planted(claim_folder(raw_dir, "planted", "--path"), seed=spec.seed, **(spec.planted or {}))
    raw = readers.read_table(raw_dir / "interactions.csv", raw_dir / "items.csv")
    info.update(
        generated=True, label=GENERATED_LABEL, ground_truth=str((raw_dir / "ground_truth.json").resolve())
    )
    return raw, raw_dir / "images", spec.name or "planted-synthetic"


def _reasons(raw: readers.RawData, spec: DatasetSpec) -> dict[str, int]:
    """Every drop reason this run checks, at 0, plus what the reader already dropped."""
    dropped = {reason: 0 for reason in (readers.MALFORMED_ID, DUPLICATE_INTERACTION, NO_TRAIN_ITEM)}
    if raw.items is not None:
        dropped.update({readers.MISSING_ITEM_ID: 0, readers.DUPLICATE_ITEM: 0})
    if spec.rating_threshold is not None:
        dropped[BELOW_THRESHOLD] = 0
    if spec.k_core > 1 and raw.presplit is None:
        dropped[K_CORE] = 0
    for reason, n in raw.dropped.items():
        dropped[reason] = dropped.get(reason, 0) + n
    return dropped


def _clean_and_split(
    raw: readers.RawData, spec: DatasetSpec, dropped: dict[str, int], info: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Interactions cleaned (malformed ids, threshold, duplicates; k-core unless the splits are
    given) and split as `spec` says, or the given splits cleaned and made disjoint; the counts go
    to `dropped`, the split's description to `info["split"]`."""

    def clean(df: pd.DataFrame, source: str) -> pd.DataFrame:
        df = validate_interactions(readers.drop_malformed_ids(df, source, dropped), source)
        df = _counted(dropped, BELOW_THRESHOLD, df, lambda d: to_implicit(d, spec.rating_threshold))
        return _counted(dropped, DUPLICATE_INTERACTION, df, drop_duplicates)

    if raw.presplit is not None:
        parts = [clean(df, f"{raw.source} ({s})") for df, s in zip(raw.presplit, ("train", "valid", "test"))]
        train, valid, test, overlap = drop_split_overlaps(*parts)
        for key, reason in OVERLAPS.items():
            dropped[reason] = overlap[key]
        info["split"] = {"method": "given", "overlap": overlap}
        if any(overlap.values()):
            log.warning(
                "%s: the given splits share (user, item) pairs: %s",
                raw.source,
                "; ".join(f"{OVERLAPS[k]}: {n:,}" for k, n in overlap.items() if n),
            )
        return train, valid, test
    assert raw.interactions is not None  # a reader gives interactions or splits
    df = clean(raw.interactions, raw.source)
    df = _counted(dropped, K_CORE, df, lambda d: k_core(d, spec.k_core, raw.source))
    info["split"] = {"method": spec.split, "ratios": list(spec.ratios), "seed": spec.seed}
    if spec.split != "cold-items":
        return split_interactions(df, spec.split, spec.ratios, spec.seed)
    train, valid, test, cold = split_cold_items(df, spec.cold_fraction, spec.ratios, spec.seed)
    info["split"].update(
        cold_fraction=spec.cold_fraction,
        n_cold_items=len(cold.all),
        cold_items={"valid": cold.valid, "test": cold.test},
    )
    return train, valid, test


def _log_summary(ds: Dataset, dropped: dict[str, int]) -> None:
    """Log the rows dropped and how many users each split covers."""
    if any(dropped.values()):
        log.info("%s: rows dropped: %s", ds.name, "; ".join(f"{r}: {n:,}" for r, n in dropped.items() if n))
    stats = ds.stats()
    log.info(
        "%s: %d users; split %s covers %d users in train, %d in validation, %d in test",
        ds.name,
        stats["users"],
        ds.info["split"]["method"],
        stats["users_train"],
        stats["users_valid"],
        stats["users_test"],
    )


def drop_split_overlaps(
    train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Given splits with no (user, item) pair in two of them, and how many pairs each overlap held.

    A pair is kept in the earliest split that has it: a validation pair also in train, and a test
    pair also in train or in validation, is dropped from the later split. Such a pair can never be
    recommended there (the evaluator masks train items, and at test time by default validation
    items too), yet it would count in recall's denominator. The counts (`train_valid`,
    `train_test`, `valid_test`) are of the pairs dropped for each reason; a test pair in both
    train and validation is counted once, under `train_test`. Each split is expected to be free
    of duplicate pairs already (`drop_duplicates`).
    """

    def keys(df: pd.DataFrame) -> pd.MultiIndex:
        return pd.MultiIndex.from_arrays([df["user_id"].astype(str), df["item_id"].astype(str)])

    in_train = keys(train)
    in_valid = keys(valid)
    valid_dup = in_valid.isin(in_train)
    test_keys = keys(test)
    test_train = test_keys.isin(in_train)
    test_valid = test_keys.isin(in_valid) & ~test_train
    overlap = {
        "train_valid": int(valid_dup.sum()),
        "train_test": int(test_train.sum()),
        "valid_test": int(test_valid.sum()),
    }
    return train, valid[~valid_dup], test[~(test_train | test_valid)], overlap


def _counted(dropped: dict[str, int], reason: str, df, step):
    """`step(df)`, adding the number of rows it removed to `dropped[reason]`."""
    out = step(df)
    if len(out) != len(df):
        dropped[reason] = dropped.get(reason, 0) + len(df) - len(out)
    return out


def item_table_coverage(ds: Dataset, items) -> dict[str, int]:
    """How the item table (`items`, as read: one row per id) matches the dataset's items:
    `items_without_row` (items of the interactions the table has no row for: kept, with empty
    text), the interactions on them, and `rows_without_interactions` (table rows for items no
    kept interaction names: not in the dataset)."""
    listed = set(items["item_id"].astype(str))
    known = pd.Series(ds.item_ids).astype(str).isin(listed).to_numpy()
    counts = np.zeros(len(ds.item_ids), dtype=np.int64)
    for split in (ds.train, ds.valid, ds.test):
        counts += np.bincount(split["item"].to_numpy(), minlength=len(ds.item_ids))
    return {
        "rows": len(listed),
        "items_without_row": int((~known).sum()),
        "interactions_on_items_without_row": int(counts[~known].sum()),
        "rows_without_interactions": len(listed) - int(known.sum()),
    }
