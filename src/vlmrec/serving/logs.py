"""Append-only JSON-lines logs that survive crashes and are shared by several worker processes.

Writing: `append` runs under an exclusive `fcntl.flock` on the file (one writer at a time across
processes), starts the record on a fresh line when the file ends in a truncated line (a crash in
the middle of an earlier write), and fsyncs before it returns, so an acknowledged record is on
disk and never glued onto a broken one.

Reading: `read_new` returns the complete lines written since the last call, by any process; a
line that is not valid UTF-8, not JSON, or not a JSON object is skipped, counted and logged with
its line number. An unterminated last line is left for later (it is either being written now or
was cut by a crash; in the second case the next append terminates it and it is then counted).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

READ_BLOCK = 1 << 20


def encode(record: dict) -> bytes:
    """One JSON line (strict: NaN / Infinity are refused, never written as invalid JSON)."""
    return (json.dumps(record, allow_nan=False, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


class JsonlLog:
    """One append-only JSON-lines file; see the module docstring."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self._thread_lock = threading.Lock()  # flock is per open file: threads serialise here
        self.offset = 0  # bytes consumed (always at a line boundary)
        self.lines_read = 0  # complete lines consumed
        self.bad_lines = 0
        self._seen_size = 0
        self._warned_tail_at = -1

    def close(self) -> None:
        """Close the file descriptor (the object is unusable afterwards)."""
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order varies
        self.close()

    # ---- reading ---------------------------------------------------------------------------
    def changed(self) -> bool:
        """Whether the file's size differs from what the last `read_new` saw (one fstat)."""
        return os.fstat(self._fd).st_size != self._seen_size

    def read_new(self) -> list[tuple[int, dict]]:
        """(line number, record) for each complete, well-formed line since the last call."""
        size = os.fstat(self._fd).st_size
        self._seen_size = size
        out: list[tuple[int, dict]] = []
        if size < self.offset:
            log.warning("%s shrank from %d to %d bytes; not re-reading it", self.path, self.offset, size)
            self.offset = size
            return out
        while self.offset < size:
            data = os.pread(self._fd, min(READ_BLOCK, size - self.offset), self.offset)
            end = data.rfind(b"\n")
            if end < 0:
                if len(data) == size - self.offset:  # an unterminated last line: leave it
                    self._warn_tail()
                    return out
                data = self._read_long_line(size)
                end = len(data) - 1
                if end < 0:
                    return out
            for raw in data[: end + 1].split(b"\n")[:-1]:
                self.lines_read += 1
                rec = self._parse(raw, self.lines_read)
                if rec is not None:
                    out.append((self.lines_read, rec))
            self.offset += end + 1
        return out

    def _read_long_line(self, size: int) -> bytes:
        """A line longer than one read block, up to its newline (b'' if it has none yet)."""
        chunks, pos = [], self.offset
        while pos < size:
            data = os.pread(self._fd, min(READ_BLOCK, size - pos), pos)
            cut = data.find(b"\n")
            if cut >= 0:
                chunks.append(data[: cut + 1])
                return b"".join(chunks)
            chunks.append(data)
            pos += len(data)
        self._warn_tail()
        return b""

    def _warn_tail(self) -> None:
        if self._warned_tail_at != self.offset:
            self._warned_tail_at = self.offset
            log.warning(
                "%s line %d is incomplete (being written, or cut by a crash); it is skipped once the "
                "next record starts on a new line",
                self.path,
                self.lines_read + 1,
            )

    def _parse(self, raw: bytes, line_no: int) -> dict | None:
        if not raw.strip():
            return None
        try:
            rec = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            self.skip(line_no, f"not UTF-8 ({e.reason} at byte {e.start})")
            return None
        except ValueError as e:
            self.skip(line_no, f"not valid JSON ({e})")
            return None
        if not isinstance(rec, dict):
            self.skip(line_no, f"a JSON {type(rec).__name__}, not an object")
            return None
        return rec

    def skip(self, line_no: int, reason: str) -> None:
        """Count a bad line and say which one and why (also used by readers' schema checks)."""
        self.bad_lines += 1
        log.warning("%s line %d skipped: %s", self.path, line_no, reason)

    # ---- writing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self):
        """Hold the writer lock (threads of this process, then other processes via flock)."""
        with self._thread_lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield self
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def append(self, record: dict) -> None:
        """Append `record` as one line and fsync; call inside `locked()`."""
        line = encode(record)
        size = os.fstat(self._fd).st_size
        if size and os.pread(self._fd, 1, size - 1) != b"\n":
            line = b"\n" + line  # the file ends in a truncated line: never glue onto it
        view = memoryview(line)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)
