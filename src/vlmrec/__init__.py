"""vlmrec: item images and text -> recommender-ready representations, measured honestly."""

__version__ = "0.1.0"

from vlmrec.errors import ConfigError, DataError, ModelError, VlmrecError

__all__ = ["__version__", "VlmrecError", "DataError", "ConfigError", "ModelError"]
