"""The server's command: `vlmrec serve` and `python -m vlmrec.serving` run this one function with
this one option list. It lives in the serving stage so that the server's own entry point does not
import the CLI (which imports every stage)."""

from __future__ import annotations

from pathlib import Path

import typer

from vlmrec.errors import VlmrecError, option_error
from vlmrec.serving.http import DEFAULT_MAX_BODY, DEFAULT_REQUEST_TIMEOUT, TOKEN_ENV
from vlmrec.serving.index import INDEX_CHOICES
from vlmrec.terminal import console, reports_errors


@reports_errors
def serve(
    run: Path | None = typer.Option(
        None, "--run", help="A run folder: serves its best trained cell (or --model/--features)."
    ),
    dataset: Path | None = typer.Option(
        None, help="A prepared dataset (with --features): ProfileMatch serving."
    ),
    features: str | None = typer.Option(
        None, help="FeatureSet folder (with --dataset) or features label (with --run)."
    ),
    model: str | None = typer.Option(None, help="With --run: which model's cell to serve."),
    state_dir: Path | None = typer.Option(
        None, help="Where the index and the event and item logs live (survive restarts)."
    ),
    index: str = typer.Option(
        "auto", help=f"Vector index: {', '.join(INDEX_CHOICES)} (auto picks by catalogue size)."
    ),
    nprobe: int | None = typer.Option(None, help="ivf index: cells scanned per query."),
    ef_search: int | None = typer.Option(None, help="hnsw index: candidate list per query."),
    workers: int = typer.Option(
        1, help="Worker processes (1..256) sharing one memory-mapped index and the same logs."
    ),
    host: str = typer.Option(
        "127.0.0.1", help="Address to bind; anything but loopback needs a write token (--token)."
    ),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port, 1..65535."),
    token: str | None = typer.Option(
        None,
        envvar=TOKEN_ENV,
        show_envvar=True,
        help=f"Bearer token POST /events and POST /items require (at least 16 characters; better "
        f"set {TOKEN_ENV} than put it on the command line).",
    ),
    max_body_bytes: int = typer.Option(
        DEFAULT_MAX_BODY, "--max-body-bytes", help="Largest request body; a larger one is answered 413."
    ),
    request_timeout: float = typer.Option(
        DEFAULT_REQUEST_TIMEOUT,
        "--request-timeout",
        help="Seconds a client has to send a whole request (head and body) before the connection is closed.",
    ),
) -> None:
    """Serve recommendations over HTTP (FastAPI; API docs at /docs, schema at /openapi.json).

    The same service as `python -m vlmrec.serving`: the state (index, logs) is built or loaded
    once, then served by `--workers` processes. docs/serving.md: the token, limits and a reverse
    proxy in front."""
    from pydantic import ValidationError

    from vlmrec.serving.http import HttpLimits
    from vlmrec.serving.server import make_spec
    from vlmrec.serving.server import serve as run_server

    if run is None and (dataset is None or not features):
        raise VlmrecError("give --run RUN_DIR, or --dataset DIR --features FEATURESET_DIR")
    spec = make_spec(
        run=run,
        model=model,
        features=features,
        dataset=dataset,
        state_dir=state_dir,
        index=index,
        nprobe=nprobe,
        ef_search=ef_search,
    )
    try:
        limits = HttpLimits(token=token, max_body_bytes=max_body_bytes, request_timeout=request_timeout)
    except ValidationError as e:
        raise option_error(e) from None
    run_server(spec, host, port, workers, announce=console.print, limits=limits)
