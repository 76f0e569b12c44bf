"""Vector indexes over item embeddings, persisted and memory-mapped so a restart reloads instead
of rebuilding and every worker process shares one copy of the vectors.

Three kinds, one scoring rule (inner product; give L2-normalised vectors for cosine):

  flat  exact search (numpy over a memory-mapped `vectors.npy`); ties broken by the lower item
        index, exactly as the offline evaluator does. For catalogues below `FLAT_MAX` items.
  hnsw  a faiss HNSW graph over the raw vectors (IndexHNSWFlat). Queries in ~0.2-0.5 ms, but
        the build is slow (minutes at 1M on two cores). For mid-sized catalogues.
  ivf   a faiss inverted file with exact (flat) lists (IndexIVFFlat): k-means cells, `nprobe`
        cells scanned per query, exact scores inside them. Builds several times faster than HNSW
        and reaches the same recall on clustered embeddings. From `IVF_MIN` items up.

`auto` chooses from the catalogue size (`choose_kind`). The index file is the only copy of the
vectors: faiss reads it memory-mapped (IO_FLAG_MMAP_IFC), so pages are shared between processes
and the server's memory is about one copy of the raw vectors. Items added while serving live in a
small exact side table (`add`), removed items are filtered at query time (`remove`); both are
rebuilt by the service from its append-only logs.

`open_index` keeps a persisted index in a folder with a manifest (`index.json`) that records the
kind, the parameters and a content fingerprint of the vectors it was built from; when the
fingerprint (or the requested kind / parameters) changes, the index is rebuilt.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import mmap
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vlmrec.errors import ConfigError, ModelError
from vlmrec.linalg import l2_normalise

log = logging.getLogger(__name__)

IndexKind = Literal["flat", "hnsw", "ivf"]
IndexChoice = Literal["auto", "flat", "hnsw", "ivf"]
INDEX_KINDS: tuple[str, ...] = get_args(IndexKind)
INDEX_CHOICES: tuple[str, ...] = get_args(IndexChoice)

FLAT_MAX = 20_000  # exact search reads every vector: ~1 ms per query at 20k x 384 on one core
IVF_MIN = 300_000  # from here IVF builds several times faster than HNSW at the same recall
FORMAT_VERSION = 2  # bump when the on-disk layout changes: older folders are rebuilt
CHUNK_ROWS = 16_384


def choose_kind(n_items: int) -> IndexKind:
    """The index `auto` picks for a catalogue of `n_items` (see the module docstring)."""
    if n_items < FLAT_MAX:
        return "flat"
    return "hnsw" if n_items < IVF_MIN else "ivf"


def resolve_kind(choice: str, n_items: int) -> IndexKind:
    """`choice` ('auto' or a kind) as a concrete kind, or a ConfigError listing the choices."""
    if choice not in INDEX_CHOICES:
        raise ConfigError(f"index {choice!r}: choose one of {', '.join(INDEX_CHOICES)}")
    return choose_kind(n_items) if choice == "auto" else choice  # type: ignore[return-value]


class IndexParams(BaseModel):
    """Build and search parameters; the ones a kind does not use are ignored by it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    hnsw_m: int = Field(32, ge=4, le=128, description="HNSW: links per node")
    ef_construction: int = Field(100, ge=8, le=2048, description="HNSW: candidate list while building")
    ef_search: int = Field(128, ge=8, le=8192, description="HNSW: candidate list per query")
    nlist: int = Field(0, ge=0, description="IVF: number of cells; 0 = ~2 sqrt(n), a power of two")
    nprobe: int = Field(8, ge=1, description="IVF: cells scanned per query")
    train_per_cell: int = Field(40, ge=8, le=1024, description="IVF: k-means sample per cell")
    kmeans_iter: int = Field(10, ge=1, le=100, description="IVF: k-means iterations")

    def cells(self, n_items: int) -> int:
        """IVF cells for `n_items` vectors: `nlist`, or a power of two near 2 sqrt(n) (>= 16; 2048
        at 1M items, ~500 vectors a cell)."""
        if self.nlist:
            return min(self.nlist, max(1, n_items))
        return int(min(max(16, 2 ** round(math.log2(max(2 * math.sqrt(n_items), 1)))), max(1, n_items)))

    def build_params(self, kind: str) -> dict:
        """The parameters that shape the built index (a change means a rebuild; search-time
        ones, ef_search and nprobe, do not)."""
        return {k: v for k, v in self.used_by(kind).items() if k not in ("ef_search", "nprobe")}

    def used_by(self, kind: str) -> dict:
        """The parameters that `kind` reads (what /health and the manifest show)."""
        names = {
            "flat": (),
            "hnsw": ("hnsw_m", "ef_construction", "ef_search"),
            "ivf": ("nlist", "nprobe", "train_per_cell", "kmeans_iter"),
        }[kind]
        return {n: getattr(self, n) for n in names}


def _faiss():
    try:
        import faiss
    except ImportError as e:
        raise ModelError("hnsw and ivf indexes need faiss: `pip install faiss-cpu` (vlmrec[serve])") from e
    return faiss


# ---- reading big arrays without keeping them resident ------------------------------------------
def _mmap_of(array: np.ndarray) -> mmap.mmap | None:
    """The mmap object behind a (view of a) numpy memmap, or None."""
    base: object = array
    while base is not None:
        mm = getattr(base, "_mmap", None)
        if isinstance(mm, mmap.mmap):
            return mm
        base = getattr(base, "base", None)
    return None


def _source_file(array: np.ndarray) -> Path | None:
    base: object = array
    while base is not None:
        name = getattr(base, "filename", None)
        if name:
            return Path(name)
        base = getattr(base, "base", None)
    return None


def iter_chunks(array: np.ndarray, rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
    """Float32 C-contiguous row blocks of `array`. For a memory-mapped array, the pages read are
    dropped from this process after each block, so streaming a file through does not make it
    resident (peak memory stays one block, not one copy of the file)."""
    for start in range(0, len(array), rows):
        block = np.array(array[start : start + rows], dtype=np.float32, order="C")
        _drop_pages(array)
        yield block


def fingerprint(array: np.ndarray, normalise: bool) -> str:
    """Content hash of the vectors an index is built from (shape, dtype, every byte) and of the
    transformation applied to them; a changed FeatureSet or factor matrix changes it."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps({"shape": list(array.shape), "normalise": normalise}).encode())
    for block in iter_chunks(array):
        h.update(block.tobytes())
    return h.hexdigest()


def _file_stat(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


# ---- the index ----------------------------------------------------------------------------------
def stable_order(scores: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Positions ordering candidates by score (descending), then id (ascending)."""
    return np.lexsort((ids, -scores))


def exact_topk(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, by (score desc, index asc), as the offline evaluator
    orders them; NaN counts as -inf."""
    n = len(scores)
    k = min(k, n)
    if k <= 0:
        return np.empty(0, np.int64)
    s = np.where(np.isnan(scores), -np.inf, scores)
    if k < n:
        kth = -np.partition(-s, k - 1)[k - 1]
        cand = np.flatnonzero(s >= kth)  # every item tied with the k-th is a candidate
    else:
        cand = np.arange(n)
    return cand[stable_order(s[cand], cand)][:k]


class VectorIndex:
    """Top-k inner-product search over a fixed base of vectors plus items added later.

    One subclass per kind (`FlatIndex`, `HNSWIndex`, `IVFIndex`, listed in `INDEX_CLASSES`)
    searches and stores the base; this class holds what every kind shares: the side table of
    added items, the removed set, the search loop with its exclusions and stable tie order.
    `rows(ids)` returns any item's vector without a second copy of the base."""

    kind: IndexKind
    data_file: str
    """the file in an index folder that holds the base (`open_index`)"""

    def __init__(self, dim: int, n_base: int, params: IndexParams | None = None):
        self.dim = int(dim)
        self.params = params or IndexParams()
        self.n_base = int(n_base)
        self._added = np.zeros((0, self.dim), np.float32)  # capacity-doubling side table
        self.n_added = 0
        self.removed: set[int] = set()
        self.info: dict = {}  # build facts (time, fingerprint) for /health

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        kind: str = "auto",
        params: IndexParams | None = None,
        normalise: bool = False,
    ) -> VectorIndex:
        """An in-memory index over `vectors` (no folder; see `open_index` for a persisted one)."""
        return INDEX_CLASSES[resolve_kind(kind, len(vectors))].from_vectors(
            vectors, params or IndexParams(), normalise
        )

    @classmethod
    def from_vectors(cls, vectors: np.ndarray, params: IndexParams, normalise: bool) -> VectorIndex:
        """This kind's in-memory index over `vectors`."""
        raise NotImplementedError

    @classmethod
    def write(cls, d: Path, vectors: np.ndarray, params: IndexParams, normalise: bool) -> None:
        """Write this kind's index file for `vectors` into folder `d` (replaced atomically)."""
        raise NotImplementedError

    @classmethod
    def load(cls, d: Path, params: IndexParams) -> VectorIndex:
        """This kind's index from the file `write` left in `d` (memory-mapped)."""
        raise NotImplementedError

    # ---- contents --------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.n_base + self.n_added - len(self.removed)

    @property
    def ntotal(self) -> int:
        """Item positions in use (base + added), removed ones included."""
        return self.n_base + self.n_added

    def _base_rows(self, ids: np.ndarray) -> np.ndarray:
        """The vectors of base positions `ids`."""
        raise NotImplementedError

    def rows(self, ids) -> np.ndarray:
        """The vectors of item positions `ids` (a copy, float32, len(ids) x dim)."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if len(ids) and ids.min() < 0:
            raise ModelError(f"item positions must be >= 0, got {ids.min()}")
        out = np.empty((len(ids), self.dim), np.float32)
        base = ids < self.n_base
        if base.any():
            out[base] = self._base_rows(ids[base])
        if (~base).any():
            a = ids[~base] - self.n_base
            if (a >= self.n_added).any():
                raise ModelError(
                    f"item positions {ids[~base][a >= self.n_added].tolist()} are not in the index"
                )
            out[~base] = self._added[a]
        return out

    def add(self, vectors: np.ndarray, ids) -> None:
        """Add vectors at the next positions (`ids` must be ntotal, ntotal + 1, ...)."""
        vectors = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        if vectors.shape[1] != self.dim:
            raise ModelError(f"vector dimension {vectors.shape[1]} does not match the index ({self.dim})")
        ids = np.asarray(ids, dtype=np.int64).ravel()
        expected = np.arange(self.ntotal, self.ntotal + len(vectors))
        if not np.array_equal(ids, expected):
            raise ModelError(f"new items take positions {expected.tolist()}, not {ids.tolist()}")
        need = self.n_added + len(vectors)
        if need > len(self._added):
            grown = np.zeros((max(need, 2 * len(self._added), 16), self.dim), np.float32)
            grown[: self.n_added] = self._added[: self.n_added]
            self._added = grown
        self._added[self.n_added : need] = vectors
        self.n_added = need

    def remove(self, ids) -> None:
        """Hide item positions from every later search."""
        self.removed.update(int(i) for i in np.asarray(ids, dtype=np.int64).ravel())

    # ---- search ----------------------------------------------------------------------------
    def search(
        self, queries: np.ndarray, k: int, exclude: list[set[int]] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query by (score desc, id asc), skipping each query's `exclude`
        and removed ids; -inf / -1 pad rows with fewer than k results."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        exclude = exclude if exclude is not None else [set() for _ in range(len(q))]
        out_s = np.full((len(q), k), -np.inf, np.float32)
        out_i = np.full((len(q), k), -1, np.int64)
        for row in range(len(q)):
            skip = exclude[row] | self.removed if self.removed else exclude[row]
            s, i = self._search_one(q[row], k, skip)
            out_s[row, : len(s)] = s
            out_i[row, : len(i)] = i
        return out_s, out_i

    def _search_base(self, q: np.ndarray, fetch: int, skip: set[int]) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of up to `fetch` best base items for one query (skipped ones may be among
        them: the caller filters)."""
        raise NotImplementedError

    def _search_one(self, q: np.ndarray, k: int, skip: set[int]) -> tuple[np.ndarray, np.ndarray]:
        sc, ids = self._search_base(q, k + len(skip), skip)
        if self.n_added:
            sc = np.concatenate([sc, self._added[: self.n_added] @ q])
            ids = np.concatenate([ids, np.arange(self.n_base, self.ntotal)])
        # a few dozen candidates: a Python set lookup is cheaper than np.isin's sorting
        keep = np.fromiter((i >= 0 and i not in skip for i in ids.tolist()), bool, len(ids))
        sc, ids = sc[keep], ids[keep]
        order = stable_order(sc, ids)[:k]
        return sc[order], ids[order]

    # ---- persistence -----------------------------------------------------------------------
    def describe(self) -> dict:
        """Kind, parameters and build facts (for /health)."""
        params = self.params.used_by(self.kind)
        return {"kind": self.kind, "params": params, "items": self.ntotal, **self.info}


class FlatIndex(VectorIndex):
    """Exact search: every query reads every base vector (a memory-mapped `vectors.npy`)."""

    kind = "flat"
    data_file = "vectors.npy"

    def __init__(self, vectors: np.ndarray, params: IndexParams | None = None):
        super().__init__(vectors.shape[1], len(vectors), params)
        self._vectors = vectors

    @classmethod
    def from_vectors(cls, vectors: np.ndarray, params: IndexParams, normalise: bool) -> VectorIndex:
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        return cls(l2_normalise(x) if normalise else x, params)

    @classmethod
    def write(cls, d: Path, vectors: np.ndarray, params: IndexParams, normalise: bool) -> None:
        tmp = d / f"vectors.{os.getpid()}.tmp.npy"
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=tuple(vectors.shape))
        start = 0
        for block in iter_chunks(vectors):
            out[start : start + len(block)] = l2_normalise(block) if normalise else block
            start += len(block)
        out.flush()
        del out
        os.replace(tmp, d / cls.data_file)

    @classmethod
    def load(cls, d: Path, params: IndexParams) -> VectorIndex:
        return cls(np.load(d / cls.data_file, mmap_mode="r"), params)

    def _base_rows(self, ids: np.ndarray) -> np.ndarray:
        return self._vectors[ids]

    def _search_base(self, q: np.ndarray, fetch: int, skip: set[int]) -> tuple[np.ndarray, np.ndarray]:
        scores = self._vectors @ q
        if skip:
            scores[[i for i in skip if i < self.n_base]] = -np.inf
        ids = exact_topk(scores, fetch)
        return scores[ids], ids


class FaissIndex(VectorIndex):
    """An approximate kind held in a faiss index (`index.faiss`, memory-mapped when loaded)."""

    data_file = "index.faiss"

    def __init__(self, faiss_index, params: IndexParams | None = None):
        super().__init__(faiss_index.d, faiss_index.ntotal, params)
        self._faiss = faiss_index
        self._configure_search()

    @classmethod
    def _build_faiss(cls, vectors: np.ndarray, params: IndexParams, normalise: bool):
        """A faiss index of this kind over `vectors`, streamed block by block. Peak memory is about
        one copy of the vectors (the index) plus a block: storage is sized once, not grown."""
        raise NotImplementedError

    def _configure_search(self) -> None:
        """Set the search-time parameters (`ef_search`, `nprobe`) on the faiss index."""

    @classmethod
    def from_vectors(cls, vectors: np.ndarray, params: IndexParams, normalise: bool) -> VectorIndex:
        with build_threads():
            index = cls._build_faiss(vectors, params, normalise)
        return cls(index, params)

    @classmethod
    def write(cls, d: Path, vectors: np.ndarray, params: IndexParams, normalise: bool) -> None:
        with build_threads():
            index = cls._build_faiss(vectors, params, normalise)
        tmp = d / f"index.{os.getpid()}.tmp.faiss"
        _faiss().write_index(index, str(tmp))
        del index
        release_memory()
        os.replace(tmp, d / cls.data_file)

    @classmethod
    def load(cls, d: Path, params: IndexParams) -> VectorIndex:
        faiss = _faiss()
        return cls(faiss.read_index(str(d / cls.data_file), faiss.IO_FLAG_MMAP_IFC), params)

    def _search_params(self, fetch: int) -> Any:
        """faiss search parameters for a query fetching `fetch` results (None: the index's own)."""
        return None

    def _search_base(self, q: np.ndarray, fetch: int, skip: set[int]) -> tuple[np.ndarray, np.ndarray]:
        fetch = min(fetch, self.n_base)
        if fetch <= 0:
            return np.empty(0, np.float32), np.empty(0, np.int64)
        params = self._search_params(fetch)
        d, i = (
            self._faiss.search(q[None, :], fetch)
            if params is None
            else self._faiss.search(q[None, :], fetch, params=params)
        )
        return d[0], i[0]


class HNSWIndex(FaissIndex):
    """A graph index (faiss IndexHNSWFlat): its flat storage doubles as the base rows."""

    kind = "hnsw"

    def __init__(self, faiss_index, params: IndexParams | None = None):
        super().__init__(faiss_index, params)
        faiss = _faiss()
        storage = faiss.downcast_index(faiss_index.storage)
        n, d = faiss_index.ntotal, faiss_index.d
        self._vectors = faiss.rev_swig_ptr(storage.get_xb(), n * d).reshape(n, d)

    @classmethod
    def _build_faiss(cls, vectors: np.ndarray, params: IndexParams, normalise: bool):
        faiss = _faiss()
        n, d = vectors.shape
        index = faiss.IndexHNSWFlat(d, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params.ef_construction
        index.hnsw.efSearch = params.ef_search
        codes = faiss.downcast_index(index.storage).codes
        codes.resize(n * d * 4)  # reserve the final size: no 2x growth while adding
        codes.resize(0)
        for block in iter_chunks(vectors):
            index.add(l2_normalise(block) if normalise else block)
        return index

    def _configure_search(self) -> None:
        _faiss().downcast_index(self._faiss).hnsw.efSearch = self.params.ef_search

    def _search_params(self, fetch: int) -> Any:
        return _faiss().SearchParametersHNSW(efSearch=fetch) if fetch > self.params.ef_search else None

    def _base_rows(self, ids: np.ndarray) -> np.ndarray:
        return self._vectors[ids]


class IVFIndex(FaissIndex):
    """An inverted-file index (faiss IndexIVFFlat): vectors live in the inverted lists, reached
    through the direct map."""

    kind = "ivf"
    _vectors = None  # no flat copy of the base: rows come from the inverted lists

    @classmethod
    def _build_faiss(cls, vectors: np.ndarray, params: IndexParams, normalise: bool):
        faiss = _faiss()
        n, d = vectors.shape
        cells = params.cells(n)
        quantiser = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantiser, d, cells, faiss.METRIC_INNER_PRODUCT)
        index.own_fields = True
        quantiser.this.disown()
        index.cp.niter = params.kmeans_iter
        index.cp.max_points_per_centroid = params.train_per_cell
        index.cp.seed = 1234
        sample = _sample_rows(vectors, cells * params.train_per_cell)
        index.train(l2_normalise(sample) if normalise else sample)
        del sample
        index.nprobe = min(params.nprobe, cells)
        _fill_ivf(index, vectors, normalise)
        index.make_direct_map()  # rows(): reconstruct any item from its list
        return index

    def _configure_search(self) -> None:
        _faiss().extract_index_ivf(self._faiss).nprobe = min(self.params.nprobe, self._faiss.nlist)

    def _base_rows(self, ids: np.ndarray) -> np.ndarray:
        return self._faiss.reconstruct_batch(ids)

    def describe(self) -> dict:
        out = super().describe()
        out["params"]["nlist"] = int(self._faiss.nlist)
        out["params"]["nprobe"] = int(_faiss().extract_index_ivf(self._faiss).nprobe)
        return out


INDEX_CLASSES: dict[str, type[VectorIndex]] = {cls.kind: cls for cls in (FlatIndex, HNSWIndex, IVFIndex)}
"""Each index kind -> its class."""
assert tuple(INDEX_CLASSES) == INDEX_KINDS, "every IndexKind has a class"


def _drop_pages(array: np.ndarray) -> None:
    """Unmap the pages of a memory-mapped `array` from this process (they stay in the page cache);
    a no-op for arrays in memory."""
    mm = _mmap_of(array)
    if mm is not None:
        with contextlib.suppress(OSError, ValueError):
            mm.madvise(mmap.MADV_DONTNEED)


def _sample_rows(vectors: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """`n` random rows, read in one sequential pass (random rows of a memory-mapped file would
    map whole large pages of the file around each row)."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(vectors), size=min(n, len(vectors)), replace=False))
    out = np.empty((len(idx), vectors.shape[1]), np.float32)
    start = filled = 0
    for block in iter_chunks(vectors):
        lo, hi = np.searchsorted(idx, [start, start + len(block)])
        out[filled : filled + hi - lo] = block[idx[lo:hi] - start]
        filled += hi - lo
        start += len(block)
    return out


def _fill_ivf(index, vectors: np.ndarray, normalise: bool) -> None:
    """Add `vectors` to a trained IndexIVFFlat with every list allocated once at its final size
    (faiss's own `add` grows each list by doubling: up to a second copy of the vectors at 1M).
    Two sequential passes over the source: each vector's cell, then the lists filled in place."""
    faiss = _faiss()
    invlists = index.invlists
    n = len(vectors)
    cell = np.empty(n, np.int64)
    start = 0
    for block in iter_chunks(vectors):
        _, nearest = index.quantizer.search(l2_normalise(block) if normalise else block, 1)
        cell[start : start + len(block)] = nearest[:, 0]
        start += len(block)
    sizes = np.bincount(cell, minlength=index.nlist)
    for lst in np.flatnonzero(sizes):
        invlists.resize(int(lst), int(sizes[lst]))
    filled = np.zeros(index.nlist, np.int64)
    start = 0
    for block in iter_chunks(vectors):
        c = cell[start : start + len(block)]
        order = np.argsort(c, kind="stable")  # ids ascending inside each list
        rows = np.ascontiguousarray((l2_normalise(block) if normalise else block)[order])
        ids = np.ascontiguousarray(order + start)
        lists, first, counts = np.unique(c[order], return_index=True, return_counts=True)
        for lst, f, cnt in zip(lists.tolist(), first.tolist(), counts.tolist()):
            invlists.update_entries(
                lst, int(filled[lst]), cnt, faiss.swig_ptr(ids[f:]), faiss.swig_ptr(rows[f:].view(np.uint8))
            )
            filled[lst] += cnt
        start += len(block)
    index.ntotal = n


@contextlib.contextmanager
def build_threads():
    """Use every core while building (a one-off cost before serving), then restore the pinned
    thread counts that serving uses."""
    faiss = _faiss()
    before = faiss.omp_get_max_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        from threadpoolctl import threadpool_limits

        blas = threadpool_limits(cores)
    except ImportError:  # pragma: no cover - threadpoolctl comes with vlmrec[serve]
        blas = None
    faiss.omp_set_num_threads(cores)
    try:
        yield cores
    finally:
        faiss.omp_set_num_threads(before)
        if blas is not None:
            blas.restore_original_limits()


def release_memory() -> None:
    """Hand freed heap memory back to the operating system (glibc keeps it otherwise)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


@contextlib.contextmanager
def _folder_lock(directory: Path):
    """An exclusive lock on `directory` (one builder; other processes wait, then load)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _source_fingerprint(
    vectors: np.ndarray, normalise: bool, previous: dict | None
) -> tuple[str, dict | None]:
    """(fingerprint, file stat) of `vectors`. A memory-mapped source whose file is unchanged since
    the last build (same path, size, mtime and inode) reuses the recorded fingerprint instead of
    reading every byte again; any other change is hashed in full."""
    path = _source_file(vectors)
    stat = _file_stat(path) if path is not None and path.exists() else None
    if (
        stat is not None
        and previous
        and previous.get("source") == stat
        and previous.get("source_shape") == list(vectors.shape)
        and previous.get("normalise") == normalise
    ):
        return previous["fingerprint"], stat
    return fingerprint(vectors, normalise), stat


def open_index(
    directory: str | Path,
    vectors: np.ndarray,
    kind: str = "auto",
    params: IndexParams | None = None,
    normalise: bool = False,
) -> VectorIndex:
    """The persisted index for `vectors` in `directory`: loaded (memory-mapped) when its manifest
    matches the vectors' fingerprint, the kind and the parameters; built and saved otherwise.

    `normalise` L2-normalises the vectors before indexing (cosine). Safe to call from several
    processes at once: one builds, the others wait and load."""
    params = params or IndexParams()
    d = Path(directory)
    concrete = resolve_kind(kind, len(vectors))
    with _folder_lock(d):
        manifest_path = d / "index.json"
        previous: dict | None = None
        if manifest_path.exists():
            try:
                previous = json.loads(manifest_path.read_text())
            except (OSError, ValueError):
                log.warning("%s: unreadable index manifest; rebuilding", manifest_path)
        fp, stat = _source_fingerprint(vectors, normalise, previous)
        wanted = {
            "format": FORMAT_VERSION,
            "kind": concrete,
            "params": params.build_params(concrete),
            "fingerprint": fp,
            "n": len(vectors),
            "dim": int(vectors.shape[1]),
            "normalise": normalise,
        }
        reason = _stale_reason(previous, wanted, d)
        if reason is None:
            assert previous is not None  # _stale_reason says "no index yet" without a manifest
            if previous.get("source") != stat:  # same content, new file: remember its stat
                _write_json(manifest_path, {**previous, "source": stat})
            index = _load(d, previous, params)
            index.info = {"built_s": previous.get("build_s"), "loaded": True, "fingerprint": fp}
            return index
        log.info("%s: building the %s index (%s)", d, concrete, reason)
        t0 = time.perf_counter()
        _build_into(d, concrete, vectors, params, normalise)
        build_s = time.perf_counter() - t0
        manifest = {
            **wanted,
            "source": stat,
            "source_shape": list(vectors.shape),
            "build_s": round(build_s, 3),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        _write_json(manifest_path, manifest)
        index = _load(d, manifest, params)
        index.info = {
            "built_s": round(build_s, 3),
            "loaded": False,
            "fingerprint": fp,
            "rebuilt_because": reason,
        }
        return index


def _stale_reason(previous: dict | None, wanted: dict, d: Path) -> str | None:
    """Why the folder's index cannot serve `wanted` (None: it can)."""
    if previous is None:
        return "no index yet"
    for key in ("format", "fingerprint", "n", "dim", "normalise", "kind", "params"):
        if previous.get(key) != wanted[key]:
            return f"{key} changed: {previous.get(key)!r} -> {wanted[key]!r}"
    data = d / INDEX_CLASSES[wanted["kind"]].data_file
    if not data.exists():
        return f"{data.name} is missing"
    return None


def _build_into(d: Path, kind: IndexKind, vectors: np.ndarray, params: IndexParams, normalise: bool) -> None:
    """Write the index files for `vectors` into `d` (each file replaced atomically)."""
    (d / "index.json").unlink(missing_ok=True)  # the manifest is written last, as the commit mark
    for cls in INDEX_CLASSES.values():
        (d / cls.data_file).unlink(missing_ok=True)
    INDEX_CLASSES[kind].write(d, vectors, params, normalise)


def _load(d: Path, manifest: dict, params: IndexParams) -> VectorIndex:
    return INDEX_CLASSES[manifest["kind"]].load(d, params)
