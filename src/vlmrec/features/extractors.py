"""Where the extractors used to live; kept so that existing imports keep working.

The registry (names, options models, builders) is `vlmrec.features.registry`; the extractor classes
live with their encoders: `text.TextExtractor`, `image.ImageExtractor`,
`describer.DescribedTextExtractor`, `attributes.MultiHotExtractor`, and the LVLM ones in
`lvlm_extractors`. New code should import from those modules.
"""

from __future__ import annotations

from vlmrec.features.attributes import MultiHotExtractor
from vlmrec.features.describer import DescribedTextExtractor
from vlmrec.features.image import ImageExtractor
from vlmrec.features.registry import (
    EXTRACTORS,
    ExtractorSpec,
    build,
    build_extractor,
    get_spec,
    parse_options,
)
from vlmrec.features.text import TextExtractor

__all__ = [
    "EXTRACTORS",
    "DescribedTextExtractor",
    "ExtractorSpec",
    "ImageExtractor",
    "MultiHotExtractor",
    "TextExtractor",
    "build",
    "build_extractor",
    "get_spec",
    "parse_options",
]
