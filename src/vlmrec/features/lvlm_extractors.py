"""Extractors built on an LVLM: structured-prompt embeddings, decoded descriptions (re-embedded
as text, VLM4Rec) and decoded fill-in-the-blank attributes (one-hot, Pomo et al.)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from vlmrec.data.dataset import Dataset
from vlmrec.errors import ConfigError
from vlmrec.features.attributes import AttributeEncoder
from vlmrec.features.extractors import DescribedTextExtractor
from vlmrec.features.featureset import FeatureSet
from vlmrec.features.image import ImageLoadError, load_image
from vlmrec.features.lvlm import LVLM, POOLINGS, GenerationOptions, VLLMGenerator, resolve_layers
from vlmrec.features.prompts import PromptTemplate, load_template, parse_fitb
from vlmrec.features.text import SentenceEncoder

log = logging.getLogger(__name__)


def _titles(items: pd.DataFrame, field: str = "title") -> list[str]:
    """The items' titles ('' where missing or where the table has no such column)."""
    return items[field].fillna("").astype(str).tolist() if field in items.columns else [""] * len(items)


# A long title for the batch-size probe: memory grows with prompt length, so size for long prompts.
PROBE_TITLE = " ".join(["Organic cotton baby sleeping bag with zip, two-way, tog 2.5, 6-18 months"] * 3)


def _probe_prompt(template: PromptTemplate) -> str:
    """The prompt the automatic batch size is estimated for (a long title where the template shows one)."""
    return template.render(PROBE_TITLE if template.uses_title else None)


class LVLMEmbedExtractor:
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
        images, positions, failed = [], [], {}
        for pos, path in enumerate(items["image_path"].tolist()):
            try:
                images.append(load_image(path))
                positions.append(pos)
            except ImageLoadError as e:
                failed[pos] = str(e)
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
            rec = {"description": text, "source": self.source, "prompt_name": self.template.name}
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

    def manifest(self) -> dict[str, Any]:
        """The described-text manifest plus generation options and batch size."""
        return {**super().manifest(), **self.describer.run_manifest()}


class LVLMAttributeExtractor:
    """One-hot of decoded FITB attributes. The vocabulary (top keywords per slot + Other) is fitted
    on the whole catalogue, so this extractor sees all items at once (`extract_all`); generation
    itself goes through the resumable JSONL cache shared with `lvlm-describe`."""

    name = "lvlm-attributes"

    def __init__(
        self,
        described: LVLMDescribedText,
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
        """Describe every item (through the cache), fit the vocabulary, write the one-hot FeatureSet."""
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
        """Provenance: describer, prompt, generation options, batch size, vocabulary recipe."""
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
        }


class LoadOptions(BaseModel):
    """How the LVLM is loaded (shared by every LVLM extractor)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["transformers", "vllm"] = "transformers"
    device: str | None = None
    dtype: Literal["float32", "float16", "bfloat16"] | None = None
    load_in_4bit: bool = False
    trust_remote_code: bool = False


EMBED_KEYS = ("layer", "pooling")
DESCRIBE_KEYS = ("cache", "text_encoder", "text_model")
ATTRIBUTE_KEYS = ("top",)


def _split_options(
    options: dict[str, Any], extractor: str, own: tuple[str, ...], generation: bool
) -> tuple[LoadOptions, GenerationOptions, dict[str, Any]]:
    """Split an options dict into load options, generation options and the extractor's own keys;
    any other key is an error that lists the valid ones."""
    load_keys, gen_keys = set(LoadOptions.model_fields), set(GenerationOptions.model_fields)
    valid = load_keys | set(own) | (gen_keys if generation else set())
    unknown = sorted(set(options) - valid)
    if unknown:
        hint = (
            " (generation options apply to lvlm-describe / lvlm-attributes)"
            if set(unknown) & gen_keys
            else ""
        )
        raise ConfigError(
            f"{extractor}: unknown option(s) {unknown}{hint}; valid: batch_size, prompt, {', '.join(sorted(valid))}"
        )
    try:
        load = LoadOptions(**{k: v for k, v in options.items() if k in load_keys})
    except ValidationError as e:
        raise ConfigError(f"{extractor}: {e.errors()[0]['loc'][0]}: {e.errors()[0]['msg']}") from None
    gen = GenerationOptions.from_options({k: v for k, v in options.items() if k in gen_keys})
    return load, gen, {k: v for k, v in options.items() if k in own}


def _lvlm(model: str | None, load: LoadOptions, generation: GenerationOptions) -> LVLM | VLLMGenerator:
    if load.backend == "vllm":
        if load.device or load.dtype or load.load_in_4bit:
            raise ConfigError(
                "the vLLM backend chooses device and dtype itself: drop device, dtype, load_in_4bit"
            )
        return VLLMGenerator(model, generation=generation, trust_remote_code=load.trust_remote_code)
    return LVLM(
        model,
        device=load.device,
        dtype=load.dtype,
        load_in_4bit=load.load_in_4bit,
        trust_remote_code=load.trust_remote_code,
        generation=generation,
    )


def _batch(batch_size: int | None) -> int | None:
    """0 or None: choose automatically; otherwise the caller's batch size, which always wins."""
    if batch_size is None or batch_size == 0:
        return None
    if int(batch_size) < 0:
        raise ConfigError(f"batch_size {batch_size}: must be >= 1 (or 0 / unset for automatic)")
    return int(batch_size)


def _no_fields(fields: Any, extractor: str) -> None:
    if fields:
        raise ConfigError(f"{extractor}: --fields does not apply (the LVLM reads the image and the prompt)")


def _embed_only(rest: dict[str, Any], extractor: str) -> None:
    """The CLI passes layer/pooling to every LVLM extractor; only their defaults are accepted here."""
    if rest.pop("layer", -1) not in (-1, "-1") or rest.pop("pooling", "mean") != "mean":
        raise ConfigError(f"{extractor}: layer and pooling apply to lvlm-embed only")


def build_lvlm_embed(
    model: str | None,
    out: Path,
    prompt: str | None = None,
    batch_size: int | None = None,
    fields: Any = None,
    items: pd.DataFrame | None = None,
    **options: Any,
) -> LVLMEmbedExtractor:
    """`lvlm-embed`: options are the load options plus layer and pooling."""
    _no_fields(fields, "lvlm-embed")
    load, gen, rest = _split_options(options, "lvlm-embed", EMBED_KEYS, generation=False)
    if load.backend != "transformers":
        raise ConfigError("lvlm-embed needs the transformers backend (vLLM exposes no hidden states)")
    return LVLMEmbedExtractor(
        _lvlm(model, load, gen),
        load_template(prompt or "free"),
        rest.get("layer", -1),
        rest.get("pooling", "mean"),
        batch_size=_batch(batch_size),
    )


def _described(
    lvlm: LVLM | VLLMGenerator,
    out: Path,
    prompt: str | None,
    generation: GenerationOptions,
    batch_size: int | None,
    rest: dict[str, Any],
) -> tuple[LVLMDescribedText, PromptTemplate]:
    template = load_template(prompt or "free")
    describer = LVLMDescriber(lvlm, template, generation, _batch(batch_size))
    cache = rest.get("cache") or (Path(out).parent / ".lvlm_descriptions.jsonl")
    encoder = rest.get("text_encoder") or SentenceEncoder(rest.get("text_model") or "minilm")
    return LVLMDescribedText(describer, encoder, cache), template


def build_lvlm_describe(
    model: str | None,
    out: Path,
    prompt: str | None = None,
    batch_size: int | None = None,
    fields: Any = None,
    items: pd.DataFrame | None = None,
    **options: Any,
) -> LVLMDescribedText:
    """`lvlm-describe`: options are the load and generation options plus cache, text_model."""
    _no_fields(fields, "lvlm-describe")
    load, gen, rest = _split_options(options, "lvlm-describe", DESCRIBE_KEYS + EMBED_KEYS, generation=True)
    _embed_only(rest, "lvlm-describe")
    return _described(_lvlm(model, load, gen), out, prompt, gen, batch_size, rest)[0]


def build_lvlm_attributes(
    model: str | None,
    out: Path,
    prompt: str | None = None,
    batch_size: int | None = None,
    fields: Any = None,
    items: pd.DataFrame | None = None,
    **options: Any,
) -> LVLMAttributeExtractor:
    """`lvlm-attributes`: as lvlm-describe, plus top (keywords kept per slot)."""
    _no_fields(fields, "lvlm-attributes")
    load, gen, rest = _split_options(
        options, "lvlm-attributes", DESCRIBE_KEYS + EMBED_KEYS + ATTRIBUTE_KEYS, generation=True
    )
    _embed_only(rest, "lvlm-attributes")
    described, template = _described(_lvlm(model, load, gen), out, prompt, gen, batch_size, rest)
    return LVLMAttributeExtractor(described, template, int(rest.get("top", 50)))


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
    `batch_size` None or 0 chooses from free GPU memory (CPU: a small default)."""
    from vlmrec.features.extraction import extract

    out = Path(out)
    load, gen, rest = _split_options(options, "describe", DESCRIBE_KEYS, generation=True)
    rest["cache"] = rest.get("cache") or out / "descriptions.jsonl"
    described, template = _described(_lvlm(model, load, gen), out / "text", prompt, gen, batch_size, rest)
    result = {"text": extract(dataset, described, out / "text")}
    if template.kind == "fitb":
        result["attributes"] = LVLMAttributeExtractor(described, template).extract_all(
            dataset, out / "attributes"
        )
    return result
