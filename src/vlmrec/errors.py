"""The error hierarchy. Every message should tell the user what to change."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class VlmrecError(Exception):
    """Base class of every error vlmrec raises on purpose."""


class DataError(VlmrecError):
    """Input data is missing, malformed or inconsistent (names the file, line or column)."""


class ConfigError(VlmrecError):
    """A configuration value is invalid (names the key)."""


class ModelError(VlmrecError):
    """A model cannot be built, loaded or used as asked."""


class NotFoundError(VlmrecError):
    """An id (user, item) the caller named does not exist; the service answers 404."""


def option_error(e: ValidationError) -> ConfigError:
    """The first error of validating command-line options with pydantic, as a ConfigError naming
    the option as typed (`ef_search` -> `--ef-search`), what it got and what it expects."""
    err = e.errors()[0]
    field = str(err["loc"][0]) if err["loc"] else ""
    option = "--" + field.replace("_", "-") if field else "options"
    return ConfigError(f"{option} {err.get('input')!r}: {err['msg']}")
