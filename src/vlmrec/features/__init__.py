"""Features: item content as vectors, with provenance.

featureset.py   FeatureSet: vectors aligned with a dataset's items + manifest (the store)
extraction.py   the Extractor protocol and `extract` (chunked, checkpointed, resumable)
registry.py     every extractor name -> its options model and builder (CLI, config, API)
cache.py        the description cache (JSONL, crash-safe) shared by describing extractors
encoders/       text and image encoders, label+OCR describer, multi-hot attributes, weights
lvlm/           LVLM loading and embeddings, prompts, the three LVLM extractors
combine/        fusion of feature sets and the content controls
engines/        extraction on Ray
"""

from vlmrec.features.featureset import FeatureSet

__all__ = ["FeatureSet"]
