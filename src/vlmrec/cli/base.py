"""What every command shares: the Typer `app`, logging, the console and the one error-reporting
decorator (`reports_errors`, from `vlmrec.terminal`), and parsers for option values that name the
option in their errors."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import typer

from vlmrec.errors import ConfigError
from vlmrec.folders import FolderKind, check_folder
from vlmrec.terminal import console, fail, reports_errors

app = typer.Typer(
    help="vlmrec: item images and text -> recommender features, measured honestly.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def setup_logging(verbose: bool) -> None:
    """INFO logging with `-v`, else warnings only."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def one_of(choices: Sequence[str]) -> str:
    """The choices of an option, for its help text (`concat, mean, sum`)."""
    return ", ".join(choices)


def check_choice(value: str, choices: Sequence[str], option: str) -> str:
    """`value` if it is one of `choices` (a Literal's `get_args`), else a ConfigError naming
    `option` and the choices."""
    if value not in choices:
        raise ConfigError(f"{option} {value!r}: choose one of {one_of(choices)}")
    return value


def floats(text: str, option: str = "--ratios") -> tuple[float, ...]:
    """Comma-separated numbers, or a ConfigError naming the option."""
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(
            f"{option} {text!r}: expected comma-separated numbers such as 0.8,0.1,0.1"
        ) from None
    return values


def ints(text: str, option: str = "--k") -> list[int]:
    """Comma-separated distinct positive integers, or a ConfigError naming the option."""
    try:
        values = [int(x) for x in text.split(",")]
    except ValueError:
        raise ConfigError(
            f"{option} {text!r}: expected comma-separated positive integers such as 10,20"
        ) from None
    if any(v < 1 for v in values):
        raise ConfigError(f"{option} {text!r}: cutoffs must be >= 1")
    if len(set(values)) != len(values):
        raise ConfigError(f"{option} {text!r}: each cutoff once")
    return values


def output_folder(out: Path, kind: FolderKind, option: str = "--out") -> Path:
    """`out` must not exist yet, be empty, or be vlmrec's own `kind` folder (`folders.check_folder`):
    a user's folder is refused before anything is read or written."""
    return check_folder(out, kind, option)


def _version(value: bool) -> None:
    if value:
        from vlmrec.provenance import code_version

        console.print(f"vlmrec {code_version()}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """vlmrec: item images and text -> recommender features, measured honestly."""


__all__ = [
    "app",
    "check_choice",
    "console",
    "fail",
    "floats",
    "ints",
    "one_of",
    "output_folder",
    "reports_errors",
    "setup_logging",
]
