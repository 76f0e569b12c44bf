"""The extractor registry: every name `vlmrec extract --extractor NAME` (and a config's `extractor:`)
accepts, with its options model and its builder.

One path for every front end: the CLI, the YAML config and the Python API hand a plain mapping
(or an options object) to `parse_options`, which validates it with the extractor's
`ExtractorOptions` model (types, ranges, choices; unknown keys refused with the valid ones), and
`build` makes the extractor from the validated options. To add an extractor, write its options
model and its class (an `Extractor`), and add one `ExtractorSpec` to `SPECS`.

This module imports the extractor modules; none of them imports it.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pandas as pd
from annotated_types import Ge, Gt, Le, Lt, MinLen
from pydantic_core import PydanticUndefined

from vlmrec.errors import ConfigError
from vlmrec.features.encoders.attributes import MultiHotExtractor, OneHotOptions
from vlmrec.features.encoders.describer import DescribedTextExtractor, DescribeOCROptions, LabelOCRDescriber
from vlmrec.features.encoders.image import (
    EfficientNetLite0,
    HFImageModel,
    ImageExtractor,
    ImageHFOptions,
    ImageOptions,
    InceptionPool,
)
from vlmrec.features.encoders.text import SentenceEncoder, TextExtractor, TextMpnetOptions, TextOptions
from vlmrec.features.extraction import Choices, Extractor, ExtractorOptions
from vlmrec.features.lvlm import extractors as lvlm


@dataclass(frozen=True)
class ExtractorSpec:
    """A registered extractor: its name, one line on what it computes, its options model and the
    builder `(validated options, output folder) -> Extractor`. `distributable`: the Ray engine
    may run it (every worker fits it on the item table, so the fit must be cheap)."""

    name: str
    summary: str
    options: type[ExtractorOptions]
    build: Callable[[Any, Path], Extractor]
    distributable: bool = True


def _text(o: TextOptions, out: Path) -> Extractor:
    return TextExtractor(o.model, o.fields, o.batch_size)


def _text_mpnet(o: TextMpnetOptions, out: Path) -> Extractor:
    return TextExtractor("mpnet", o.fields, o.batch_size, name="text-mpnet")


def _image(o: ImageOptions, out: Path) -> Extractor:
    return ImageExtractor(EfficientNetLite0(), o.batch_size)


def _image_inception(o: ImageOptions, out: Path) -> Extractor:
    return ImageExtractor(InceptionPool(), o.batch_size, name="image-inception")


def _image_hf(o: ImageHFOptions, out: Path) -> Extractor:
    return ImageExtractor(HFImageModel(o.model), o.batch_size, name="image-hf")


def _describe_ocr(o: DescribeOCROptions, out: Path) -> Extractor:
    describer = LabelOCRDescriber(
        top_k=o.top_k, min_prob=o.min_prob, ocr=o.ocr, min_ocr_score=o.min_ocr_score
    )
    return DescribedTextExtractor(
        describer,
        SentenceEncoder(o.model),
        cache=out / "descriptions.jsonl",
        name="describe-ocr",
        batch_size=o.batch_size,
    )


def _onehot(o: OneHotOptions, out: Path) -> Extractor:
    return MultiHotExtractor(o.fields, o.top)


SPECS: tuple[ExtractorSpec, ...] = (
    ExtractorSpec(
        "text", "sentence-transformers text embedding (default all-MiniLM-L6-v2, 384-d)", TextOptions, _text
    ),
    ExtractorSpec(
        "text-mpnet", "all-mpnet-base-v2 text embedding (768-d; paper profile)", TextMpnetOptions, _text_mpnet
    ),
    ExtractorSpec("image", "EfficientNet-Lite0 ImageNet pooled features (1280-d)", ImageOptions, _image),
    ExtractorSpec(
        "image-inception",
        "Inception-v3 pool features (2048-d; offline stand-in for the paper's ResNet50)",
        ImageOptions,
        _image_inception,
    ),
    ExtractorSpec(
        "image-hf",
        "any transformers vision model by --model PATH_OR_ID (e.g. microsoft/resnet-50)",
        ImageHFOptions,
        _image_hf,
    ),
    ExtractorSpec(
        "describe-ocr",
        "label+OCR description of the image (not an LVLM), 'title. description' encoded by MiniLM",
        DescribeOCROptions,
        _describe_ocr,
    ),
    ExtractorSpec(
        "lvlm-embed",
        "LVLM hidden states under a structured prompt (--model PATH --prompt clothing; layer, pooling)",
        lvlm.LVLMEmbedOptions,
        lvlm.embed_extractor,
    ),
    ExtractorSpec(
        "lvlm-describe",
        "LVLM description of the image, 'title. description' embedded by MiniLM (VLM4Rec; --model --prompt)",
        lvlm.LVLMDescribeOptions,
        lvlm.describe_extractor,
    ),
    ExtractorSpec(
        "lvlm-attributes",
        "LVLM fill-in-the-blank attributes, one-hot top-50 per slot + Other (Pomo et al.; --model --prompt)",
        lvlm.LVLMAttributesOptions,
        lvlm.attributes_extractor,
        distributable=False,  # its fit generates every description (run it with the local engine)
    ),
    ExtractorSpec(
        "onehot",
        "multi-hot attributes from categorical item fields (--fields genres), for AttributeItemKNN",
        OneHotOptions,
        _onehot,
    ),
)

EXTRACTORS: dict[str, ExtractorSpec] = {s.name: s for s in SPECS}
EXTRACTOR_NAMES: tuple[str, ...] = tuple(EXTRACTORS)


def get_spec(name: str) -> ExtractorSpec:
    """The registered extractor `name`, or a ConfigError listing the available ones."""
    try:
        return EXTRACTORS[name]
    except KeyError:
        raise ConfigError(f"unknown extractor {name!r}; available: {', '.join(EXTRACTORS)}") from None


def parse_options(name: str, options: Mapping[str, Any] | ExtractorOptions | None = None) -> ExtractorOptions:
    """Extractor `name`'s options, validated: a mapping (CLI, YAML, keywords) or an options object.
    Unknown keys are refused with the valid ones and, where another extractor takes the key, which."""
    spec = get_spec(name)
    if isinstance(options, ExtractorOptions) and type(options) is not spec.options:
        raise ConfigError(
            f"extractor {name!r}: options of type {type(options).__name__}, expected {spec.options.__name__}"
        )

    def elsewhere(key: str) -> str | None:
        owners = [s.name for s in SPECS if s.name != name and key in s.options.model_fields]
        return f"{key!r} is an option of {', '.join(owners)}" if owners else None

    return spec.options.parse(options, name, elsewhere)


def build(name: str, options: Mapping[str, Any] | ExtractorOptions | None, out: str | Path) -> Extractor:
    """Extractor `name` from its options (validated first); `out` is the FeatureSet folder (caches
    such as descriptions go in or next to it)."""
    spec = get_spec(name)
    return spec.build(parse_options(name, options), Path(out))


def build_extractor(
    name: str, out: str | Path, model: str | None = None, items: pd.DataFrame | None = None, **options: Any
) -> Extractor:
    """Extractor `name` from keyword options (`model` is one of them, as the config and the CLI
    give it separately). `items` is not read: `extract` fits the extractor on the dataset's item
    table (it stays accepted for callers written when building needed it)."""
    return build(name, {"model": model, **options}, out)


# ---- listing (vlmrec extractors) -----------------------------------------------------------


LIST_FIRST = ("model", "prompt", "fields", "batch_size")  # the options with CLI flags of their own


@dataclass(frozen=True)
class OptionDoc:
    """One option of an extractor as `vlmrec extractors` shows it."""

    name: str
    type: str
    default: str
    description: str


def _type_text(annotation: Any, metadata: Iterable[Any] = ()) -> str:
    """A short readable type: int >= 1, mean|image|prompt|last, list[str], str | None..."""
    meta = list(metadata)
    for m in meta:
        if isinstance(m, Choices):
            return "|".join(m.values)
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        base, *extra = get_args(annotation)
        return _type_text(base, [*extra, *meta])
    if origin is Literal:
        text = "|".join(str(a) for a in get_args(annotation))
    elif origin in (typing.Union, types.UnionType):
        text = " | ".join(_type_text(a) for a in get_args(annotation))
    elif origin is not None:
        text = f"{origin.__name__}[{', '.join(_type_text(a) for a in get_args(annotation))}]"
    elif annotation is type(None):
        text = "None"
    elif annotation is Any:
        text = "object"
    else:
        text = getattr(annotation, "__name__", str(annotation))
    for phrase in bound_phrases(meta):
        text += f" ({phrase})" if phrase.startswith("at least") else f" {phrase}"
    return text


def bound_phrases(metadata: Iterable[Any]) -> list[str]:
    """The range constraints in a field's metadata as phrases: `>= 1`, `< 1`, `at least 1` (items);
    used by `vlmrec extractors` and docs/config.md."""
    phrases = []
    for m in metadata:
        if isinstance(m, Ge):
            phrases.append(f">= {m.ge}")
        elif isinstance(m, Gt):
            phrases.append(f"> {m.gt}")
        elif isinstance(m, Le):
            phrases.append(f"<= {m.le}")
        elif isinstance(m, Lt):
            phrases.append(f"< {m.lt}")
        elif isinstance(m, MinLen) and m.min_length:
            phrases.append(f"at least {m.min_length}")
    return phrases


def option_docs(name: str) -> list[OptionDoc]:
    """The options of extractor `name`: type, default and description, from its options model."""
    fields = get_spec(name).options.model_fields
    order = [k for k in LIST_FIRST if k in fields] + [k for k in fields if k not in LIST_FIRST]
    docs = []
    for key in order:
        field = fields[key]
        default = "required" if field.default is PydanticUndefined else json.dumps(field.default, default=str)
        docs.append(
            OptionDoc(key, _type_text(field.annotation, field.metadata), default, field.description or "")
        )
    return docs


def parse_assignments(pairs: Iterable[str], flag: str) -> dict[str, Any]:
    """`KEY=VALUE` strings (CLI `--option`, `--gen`) as a dict; values are read as JSON where they
    parse (numbers, true/false, null, lists) and kept as text otherwise."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {pair!r}: expected KEY=VALUE")
        if key.strip() in out:
            raise ConfigError(f"{flag} {key.strip()!r} given twice")
        try:
            out[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            out[key.strip()] = text
    return out
