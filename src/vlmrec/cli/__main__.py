"""`python -m vlmrec.cli`: the command line."""

from vlmrec.cli import app

app(prog_name="vlmrec")
