"""Id <-> position maps that cost a few bytes per id instead of a Python string and a dict entry
(~150 bytes per id: 150 MB at a million items, a tenth of the vectors themselves).

The ids known at start-up are stored once, UTF-8 encoded and sorted in one numpy byte-string
array, with two int32 permutations (sorted rank -> position, position -> sorted rank); a lookup is
a binary search (a few microseconds). Ids added while serving go to a small list and dict.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from vlmrec.errors import DataError, NotFoundError


class IdMap:
    """Positions 0..n-1 for string ids, in the order given, plus ids appended later."""

    def __init__(self, ids: Sequence | np.ndarray, what: str = "id"):
        self.what = what
        names = [str(i) for i in ids] if not isinstance(ids, np.ndarray) else ids.astype(str).tolist()
        encoded = [s.encode("utf-8") for s in names]
        # numpy byte strings drop trailing NUL bytes: ids that end in one keep a plain dict
        self._fallback: dict[str, int] | None = None
        self._fallback_names: list[str] | None = None
        if any(e.endswith(b"\0") for e in encoded):
            self._fallback = {s: k for k, s in enumerate(names)}
            self._fallback_names = names
            if len(self._fallback) != len(names):
                raise DataError(f"serving: duplicate {what}s")
            self._n_base = len(names)
        else:
            arr = np.array(encoded, dtype=f"S{max((len(e) for e in encoded), default=1) or 1}")
            del encoded, names
            order = np.argsort(arr, kind="stable")
            self._sorted = arr[order]
            del arr
            if len(self._sorted) > 1 and (self._sorted[1:] == self._sorted[:-1]).any():
                dup = self._sorted[1:][self._sorted[1:] == self._sorted[:-1]][0].decode()
                raise DataError(f"serving: duplicate {what} {dup!r}")
            self._position = order.astype(np.int32 if len(order) < 2**31 else np.int64)
            self._rank = np.empty_like(self._position)
            self._rank[self._position] = np.arange(len(order), dtype=self._position.dtype)
            self._n_base = len(order)
        self._extra: list[str] = []
        self._extra_index: dict[str, int] = {}

    def __len__(self) -> int:
        return self._n_base + len(self._extra)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __iter__(self) -> Iterator[str]:
        for i in range(len(self)):
            yield self.name(i)

    def get(self, key: str) -> int | None:
        """The position of `key`, or None."""
        k = self._extra_index.get(key)
        if k is not None:
            return k
        if self._fallback is not None:
            return self._fallback.get(key)
        try:
            probe = key.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: no stored id can match
            return None
        if not probe or probe.endswith(b"\0") or len(probe) > self._sorted.dtype.itemsize:
            return None
        j = int(np.searchsorted(self._sorted, probe))
        if j < len(self._sorted) and self._sorted[j] == probe:
            return int(self._position[j])
        return None

    def position(self, key: str) -> int:
        """The position of `key` (NotFoundError naming the id if unknown)."""
        k = self.get(key)
        if k is None:
            shown = key if len(key) <= 80 else key[:80] + "..."
            raise NotFoundError(f"unknown {self.what} {shown!r}")
        return k

    def name(self, i: int) -> str:
        """The id at position `i`."""
        if i >= self._n_base:
            return self._extra[i - self._n_base]
        if self._fallback_names is not None:
            return self._fallback_names[i]
        return self._sorted[self._rank[i]].decode("utf-8")

    def names(self, positions: Iterable[int] | np.ndarray) -> list[str]:
        """The ids at `positions`."""
        pos = np.asarray(positions, dtype=np.int64)
        if self._fallback_names is None and (pos < self._n_base).all():
            return [b.decode("utf-8") for b in self._sorted[self._rank[pos]].tolist()]
        return [self.name(int(i)) for i in pos]

    def append(self, key: str) -> int:
        """Give `key` the next position (it must be new)."""
        if key in self:
            raise DataError(f"{self.what} {key!r} already exists")
        k = len(self)
        self._extra.append(key)
        self._extra_index[key] = k
        return k
