"""`python -m vlmrec.serving`: the `vlmrec serve` command under a module name (for process
managers that run a module), with INFO logging; one option list (`serving.command.serve`) serves
both, and this entry point does not import the CLI."""

import logging

import typer

from vlmrec.serving.command import serve

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command()(serve)
app(prog_name="python -m vlmrec.serving")
