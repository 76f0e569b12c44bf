"""Models: one Recommender protocol, a registry, ID-only and content/multimodal models."""

from vlmrec.models import bprmf, itemknn, lightgcn, mostpop  # noqa: F401  (register models)
from vlmrec.models.base import MODELS, Recommender, create_model, get_model_class

__all__ = ["MODELS", "Recommender", "create_model", "get_model_class"]
