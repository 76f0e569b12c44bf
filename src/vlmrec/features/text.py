"""Text encoders: any sentence-transformers model, MiniLM by default.

Item text is built from configurable item-table fields; the default joins every text column
that exists among DEFAULT_TEXT_FIELDS with ". " (title first), which is what a catalogue user
would show a shopper.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vlmrec.errors import ModelError
from vlmrec.features import weights

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
        self.dim = int(
            self.model.get_embedding_dimension()
            if hasattr(self.model, "get_embedding_dimension")
            else self.model.get_sentence_embedding_dimension()
        )

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        vecs = self.model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
            show_progress_bar=False,
        )
        return np.asarray(vecs, dtype=np.float32)

    def describe(self) -> dict:
        return {
            "model": self.model_name,
            "model_path": self.model_path,
            "dim": self.dim,
            "preprocessing": f"sentence-transformers tokenizer (max_seq_length={self.model.max_seq_length}); "
            f"mean pooling; L2-normalised={self.normalize}",
        }
