"""A vector index over item embeddings (faiss): exact inner product for small catalogues, HNSW
for large ones; items can be added and removed without a rebuild.

Scores are inner products. Give L2-normalised vectors for cosine (ProfileMatch), raw factors for
a trained factor model: the ranking is then exactly the model's own `score`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vlmrec.errors import ModelError

HNSW_THRESHOLD = 200_000  # below this, exact search is fast enough on one core


def _faiss():
    try:
        import faiss
    except ImportError as e:
        raise ModelError("serving needs faiss: `pip install faiss-cpu` (vlmrec[serve])") from e
    return faiss


class VectorIndex:
    def __init__(
        self, dim: int, kind: str = "flat", hnsw_m: int = 32, ef_search: int = 128, ef_construction: int = 200
    ):
        faiss = _faiss()
        if kind not in ("flat", "hnsw"):
            raise ModelError(f"index kind {kind!r}: choose flat or hnsw")
        self.dim, self.kind = dim, kind
        self.hnsw_m, self.ef_search, self.ef_construction = hnsw_m, ef_search, ef_construction
        if kind == "flat":
            self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        else:
            base = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            base.hnsw.efConstruction = ef_construction
            base.hnsw.efSearch = ef_search
            self.index = faiss.IndexIDMap2(base)
        self.removed: set[int] = set()  # HNSW cannot delete: removed ids are filtered at query time

    @classmethod
    def build(
        cls, vectors: np.ndarray, ids: np.ndarray | None = None, kind: str = "auto", **kw
    ) -> VectorIndex:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if kind == "auto":
            kind = "flat" if len(vectors) < HNSW_THRESHOLD else "hnsw"
        idx = cls(vectors.shape[1], kind, **kw)
        idx.add(vectors, np.arange(len(vectors)) if ids is None else ids)
        return idx

    def __len__(self) -> int:
        return self.index.ntotal - len(self.removed)

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        vectors = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        if vectors.shape[1] != self.dim:
            raise ModelError(f"vector dimension {vectors.shape[1]} does not match the index ({self.dim})")
        ids = np.asarray(ids, dtype=np.int64)
        self.removed.difference_update(ids.tolist())
        self.index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if self.kind == "flat":
            self.index.remove_ids(ids)
        else:
            self.removed.update(ids.tolist())

    def search(
        self, queries: np.ndarray, k: int, exclude: list[set[int]] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query, skipping each query's `exclude` ids; -1 pads short rows."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        exclude = exclude or [set() for _ in range(len(q))]
        extra = max((len(e) for e in exclude), default=0) + len(self.removed)
        fetch = min(k + extra, self.index.ntotal)
        scores, ids = self.index.search(q, max(fetch, 1))
        out_s = np.full((len(q), k), -np.inf, np.float32)
        out_i = np.full((len(q), k), -1, np.int64)
        for row in range(len(q)):
            keep = [
                (s, i)
                for s, i in zip(scores[row], ids[row])
                if i >= 0 and i not in exclude[row] and i not in self.removed
            ]
            keep = keep[:k]
            if keep:
                out_s[row, : len(keep)] = [s for s, _ in keep]
                out_i[row, : len(keep)] = [i for _, i in keep]
        return out_s, out_i

    def save(self, directory: str | Path) -> None:
        faiss = _faiss()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(d / "index.faiss"))
        (d / "index.json").write_text(
            json.dumps(
                {
                    "dim": self.dim,
                    "kind": self.kind,
                    "hnsw_m": self.hnsw_m,
                    "ef_search": self.ef_search,
                    "removed": sorted(self.removed),
                }
            )
        )

    @classmethod
    def load(cls, directory: str | Path) -> VectorIndex:
        faiss = _faiss()
        d = Path(directory)
        meta = json.loads((d / "index.json").read_text())
        obj = cls.__new__(cls)
        obj.dim, obj.kind, obj.hnsw_m, obj.ef_search = (
            meta["dim"],
            meta["kind"],
            meta["hnsw_m"],
            meta["ef_search"],
        )
        obj.ef_construction = 200
        obj.index = faiss.read_index(str(d / "index.faiss"))
        if obj.kind == "hnsw":
            faiss.downcast_index(obj.index.index).hnsw.efSearch = obj.ef_search
        obj.removed = set(meta["removed"])
        return obj
