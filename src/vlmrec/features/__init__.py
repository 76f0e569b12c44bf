"""Features: extractors, describers, LVLM representations, fusion, controls and the store."""

from vlmrec.features.featureset import FeatureSet

__all__ = ["FeatureSet"]
