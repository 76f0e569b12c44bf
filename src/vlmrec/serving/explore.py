"""`vlmrec explore RUN`: a web page to look at what each evaluated model of a run recommends.

One FastAPI app on 127.0.0.1 serves a plain HTML page and a little JavaScript
(serving/static/explore.html, explore.js: no build step, no CDN) and a small JSON API:

    GET /                      the page; every view is a URL that loads straight into it:
                               /?user=ID&k=10&models=a,b   a test user's history and each model's top-K
                               /?items=I1,I2&k=10          an ad-hoc history composed by clicking items
                               /?item=ID                   an item and its nearest items by content
                               (an unknown user or item id is answered 404, with the page saying so)
    GET /api/info              the run, its models (URL names), the defaults
    GET /api/users?q=          test users whose id contains q
    GET /api/items?q=          items whose id or title contains q
    GET /api/recommend         ?user=ID or ?items=I1,I2 with &k= and &models=: one column per model
    GET /api/items/{id}        an item's text, description and nearest items by content
    GET /images/{id}           the item's image, from the dataset's image folder, by item id only

A known user's top-K is exactly the evaluator's (`Evaluator.topk`: the run's test-time mask, ties
by lowest item index), from the model each row saved. An ad-hoc history is scored by factor
models folded in as the mean of the history's item factors (the rule of `vlmrec serve`), and by
ItemKNN, EASE^R and AttributeKNN exactly (their scores read a user only through the training row
`train_`, here replaced by the history); MostPop ranks as for everyone; other models say they
cannot score a new history.
"""

from __future__ import annotations

import copy
import heapq
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from vlmrec.data.dataset import Dataset
from vlmrec.errors import ConfigError, DataError, NotFoundError
from vlmrec.evaluation.segments import item_segments
from vlmrec.experiments.artifacts import RunArtifact
from vlmrec.experiments.examples import (
    RowModel,
    best_pair,
    item_titles,
    load_models,
    order_rows,
    recent_history,
    run_descriptions,
    run_mask,
    run_rows,
)
from vlmrec.models.base import FactorModel, Recommender

log = logging.getLogger(__name__)

MAX_K = 100
MAX_HISTORY = 200  # items in an ad-hoc history
SEARCH_LIMIT = 50
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
}
#: models whose score reads a user only through their training row `train_` (users x items):
#: an ad-hoc history is scored exactly by putting it in that row
HISTORY_ROW_MODELS = frozenset({"itemknn", "ease", "attributeknn"})
#: models whose ranking is the same for every user
USER_FREE_MODELS = frozenset({"mostpop"})
AdhocRule = Literal["exact", "fold-in", "same for everyone", "none"]


@dataclass(frozen=True)
class Served:
    """One row of the run served by the page: its saved model and how it scores a new history."""

    name: str  # in URLs (`models=`): the row's slug, made unique
    row: RowModel
    model: Recommender
    adhoc: AdhocRule


def adhoc_rule(model: Recommender) -> AdhocRule:
    """How `model` scores an ad-hoc history (see the module docstring)."""
    if isinstance(model, FactorModel):
        return "fold-in"
    if model.name in HISTORY_ROW_MODELS:
        return "exact"
    return "same for everyone" if model.name in USER_FREE_MODELS else "none"


def adhoc_scores(served: Served, history: np.ndarray, n_items: int) -> np.ndarray | None:
    """Scores of every item for a user whose history is `history` (item indices); None when the
    model cannot score a new history."""
    model = served.model
    if served.adhoc == "fold-in":
        assert isinstance(model, FactorModel)
        user = np.asarray(model.item_factors_[history], dtype=np.float32).mean(axis=0)
        return np.asarray(model.item_factors_ @ user, dtype=np.float32)
    if served.adhoc == "exact":
        row = sp.csr_matrix(
            (np.ones(len(history), np.float32), (np.zeros(len(history), np.int64), history)),
            shape=(1, n_items),
        )
        scorer = copy.copy(model)
        scorer.train_ = row  # type: ignore[attr-defined]  # HISTORY_ROW_MODELS all have it
        return np.asarray(scorer.score(np.array([0])), dtype=np.float32)[0]
    if served.adhoc == "same for everyone":
        return np.asarray(model.score(np.array([0])), dtype=np.float32)[0]
    return None


class Explorer:
    """Everything the explore page reads from a run, loaded once."""

    def __init__(self, run_dir: str | Path) -> None:
        from vlmrec.evaluation.evaluator import Evaluator

        self.run_dir = Path(run_dir)
        folder = RunArtifact(self.run_dir)
        summary = folder.summary()
        self.name = str(summary.get("name", self.run_dir.name))
        self.ds = Dataset.load(folder.dataset_dir())
        rows = run_rows(folder)
        if not rows:
            raise DataError(
                f"{self.run_dir}: no cell of this run kept its fitted model, so there is nothing to "
                "explore (runs before cell format 1 kept none; run the config again)"
            )
        models = load_models(folder, rows)
        self.served: dict[str, Served] = {}
        for r, m in models.items():
            names = (r.slug, *(f"{r.slug}-{n}" for n in range(2, len(rows) + 2)))
            name = next(n for n in names if n not in self.served)
            self.served[name] = Served(name, r, m, adhoc_rule(m))
        self.mask = run_mask(summary)
        self.ev = Evaluator(self.ds, "test", ks=[10], metrics=("recall",), mask=self.mask)
        self.titles = item_titles(self.ds)
        self.search_text = [f"{t} {i}".lower() for t, i in zip(self.titles, self.ds.item_ids)]
        self.popularity = np.bincount(self.ds.matrix("train").indices, minlength=self.ds.n_items)
        self.descriptions = run_descriptions(self.run_dir)
        self.item_index = {str(i): n for n, i in enumerate(self.ds.item_ids)}
        self.user_index = {str(u): n for n, u in enumerate(self.ds.user_ids)}
        self.test_user_ids = [str(self.ds.user_ids[u]) for u in self.ev.users]
        segs = item_segments(self.ds.matrix("train"), ("cold", "popularity"))
        self.cold, self.tail = segs["cold"], segs["tail"]
        self.images = _image_files(self.ds)
        self.content, self.content_label = self._content_vectors(folder, rows)
        pair = best_pair(rows, None)
        defaults = [pair[1], pair[0]] if pair else rows[:1]
        twins = [r for r in rows if pair and r.kind == "twin" and r.model == pair[0].model]
        name_of = {s.row: name for name, s in self.served.items()}
        self.default_models = [name_of[r] for r in [*defaults, *twins[:1]]]

    # ---- lookups -------------------------------------------------------------------------
    def item(self, item_id: str) -> int:
        """The index of an item id (NotFoundError when unknown)."""
        if item_id not in self.item_index:
            raise NotFoundError(f"no item {item_id[:80]!r} in this run's dataset")
        return self.item_index[item_id]

    def user(self, user_id: str) -> int:
        """The index of a user id (NotFoundError when unknown)."""
        if user_id not in self.user_index:
            raise NotFoundError(f"no user {user_id[:80]!r} in this run's dataset")
        return self.user_index[user_id]

    def models(self, names: Sequence[str]) -> list[Served]:
        """The served rows named (URL names); the defaults when none; ConfigError listing the
        names when one is unknown."""
        names = [n for n in names if n] or self.default_models
        unknown = [n for n in names if n not in self.served]
        if unknown:
            raise ConfigError(f"unknown model {unknown[0][:80]!r}; choose from {', '.join(self.served)}")
        return [self.served[n] for n in dict.fromkeys(names)]

    def card(self, i: int, hit: bool | None = None) -> dict[str, Any]:
        """What the page shows of an item."""
        iid = str(self.ds.item_ids[i])
        out: dict[str, Any] = {
            "id": iid,
            "title": self.titles[i],
            "image": f"/images/{_quote(iid)}" if self.images[i] is not None else None,
            "description": self.descriptions.get(iid),
            "cold": bool(self.cold[i]),
            "tail": bool(self.tail[i]),
        }
        if hit is not None:
            out["hit"] = hit
        return out

    # ---- views ---------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """The run, its models and the page's defaults."""
        return {
            "run": self.name,
            "dataset": self.ds.name,
            "users": int(self.ds.n_users),
            "test_users": int(len(self.ev.users)),
            "items": int(self.ds.n_items),
            "mask": "+".join(self.mask),
            "models": [
                {"name": s, "label": v.row.label, "kind": v.row.kind, "adhoc": v.adhoc, "seed": v.row.seed}
                for s, v in self.served.items()
            ],
            "default_models": self.default_models,
            "default_k": 10,
            "max_k": MAX_K,
            "content": self.content_label,
            "descriptions": bool(self.descriptions),
        }

    def find_users(self, q: str, limit: int = SEARCH_LIMIT) -> list[dict[str, Any]]:
        """Test users whose id contains `q` (case-insensitive; ids starting with it first)."""
        q = q.strip().lower()
        found = heapq.nsmallest(
            limit,
            (u for u in self.test_user_ids if q in u.lower()),
            key=lambda u: (not u.lower().startswith(q), len(u), u),
        )
        return [
            {
                "id": u,
                "history": int(self.ev.exclude[self.user_index[u]].nnz),
                "test": int(self.ev.target[self.user_index[u]].nnz),
            }
            for u in found
        ]

    def find_items(self, q: str, limit: int = SEARCH_LIMIT) -> list[dict[str, Any]]:
        """Items whose id or title contains `q` (case-insensitive); the most popular first."""
        q = q.strip().lower()
        found = (int(i) for i in np.argsort(-self.popularity, kind="stable") if q in self.search_text[i])
        return [self.card(i) for _, i in zip(range(limit), found)]

    def recommend_user(self, user_id: str, k: int, names: Sequence[str]) -> dict[str, Any]:
        """A user's recent history and each model's top-`k`, exactly as the evaluator ranks it."""
        u = self.user(user_id)
        test = set(self.ev.target[u].indices.tolist())
        columns = []
        for s in self.models(names):
            top = self.ev.topk(s.model, np.array([u]), k)[0]
            columns.append({**self._column(s), "items": [self.card(int(i), int(i) in test) for i in top]})
        return {
            "user": user_id,
            "history": [self.card(i) for i in recent_history(self.ds, self.mask, u, 20)],
            "n_history": int(self.ev.exclude[u].nnz),
            "n_test": len(test),
            "columns": columns,
        }

    def recommend_history(self, item_ids: Sequence[str], k: int, names: Sequence[str]) -> dict[str, Any]:
        """Each model's top-`k` for an ad-hoc history (its items masked)."""
        from vlmrec.evaluation.evaluator import stable_topk

        ids = list(dict.fromkeys(i for i in item_ids if i))
        if not ids or len(ids) > MAX_HISTORY:
            raise ConfigError(f"items: give 1 to {MAX_HISTORY} item ids, comma-separated")
        history = np.array([self.item(i) for i in ids], dtype=np.int64)
        columns = []
        for s in self.models(names):
            scores = adhoc_scores(s, history, self.ds.n_items)
            if scores is None:
                note = f"{s.row.model} cannot score a history it was not trained on"
                columns.append({**self._column(s), "items": [], "note": note})
                continue
            scores = np.array(scores, dtype=np.float32)
            scores[history] = -np.inf
            import torch

            top = stable_topk(torch.as_tensor(scores[None, :]), k).numpy()[0]
            columns.append({**self._column(s), "items": [self.card(int(i)) for i in top]})
        return {"items": ids, "history": [self.card(int(i)) for i in history], "columns": columns}

    def item_view(self, item_id: str, k: int) -> dict[str, Any]:
        """An item's fields, description, popularity and its `k` nearest items by content."""
        from vlmrec.evaluation.evaluator import stable_topk

        i = self.item(item_id)
        row = self.ds.items.iloc[i]
        fields = {
            str(c): str(row[c])[:1000]
            for c in self.ds.text_columns()
            if isinstance(row[c], str | int | float) and str(row[c]) not in ("", "nan", "None")
        }
        similar: list[dict[str, Any]] = []
        if self.content is not None:
            import torch

            sims = self.content @ self.content[i]
            sims[i] = -np.inf
            top = stable_topk(torch.as_tensor(sims[None, :].astype(np.float32)), k).numpy()[0]
            similar = [self.card(int(j)) for j in top]
        return {
            "item": self.card(i),
            "fields": fields,
            "train_interactions": int(self.popularity[i]),
            "similar": similar,
            "similar_by": self.content_label,
        }

    def image(self, item_id: str) -> Path:
        """The image file of an item: only a file of the dataset's own table, found by item id."""
        path = self.images[self.item(item_id)]
        if path is None or not path.is_file():
            raise NotFoundError(f"item {item_id[:80]!r} has no image")
        return path

    # ---- helpers -------------------------------------------------------------------------
    @staticmethod
    def _column(s: Served) -> dict[str, Any]:
        return {"name": s.name, "label": s.row.label, "kind": s.row.kind, "adhoc": s.adhoc}

    def _content_vectors(
        self, folder: RunArtifact, rows: list[RowModel]
    ) -> tuple[np.ndarray | None, str | None]:
        """Unit-length item vectors of the run's best content row's feature set (or the first
        feature set of the run that loads), for "nearest items by content"."""
        from vlmrec.features.featureset import FeatureSet

        labels = [r.features for r in order_rows(rows) if r.kind == "content"]
        labels += [part for label in labels for part in label.split("+")]
        root = self.run_dir / "features"
        labels += sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        for label in dict.fromkeys(labels):
            try:
                directory = folder.features_dir(label)
                if not (directory / "vectors.npy").is_file():
                    continue
                x = np.asarray(FeatureSet.load(directory, self.ds, mmap=True).vectors, dtype=np.float32)
            except (DataError, ConfigError, OSError, ValueError) as e:
                log.warning("explore: feature set %r not used for nearest items: %s", label, e)
                continue
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            return x / np.where(norms > 0, norms, 1.0), label
        return None, None


def _image_files(ds: Dataset) -> list[Path | None]:
    """Each item's image file as the dataset's item table names it, when it is an image type and
    really lies in the folder the table names (a link that leads elsewhere is refused); never a
    path a client sends."""
    out: list[Path | None] = []
    for raw in ds.items["image_path"]:
        path = Path(raw) if isinstance(raw, str) and raw else None
        resolved = path.resolve() if path is not None else None
        ok = (
            path is not None
            and resolved is not None
            and resolved.suffix.lower() in IMAGE_TYPES
            and resolved.parent == path.parent.resolve()
        )
        out.append(resolved if ok else None)
    return out


def _quote(item_id: str) -> str:
    from urllib.parse import quote

    return quote(item_id, safe="")
