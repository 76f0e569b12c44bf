"""Extractors built on an LVLM: structured-prompt embeddings, decoded descriptions (re-embedded
as text, VLM4Rec) and decoded fill-in-the-blank attributes (one-hot, Pomo et al.)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vlmrec.data.dataset import Dataset
from vlmrec.errors import ConfigError
from vlmrec.features.attributes import AttributeEncoder
from vlmrec.features.extractors import DescribedTextExtractor
from vlmrec.features.featureset import FeatureSet
from vlmrec.features.image import ImageLoadError, load_image
from vlmrec.features.lvlm import LVLM
from vlmrec.features.prompts import PromptTemplate, load_template, parse_fitb
from vlmrec.features.text import SentenceEncoder

log = logging.getLogger(__name__)


def _titles(items: pd.DataFrame, field: str = "title") -> list[str]:
    return items[field].fillna("").astype(str).tolist() if field in items.columns else [""] * len(items)


class LVLMEmbedExtractor:
    """Pooled hidden states of the LVLM reading the item image under a structured prompt."""

    def __init__(
        self,
        lvlm: LVLM,
        template: PromptTemplate,
        layer: int | str = -1,
        pooling: str = "mean",
        batch_size: int = 8,
        name: str = "lvlm-embed",
    ):
        self.lvlm, self.template, self.layer, self.pooling = lvlm, template, layer, pooling
        self.batch_size, self.name = batch_size, name

    def process(self, items: pd.DataFrame):
        images, positions, failed = [], [], {}
        for pos, path in enumerate(items["image_path"].tolist()):
            try:
                images.append(load_image(path))
                positions.append(pos)
            except ImageLoadError as e:
                failed[pos] = str(e)
        titles = _titles(items)
        blocks = []
        for s in range(0, len(images), self.batch_size):
            idx = positions[s : s + self.batch_size]
            prompts = [self.template.render(titles[p]) for p in idx]
            blocks.append(self.lvlm.embed(images[s : s + self.batch_size], prompts, self.layer, self.pooling))
        dim = blocks[0].shape[1] if blocks else self.lvlm.model.config.get_text_config().hidden_size
        out = np.full((len(items), dim), np.nan, np.float32)
        if blocks:
            out[positions] = np.concatenate(blocks)
        return out, failed

    def manifest(self) -> dict[str, Any]:
        return {
            "extractor": self.name,
            "modality": "multimodal (LVLM)",
            **self.lvlm.describe(),
            "prompt_name": self.template.name,
            "prompt": self.template.text,
            "prompt_hash": self.template.hash,
            "layer": self.layer,
            "pooling": self.pooling,
            "preprocessing": f"{self.lvlm.describe()['processor']} chat template; image + prompt",
        }


class LVLMDescriber:
    """Generates a description per image with the LVLM (greedy); for FITB prompts it also parses
    the slots. Records keep the raw answer, the parsed values and any missing slots."""

    def __init__(self, lvlm: LVLM, template: PromptTemplate, max_new_tokens: int = 96):
        self.lvlm, self.template, self.max_new_tokens = lvlm, template, max_new_tokens
        self.model_id = f"lvlm/{lvlm.model_id}"
        self.source = f"LVLM {lvlm.model_id} ({lvlm.describe()['architecture']}), prompt {template.name!r}"

    @property
    def config(self) -> dict:
        return {"prompt_hash": self.template.hash, "max_new_tokens": self.max_new_tokens}

    def describe(self, images, titles=None):
        titles = titles or [""] * len(images)
        prompts = [self.template.render(t) for t in titles]
        texts = self.lvlm.generate(images, prompts, self.max_new_tokens)
        out = []
        for text in texts:
            rec = {"description": text, "source": self.source, "prompt_name": self.template.name}
            if self.template.kind == "fitb":
                parsed = parse_fitb(text, self.template.slots)
                rec.update(attributes=parsed.values, missing_slots=parsed.missing)
            out.append(rec)
        return out


class LVLMAttributeExtractor:
    """One-hot of decoded FITB attributes. The vocabulary (top keywords per slot + Other) is fitted
    on the whole catalogue, so this extractor sees all items at once (`extract_all`); generation
    itself goes through the resumable JSONL cache shared with `lvlm-describe`."""

    name = "lvlm-attributes"

    def __init__(
        self,
        described: DescribedTextExtractor,
        template: PromptTemplate,
        top: int = 50,
        cluster_threshold: float = 0.85,
        batch_size: int = 64,
    ):
        if template.kind != "fitb":
            raise ConfigError(
                f"lvlm-attributes needs a fill-in-the-blank prompt (fitb); {template.name!r} is {template.kind}"
            )
        self.described, self.template = described, template
        self.top, self.cluster_threshold, self.chunk = top, cluster_threshold, batch_size

    def extract_all(self, dataset: Dataset, out: Path, missing: str = "mean") -> FeatureSet:
        items = dataset.items
        failed: dict[int, str] = {}
        for s in range(0, len(items), self.chunk):  # fills the cache chunk by chunk (resumable)
            _, f = self.described.descriptions(items.iloc[s : s + self.chunk])
            failed.update({s + k: v for k, v in f.items()})
        answers = []
        for pos, item_id in enumerate(items["item_id"].astype(str)):
            rec = self.described.cache.get(self.described._key(item_id)) or {}
            values = rec.get("attributes") or {}
            if pos not in failed and rec.get("missing_slots"):
                failed[pos] = f"FITB answer missing slot(s) {rec['missing_slots']}"
            answers.append(values)
        enc = self.described.encoder
        encoder = AttributeEncoder(
            self.template.slots, self.top, self.cluster_threshold, embed=enc.encode
        ).fit(answers)
        vectors = encoder.transform(answers)
        fs = FeatureSet.create(
            vectors,
            dataset,
            name=Path(out).name,
            missing_policy="none (missing slots leave their columns empty)",
            failed=[
                {"item": int(p), "item_id": str(dataset.item_ids[p]), "reason": r}
                for p, r in sorted(failed.items())
            ],
            **self.manifest(),
            columns=encoder.columns,
        )
        fs.save(out)
        return fs

    def manifest(self) -> dict[str, Any]:
        return {
            "extractor": self.name,
            "modality": "attributes (decoded by LVLM)",
            "describer": self.described.describer.model_id,
            "describer_source": self.described.describer.source,
            "model": self.described.describer.lvlm.model_id,
            "prompt_name": self.template.name,
            "prompt": self.template.text,
            "prompt_hash": self.template.hash,
            "top_per_slot": self.top,
            "cluster_threshold": self.cluster_threshold,
            "preprocessing": "FITB parse; lower-case, articles stripped, rule lemmatiser; near-duplicates merged by "
            "sentence-embedding cosine; top keywords per slot + Other; one-hot",
        }


def _lvlm(model, options) -> LVLM:
    if options.get("backend", "transformers") == "vllm":
        from vlmrec.features.lvlm import VLLMGenerator

        return VLLMGenerator(
            model,
            max_new_tokens=int(options.get("max_new_tokens", 96)),
            trust_remote_code=bool(options.get("trust_remote_code", False)),
        )
    return LVLM(
        model,
        device=options.get("device"),
        dtype=options.get("dtype"),
        load_in_4bit=bool(options.get("load_in_4bit", False)),
        trust_remote_code=bool(options.get("trust_remote_code", False)),
        max_new_tokens=int(options.get("max_new_tokens", 96)),
    )


def build_lvlm_embed(model, out, prompt=None, batch_size=8, **options):
    return LVLMEmbedExtractor(
        _lvlm(model, options),
        load_template(prompt or "free"),
        options.get("layer", -1),
        options.get("pooling", "mean"),
        batch_size=batch_size or 8,
    )


def _described(model, out, prompt, options, lvlm=None):
    template = load_template(prompt or "free")
    describer = LVLMDescriber(lvlm or _lvlm(model, options), template, int(options.get("max_new_tokens", 96)))
    cache = options.get("cache") or (Path(out).parent / ".lvlm_descriptions.jsonl")
    encoder = options.get("text_encoder") or SentenceEncoder(options.get("text_model", "minilm"))
    return DescribedTextExtractor(
        describer, encoder, cache=cache, name="lvlm-describe", batch_size=options.get("batch_size") or 8
    ), template


def build_lvlm_describe(model, out, prompt=None, **options):
    return _described(model, out, prompt, options)[0]


def build_lvlm_attributes(model, out, prompt=None, **options):
    described, template = _described(model, out, prompt, options)
    return LVLMAttributeExtractor(described, template, int(options.get("top", 50)))


def describe_catalogue(
    dataset: Dataset, model: str | None, prompt: str, out: str | Path, batch_size: int = 8, **options
) -> dict[str, FeatureSet]:
    """`vlmrec describe`: generate (cached, resumable) descriptions, then write the described-text
    FeatureSet (`out/text`) and, for FITB prompts, the one-hot attributes (`out/attributes`)."""
    from vlmrec.features.extraction import extract

    out = Path(out)
    lvlm = _lvlm(model, options)
    described, template = _described(
        model,
        out / "text",
        prompt,
        {**options, "batch_size": batch_size, "cache": options.get("cache") or out / "descriptions.jsonl"},
        lvlm,
    )
    result = {"text": extract(dataset, described, out / "text")}
    if template.kind == "fitb":
        result["attributes"] = LVLMAttributeExtractor(described, template).extract_all(
            dataset, out / "attributes"
        )
    return result
