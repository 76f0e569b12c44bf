"""What the service serves: item vectors in an index, a vector per user, what each user has seen,
and an append-only event log so a restart loses nothing.

Two modes share one scoring rule (inner product of a user vector with item vectors):
  profile  ProfileMatch (VLM4Rec): user vector = L2-normalised mean of the user's history item
           embeddings (L2-normalised); an event adds the item to the mean at once.
  factors  a trained factor model (BPR-MF, LightGCN, VBPR...): its own user/item factors; a new
           or ad-hoc user is folded in as the mean of its items' factors (an approximation, stated
           in /health), and events update what is excluded.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vlmrec.data.dataset import Dataset
from vlmrec.errors import DataError, ModelError
from vlmrec.features.featureset import FeatureSet
from vlmrec.serving.index import VectorIndex

log = logging.getLogger(__name__)


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(n, 1e-12)


@dataclass
class Recommendation:
    item_ids: list[str]
    scores: list[float]


class ServingState:
    def __init__(
        self,
        item_ids: np.ndarray,
        item_vectors: np.ndarray,
        user_ids: np.ndarray,
        user_vectors: np.ndarray | None,
        history: list[set[int]],
        mode: str,
        state_dir: str | Path,
        index_kind: str = "auto",
        description: dict | None = None,
        encoder=None,
        profile_history: list[set[int]] | None = None,
    ):
        if mode not in ("profile", "factors"):
            raise ModelError(f"serving mode {mode!r}: profile or factors")
        self.mode = mode
        self.lock = threading.Lock()
        self.item_ids = [str(i) for i in item_ids]
        self.item_index = {iid: k for k, iid in enumerate(self.item_ids)}
        vecs = _l2(item_vectors) if mode == "profile" else np.asarray(item_vectors, np.float32)
        self.item_vectors = np.ascontiguousarray(vecs)
        self.user_ids = [str(u) for u in user_ids]
        self.user_index = {uid: k for k, uid in enumerate(self.user_ids)}
        self.history = [set(h) for h in history]
        if mode == "profile":
            self.profile_sum = np.zeros((len(self.user_ids), self.item_vectors.shape[1]), np.float32)
            for u, items in enumerate(profile_history if profile_history is not None else self.history):
                if items:
                    self.profile_sum[u] = self.item_vectors[sorted(items)].sum(0)
            self.user_vectors = None
        else:
            self.user_vectors = np.asarray(user_vectors, np.float32)
        self.index = VectorIndex.build(self.item_vectors, kind=index_kind)
        self.folded_in: dict[int, bool] = {}
        self.description = description or {}
        self.encoder = encoder
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._replay()

    # ---- construction --------------------------------------------------------------------
    @classmethod
    def from_features(
        cls,
        dataset: Dataset,
        features: FeatureSet,
        state_dir,
        history_splits=("train", "valid", "test"),
        index_kind: str = "auto",
        profile_splits=("train",),
    ) -> ServingState:
        """ProfileMatch serving. `profile_splits` build each profile (as the offline model was
        fitted), `history_splits` are excluded from recommendations."""
        features.check_matches(dataset, "serving features")
        return cls(
            dataset.item_ids,
            np.asarray(features.vectors),
            dataset.user_ids,
            None,
            _history(dataset, history_splits),
            "profile",
            state_dir,
            index_kind,
            {
                "features": features.name,
                "extractor": features.manifest.get("extractor"),
                "model": "profilematch",
            },
            profile_history=_history(dataset, profile_splits),
        )

    @classmethod
    def from_factors(
        cls,
        dataset: Dataset,
        user_factors,
        item_factors,
        state_dir,
        history_splits=("train", "valid", "test"),
        index_kind: str = "auto",
        description: dict | None = None,
    ) -> ServingState:
        return cls(
            dataset.item_ids,
            item_factors,
            dataset.user_ids,
            user_factors,
            _history(dataset, history_splits),
            "factors",
            state_dir,
            index_kind,
            description,
        )

    # ---- queries -------------------------------------------------------------------------
    def user_vector(self, u: int) -> np.ndarray:
        if self.mode == "profile":
            return _l2(self.profile_sum[u])
        return self.user_vectors[u]

    def adhoc_vector(self, items: list[int], weights: list[float] | None) -> np.ndarray:
        w = np.ones(len(items), np.float32) if weights is None else np.asarray(weights, np.float32)
        v = (self.item_vectors[items] * w[:, None]).sum(0) / max(float(w.sum()), 1e-12)
        return _l2(v) if self.mode == "profile" else v

    def recommend_user(self, user_id: str, k: int) -> Recommendation:
        u = self._user(user_id)
        with self.lock:
            vec, seen = self.user_vector(u), set(self.history[u])
        return self._search(vec, k, seen)

    def recommend_items(
        self, item_ids: list[str], k: int, weights: list[float] | None = None
    ) -> Recommendation:
        items = [self._item(i) for i in item_ids]
        if weights is not None and len(weights) != len(items):
            raise DataError(f"weights: {len(weights)} values for {len(items)} items")
        return self._search(self.adhoc_vector(items, weights), k, set(items))

    def similar(self, item_id: str, k: int) -> Recommendation:
        i = self._item(item_id)
        return self._search(self.item_vectors[i], k, {i})

    def _search(self, vec, k, exclude) -> Recommendation:
        scores, ids = self.index.search(vec[None, :], k, [exclude])
        keep = ids[0] >= 0
        return Recommendation([self.item_ids[i] for i in ids[0][keep]], [float(s) for s in scores[0][keep]])

    # ---- updates -------------------------------------------------------------------------
    def add_event(
        self, user_id: str, item_id: str, timestamp: float | None = None, _log: bool = True
    ) -> bool:
        i = self._item(item_id)
        with self.lock:
            if _log:
                self._append(
                    "events.jsonl",
                    {"user_id": user_id, "item_id": item_id, "timestamp": timestamp or time.time()},
                )
            created = user_id not in self.user_index
            if created:
                self._new_user(user_id)
            u = self.user_index[user_id]
            if self.mode == "profile":
                self.profile_sum[u] += self.item_vectors[i]  # every event counts, as in the mean profile
            self.history[u].add(i)
            if self.mode == "factors" and (created or self.folded_in.get(u)):
                # users unknown to the trained model are folded in from their items' factors
                self.folded_in[u] = True
                self.user_vectors[u] = self.adhoc_vector(sorted(self.history[u]), None)
            return created

    def add_item(self, item_id: str, vector: np.ndarray, _log: bool = True) -> None:
        vector = np.asarray(vector, np.float32).ravel()
        if vector.shape[0] != self.item_vectors.shape[1]:
            raise DataError(
                f"vector has {vector.shape[0]} dims; this index holds {self.item_vectors.shape[1]}-dim vectors"
            )
        if not np.isfinite(vector).all():
            raise DataError("vector contains NaN or infinite values")
        with self.lock:
            if item_id in self.item_index:
                raise DataError(f"item {item_id!r} already exists")
            if _log:
                self._append("items.jsonl", {"item_id": item_id, "vector": vector.tolist()})
            vec = _l2(vector) if self.mode == "profile" else vector
            k = len(self.item_ids)
            self.item_ids.append(item_id)
            self.item_index[item_id] = k
            self.item_vectors = np.vstack([self.item_vectors, vec[None, :]])
            self.index.add(vec[None, :], np.array([k]))

    def _new_user(self, user_id: str) -> None:
        self.user_index[user_id] = len(self.user_ids)
        self.user_ids.append(user_id)
        self.history.append(set())
        dim = self.item_vectors.shape[1]
        if self.mode == "profile":
            self.profile_sum = np.vstack([self.profile_sum, np.zeros((1, dim), np.float32)])
        else:
            self.user_vectors = np.vstack([self.user_vectors, np.zeros((1, dim), np.float32)])

    # ---- persistence ---------------------------------------------------------------------
    def _append(self, name: str, record: dict) -> None:
        with open(self.state_dir / name, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _replay(self) -> None:
        """Re-apply the logs written before a restart (items first, then events)."""
        for rec in _read_jsonl(self.state_dir / "items.jsonl"):
            if rec["item_id"] not in self.item_index:
                self.add_item(rec["item_id"], np.asarray(rec["vector"], np.float32), _log=False)
        for rec in _read_jsonl(self.state_dir / "events.jsonl"):
            if rec["item_id"] in self.item_index:
                self.add_event(rec["user_id"], rec["item_id"], rec.get("timestamp"), _log=False)

    def _user(self, user_id: str) -> int:
        if user_id not in self.user_index:
            raise KeyError(f"unknown user {user_id!r}")
        return self.user_index[user_id]

    def _item(self, item_id: str) -> int:
        if item_id not in self.item_index:
            raise KeyError(f"unknown item {item_id!r}")
        return self.item_index[item_id]


def _history(dataset: Dataset, splits) -> list[set[int]]:
    out: list[set[int]] = [set() for _ in range(dataset.n_users)]
    for s in splits:
        df = getattr(dataset, s)
        for u, i in zip(df["user"].to_numpy(), df["item"].to_numpy()):
            out[u].add(int(i))
    return out


def _read_jsonl(path: Path):
    if not path.exists():
        return
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s: skipping an incomplete line (interrupted write)", path)
