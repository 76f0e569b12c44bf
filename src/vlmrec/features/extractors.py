"""The named extractors behind `vlmrec extract --extractor NAME`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vlmrec.errors import ConfigError
from vlmrec.features.cache import JsonlCache
from vlmrec.features.image import EfficientNetLite0, HFImageModel, ImageLoadError, InceptionPool, load_image
from vlmrec.features.text import SentenceEncoder, item_texts
from vlmrec.provenance import hash_text

log = logging.getLogger(__name__)


class TextExtractor:
    """Sentence embedding of each item's text fields."""

    def __init__(
        self,
        model: str = "minilm",
        fields: Sequence[str] | None = None,
        batch_size: int = 64,
        encoder: SentenceEncoder | None = None,
        name: str = "text",
    ):
        self.name = name
        self.encoder = encoder or SentenceEncoder(model)
        self.fields = list(fields) if fields else None
        self.batch_size = batch_size

    def process(self, items: pd.DataFrame):
        texts = item_texts(items, self.fields)
        failed = {i: "empty text" for i, t in enumerate(texts) if not t}
        vecs = self.encoder.encode([t or " " for t in texts], self.batch_size)
        vecs[list(failed)] = np.nan
        return vecs, failed

    def manifest(self) -> dict[str, Any]:
        return {
            "extractor": self.name,
            "modality": "text",
            "fields": self.fields or "default",
            **self.encoder.describe(),
        }


class ImageExtractor:
    """Pooled features of each item's image; unreadable images are reported, not zero-filled."""

    def __init__(self, encoder, batch_size: int = 32, name: str = "image"):
        self.name = name
        self.encoder = encoder
        self.batch_size = batch_size

    def process(self, items: pd.DataFrame):
        images, positions, failed = [], [], {}
        for pos, path in enumerate(items["image_path"].tolist()):
            try:
                images.append(load_image(path))
                positions.append(pos)
            except ImageLoadError as e:
                failed[pos] = str(e)
        dim = None
        chunks = []
        for s in range(0, len(images), self.batch_size):
            chunks.append(self.encoder.encode(images[s : s + self.batch_size]))
        if chunks:
            dim = chunks[0].shape[1]
        dim = dim or getattr(self.encoder, "dim", None) or 1
        out = np.full((len(items), dim), np.nan, np.float32)
        if chunks:
            out[positions] = np.concatenate(chunks)
        return out, failed

    def manifest(self) -> dict[str, Any]:
        return {"extractor": self.name, "modality": "image", **self.encoder.describe()}


class DescribedTextExtractor:
    """VLM4Rec's recipe with an image-to-text describer: describe each image (cached JSONL),
    then embed "title. description" with a sentence encoder. Items without an image are
    embedded from their title alone and listed as failed (the description is missing)."""

    def __init__(
        self,
        describer,
        encoder: SentenceEncoder | None = None,
        cache: str | Path | None = None,
        title_field: str = "title",
        name: str = "describe-ocr",
        batch_size: int = 16,
    ):
        self.name = name
        self.describer = describer
        self.encoder = encoder or SentenceEncoder("minilm")
        self.cache = JsonlCache(cache) if cache else None
        self.title_field = title_field
        self.batch_size = batch_size
        self.prompt_hash = hash_text(repr(getattr(describer, "config", {})))

    def _key(self, item_id: str) -> str:
        return f"{item_id}|{self.describer.model_id}|{self.prompt_hash}"

    def descriptions(self, items: pd.DataFrame) -> tuple[list[str], dict[int, str]]:
        texts: list[str | None] = [None] * len(items)
        todo, imgs, failed = [], [], {}
        titles = (
            items[self.title_field].fillna("").astype(str).tolist()
            if self.title_field in items
            else [""] * len(items)
        )
        for pos, (item_id, path) in enumerate(zip(items["item_id"].astype(str), items["image_path"])):
            rec = self.cache.get(self._key(item_id)) if self.cache else None
            if rec is not None:
                texts[pos] = rec["description"]
                continue
            try:
                imgs.append(load_image(path))
                todo.append(pos)
            except ImageLoadError as e:
                failed[pos] = str(e)
        for s in range(0, len(todo), self.batch_size):
            batch = todo[s : s + self.batch_size]
            recs = self.describer.describe(imgs[s : s + self.batch_size], [titles[p] for p in batch])
            for pos, rec in zip(batch, recs):
                texts[pos] = rec["description"]
                if self.cache:
                    self.cache.put(
                        self._key(str(items["item_id"].iloc[pos])),
                        {"item_id": str(items["item_id"].iloc[pos]), **rec},
                    )
        return [t or "" for t in texts], failed

    def process(self, items: pd.DataFrame):
        descriptions, failed = self.descriptions(items)
        titles = (
            items[self.title_field].fillna("").astype(str).tolist()
            if self.title_field in items
            else [""] * len(items)
        )
        texts = [
            ". ".join(p for p in (t.strip(), d.strip()) if p) or " " for t, d in zip(titles, descriptions)
        ]
        return self.encoder.encode(texts), failed

    def manifest(self) -> dict[str, Any]:
        enc = self.encoder.describe()
        return {
            "extractor": self.name,
            "modality": "image->text",
            "describer": self.describer.model_id,
            "describer_source": self.describer.source,
            "describer_config": getattr(self.describer, "config", {}),
            "model": enc["model"],
            "model_path": enc["model_path"],
            "text_recipe": f"{self.title_field}. description",
            "preprocessing": enc["preprocessing"],
        }


def _describe_ocr(model: str | None, out: Path, **kw):
    from vlmrec.features.describer import LabelOCRDescriber

    return DescribedTextExtractor(
        LabelOCRDescriber(),
        SentenceEncoder(model or "minilm"),
        cache=out / "descriptions.jsonl",
        name="describe-ocr",
    )


EXTRACTORS: dict[str, tuple[str, Callable[..., Any]]] = {
    "text": (
        "sentence-transformers text embedding (default all-MiniLM-L6-v2, 384-d)",
        lambda model, out, fields=None, **kw: TextExtractor(model or "minilm", fields),
    ),
    "text-mpnet": (
        "all-mpnet-base-v2 text embedding (768-d; paper profile)",
        lambda model, out, fields=None, **kw: TextExtractor("mpnet", fields, name="text-mpnet"),
    ),
    "image": (
        "EfficientNet-Lite0 ImageNet pooled features (1280-d)",
        lambda model, out, **kw: ImageExtractor(EfficientNetLite0()),
    ),
    "image-inception": (
        "Inception-v3 pool features (2048-d; offline stand-in for the paper's ResNet50)",
        lambda model, out, **kw: ImageExtractor(InceptionPool(), name="image-inception"),
    ),
    "image-hf": (
        "any transformers vision model by --model PATH_OR_ID (e.g. microsoft/resnet-50)",
        lambda model, out, **kw: ImageExtractor(
            HFImageModel(_need_model(model, "image-hf")), name="image-hf"
        ),
    ),
    "describe-ocr": (
        "label+OCR description of the image (not an LVLM), 'title. description' encoded by MiniLM",
        _describe_ocr,
    ),
    "lvlm-embed": (
        "LVLM hidden states under a structured prompt (--model PATH --prompt clothing; options layer, pooling)",
        lambda model, out, **kw: _lvlm_factory("build_lvlm_embed")(model, out, **kw),
    ),
    "lvlm-describe": (
        "LVLM description of the image, 'title. description' embedded by MiniLM (VLM4Rec; --model --prompt)",
        lambda model, out, **kw: _lvlm_factory("build_lvlm_describe")(model, out, **kw),
    ),
    "lvlm-attributes": (
        "LVLM fill-in-the-blank attributes, one-hot top-50 per slot + Other (Pomo et al.; --model --prompt)",
        lambda model, out, **kw: _lvlm_factory("build_lvlm_attributes")(model, out, **kw),
    ),
    "onehot": (
        "multi-hot attributes from categorical item fields (--fields genres), for AttributeItemKNN",
        lambda model, out, fields=None, items=None, **kw: MultiHotExtractor(items, _need_fields(fields)),
    ),
}


def _lvlm_factory(name: str):
    from vlmrec.features import lvlm_extractors

    return getattr(lvlm_extractors, name)


def _need_fields(fields):
    if not fields:
        raise ConfigError("extractor 'onehot' needs --fields (e.g. genres or categories)")
    return fields


def _need_model(model: str | None, name: str) -> str:
    if not model:
        raise ConfigError(f"extractor {name!r} needs --model PATH_OR_ID")
    return model


def register_extractor(name: str, help_text: str, factory: Callable[..., Any]) -> None:
    EXTRACTORS[name] = (help_text, factory)


def build_extractor(name: str, out: Path, model: str | None = None, **options):
    """`options` may include `items` (the dataset's item table) for extractors fitted on it."""
    if name not in EXTRACTORS:
        raise ConfigError(f"unknown extractor {name!r}; available: {', '.join(EXTRACTORS)}")
    return EXTRACTORS[name][1](model=model, out=Path(out), **options)


class MultiHotExtractor:
    """Multi-hot encoding of categorical item fields (e.g. MovieLens genres, Amazon categories):
    values split on ',' or '|', the `top` most frequent per field kept, the rest pooled in
    '<field>=Other'. Attribute vectors for AttributeItemKNN."""

    def __init__(self, items: pd.DataFrame, fields: Sequence[str], top: int = 50, name: str = "onehot"):
        import re
        from collections import Counter

        self.name = name
        self.fields = list(fields)
        missing = [f for f in self.fields if f not in items.columns]
        if missing:
            raise ConfigError(
                f"onehot fields {missing} are not in the item table (columns: {list(items.columns)})"
            )
        self._split = lambda v: [t.strip().lower() for t in re.split(r"[,|]", str(v or "")) if t.strip()]
        self.vocab: list[str] = []
        for f in self.fields:
            counts = Counter(t for v in items[f] for t in self._split(v))
            kept = sorted(counts, key=lambda t: (-counts[t], t))[:top]
            self.vocab += [f"{f}={t}" for t in kept] + ([f"{f}=Other"] if len(counts) > top else [])
        self.index = {t: i for i, t in enumerate(self.vocab)}

    def process(self, items: pd.DataFrame):
        out = np.zeros((len(items), len(self.vocab)), np.float32)
        failed = {}
        for pos in range(len(items)):
            for f in self.fields:
                for t in self._split(items[f].iloc[pos]):
                    j = self.index.get(f"{f}={t}", self.index.get(f"{f}=Other"))
                    if j is not None:
                        out[pos, j] = 1.0
            if not out[pos].any():
                failed[pos] = "no attribute values"
        return out, failed

    def manifest(self) -> dict[str, Any]:
        return {
            "extractor": self.name,
            "modality": "attributes",
            "model": "multi-hot",
            "fields": self.fields,
            "vocabulary": self.vocab,
            "preprocessing": "split on , or |, lower-cased, top values per field + Other",
        }
