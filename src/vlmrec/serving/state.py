"""What the service serves: item vectors in a persisted index, a vector per user, what each user
has seen, and append-only logs (events, items) so a restart, or another worker process, loses
nothing.

Two modes share one scoring rule (inner product of a user vector with item vectors):
  profile  ProfileMatch (VLM4Rec): user vector = L2-normalised mean of the user's history item
           embeddings (L2-normalised); an event adds the item to the mean at once.
  factors  a trained factor model (BPR-MF, LightGCN, VBPR...): its own user/item factors; a new
           or ad-hoc user is folded in as the mean of its items' factors (an approximation, stated
           in /health), and events update what is excluded.

State folder layout (`state_dir`):
  index/        the vector index and its manifest (kind, parameters, vectors fingerprint);
                reloaded memory-mapped on restart, rebuilt when the vectors change
  events.jsonl  one line per POST /events (fsynced before the 201)
  items.jsonl   one line per POST /items
Every worker process serving the same folder follows both logs (`sync`, one fstat per request),
so an event acknowledged by one worker is seen by all before their next answer.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from vlmrec.data.dataset import Dataset
from vlmrec.errors import DataError, ModelError
from vlmrec.features.featureset import FeatureSet
from vlmrec.serving.ids import IdMap
from vlmrec.serving.index import IndexParams, l2_normalise, open_index
from vlmrec.serving.logs import JsonlLog

log = logging.getLogger(__name__)

Mode = Literal["profile", "factors"]
Encoder = Callable[[str], np.ndarray]
MAX_ID_LEN = 256


MIN_NORM = 1e-12
"""The smallest L2 norm an item vector may have (below it, normalising divides by ~0)."""


def vector_problem(vector: np.ndarray) -> str | None:
    """Why an item vector cannot be indexed, or None: NaN or infinite values (also values beyond
    float32), all zeros (no direction: every score against it is 0), or an L2 norm that
    overflows float32 or is too small to normalise (stored as zeros or as noise)."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        v = np.asarray(vector, np.float32)
        if not np.isfinite(v).all():
            return "NaN or infinite values (or values beyond float32's range)"
        if not v.any():
            return "all zeros: a vector without a direction cannot be ranked"
        norm = float(np.linalg.norm(v))
    if not math.isfinite(norm):
        return "its length (L2 norm) overflows float32; scale it down"
    if norm < MIN_NORM:
        return f"its length (L2 norm) is below {MIN_NORM:g}, too small to normalise; scale it up"
    return None


def _l2(x: np.ndarray) -> np.ndarray:
    return l2_normalise(x)


@dataclass
class Recommendation:
    item_ids: list[str]
    scores: list[float]


class _Rows:
    """A float32 matrix that grows by rows with amortised O(1) appends."""

    def __init__(self, data: np.ndarray):
        self.data = np.array(data, dtype=np.float32, order="C")
        self.n = len(self.data)

    def append_zero(self) -> int:
        if self.n == len(self.data):
            grown = np.zeros((max(16, 2 * len(self.data)), self.data.shape[1]), np.float32)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.data[self.n] = 0
        self.n += 1
        return self.n - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.data[i]


class ServingState:
    """Item index, user vectors, histories and logs behind the web service (see module doc)."""

    def __init__(
        self,
        item_ids: Sequence | np.ndarray,
        item_vectors: np.ndarray,
        user_ids: Sequence | np.ndarray,
        user_vectors: np.ndarray | None,
        history: list[set[int]],
        mode: Mode,
        state_dir: str | Path,
        index_kind: str = "auto",
        description: dict | None = None,
        encoder: Encoder | None = None,
        profile_pairs: tuple[np.ndarray, np.ndarray] | None = None,
        index_params: IndexParams | None = None,
    ):
        """`item_vectors` may be memory-mapped: it is streamed into the persisted index (or only
        fingerprinted, when the index in `state_dir` already matches it) and not kept.
        `profile_pairs` = (users, items) interactions that build each profile (profile mode;
        default: every pair in `history`)."""
        if mode not in ("profile", "factors"):
            raise ModelError(f"serving mode {mode!r}: profile or factors")
        self.mode: Mode = mode
        self.lock = threading.RLock()
        self.items = IdMap(item_ids, "item")
        if len(item_vectors) != len(self.items):
            raise DataError(f"serving: {len(item_vectors)} item vectors for {len(self.items)} item ids")
        self.state_dir = _state_folder(Path(state_dir))
        self.index_choice = index_kind
        self.index = open_index(
            self.state_dir / "index", item_vectors, index_kind, index_params, normalise=mode == "profile"
        )
        self.dim = self.index.dim
        self.users = IdMap(user_ids, "user")
        self.history = [set(h) for h in history]
        if len(self.history) != len(self.users):
            raise DataError(f"serving: {len(self.history)} histories for {len(self.users)} users")
        if mode == "profile":
            if profile_pairs is None:
                users = np.repeat(np.arange(len(self.history)), [len(h) for h in self.history])
                items = np.fromiter((i for h in self.history for i in sorted(h)), np.int64, len(users))
                profile_pairs = (users, items)
            self.user_rows = _Rows(self._profile_sums(*profile_pairs))
        else:
            if user_vectors is None or len(user_vectors) != len(self.users):
                raise DataError("factor serving needs one user vector per user")
            self.user_rows = _Rows(user_vectors)
        self.folded_in: set[int] = set()
        self.description = description or {}
        self.encoder = encoder
        self.skipped_events = 0
        self.items_log = JsonlLog(self.state_dir / "items.jsonl")
        self.events_log = JsonlLog(self.state_dir / "events.jsonl")
        self.sync()

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
        index_params: IndexParams | None = None,
    ) -> ServingState:
        """ProfileMatch serving. `profile_splits` build each profile (as the offline model was
        fitted), `history_splits` are excluded from recommendations."""
        features.check_matches(dataset, "serving features")
        return cls(
            dataset.item_ids,
            features.vectors,
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
            profile_pairs=_pairs(dataset, profile_splits),
            index_params=index_params,
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
        index_params: IndexParams | None = None,
    ) -> ServingState:
        """Serving a trained factor model's own user and item factors."""
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
            index_params=index_params,
        )

    def _profile_sums(self, users: np.ndarray, items: np.ndarray, block: int = 16_384) -> np.ndarray:
        """Per-user sums of history item vectors, in the given pair order, block by block (never
        a second copy of the item vectors)."""
        users = np.asarray(users, np.int64)
        items = np.asarray(items, np.int64)
        order = np.argsort(users, kind="stable")
        users, items = users[order], items[order]
        out = np.zeros((len(self.users), self.dim), np.float32)
        for s in range(0, len(users), block):
            u, rows = users[s : s + block], self.index.rows(items[s : s + block])
            starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
            out[u[starts]] += np.add.reduceat(rows, starts, axis=0)
        return out

    # ---- queries -------------------------------------------------------------------------
    def user_vector(self, u: int) -> np.ndarray:
        """The user's query vector (profile: the normalised history mean; factors: its factors)."""
        if self.mode == "profile":
            return _l2(self.user_rows[u])
        return self.user_rows[u]

    def adhoc_vector(self, items: list[int], weights: Sequence[float] | None) -> np.ndarray:
        """The query vector of an ad-hoc history (weighted mean of its items' vectors)."""
        rows = self.index.rows(items)
        w = np.ones(len(items), np.float64) if weights is None else np.asarray(weights, np.float64)
        total = float(w.sum())
        if not math.isfinite(total) or total <= 0:
            raise DataError("weights must be finite and sum to a positive number")
        v = ((rows.astype(np.float64) * w[:, None]).sum(0) / total).astype(np.float32)
        return _l2(v) if self.mode == "profile" else v

    def recommend_user(self, user_id: str, k: int) -> Recommendation:
        """Top-k unseen items for a known user."""
        self.sync()
        with self.lock:
            u = self._user(user_id)
            return self._search(self.user_vector(u), k, self.history[u])

    def recommend_items(
        self, item_ids: list[str], k: int, weights: Sequence[float] | None = None
    ) -> Recommendation:
        """Top-k items for an ad-hoc history (its items excluded)."""
        if weights is not None and len(weights) != len(item_ids):
            raise DataError(f"weights: {len(weights)} values for {len(item_ids)} items")
        self.sync()
        with self.lock:
            items = [self.items.position(i) for i in item_ids]
            return self._search(self.adhoc_vector(items, weights), k, set(items))

    def similar(self, item_id: str, k: int) -> Recommendation:
        """The k items nearest to one item (itself excluded)."""
        self.sync()
        with self.lock:
            i = self._item(item_id)
            return self._search(self.index.rows([i])[0], k, {i})

    def _search(self, vec: np.ndarray, k: int, exclude: set[int]) -> Recommendation:
        scores, ids = self.index.search(vec[None, :], k, [exclude])
        keep = ids[0] >= 0
        return Recommendation(self.items.names(ids[0][keep]), scores[0][keep].tolist())

    # ---- updates -------------------------------------------------------------------------
    def add_event(self, user_id: str, item_id: str, timestamp: float | None = None) -> bool:
        """Record that `user_id` interacted with `item_id`: logged and fsynced, then applied.
        Returns whether the user was new."""
        if timestamp is not None and not math.isfinite(timestamp):
            raise DataError("timestamp must be a finite number")
        record = {
            "user_id": user_id,
            "item_id": item_id,
            "timestamp": time.time() if timestamp is None else float(timestamp),
        }
        with self.events_log.locked():
            self.sync()
            with self.lock:
                self._item(item_id)
                created = user_id not in self.users
            self.events_log.append(record)
            self.sync()
        return created

    def add_item(self, item_id: str, vector: np.ndarray) -> None:
        """Add a new item (logged and fsynced, then indexed in every worker)."""
        vector = np.asarray(vector, np.float32).ravel()
        self._check_vector(vector)
        with self.items_log.locked():
            self.sync()
            with self.lock:
                if item_id in self.items:
                    raise DataError(f"item {item_id!r} already exists")
            self.items_log.append({"item_id": item_id, "vector": vector.tolist()})
            self.sync()

    def _check_vector(self, vector: np.ndarray) -> None:
        if vector.shape[0] != self.dim:
            raise DataError(f"vector has {vector.shape[0]} dims; this index holds {self.dim}-dim vectors")
        problem = vector_problem(vector)
        if problem:
            raise DataError(f"vector: {problem}")

    # ---- following the logs ------------------------------------------------------------------
    def sync(self) -> None:
        """Apply what any process appended to the logs since the last call (items first)."""
        if not (self.items_log.changed() or self.events_log.changed()):
            return
        with self.lock:
            for line, rec in self.items_log.read_new():
                self._apply_item(line, rec)
            for line, rec in self.events_log.read_new():
                self._apply_event(line, rec)

    def _apply_item(self, line: int, rec: dict) -> None:
        item_id, vector = rec.get("item_id"), rec.get("vector")
        if not isinstance(item_id, str) or not 0 < len(item_id) <= MAX_ID_LEN:
            self.items_log.skip(line, "no valid 'item_id'")
            return
        try:
            vec = np.asarray(vector, dtype=np.float32).ravel()
            self._check_vector(vec)
        except (TypeError, ValueError, DataError) as e:
            self.items_log.skip(line, f"bad 'vector' ({e})")
            return
        if item_id in self.items:
            self.items_log.skip(line, f"item {item_id!r} already exists")
            return
        vec = _l2(vec) if self.mode == "profile" else vec
        self.index.add(vec[None, :], [len(self.items)])
        self.items.append(item_id)

    def _apply_event(self, line: int, rec: dict) -> None:
        user_id, item_id, ts = rec.get("user_id"), rec.get("item_id"), rec.get("timestamp")
        if not isinstance(user_id, str) or not 0 < len(user_id) <= MAX_ID_LEN:
            self.events_log.skip(line, "no valid 'user_id'")
            return
        if not isinstance(item_id, str) or not item_id:
            self.events_log.skip(line, "no valid 'item_id'")
            return
        if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int | float)):
            self.events_log.skip(line, "'timestamp' is not a number")
            return
        i = self.items.get(item_id)
        if i is None:
            self.skipped_events += 1
            log.warning("%s line %d: unknown item %r; event skipped", self.events_log.path, line, item_id)
            return
        u = self.users.get(user_id)
        if u is None:
            u = self._new_user(user_id)
        if self.mode == "profile":
            self.user_rows.data[u] += self.index.rows([i])[0]  # every event counts, as in the mean profile
        self.history[u].add(i)
        if self.mode == "factors" and u in self.folded_in:
            # users unknown to the trained model are folded in from their items' factors
            self.user_rows.data[u] = self.adhoc_vector(sorted(self.history[u]), None)

    def _new_user(self, user_id: str) -> int:
        u = self.user_rows.append_zero()
        if self.users.append(user_id) != u:
            raise ModelError("serving: user vectors and user ids out of step")
        self.history.append(set())
        if self.mode == "factors":
            self.folded_in.add(u)
        return u

    # ---- status ----------------------------------------------------------------------------
    def health(self) -> dict:
        """Counts, index and log facts for GET /health."""
        self.sync()
        return {
            "mode": self.mode,
            "items": len(self.items),
            "users": len(self.users),
            "dim": self.dim,
            "index": self.index.kind,
            "index_choice": self.index_choice,
            "index_detail": self.index.describe(),
            "bad_log_lines": {
                "events.jsonl": self.events_log.bad_lines,
                "items.jsonl": self.items_log.bad_lines,
            },
            "skipped_events": self.skipped_events,
        }

    def _user(self, user_id: str) -> int:
        return self.users.position(user_id)

    def _item(self, item_id: str) -> int:
        return self.items.position(item_id)


def _state_folder(d: Path) -> Path:
    """`d` as a writable folder (created if absent), or a DataError saying what it is instead."""
    if d.exists() and not d.is_dir():
        raise DataError(f"state folder {d}: is a file, not a folder; give --state-dir a folder")
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = d / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise DataError(
            f"state folder {d}: cannot write there ({e.strerror or e}); give --state-dir a writable folder"
        ) from None
    return d


def _history(dataset: Dataset, splits) -> list[set[int]]:
    out: list[set[int]] = [set() for _ in range(dataset.n_users)]
    for s in splits:
        df = getattr(dataset, s)
        for u, i in zip(df["user"].to_numpy(), df["item"].to_numpy()):
            out[u].add(int(i))
    return out


def _pairs(dataset: Dataset, splits) -> tuple[np.ndarray, np.ndarray]:
    """(users, items) of `splits` ordered by user, then time where there is a timestamp (the
    offline ProfileMatch's summation order); duplicates kept, as the offline profile keeps them."""
    frames = [getattr(dataset, s) for s in splits]
    if not frames:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    df = pd.concat([f[[c for c in ("user", "item", "timestamp") if c in f.columns]] for f in frames])
    df = df.sort_values(["user", "timestamp"] if "timestamp" in df.columns else ["user"], kind="stable")
    return df["user"].to_numpy(np.int64), df["item"].to_numpy(np.int64)
