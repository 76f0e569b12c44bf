"""The terminal every command prints to: one rich console, and the one way a command reports a
user's error (`reports_errors`: one line, exit status 2). Shared by the CLI and the server's own
entry point (`python -m vlmrec.serving`), which does not import the CLI."""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable
from typing import NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from vlmrec.errors import VlmrecError

console = Console()

P = ParamSpec("P")
R = TypeVar("R")


def fail(e: Exception) -> NoReturn:
    """Print `e` as one error line and exit with status 2."""
    # escape: messages name fields such as [text] that rich would read as markup and drop;
    # soft_wrap: an error is never broken into lines by the terminal's width (logs, grep, tests)
    text = _os_error(e) if isinstance(e, OSError) else str(e)
    console.print(f"[bold red]error:[/] {escape(text)}", soft_wrap=True)
    raise typer.Exit(2)


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """A command whose VlmrecError or OSError is printed as one error line (`fail`, exit 2)
    instead of a traceback; other exceptions are bugs and keep theirs."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (VlmrecError, OSError) as e:
            fail(e)

    return run


_DISK_HINTS = {
    errno.ENOSPC: "the disk is full: free space or choose another --out; finished work is kept and resumes",
    errno.EDQUOT: "the disk quota is used up: free space or choose another --out",
    errno.EROFS: "the file system is read-only: choose a writable --out",
    errno.EACCES: "permission denied: choose a folder you can write to",
    errno.EPERM: "permission denied: choose a folder you can write to",
}


def _os_error(e: OSError) -> str:
    """One line for a file-system error (a full or read-only disk, a missing permission): the
    file, the system's words and what to do. Nothing half-written is trusted afterwards: every
    artifact is written to a temporary name and renamed into place, or marked complete last."""
    where = f"{e.filename}: " if e.filename else ""
    hint = _DISK_HINTS.get(e.errno or 0, "")
    return f"{where}{e.strerror or e}" + (f" ({hint})" if hint else "")
