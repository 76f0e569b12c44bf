"""The Ray engine: each cell a Ray task with its model's `resources`, on a local Ray cluster sized
to the machine or on the cluster `address` names (docs/scaling.md).

A task loads the dataset and the FeatureSets from the run folder (once per worker process: Ray
reuses workers), rebuilds a twin's control features from its seed, checks that they are the ones
the cell's key was made from, runs `engines.execute` and writes the cell through `CellArtifact`
into the run folder; the driver only collects keys and reads `cell.json`. So the run folder must
be on a filesystem every node mounts at the same path: a probe task on every node checks that
before the first cell, and refuses naming the node.

Faults: a task whose worker dies (killed process, lost node, out of memory) is submitted again,
at most `max_retries` times (Ray's own retries are off, so each one is counted and logged); a
cell that raises is not retried: its error comes back as the outcome, and the grid goes on.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from pathlib import Path
from typing import Any

from vlmrec.data.dataset import Dataset
from vlmrec.errors import ConfigError
from vlmrec.experiments.artifacts import CellArtifact
from vlmrec.experiments.engines import CELL_CODE, CellContext, CellJob, CellOutcome, execute, job_features
from vlmrec.features.engines.ray import INSTALL_HINT
from vlmrec.features.featureset import FeatureSet

log = logging.getLogger(__name__)

CRASH_ENV = "VLMREC_TEST_CELL_CRASH_ONCE"
"""`<marker file>`: the first cell task that finds no marker writes it and dies like a killed
worker, before running its cell (tests)."""
FAIL_ENV = "VLMREC_TEST_CELL_FAIL"
"""A substring of a cell's line (`model [features] params seed N`): those cells raise (tests)."""
SHARED_FS = (
    "the run folder, the dataset and the feature sets must be on a filesystem every node of the "
    "cluster mounts at the same path (docs/scaling.md)"
)
PROBE_TIMEOUT_S = 300
_CACHE: dict[tuple[str, str, Any], Any] = {}
_CACHE_SIZE = 16


def _ray() -> Any:
    """The ray module, or a ConfigError saying how to install it."""
    try:
        import ray
    except ImportError as e:
        raise ConfigError(INSTALL_HINT) from e
    return ray


def _cached(kind: str, path: Path, version: Any, load: Any) -> Any:
    """`load()` once per worker process for a (kind, path, version)."""
    key = (kind, str(path), version)
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[key] = load()
    return _CACHE[key]


def _test_hooks(job: CellJob) -> None:
    """Die like a killed worker (CRASH_ENV) or raise (FAIL_ENV) when a test asks for it."""
    crash = os.environ.get(CRASH_ENV)
    if crash:
        try:
            fd = os.open(crash, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.write(fd, job.key.encode())
            os.close(fd)
            os._exit(1)  # die like a killed worker, before the cell is written
    fail = os.environ.get(FAIL_ENV)
    if fail and fail in job.line:
        raise RuntimeError(f"injected failure ({FAIL_ENV})")


def cell_task(job: CellJob, ctx: CellContext) -> str:
    """Run one cell on a worker and write it into the run folder; returns its key."""
    from vlmrec.provenance import set_threads

    _test_hooks(job)
    set_threads(ctx.threads)
    if CellArtifact.find(ctx.run_dir, job.key) is not None:
        return job.key  # an earlier attempt wrote it before its worker died
    if not (ctx.run_dir / "config.json").is_file():
        raise ConfigError(f"node {socket.gethostname()} cannot see the run folder {ctx.run_dir}: {SHARED_FS}")
    ds = _cached("dataset", ctx.dataset_dir, job.spec["dataset"], lambda: Dataset.load(ctx.dataset_dir))
    real: dict[str, FeatureSet] = {}
    for name in job.features:
        folder = ctx.features_dirs[name]
        stamp = (folder / "manifest.json").stat().st_mtime_ns
        real[name] = _cached("features", folder, stamp, lambda f=folder: FeatureSet.load(f, ds))
    execute(job, ds, job_features(job, real), ctx)
    return job.key


def probe_task(paths: list[str], token_file: str, token: str) -> dict[str, Any]:
    """What one node sees of the run: the missing paths, whether the probe file holds the
    driver's token, whether it can write the run folder, and its cell code hash."""
    from vlmrec.provenance import code_hash

    missing = [p for p in paths if not Path(p).exists()]
    try:
        same = Path(token_file).read_text() == token
    except OSError:
        same = False
    try:
        scratch = Path(token_file).with_name(f".probe-{uuid.uuid4().hex}")
        scratch.write_text("")
        scratch.unlink()
        writable = True
    except OSError:
        writable = False
    return {
        "host": socket.gethostname(),
        "missing": missing,
        "same": same,
        "writable": writable,
        "code": code_hash(*CELL_CODE),
    }


def check_probe(answers: list[dict[str, Any]], run_dir: Path, code: str) -> None:
    """Refuse the run, naming the first node whose `probe_task` answer shows it cannot see or
    write the run's folders, or runs other cell code than `code`."""
    for a in answers:
        if a["missing"] or not a["same"] or not a["writable"]:
            what = ", ".join(a["missing"]) or f"{run_dir} (another folder of that name, or read-only)"
            raise ConfigError(f"node {a['host']} cannot see {what}: {SHARED_FS}")
        if a["code"] != code:
            raise ConfigError(
                f"node {a['host']} runs other vlmrec model/evaluation code (cell code {a['code']}, "
                f"this machine {code}): install the same vlmrec on every node (or the code changed "
                "while the probe ran: run again)"
            )


class RayEngine:
    """Cells as Ray tasks: `num_cpus` / `num_gpus` from each model's `resources`."""

    name = "ray"

    def __init__(self, address: str | None = None, max_retries: int = 3, num_cpus: int | None = None) -> None:
        """`address`: a running cluster (`auto`, `HOST:PORT`, `ray://...`); None starts one here
        with `num_cpus` CPUs (default: the machine's). `max_retries`: resubmissions of a cell
        whose worker died."""
        if max_retries < 0:
            raise ConfigError(f"--max-retries {max_retries}: 0 or more")
        self.address, self.max_retries, self.num_cpus = address, max_retries, num_cpus
        self._pending: dict[Any, tuple[CellJob, int]] = {}
        self._ctx: CellContext | None = None
        self._started_here = False
        self._min_cpus = 1.0

    def connect(self) -> None:
        """Join the cluster (or start a local one) unless this process is already connected."""
        ray = _ray()
        if ray.is_initialized():
            return
        hooks = {k: v for k, v in os.environ.items() if k in (CRASH_ENV, FAIL_ENV)}
        ray.init(
            address=self.address,
            num_cpus=self.num_cpus if self.address is None else None,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": hooks} if hooks else None,
        )
        self._started_here = True

    def start(self, ctx: CellContext, dataset: Dataset, jobs: list[CellJob]) -> None:
        """Refuse cells no node can hold and nodes that cannot see the run folder."""
        self._ctx = ctx
        if jobs:
            self._min_cpus = min(job.num_cpus for job in jobs)
            self._check_resources(jobs)
        self._probe(ctx)
        self._remote = _ray().remote(cell_task)

    def _check_resources(self, jobs: list[CellJob]) -> None:
        """A task that no node can hold waits forever in Ray: refuse it here, naming the model."""
        nodes = [n["Resources"] for n in _ray().nodes() if n.get("Alive")]
        for display, cpus, gpus in sorted({(j.display, j.num_cpus, j.num_gpus) for j in jobs}):
            if not any(r.get("CPU", 0) >= cpus and r.get("GPU", 0) >= gpus for r in nodes):
                largest = max(((r.get("CPU", 0), r.get("GPU", 0)) for r in nodes), default=(0, 0))
                raise ConfigError(
                    f"models ({display}).resources: each cell asks for num_cpus={cpus:g}, num_gpus={gpus:g}, "
                    f"more than any node of the cluster has (largest: {largest[0]:g} CPUs, {largest[1]:g} GPUs); "
                    "lower resources (num_cpus defaults to `threads`) or add a node that has them"
                )

    def _probe(self, ctx: CellContext) -> None:
        """One task on every node: can it see (and write) the run folder, the dataset and the
        feature sets, and does it run the same cell code as this driver?"""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from vlmrec.provenance import code_hash

        ray = _ray()
        token = uuid.uuid4().hex
        token_file = ctx.run_dir / f".probe-{token}"
        token_file.write_text(token)
        paths = [str(ctx.run_dir), str(ctx.dataset_dir), *map(str, ctx.features_dirs.values())]
        try:
            probe = ray.remote(probe_task)
            refs = [
                probe.options(
                    num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
                ).remote(paths, str(token_file), token)
                for n in ray.nodes()
                if n.get("Alive")
            ]
            answers = ray.get(refs, timeout=PROBE_TIMEOUT_S)
        finally:
            token_file.unlink(missing_ok=True)
        # the code on disk now (code_hash is cached per process): what every node must run
        here = code_hash.__wrapped__(*CELL_CODE)
        if here != code_hash(*CELL_CODE):
            log.warning(
                "the model/evaluation code changed since this process first read it: the workers run the "
                "new code, the cells are keyed by the old; start a new process to key them by the new"
            )
        check_probe(answers, ctx.run_dir, here)

    def capacity(self) -> int:
        """Cells that fit on the cluster's CPUs now (re-read: a lost node shrinks it), so the
        twins the runner queues first start next rather than behind the whole grid."""
        cpus = float(_ray().cluster_resources().get("CPU", 0))
        return max(1, int(cpus // self._min_cpus) if self._min_cpus > 0 else len(self._pending) + 1)

    def running(self) -> int:
        """Cells submitted and not yet returned."""
        return len(self._pending)

    def submit(self, job: CellJob, features: dict[str, FeatureSet] | None, attempt: int = 1) -> None:
        """Start `job` as a task (`features` are rebuilt on the worker from the run folder)."""
        ref = self._remote.options(
            num_cpus=job.num_cpus,
            num_gpus=job.num_gpus,
            max_retries=0,  # retried here, counted, only when the worker died
            retry_exceptions=False,
            name=f"cell {job.display} seed {job.seed}",
        ).remote(job, self._ctx)
        self._pending[ref] = (job, attempt)

    def wait(self) -> list[CellOutcome]:
        """Block until at least one cell is finished; resubmit those whose worker died."""
        ray = _ray()
        outcomes: list[CellOutcome] = []
        while self._pending and not outcomes:
            ready, _ = ray.wait(list(self._pending), num_returns=1)
            rest = [r for r in self._pending if r not in ready]
            if rest:
                ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
            for ref in ready:
                job, attempt = self._pending.pop(ref)
                outcome = self._outcome(ref, job, attempt)
                if outcome is not None:
                    outcomes.append(outcome)
        return outcomes

    def _outcome(self, ref: Any, job: CellJob, attempt: int) -> CellOutcome | None:
        """The finished cell's outcome, or None when it was resubmitted after a worker death."""
        ray = _ray()
        try:
            key = ray.get(ref)
        except ray.exceptions.RayTaskError as e:  # the cell's own error: recorded, not retried
            cause = e.cause if getattr(e, "cause", None) is not None else e
            return CellOutcome(job, error=f"{type(cause).__name__}: {cause}", attempts=attempt)
        except ray.exceptions.RayError as e:
            # a dead worker, node or object (not a cancelled or unschedulable task)
            died = not isinstance(
                e, ray.exceptions.TaskCancelledError | ray.exceptions.TaskUnschedulableError
            )
            if died and attempt <= self.max_retries:
                log.warning(
                    "%s: worker died (%s); retry %d of %d",
                    job.line,
                    type(e).__name__,
                    attempt,
                    self.max_retries,
                )
                self.submit(job, None, attempt + 1)
                return None
            reason = f"worker died {attempt} times" if died else "the cluster failed it"
            return CellOutcome(job, error=f"{reason}: {type(e).__name__}: {str(e)[:300]}", attempts=attempt)
        assert self._ctx is not None
        done = CellArtifact.find(self._ctx.run_dir, key)
        if done is None:
            return CellOutcome(
                job, error=f"written on a worker but not visible here: {SHARED_FS}", attempts=attempt
            )
        notes = [f"{job.line}: done after {attempt} attempts (worker died)"] if attempt > 1 else []
        return CellOutcome(job, record=done.record(), attempts=attempt, notes=notes)

    def close(self) -> None:
        """Cancel what is still running; shut down a cluster started here."""
        ray = _ray()
        if ray.is_initialized():
            for ref in self._pending:
                ray.cancel(ref, force=True)
        self._pending.clear()
        if self._started_here and ray.is_initialized():
            ray.shutdown()
            self._started_here = False
