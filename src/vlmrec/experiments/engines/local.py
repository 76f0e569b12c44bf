"""The local engine: each cell runs in this process, one after another, when the runner waits.

A cell's own error is recorded in its outcome (the runner lists it and the grid goes on); an
interrupt (Ctrl-C) still stops the run, and a rerun resumes from the finished cells.
"""

from __future__ import annotations

import logging
from collections import deque

from vlmrec.data.dataset import Dataset
from vlmrec.experiments.engines import CellContext, CellJob, CellOutcome, execute
from vlmrec.features.featureset import FeatureSet

log = logging.getLogger(__name__)


class LocalEngine:
    """Runs cells in-process with the runner's dataset and feature sets (no copies)."""

    name = "local"

    def __init__(self) -> None:
        self._queue: deque[tuple[CellJob, dict[str, FeatureSet] | None]] = deque()
        self._ctx: CellContext | None = None
        self._dataset: Dataset | None = None

    def connect(self) -> None:
        """Nothing to join."""

    def start(self, ctx: CellContext, dataset: Dataset, jobs: list[CellJob]) -> None:
        """Keep the run's context and dataset for the cells to come."""
        self._ctx, self._dataset = ctx, dataset

    def capacity(self) -> int:
        """One cell at a time: the runner's order is the execution order."""
        return 1

    def running(self) -> int:
        """Cells submitted and not yet returned by `wait`."""
        return len(self._queue)

    def submit(self, job: CellJob, features: dict[str, FeatureSet] | None) -> None:
        """Queue `job`; it runs when the runner next waits."""
        self._queue.append((job, features))

    def wait(self) -> list[CellOutcome]:
        """Run the oldest queued cell here and return its outcome."""
        assert self._ctx is not None and self._dataset is not None, "start() first"
        job, features = self._queue.popleft()
        try:
            record = execute(job, self._dataset, features, self._ctx, verify=False)
        except Exception as e:  # the cell's own error: recorded, the grid goes on
            log.debug("cell %s failed", job.key, exc_info=True)
            return [CellOutcome(job, error=f"{type(e).__name__}: {e}")]
        return [CellOutcome(job, record=record)]

    def close(self) -> None:
        """Nothing to release."""
        self._queue.clear()
