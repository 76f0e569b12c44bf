"""`vlmrec serve`: recommendations over HTTP from a run or a dataset with features (the command
itself is `vlmrec.serving.command.serve`, shared with `python -m vlmrec.serving`)."""

from __future__ import annotations

from vlmrec.cli.base import app
from vlmrec.serving.command import serve

app.command()(serve)
