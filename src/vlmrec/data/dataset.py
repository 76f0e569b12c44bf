"""The Dataset: contiguous ids, train/valid/test CSR matrices and the item table, on disk as
Parquet + a JSON manifest (see ARCHITECTURE.md, "Core contracts")."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from vlmrec.artifact_io import read_json, read_parquet, require_keys
from vlmrec.errors import DataError
from vlmrec.folders import claim_folder
from vlmrec.provenance import hash_arrays, hash_json

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
# 1: ids + splits only (manifests written before `fingerprint_scheme` existed);
# 2: + item table content + the recorded signature of the inputs (`info["inputs"]`)
FINGERPRINT_SCHEME = 2
DATASET_FORMAT = 1
_REPREPARE = "prepare the dataset again (`vlmrec prepare`) or restore the folder"
"""Version of the prepared-folder layout (manifest.json + Parquet files); load refuses newer ones."""


@dataclass
class Dataset:
    """Interactions with contiguous int ids (`user`, `item` from 0) and the maps back.

    `train`, `valid`, `test` are DataFrames with int columns `user`, `item` (plus `rating`,
    `timestamp` when known); the CSR views are built on demand. `items` has `item`, `item_id`,
    any text columns and `image_path` (None where the item has no image).
    """

    name: str
    user_ids: np.ndarray
    item_ids: np.ndarray
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    items: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def matrix(self, split: str) -> sp.csr_matrix:
        """Binary users x items CSR matrix of one split."""
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; expected one of {SPLITS}")
        cache = self.__dict__.setdefault("_csr", {})
        if split not in cache:
            df = getattr(self, split)
            m = sp.csr_matrix(
                (np.ones(len(df), dtype=np.float32), (df["user"].to_numpy(), df["item"].to_numpy())),
                shape=(self.n_users, self.n_items),
            )
            m.sum_duplicates()
            m.data[:] = 1.0
            cache[split] = m
        return cache[split]

    @property
    def fingerprint(self) -> str:
        """Content hash that feature sets and results are tied to.

        Covers the ids and the three splits, the item table (every column: text, image paths),
        and `info["inputs"]`: the content hashes of the input files and the size/mtime signature
        of the item images recorded by `prepare_dataset` (file paths left out, so the same data
        elsewhere has the same fingerprint). Editing an interaction, an item's text or an image
        therefore gives a new fingerprint, and features made before are refused.
        """
        if "_fp" not in self.__dict__:
            arrays = [np.asarray(self.user_ids, dtype=str), np.asarray(self.item_ids, dtype=str)]
            for s in SPLITS:
                df = getattr(self, s)
                arrays += [df["user"].to_numpy(np.int64), df["item"].to_numpy(np.int64)]
            ids = hash_arrays(*arrays)
            if self.__dict__.get("_scheme", FINGERPRINT_SCHEME) == 1:
                self.__dict__["_fp"] = ids
            else:
                inputs = _without_paths(self.info.get("inputs", {}))
                self.__dict__["_fp"] = hash_json([ids, self.items_hash, inputs])
        return self.__dict__["_fp"]

    @property
    def items_hash(self) -> str:
        """Content hash of the item table (column names and every value, in item order)."""
        if "_items_hash" not in self.__dict__:
            values = pd.util.hash_pandas_object(self.items, index=False).to_numpy()
            names = np.asarray([str(c) for c in self.items.columns], dtype=str)
            self.__dict__["_items_hash"] = hash_arrays(names, values)
        return self.__dict__["_items_hash"]

    def image_signature(self) -> str:
        """Hash of (item id, file name, size, mtime) of every item image as it is on disk now."""
        entries: list[tuple[str, str, int, int] | tuple[str, str, str]] = []  # missing: no size/mtime
        for item_id, path in zip(self.items["item_id"], self.items["image_path"]):
            if path is None or path != path:
                continue
            try:
                st = Path(path).stat()
                entries.append((str(item_id), Path(path).name, st.st_size, st.st_mtime_ns))
            except OSError:
                entries.append((str(item_id), Path(path).name, "missing"))
        return hash_json(entries)

    def stats(self) -> dict[str, Any]:
        """Sizes: users, items, interactions per split, users each split covers, density, images."""
        n = sum(len(getattr(self, s)) for s in SPLITS)
        return {
            "users": self.n_users,
            "items": self.n_items,
            "interactions": n,
            "train": len(self.train),
            "valid": len(self.valid),
            "test": len(self.test),
            "users_train": int(self.train["user"].nunique()),
            "users_valid": int(self.valid["user"].nunique()),
            "users_test": int(self.test["user"].nunique()),
            "density": n / max(1, self.n_users * self.n_items),
            "items_with_image": int(self.items["image_path"].notna().sum()),
        }

    def text_columns(self) -> list[str]:
        return [c for c in self.items.columns if c not in ("item", "item_id", "image_path")]

    # ---- persistence -------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the dataset to `directory` (Parquet files + manifest.json, written last). The
        folder must be new, empty or a prepared dataset's (`folders.claim_folder`): a folder of
        the user's is refused before anything is written."""
        d = claim_folder(directory, "dataset", "dataset folder")
        for s in SPLITS:
            getattr(self, s).to_parquet(d / f"{s}.parquet", index=False)
        pd.DataFrame({"user": np.arange(self.n_users), "user_id": self.user_ids.astype(str)}).to_parquet(
            d / "users.parquet", index=False
        )
        self.items.to_parquet(d / "items.parquet", index=False)
        manifest = {
            "dataset_format": DATASET_FORMAT,
            "name": self.name,
            "fingerprint": self.fingerprint,
            "fingerprint_scheme": self.__dict__.get("_scheme", FINGERPRINT_SCHEME),
            "stats": self.stats(),
            **self.info,
        }
        (d / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        return d

    @classmethod
    def load(cls, directory: str | Path) -> Dataset:
        d = Path(directory)
        if not (d / "manifest.json").exists():
            raise DataError(
                f"{d}: not a prepared dataset (no manifest.json); create one with `vlmrec prepare`"
            )
        manifest = read_json(d / "manifest.json", "dataset manifest", _REPREPARE)
        require_keys(manifest, ("name", "fingerprint"), d / "manifest.json", "dataset manifest", _REPREPARE)
        try:
            fmt = int(manifest.get("dataset_format", 1))
            scheme = int(manifest.get("fingerprint_scheme", 1))
        except (TypeError, ValueError):
            raise DataError(
                f"{d / 'manifest.json'}: damaged dataset manifest (a format number); {_REPREPARE}"
            ) from None
        if fmt > DATASET_FORMAT:
            raise DataError(
                f"{d}: dataset folder format {fmt} is newer than this vlmrec reads ({DATASET_FORMAT}); "
                "upgrade vlmrec or prepare the dataset again"
            )

        def table(name: str, columns: tuple[str, ...]) -> pd.DataFrame:
            return read_parquet(d / f"{name}.parquet", "prepared dataset", _REPREPARE, columns)

        users = table("users", ("user", "user_id"))
        items = table("items", ("item", "item_id", "image_path"))
        splits = {s: table(s, ("user", "item")) for s in SPLITS}
        reserved = ("dataset_format", "name", "fingerprint", "fingerprint_scheme", "stats")
        info = {k: v for k, v in manifest.items() if k not in reserved}
        ds = cls(
            name=manifest["name"],
            user_ids=users["user_id"].to_numpy(dtype=object),
            item_ids=items["item_id"].to_numpy(dtype=object),
            items=items,
            info=info,
            **splits,
        )
        ds.__dict__["_scheme"] = scheme
        try:
            fingerprint = ds.fingerprint
        except (TypeError, ValueError, OverflowError) as e:  # e.g. text in an int column
            raise DataError(f"{d}: damaged prepared dataset ({e}); {_REPREPARE}") from None
        if fingerprint != manifest["fingerprint"]:
            raise DataError(
                f"{d}: the files do not match the fingerprint in manifest.json "
                f"({ds.fingerprint} != {manifest['fingerprint']}); re-run `vlmrec prepare`"
            )
        return ds


def _without_paths(obj: Any) -> Any:
    """`obj` with every "path" key removed (nested dicts and lists)."""
    if isinstance(obj, dict):
        return {k: _without_paths(v) for k, v in obj.items() if k != "path"}
    if isinstance(obj, list):
        return [_without_paths(v) for v in obj]
    return obj


def build_dataset(
    name: str,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    test: pd.DataFrame,
    items: pd.DataFrame | None = None,
    info: dict[str, Any] | None = None,
) -> Dataset:
    """Map raw string ids to contiguous ints. Users without a train item are dropped from
    validation and test (they could never be scored fairly); items keep their rows even when
    only seen in valid/test, so content models can rank cold items."""
    users = np.array(sorted(train["user_id"].unique()), dtype=object)
    if len(users) == 0:
        raise DataError(f"{name}: the training split is empty")
    all_items = pd.concat([train["item_id"], valid["item_id"], test["item_id"]]).unique()
    item_ids = np.array(sorted(all_items), dtype=object)
    user_index = pd.Index(users)
    item_index = pd.Index(item_ids)

    def encode(df: pd.DataFrame, split: str) -> pd.DataFrame:
        u = user_index.get_indexer(df["user_id"])
        keep = u >= 0
        if (~keep).any():
            log.info("%s: %d %s rows of users without train items dropped", name, (~keep).sum(), split)
        out = pd.DataFrame(
            {
                "user": u[keep].astype(np.int64),
                "item": item_index.get_indexer(df["item_id"][keep]).astype(np.int64),
            }
        )
        for extra in ("rating", "timestamp"):
            if extra in df.columns:
                out[extra] = df[extra].to_numpy()[keep]
        return out.reset_index(drop=True)

    table = pd.DataFrame({"item": np.arange(len(item_ids)), "item_id": item_ids.astype(str)})
    if items is not None and len(items):
        if "item_id" not in items.columns:
            raise DataError(f"{name}: the item table has no 'item_id' column")
        extra = items.copy()
        extra["item_id"] = extra["item_id"].astype(str)
        extra = extra.drop_duplicates("item_id", keep="last")
        table = table.merge(extra, on="item_id", how="left")
    if "image_path" not in table.columns:
        table["image_path"] = None
    table["image_path"] = table["image_path"].astype(object).where(table["image_path"].notna(), None)
    for col in table.columns:
        if col not in ("item", "item_id", "image_path") and table[col].dtype == object:
            table[col] = table[col].fillna("").astype(str)
    return Dataset(
        name=name,
        user_ids=users,
        item_ids=item_ids,
        train=encode(train, "train"),
        valid=encode(valid, "valid"),
        test=encode(test, "test"),
        items=table,
        info=info or {},
    )
