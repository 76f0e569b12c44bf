"""Extractors built on an LVLM: structured-prompt embeddings (`lvlm-embed`), decoded descriptions
re-embedded as text (`lvlm-describe`, VLM4Rec) and decoded fill-in-the-blank attributes one-hot
encoded (`lvlm-attributes`, Pomo et al.), with one options model each; and `describe_catalogue`
(`vlmrec describe`). The registry (`vlmrec.features.registry`) imports this module, never the
other way round."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SkipValidation, model_validator

from vlmrec.data.dataset import Dataset
from vlmrec.errors import ConfigError
from vlmrec.features.encoders.attributes import AttributeEncoder
from vlmrec.features.encoders.describer import DescribedTextExtractor
from vlmrec.features.encoders.image import load_images
from vlmrec.features.encoders.text import SentenceEncoder
from vlmrec.features.extraction import Choices, Extractor, ExtractorOptions, extract
from vlmrec.features.featureset import FeatureSet
from vlmrec.features.lvlm.layers import resolve_layers
from vlmrec.features.lvlm.options import POOLINGS, GenerationOptions
from vlmrec.features.lvlm.prompts import PromptTemplate, load_template, parse_fitb
from vlmrec.features.lvlm.transformers_backend import LVLM
from vlmrec.features.lvlm.vllm_backend import VLLMGenerator

log = logging.getLogger(__name__)


def _titles(items: pd.DataFrame, field: str = "title") -> list[str]:
    """The items' titles ('' where missing or where the table has no such column)."""
    return items[field].fillna("").astype(str).tolist() if field in items.columns else [""] * len(items)


# A long title for the batch-size probe: memory grows with prompt length, so size for long prompts.
PROBE_TITLE = " ".join(["Organic cotton baby sleeping bag with zip, two-way, tog 2.5, 6-18 months"] * 3)


def _probe_prompt(template: PromptTemplate) -> str:
    """The prompt the automatic batch size is estimated for (a long title where the template shows one)."""
    return template.render(PROBE_TITLE if template.uses_title else None)


class LVLMEmbedExtractor(Extractor):
    """Pooled hidden states of the LVLM reading the item image under a structured prompt. Each call
    hands the whole chunk to `LVLM.embed`, which sorts it by prompt length into batches."""

    def __init__(
        self,
        lvlm: LVLM,
        template: PromptTemplate,
        layer: int | str = -1,
        pooling: str = "mean",
        batch_size: int | None = None,
        name: str = "lvlm-embed",
    ):
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling {pooling!r}: choose one of {', '.join(POOLINGS)}")
        resolve_layers(layer, lvlm.num_hidden_states)  # fail before any item is processed
        self.lvlm, self.template, self.layer, self.pooling, self.name = lvlm, template, layer, pooling, name
        self.batch = lvlm.resolve_batch_size(batch_size, _probe_prompt(template), "embed")

    @property
    def batch_size(self) -> int:
        """The batch size in use (explicit, automatic or the CPU default; see `self.batch`)."""
        return self.batch.size

    def process(self, items: pd.DataFrame) -> tuple[np.ndarray, dict[int, str]]:
        """Vectors for a chunk of items (NaN rows for unreadable images, listed in the failures)."""
        images, positions, failed = load_images(items["image_path"].tolist())
        titles = _titles(items)
        prompts = [self.template.render(titles[p]) for p in positions]
        vectors = self.lvlm.embed(images, prompts, self.layer, self.pooling, batch_size=self.batch)
        out = np.full((len(items), vectors.shape[1]), np.nan, np.float32)
        out[positions] = vectors
        return out, failed

    def manifest(self) -> dict[str, Any]:
        """Provenance: model, prompt, layer, pooling, how layers are captured, batch size."""
        return {
            "extractor": self.name,
            "modality": "multimodal (LVLM)",
            **self.lvlm.describe(),
            "prompt_name": self.template.name,
            "prompt": self.template.text,
            "prompt_hash": self.template.hash,
            "layer": self.layer,
            "pooling": self.pooling,
            "layer_capture": self.lvlm.layer_capture,
            **self.batch.manifest(),
            "batching": "items sorted by tokenised prompt length within each chunk, original order restored",
            "preprocessing": f"{self.lvlm.describe()['processor']} chat template; image + prompt",
        }


class LVLMDescriber:
    """Generates a description per image with the LVLM (greedy unless the generation options say
    otherwise); for FITB prompts it also parses the slots. Records keep the raw answer, the parsed
    values and any missing slots. `config` (the description cache key) holds the prompt and the
    options that change the text; batch size and speed options are in `run_manifest()` only."""

    def __init__(
        self,
        lvlm: LVLM | VLLMGenerator,
        template: PromptTemplate,
        generation: GenerationOptions | None = None,
        batch_size: int | None = None,
    ):
        self.lvlm, self.template = lvlm, template
        self.generation = generation or lvlm.generation
        self.batch = lvlm.resolve_batch_size(batch_size, _probe_prompt(template), "generate", self.generation)
        self.model_id = f"lvlm/{lvlm.model_id}"
        self.source = f"LVLM {lvlm.model_id} ({lvlm.describe()['architecture']}), prompt {template.name!r}"

    @property
    def max_new_tokens(self) -> int:
        """The generation options' max_new_tokens."""
        return self.generation.max_new_tokens

    @property
    def config(self) -> dict:
        """The description cache key: prompt hash and the options that change the decoded text."""
        return {"prompt_hash": self.template.hash, **self.generation.decoding()}

    def run_manifest(self) -> dict[str, Any]:
        """Generation options (all of them) and the batch size, for FeatureSet manifests."""
        return {
            "generation": self.generation.model_dump(),
            **self.batch.manifest(),
            "batching": "items sorted by tokenised prompt length within each group, original order restored",
        }

    def describe(self, images: list, titles: list[str] | None = None) -> list[dict]:
        """One record per image: description, source, prompt name (and parsed FITB slots)."""
        titles = titles or [""] * len(images)
        prompts = [self.template.render(t) for t in titles]
        texts = self.lvlm.generate(images, prompts, options=self.generation, batch_size=self.batch)
        out = []
        for text in texts:
            rec: dict[str, Any] = {
                "description": text,
                "source": self.source,
                "prompt_name": self.template.name,
            }
            if self.template.kind == "fitb":
                parsed = parse_fitb(text, self.template.slots)
                rec.update(attributes=parsed.values, missing_slots=parsed.missing)
            out.append(rec)
        return out


class LVLMDescribedText(DescribedTextExtractor):
    """The described-text extractor with an LVLM describer: images go to the describer in groups of
    GROUP_BATCHES batches (sorted by prompt length within a group; the description cache is written
    after each group), and the manifest records the generation options and batch size."""

    GROUP_BATCHES = 4

    def __init__(self, describer: LVLMDescriber, encoder: SentenceEncoder, cache: str | Path):
        super().__init__(
            describer,
            encoder,
            cache=cache,
            name="lvlm-describe",
            batch_size=describer.batch.size * self.GROUP_BATCHES,
        )
        self.describer: LVLMDescriber = describer

    def manifest(self) -> dict[str, Any]:
        """The described-text manifest plus generation options and batch size."""
        return {**super().manifest(), **self.describer.run_manifest()}


class LVLMAttributeExtractor(Extractor):
    """One-hot of decoded FITB attributes. `fit` describes every item (through the resumable JSONL
    cache shared with `lvlm-describe`, `fit_chunk` items at a time) and fits the vocabulary (top
    keywords per slot + Other) on the whole catalogue; `process` one-hot encodes a chunk. Items
    with a failed image or a missing slot are listed as failed and keep their (partial) rows."""

    name = "lvlm-attributes"
    own_missing_policy = "none (missing slots leave their columns empty)"

    def __init__(
        self,
        described: LVLMDescribedText,
        template: PromptTemplate,
        top: int = 50,
        cluster_threshold: float = 0.85,
        fit_chunk: int = 64,
    ):
        _require_fitb(template)
        self.described, self.template = described, template
        self.top, self.cluster_threshold, self.fit_chunk = top, cluster_threshold, fit_chunk
        self.encoder: AttributeEncoder | None = None
        self._answers: dict[str, dict[str, str]] = {}
        self._failed: dict[str, str] = {}

    def fit(self, items: pd.DataFrame) -> None:
        """Describe every item (cached), read the parsed slots and fit the vocabulary on them."""
        cache = self.described.cache
        if cache is None:
            raise ConfigError("lvlm-attributes needs a description cache")
        failed_at: dict[int, str] = {}
        for s in range(0, len(items), self.fit_chunk):  # fills the cache chunk by chunk (resumable)
            _, f = self.described.descriptions(items.iloc[s : s + self.fit_chunk])
            failed_at.update({s + k: v for k, v in f.items()})
        self._answers, self._failed = {}, {}
        for pos, item_id in enumerate(items["item_id"].astype(str)):
            rec = cache.get(self.described._key(item_id)) or {}
            if pos in failed_at:
                self._failed[item_id] = failed_at[pos]
            elif rec.get("missing_slots"):
                self._failed[item_id] = f"FITB answer missing slot(s) {rec['missing_slots']}"
            self._answers[item_id] = rec.get("attributes") or {}
        self.encoder = AttributeEncoder(
            self.template.slots, self.top, self.cluster_threshold, embed=self.described.encoder.encode
        ).fit(list(self._answers.values()))

    def process(self, items: pd.DataFrame) -> tuple[np.ndarray, dict[int, str]]:
        """One-hot rows of a chunk (a missing slot sets no column) and its failures."""
        if self.encoder is None:
            raise ConfigError("lvlm-attributes: fit the extractor on the item table before processing items")
        ids = items["item_id"].astype(str).tolist()
        vectors = self.encoder.transform([self._answers.get(i, {}) for i in ids])
        return vectors, {pos: self._failed[i] for pos, i in enumerate(ids) if i in self._failed}

    def manifest(self) -> dict[str, Any]:
        """Provenance: describer, prompt, generation options, batch size, vocabulary recipe and columns."""
        return {
            "extractor": self.name,
            "modality": "attributes (decoded by LVLM)",
            "describer": self.described.describer.model_id,
            "describer_source": self.described.describer.source,
            "model": self.described.describer.lvlm.model_id,
            **self.described.describer.run_manifest(),
            "prompt_name": self.template.name,
            "prompt": self.template.text,
            "prompt_hash": self.template.hash,
            "top_per_slot": self.top,
            "cluster_threshold": self.cluster_threshold,
            "preprocessing": "FITB parse; lower-case, articles stripped, rule lemmatiser; near-duplicates merged by "
            "sentence-embedding cosine; top keywords per slot + Other; one-hot",
            **({"columns": self.encoder.columns} if self.encoder is not None else {}),
        }


def _require_fitb(template: PromptTemplate) -> None:
    if template.kind != "fitb":
        raise ConfigError(
            f"lvlm-attributes needs a fill-in-the-blank prompt (fitb); {template.name!r} is {template.kind}"
        )


# ---- options ---------------------------------------------------------------------------------


class LoadOptions(BaseModel):
    """How the LVLM is loaded (shared by every LVLM extractor)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["transformers", "vllm"] = Field(
        "transformers", description="transformers, or vllm (generation only)"
    )
    device: str | None = Field(None, description="torch device (default: cuda when present, else cpu)")
    dtype: Literal["float32", "float16", "bfloat16"] | None = Field(
        None, description="weights dtype (default: bf16/fp16 on GPU, fp32 on CPU)"
    )
    load_in_4bit: bool = Field(False, description="4-bit weights (bitsandbytes, GPU)")
    trust_remote_code: bool = Field(False, description="run the checkpoint's own modelling code")

    @model_validator(mode="after")
    def _backend_choices(self) -> LoadOptions:
        if self.backend == "vllm" and (self.device or self.dtype or self.load_in_4bit):
            raise ValueError(
                "the vLLM backend chooses device and dtype itself: drop device, dtype, load_in_4bit"
            )
        return self


GENERATIVE = "lvlm-describe / lvlm-attributes"


class LVLMOptions(ExtractorOptions, LoadOptions):
    """What every LVLM extractor takes: the checkpoint, the prompt, the batch size, load options."""

    model: str | None = Field(None, description="LVLM checkpoint folder or hub id (--model)")
    prompt: str = Field("free", description="prompt template name or YAML file (--prompt)")
    batch_size: int | None = Field(
        None, ge=0, description="items per model call; unset or 0: chosen from free GPU memory (CPU: 8)"
    )

    @classmethod
    def unknown_key_hint(cls, key: str) -> str | None:
        """`fields` belongs to the text extractors; the LVLM reads the image and the prompt."""
        if key == "fields":
            return "--fields does not apply: the LVLM reads the image and the prompt"
        return None


def _layer(value: Any) -> int | str:
    """A hidden-state index (int, or its text) or 'mean_last_N'."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"mean_last_\d+", value):
        return value
    raise ValueError("expected a hidden-state index (-1 last, 0 embeddings) or 'mean_last_N'")


Layer = Annotated[int | str, BeforeValidator(_layer)]
Pooling = Annotated[str, Choices(POOLINGS)]


class LVLMEmbedOptions(LVLMOptions):
    """Options of `lvlm-embed` (pooled hidden states)."""

    layer: Layer = Field(-1, description="hidden-state layer: index (-1 last, 0 embeddings) or mean_last_N")
    pooling: Pooling = Field("mean", description="token pooling of the chosen layer")

    @model_validator(mode="after")
    def _transformers_only(self) -> LVLMEmbedOptions:
        if self.backend != "transformers":
            raise ValueError("lvlm-embed needs the transformers backend (vLLM exposes no hidden states)")
        return self

    @classmethod
    def unknown_key_hint(cls, key: str) -> str | None:
        """Generation and description options belong to the generative LVLM extractors."""
        if key in GenerationOptions.model_fields:
            return f"generation options apply to {GENERATIVE}"
        if key in LVLMAttributesOptions.model_fields:
            return f"{key} applies to {GENERATIVE}"
        return super().unknown_key_hint(key)


class LVLMDescribeOptions(LVLMOptions, GenerationOptions):
    """Options of `lvlm-describe` (and `vlmrec describe`): load and generation options, the
    description cache and the text model that embeds 'title. description'."""

    cache: Path | None = Field(
        None, description="description cache (JSONL; default: a file next to the output folder)"
    )
    text_model: str = Field("minilm", description="sentence-transformers model for 'title. description'")
    text_encoder: SkipValidation[Any] = Field(
        None, exclude=True, description="a ready text encoder object (Python API only; else text_model)"
    )

    def generation_options(self) -> GenerationOptions:
        """The generation options alone (what `LVLM.generate` and the cache key read)."""
        return GenerationOptions.model_validate(self.model_dump(include=set(GenerationOptions.model_fields)))

    @classmethod
    def unknown_key_hint(cls, key: str) -> str | None:
        """layer/pooling belong to lvlm-embed, top/cluster_threshold to lvlm-attributes."""
        if key in ("layer", "pooling"):
            return "layer and pooling apply to lvlm-embed only"
        if key in LVLMAttributesOptions.model_fields:
            return f"{key} applies to lvlm-attributes only"
        return super().unknown_key_hint(key)


class LVLMAttributesOptions(LVLMDescribeOptions):
    """Options of `lvlm-attributes`: as lvlm-describe, plus the vocabulary's size and clustering."""

    top: int = Field(50, ge=1, description="keywords kept per slot (the rest pooled in Other)")
    cluster_threshold: float = Field(
        0.85, gt=0, le=1, description="cosine above which keywords are merged into one"
    )


# ---- builders --------------------------------------------------------------------------------


def _transformers_lvlm(o: LVLMOptions, generation: GenerationOptions) -> LVLM:
    return LVLM(
        o.model,
        device=o.device,
        dtype=o.dtype,
        load_in_4bit=o.load_in_4bit,
        trust_remote_code=o.trust_remote_code,
        generation=generation,
    )


def _lvlm(o: LVLMOptions, generation: GenerationOptions) -> LVLM | VLLMGenerator:
    if o.backend == "vllm":
        return VLLMGenerator(o.model, generation=generation, trust_remote_code=o.trust_remote_code)
    return _transformers_lvlm(o, generation)


def _described(o: LVLMDescribeOptions, template: PromptTemplate, default_cache: Path) -> LVLMDescribedText:
    generation = o.generation_options()
    describer = LVLMDescriber(_lvlm(o, generation), template, generation, o.batch_size or None)
    encoder = o.text_encoder or SentenceEncoder(o.text_model)
    return LVLMDescribedText(describer, encoder, o.cache or default_cache)


def embed_extractor(o: LVLMEmbedOptions, out: Path) -> LVLMEmbedExtractor:
    """`lvlm-embed` from its validated options."""
    template = load_template(o.prompt)
    lvlm = _transformers_lvlm(o, GenerationOptions.model_validate({}))
    return LVLMEmbedExtractor(lvlm, template, o.layer, o.pooling, batch_size=o.batch_size or None)


def describe_extractor(o: LVLMDescribeOptions, out: Path) -> LVLMDescribedText:
    """`lvlm-describe` from its validated options (descriptions cached next to `out` by default)."""
    return _described(o, load_template(o.prompt), Path(out).parent / ".lvlm_descriptions.jsonl")


def attributes_extractor(o: LVLMAttributesOptions, out: Path) -> LVLMAttributeExtractor:
    """`lvlm-attributes` from its validated options (the prompt must be fill-in-the-blank)."""
    template = load_template(o.prompt)
    _require_fitb(template)  # before the model is loaded
    described = _described(o, template, Path(out).parent / ".lvlm_descriptions.jsonl")
    return LVLMAttributeExtractor(described, template, o.top, o.cluster_threshold)


def build_lvlm_embed(model: str | None, out: str | Path, **options: Any) -> LVLMEmbedExtractor:
    """`lvlm-embed` from plain keywords (validated by LVLMEmbedOptions)."""
    return embed_extractor(LVLMEmbedOptions.parse({"model": model, **options}, "lvlm-embed"), Path(out))


def build_lvlm_describe(model: str | None, out: str | Path, **options: Any) -> LVLMDescribedText:
    """`lvlm-describe` from plain keywords (validated by LVLMDescribeOptions)."""
    return describe_extractor(
        LVLMDescribeOptions.parse({"model": model, **options}, "lvlm-describe"), Path(out)
    )


def build_lvlm_attributes(model: str | None, out: str | Path, **options: Any) -> LVLMAttributeExtractor:
    """`lvlm-attributes` from plain keywords (validated by LVLMAttributesOptions)."""
    return attributes_extractor(
        LVLMAttributesOptions.parse({"model": model, **options}, "lvlm-attributes"), Path(out)
    )


def describe_catalogue(
    dataset: Dataset,
    model: str | None,
    prompt: str,
    out: str | Path,
    batch_size: int | None = None,
    **options: Any,
) -> dict[str, FeatureSet]:
    """`vlmrec describe`: generate (cached, resumable) descriptions, then write the described-text
    FeatureSet (`out/text`) and, for FITB prompts, the one-hot attributes (`out/attributes`).
    `options` are lvlm-describe's (LVLMDescribeOptions: load and generation options, cache,
    text_model); the cache defaults to `out/descriptions.jsonl`. `batch_size` None or 0 chooses
    from free GPU memory (CPU: a small default)."""
    o = LVLMDescribeOptions.parse(
        {"model": model, "prompt": prompt, "batch_size": batch_size, **options}, "lvlm-describe"
    )
    out = Path(out)
    template = load_template(o.prompt)
    described = _described(o, template, out / "descriptions.jsonl")
    result = {"text": _complete(extract(dataset, described, out / "text"))}
    if template.kind == "fitb":
        attributes = LVLMAttributeExtractor(described, template)
        result["attributes"] = _complete(extract(dataset, attributes, out / "attributes"))
    return result


def _complete(fs: FeatureSet | None) -> FeatureSet:
    if fs is None:  # only when extract() is told to stop early, which describe_catalogue never does
        raise ConfigError("extraction stopped before every chunk was done; run it again to resume")
    return fs
