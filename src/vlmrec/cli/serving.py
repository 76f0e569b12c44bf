"""`vlmrec serve`: recommendations over HTTP from a run or a dataset with features (the command
itself is `vlmrec.serving.command.serve`, shared with `python -m vlmrec.serving`); `vlmrec
explore`: a web page to look at what each model of a run recommends."""

from __future__ import annotations

from pathlib import Path

import typer

from vlmrec.cli.base import app, console, reports_errors
from vlmrec.folders import check_folder
from vlmrec.serving.command import serve

app.command()(serve)


@app.command()
@reports_errors
def explore(
    run_dir: Path = typer.Argument(..., help="A run folder written by `vlmrec run` or `vlmrec demo`."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port on 127.0.0.1, 1..65535."),
) -> None:
    """A web page on 127.0.0.1 showing each model's recommendations side by side (serving/explore.py)."""
    from vlmrec.serving.explore_app import explore as serve_explorer

    check_folder(run_dir, "run", "RUN_DIR")
    serve_explorer(run_dir, port, announce=console.print)
