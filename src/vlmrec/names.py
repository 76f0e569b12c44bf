"""Names are names, never paths: the one check for every name that can become a folder or a file
name (a run's `name`, a feature set's `name`, a model's `label`, a features label given on the
command line).

A name may hold letters, digits, spaces and punctuation such as `-`, `_`, `+`, `|`, but not `/`
or `\\` (a name is not a path), may not start with `.` (that covers `.`, `..` and hidden names),
may not be empty, may not hold control characters (newline, NUL, ...), and has at most
`MAX_NAME_LENGTH` characters.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator

from vlmrec.errors import ConfigError

MAX_NAME_LENGTH = 100
"""The longest name accepted (file systems allow 255 bytes per name; labels join several names)."""

# control characters, lone surrogates (cannot be a file name), line and paragraph separators
_REFUSED_CATEGORIES = ("Cc", "Cs", "Zl", "Zp")


def _shown(value: str) -> str:
    """`value` as a message shows it: quoted, and cut short when long."""
    return repr(value) if len(value) <= 40 else repr(value[:40]) + f"... ({len(value)} characters)"


def name_problem(value: str) -> str | None:
    """Why `value` cannot be a name, or None when it can."""
    if not value.strip():
        return "a name may not be empty"
    if len(value) > MAX_NAME_LENGTH:
        return f"{_shown(value)}: a name has at most {MAX_NAME_LENGTH} characters, this one {len(value)}"
    if "/" in value or "\\" in value:
        return f"{_shown(value)}: a name may not contain '/' or '\\' (it is a name, not a path)"
    if value.startswith("."):
        return f"{_shown(value)}: a name may not start with '.' ('.', '..' and hidden names are paths)"
    for ch in value:
        if unicodedata.category(ch) in _REFUSED_CATEGORIES:
            return f"{_shown(value)}: a name may not contain control characters (U+{ord(ch):04X})"
    return None


def check_name(value: str) -> str:
    """`value` when it is a valid name; a ValueError saying why not (pydantic names the key)."""
    problem = name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def safe_name(value: str, key: str) -> str:
    """`value` when it is a valid name; a ConfigError naming `key` (an option or field) otherwise."""
    problem = name_problem(value)
    if problem is not None:
        raise ConfigError(f"{key}: {problem}")
    return value


SafeName = Annotated[str, AfterValidator(check_name)]
"""A str field that must be a valid name (see the module docstring)."""
