"""An append-only JSONL cache of per-item generations (descriptions), keyed by content.

A key covers everything that changes the output (item id, model id, prompt hash), so a changed
prompt or model never reuses stale text. Each record is flushed and fsynced as it is written, so
a killed run resumes where it stopped.

A run killed mid-write leaves a truncated last line. A record is therefore only ever appended
after a line boundary (a newline is written first when the file does not end in one), so the
next record never glues onto the broken line. Lines that cannot be read (truncated, invalid
JSON or UTF-8, not an object with a string `key`) are skipped with a warning naming the line
number and counted in `JsonlCache.skipped`; the good records around them are kept.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class JsonlCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.records: dict[str, dict[str, Any]] = {}
        self.skipped: list[int] = []
        """Line numbers of the lines that could not be read."""
        if self.path.exists():
            with open(self.path, "rb") as f:
                for lineno, raw in enumerate(f, 1):
                    if not raw.strip():
                        continue
                    rec = self._parse(raw)
                    if rec is None:
                        self.skipped.append(lineno)
                        log.warning(
                            "%s: line %d is not a readable cache record (interrupted write or "
                            "corrupt line); skipping it",
                            self.path,
                            lineno,
                        )
                        continue
                    self.records[rec["key"]] = rec
            if self.skipped:
                log.warning(
                    "%s: %d unreadable line(s) skipped, %d record(s) loaded",
                    self.path,
                    len(self.skipped),
                    len(self.records),
                )

    @staticmethod
    def _parse(raw: bytes) -> dict[str, Any] | None:
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return None
        if not isinstance(rec, dict) or not isinstance(rec.get("key"), str):
            return None
        return rec

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        record = {"key": key, **record}
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as f:
            if f.seek(0, os.SEEK_END) > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":  # a truncated last line: start the record on a line of its own
                    f.write(b"\n")
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.records[key] = record
