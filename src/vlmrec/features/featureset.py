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

from vlmrec.artifact_io import load_npy, nonfinite_rows, read_json
from vlmrec.data.dataset import Dataset
from vlmrec.errors import DataError
from vlmrec.folders import claim_folder
from vlmrec.provenance import code_version, hash_arrays

FEATURESET_FORMAT = 1
"""Version of the FeatureSet folder layout (vectors.npy + manifest.json); load refuses newer ones."""
_REDO = "extract the features again (or restore the folder)"


def _failed_entry(entry: Any, n_rows: int) -> bool:
    """True for a manifest `failed` entry naming a row of the vectors: {"item": int, ...}."""
    if not isinstance(entry, dict):
        return False
    item = entry.get("item")
    return isinstance(item, int) and not isinstance(item, bool) and 0 <= item < n_rows


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
        with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: check_finite names it
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
        """Read a FeatureSet folder. A damaged folder (broken manifest, truncated or non-float
        `vectors.npy`, a shape the manifest does not describe) and vectors holding NaN or
        infinite values are refused with a DataError naming the file and the items: a
        non-finite row would silently sink every score it enters (issue 23)."""
        d = Path(directory)
        if not (d / "manifest.json").exists() or not (d / "vectors.npy").exists():
            raise DataError(
                f"{d}: not a feature set (expected vectors.npy and manifest.json); create one with `vlmrec extract`"
            )
        manifest = read_json(d / "manifest.json", "feature set manifest", _REDO)
        try:
            fmt = int(manifest.get("featureset_format", 1))
        except (TypeError, ValueError):
            raise DataError(
                f"{d / 'manifest.json'}: damaged feature set manifest (featureset_format)"
            ) from None
        if fmt > FEATURESET_FORMAT:
            raise DataError(
                f"{d}: feature set format {fmt} is newer than this vlmrec reads ({FEATURESET_FORMAT}); "
                "upgrade vlmrec or extract again"
            )
        manifest.setdefault("name", d.name)
        failed = manifest.get("failed", [])
        if not isinstance(failed, list):
            raise DataError(f"{d / 'manifest.json'}: damaged feature set manifest ('failed' is not a list)")
        vectors = load_npy(d / "vectors.npy", "feature vectors", mmap=mmap, hint=_REDO)
        bad = [f for f in failed if not _failed_entry(f, vectors.shape[0])]
        if bad:
            raise DataError(
                f"{d / 'manifest.json'}: damaged feature set manifest (a 'failed' entry {str(bad[0])[:60]} is "
                f"not {{item: row number, reason: text}}); {_REDO}"
            )
        for key, size in (("n_items", vectors.shape[0]), ("dim", vectors.shape[1])):
            if key in manifest and manifest[key] != size:
                raise DataError(
                    f"{d}: vectors.npy has shape {vectors.shape} but manifest.json says {key} = "
                    f"{manifest[key]!r}; the folder was altered: {_REDO}"
                )
        fs = cls(vectors, manifest)
        fs.check_finite(str(d), dataset)
        if dataset is not None:
            fs.check_matches(dataset, str(d))
        return fs

    def check_finite(self, source: str, dataset: Dataset | None = None) -> None:
        """Refuse vectors holding NaN or infinite values (also values beyond float32's range),
        naming the first items (their ids when `dataset` has as many items as there are rows)."""
        bad = nonfinite_rows(self.vectors)
        if not len(bad):
            return
        if dataset is not None and dataset.n_items == len(self.vectors):
            names = ", ".join(repr(str(dataset.item_ids[i])) for i in bad[:5])
        else:
            names = ", ".join(f"row {i}" for i in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise DataError(
            f"{source}: {len(bad)} item vector(s) hold NaN or infinite values ({names}{more}); "
            "they would sink every score they enter: extract the features again (failed items "
            "are then filled by the missing-item policy and listed) or fix vectors.npy"
        )
