"""The error hierarchy. Every message should tell the user what to change."""


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
