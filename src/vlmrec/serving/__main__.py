"""`python -m vlmrec.serving`: the `vlmrec serve` command under a module name (for process
managers that run a module), with INFO logging; one option list serves both."""

import logging
import sys

from vlmrec.cli import app

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
app(["serve", *sys.argv[1:]], prog_name="python -m vlmrec.serving")
