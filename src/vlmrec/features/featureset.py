"""FeatureSet: one float32 vector per item, aligned to a Dataset, with its provenance.

On disk: `vectors.npy` (memory-mappable) + `manifest.json` holding at least extractor, model,
dim, n_items, dataset_fingerprint, failed (list of {item, reason}), item_ids_hash and items_hash
(the content of the item table the features were made from).
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vlmrec.data.dataset import Dataset
from vlmrec.errors import DataError
from vlmrec.folders import claim_folder
from vlmrec.provenance import code_version, hash_arrays

FEATURESET_FORMAT = 1
"""Version of the FeatureSet folder layout (vectors.npy + manifest.json); load refuses newer ones."""


def item_ids_hash(item_ids: np.ndarray) -> str:
    return hash_arrays(np.asarray(item_ids, dtype=str))


@dataclass
class FeatureSet:
    """Item vectors aligned with one dataset's items, with their provenance.

    Attributes:
        vectors: float32 (n_items, dim), row i for `dataset.item_ids[i]`.
        manifest: how the vectors were made and for which items: extractor, model, dataset
            fingerprint, item-ids and item-table hashes (checked on load), failed items and the
            missing-item policy, code version.
    """

    vectors: np.ndarray
    manifest: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.vectors = np.asarray(self.vectors, dtype=np.float32)
        if self.vectors.ndim != 2:
            raise DataError(f"feature vectors must be 2-D (items x dim), got shape {self.vectors.shape}")
        self.manifest.setdefault("failed", [])
        self.manifest["dim"] = int(self.vectors.shape[1])
        self.manifest["n_items"] = int(self.vectors.shape[0])

    @property
    def name(self) -> str:
        return str(self.manifest.get("name") or self.manifest.get("extractor", "features"))

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    @property
    def failed_items(self) -> np.ndarray:
        return np.array([f["item"] for f in self.manifest.get("failed", [])], dtype=np.int64)

    @classmethod
    def create(cls, vectors: np.ndarray, dataset: Dataset, **manifest: Any) -> FeatureSet:
        """A FeatureSet for `dataset` with the standard provenance fields filled in."""
        if len(vectors) != dataset.n_items:
            raise DataError(f"{len(vectors)} feature rows for a dataset with {dataset.n_items} items")
        base = {
            "dataset": dataset.name,
            "dataset_fingerprint": dataset.fingerprint,
            "item_ids_hash": item_ids_hash(dataset.item_ids),
            "items_hash": dataset.items_hash,
            "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "code_version": code_version(),
        }
        base.update(manifest)
        return cls(vectors, base)

    def derive(self, vectors: np.ndarray, **changes: Any) -> FeatureSet:
        """A new FeatureSet from this one (fusion, control), inheriting dataset provenance."""
        manifest: dict[str, Any] = {
            k: self.manifest[k]
            for k in ("dataset", "dataset_fingerprint", "item_ids_hash", "items_hash")
            if k in self.manifest
        }
        manifest.update(
            created_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), code_version=code_version()
        )
        manifest.update(changes)
        manifest.setdefault("failed", self.manifest.get("failed", []))
        return FeatureSet(vectors, manifest)

    def check_matches(self, dataset: Dataset, source: str = "feature set") -> None:
        """Refuse features made for another dataset, or another version of it: other
        interactions, another item table (`items_hash`) or other item images (fingerprint)."""
        if self.vectors.shape[0] != dataset.n_items:
            raise DataError(
                f"{source}: {self.vectors.shape[0]} rows but the dataset has {dataset.n_items} items"
            )
        fp = self.manifest.get("dataset_fingerprint")
        table = self.manifest.get("items_hash")
        stale_table = table is not None and table != dataset.items_hash
        if fp != dataset.fingerprint or stale_table:
            why = (
                "the item table differs from the one the features were made from "
                "(item text or image paths changed, or another dataset)"
                if stale_table
                else "its interactions or item images changed, or it is another dataset"
            )
            raise DataError(
                f"{source}: made for dataset fingerprint {fp}, but {dataset.name!r} has {dataset.fingerprint}: "
                f"{why}; re-extract the features for this dataset"
            )
        ih = self.manifest.get("item_ids_hash")
        if ih is not None and ih != item_ids_hash(dataset.item_ids):
            raise DataError(f"{source}: item ids differ from the dataset's; re-extract the features")

    def save(self, directory: str | Path) -> Path:
        """Write vectors.npy and manifest.json into `directory`. The folder must be new, empty or
        a FeatureSet's (`folders.claim_folder`): a folder of the user's is refused before
        anything is written."""
        d = claim_folder(directory, "featureset", "feature set folder")
        tmp = d / "vectors.tmp.npy"
        np.save(tmp, self.vectors)
        tmp.replace(d / "vectors.npy")
        manifest = {**self.manifest, "featureset_format": FEATURESET_FORMAT}
        (d / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        return d

    @classmethod
    def load(cls, directory: str | Path, dataset: Dataset | None = None, mmap: bool = False) -> FeatureSet:
        d = Path(directory)
        if not (d / "manifest.json").exists() or not (d / "vectors.npy").exists():
            raise DataError(
                f"{d}: not a feature set (expected vectors.npy and manifest.json); create one with `vlmrec extract`"
            )
        manifest = json.loads((d / "manifest.json").read_text())
        fmt = int(manifest.get("featureset_format", 1))
        if fmt > FEATURESET_FORMAT:
            raise DataError(
                f"{d}: feature set format {fmt} is newer than this vlmrec reads ({FEATURESET_FORMAT}); "
                "upgrade vlmrec or extract again"
            )
        manifest.setdefault("name", d.name)
        vectors = np.load(d / "vectors.npy", mmap_mode="r" if mmap else None)
        fs = cls(vectors, manifest)
        if dataset is not None:
            fs.check_matches(dataset, str(d))
        return fs
