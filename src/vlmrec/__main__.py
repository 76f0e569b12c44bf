"""`python -m vlmrec`: the command line (the same app as the `vlmrec` console script)."""

from vlmrec.cli import app

app(prog_name="vlmrec")
