"""`vlmrec <verb>`: the command line, one module per pipeline stage. It wires the stages
together; the logic lives in the library modules it calls.

- `base`: the Typer `app`, the console, logging, the error-reporting decorator, option parsers
- `data`: `prepare`
- `features`: `extractors`, `extract`, `describe`, `fuse`, `control`
- `experiments`: `models`, `evaluate`, `run`, `report`, `demo`
- `serving`: `serve`, `explore`

The console script is `vlmrec = "vlmrec.cli:app"`; `python -m vlmrec` and `python -m vlmrec.cli`
run the same app.
"""

from vlmrec.cli import data, experiments, features, serving  # noqa: F401  (each registers its commands)
from vlmrec.cli.base import app

__all__ = ["app"]
