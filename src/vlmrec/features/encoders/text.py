"""Text encoders: any sentence-transformers model, MiniLM by default; the text extractor
(`text`, `text-mpnet`) and its options.

Item text is built from configurable item-table fields; the default joins every text column
that exists among DEFAULT_TEXT_FIELDS with ". " (title first), which is what a catalogue user
would show a shopper.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import Field

from vlmrec.errors import ModelError
from vlmrec.features.encoders import weights
from vlmrec.features.extraction import Extractor, ExtractorOptions

log = logging.getLogger(__name__)

DEFAULT_TEXT_FIELDS = ("title", "brand", "categories", "genres", "description", "features")
NAMED_TEXT_MODELS = {"minilm": weights.minilm_path, "mpnet": weights.mpnet_path}


def item_texts(items: pd.DataFrame, fields: Sequence[str] | None = None) -> list[str]:
    """One string per item: the chosen fields joined by '. ', empty fields skipped."""
    if fields is None:
        fields = [f for f in DEFAULT_TEXT_FIELDS if f in items.columns]
    missing = [f for f in fields if f not in items.columns]
    if missing:
        raise ModelError(f"text fields {missing} are not in the item table (columns: {list(items.columns)})")
    if not fields:
        raise ModelError(
            f"the item table has no text fields (columns: {list(items.columns)}); "
            f"expected some of {list(DEFAULT_TEXT_FIELDS)} or name them with --fields"
        )
    cols = items[list(fields)].fillna("").astype(str)
    return [". ".join(v.strip() for v in row if v.strip()) for row in cols.itertuples(index=False)]


class SentenceEncoder:
    """Wraps sentence_transformers.SentenceTransformer; `model` is 'minilm', 'mpnet', a local
    folder or a hub id (hub ids only work where a hub is reachable)."""

    def __init__(self, model: str = "minilm", device: str | None = None, normalize: bool = True):
        from sentence_transformers import SentenceTransformer

        self.model_name = model
        path = NAMED_TEXT_MODELS[model]() if model in NAMED_TEXT_MODELS else model
        if model not in NAMED_TEXT_MODELS and not Path(model).exists():
            log.warning("text model %r is not a local folder; it will be looked up on the model hub", model)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self.model = SentenceTransformer(str(path), device=device)
        except (OSError, ValueError) as e:
            raise ModelError(f"cannot load sentence-transformers model {model!r} from {path}: {e}") from e
        self.model_path = str(path)
        self.normalize = normalize
        dim = (  # sentence-transformers renamed the method; older releases have only the long name
            self.model.get_embedding_dimension()
            if hasattr(self.model, "get_embedding_dimension")
            else self.model.get_sentence_embedding_dimension()
        )
        if dim is None:
            raise ModelError(f"sentence-transformers model {model!r} does not state its embedding dimension")
        self.dim = int(dim)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(n, dim) float32 embeddings, `batch_size` texts per forward pass."""
        vecs = self.model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
            show_progress_bar=False,
        )
        return np.asarray(vecs, dtype=np.float32)

    def describe(self) -> dict:
        """Model name, path, dimension and preprocessing, for manifests."""
        return {
            "model": self.model_name,
            "model_path": self.model_path,
            "dim": self.dim,
            "preprocessing": f"sentence-transformers tokenizer (max_seq_length={self.model.max_seq_length}); "
            f"mean pooling; L2-normalised={self.normalize}",
        }


class TextMpnetOptions(ExtractorOptions):
    """Options of `text-mpnet` (all-mpnet-base-v2, the paper profile; the model is fixed)."""

    fields: list[str] | None = Field(
        None, min_length=1, description="item-table text fields joined with '. ' (default: every known one)"
    )
    batch_size: int = Field(64, ge=1, description="texts per encoder forward pass")


class TextOptions(TextMpnetOptions):
    """Options of `text` (any sentence-transformers model)."""

    model: str = Field("minilm", description="minilm, mpnet, a sentence-transformers folder or hub id")


class TextExtractor(Extractor):
    """Sentence embedding of each item's text fields, `batch_size` texts per forward pass."""

    def __init__(
        self,
        model: str = "minilm",
        fields: Sequence[str] | None = None,
        batch_size: int = 64,
        encoder: SentenceEncoder | None = None,
        name: str = "text",
    ):
        if batch_size < 1:
            raise ModelError(f"{name}: batch_size {batch_size}: must be >= 1")
        self.name = name
        self.encoder = encoder or SentenceEncoder(model)
        self.fields = list(fields) if fields else None
        self.batch_size = batch_size

    def process(self, items: pd.DataFrame) -> tuple[np.ndarray, dict[int, str]]:
        """Embeddings of the items' texts; items with no text are NaN rows, listed as failed."""
        texts = item_texts(items, self.fields)
        failed = {i: "empty text" for i, t in enumerate(texts) if not t}
        vecs = self.encoder.encode([t or " " for t in texts], self.batch_size)
        vecs[list(failed)] = np.nan
        return vecs, failed

    def manifest(self) -> dict[str, Any]:
        """Extractor name, fields, batch size and the encoder's description."""
        return {
            "extractor": self.name,
            "modality": "text",
            "fields": self.fields or "default",
            **self.encoder.describe(),
            "batch_size": self.batch_size,
        }
