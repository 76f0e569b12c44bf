"""Running the service: one process, or several uvicorn worker processes sharing one state folder.

    python -m vlmrec.serving --run RUN_DIR [--workers 2] [--index auto] [--state-dir DIR]
    python -m vlmrec.serving --dataset DS_DIR --features FEATURES_DIR --workers 2

With more than one worker, the parent process first loads the state once (building and persisting
the index if the folder has none or its fingerprint no longer matches), then starts the workers;
each worker memory-maps the same index file (one copy of the vectors in the page cache, shared)
and follows the same append-only logs, which are written under a file lock.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from vlmrec.errors import ConfigError, option_error
from vlmrec.serving.http import PROTOCOL, TOKEN_ENV, HttpLimits, check_token, limits_from_env
from vlmrec.serving.index import INDEX_CHOICES, IndexParams
from vlmrec.serving.loader import ServeSpec, load_state

log = logging.getLogger(__name__)

SPEC_ENV = "VLMREC_SERVE_SPEC"
LIMITS_ENV = "VLMREC_SERVE_LIMITS"
MAX_WORKERS = 256
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pin_threads(n: int = 1) -> None:
    """One BLAS / OpenMP / faiss thread per worker: on a small machine, a request that fans out to
    every core is slower under concurrency than one that does not (and workers inherit the
    environment variables)."""
    for var in THREAD_VARS:
        os.environ[var] = str(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:  # pragma: no cover - threadpoolctl comes with vlmrec[serve]
        pass
    try:
        import faiss

        faiss.omp_set_num_threads(n)
    except ImportError:  # pragma: no cover
        pass


def worker_app():
    """Application factory for worker processes: the spec comes from the environment."""
    from vlmrec.serving.protocol import TimedProtocol
    from vlmrec.serving.service import create_app

    pin_threads(1)
    spec = ServeSpec.model_validate_json(os.environ[SPEC_ENV])
    limits = limits_from_env(os.environ.get(LIMITS_ENV))
    TimedProtocol.request_timeout = limits.request_timeout
    return create_app(load_state(spec), limits)


def serve(
    spec: ServeSpec,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    announce: Callable[[str], None] = log.info,
    limits: HttpLimits | None = None,
) -> None:
    """Build or load the state once, then serve it with `workers` processes (blocks). `announce`
    receives the one-line "serving ... on http://..." message once the state is ready. `limits`:
    the write token (required beyond loopback), request-size limit and request-read timeout."""
    import uvicorn

    from vlmrec.serving.protocol import TimedProtocol
    from vlmrec.serving.service import create_app

    if workers < 1:
        raise ConfigError(f"--workers {workers}: give 1 or more")
    if workers > MAX_WORKERS:
        raise ConfigError(f"--workers {workers}: at most {MAX_WORKERS} (about one per free core serves best)")
    limits = limits or HttpLimits()
    try:
        check_token(host, limits.token.get_secret_value() if limits.token else None)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    TimedProtocol.request_timeout = limits.request_timeout
    http = {"http": PROTOCOL, "timeout_keep_alive": 5, "log_level": "warning", "access_log": False}
    pin_threads(1)
    state = load_state(spec)  # builds the persisted index before any worker starts
    what = ", ".join(f"{k}={v}" for k, v in state.description.items()) or state.mode
    announce(
        f"serving {what} ({state.index.kind} index) on http://{host}:{port} "
        f"with {workers} worker(s); docs at /docs; writes "
        + ("need the token" if limits.token else "open to this machine only")
    )
    if workers == 1:
        uvicorn.run(create_app(state, limits), host=host, port=port, **http)  # type: ignore[arg-type]
        return
    del state
    gc.collect()
    os.environ[SPEC_ENV] = spec.model_dump_json()
    os.environ[LIMITS_ENV] = limits.public_json()
    if limits.token is not None:
        os.environ[TOKEN_ENV] = limits.token.get_secret_value()
    uvicorn.run(
        "vlmrec.serving.server:worker_app",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        **http,  # type: ignore[arg-type]
    )


def make_spec(
    *,
    run: Path | None = None,
    model: str | None = None,
    features: str | None = None,
    dataset: Path | None = None,
    state_dir: Path | None = None,
    index: str = "auto",
    nprobe: int | None = None,
    ef_search: int | None = None,
) -> ServeSpec:
    """A ServeSpec from command-line style options; invalid values are a ConfigError naming the
    option (what `vlmrec serve` and `python -m vlmrec.serving` both call)."""
    if index not in INDEX_CHOICES:
        raise ConfigError(f"--index {index!r}: choose one of {', '.join(INDEX_CHOICES)}")
    overrides = {k: v for k, v in {"nprobe": nprobe, "ef_search": ef_search}.items() if v is not None}
    try:
        params = IndexParams(**overrides)
    except ValidationError as e:
        raise option_error(e) from None
    return ServeSpec(
        run=run,
        model=model,
        features=features,
        dataset=dataset,
        state_dir=state_dir,
        index=index,
        index_params=params,
    )
