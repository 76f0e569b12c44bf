"""Models: one Recommender protocol, a registry, ID-only and content/multimodal models."""

from vlmrec.models import (  # noqa: F401  (importing registers each model)
    attributeknn,
    bm3,
    bprmf,
    ease,
    freedom,
    ials,
    itemknn,
    lattice,
    lightgcn,
    mostpop,
    profilematch,
    vbpr,
)
from vlmrec.models.base import MODELS, Recommender, create_model, get_model_class

__all__ = ["MODELS", "Recommender", "create_model", "get_model_class"]
