"""Prompt templates for LVLM item representations, and parsing of fill-in-the-blank answers.

Kinds: `fitb` (structured five-slot form, Pomo et al.), `free` (short free description),
`control` (deliberately unrelated to the item, to test whether gains come from item semantics).
Templates may use `{title}`; users add their own in YAML (name, kind, text, slots).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from vlmrec.errors import ConfigError
from vlmrec.provenance import hash_text

FITB_SLOTS = {
    "baby": ["Category", "Age Group", "Purpose", "Material", "Usage Context"],
    "pets": ["Category", "Pet Type", "Purpose", "Material", "Usage Context"],
    "clothing": ["Type", "Color", "Wear Location", "Material", "Style"],
    "recipes": ["Dish Type", "Cuisine", "Primary Ingredient", "Flavor Profile", "Meal Type"],
    "movies": ["Genre", "Audience", "Visual Format", "Mood", "Setting"],
}


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    kind: str  # fitb | free | control
    text: str
    slots: tuple[str, ...] = field(default_factory=tuple)

    def render(self, title: str | None = None) -> str:
        return self.text.replace("{title}", (title or "").strip() or "unknown")

    @property
    def uses_title(self) -> bool:
        return "{title}" in self.text

    @property
    def hash(self) -> str:
        return hash_text(f"{self.kind}|{self.text}|{'|'.join(self.slots)}")


def _fitb_text(slots: list[str], item: str) -> str:
    lines = "\n".join(f"[{s}]: ..." for s in slots)
    return (
        f"Look at this {item} image. Fill in each blank with one to three keywords describing the {item}. "
        f"Answer only in this format, one line per field:\n{lines}"
    )


BUILTIN: dict[str, PromptTemplate] = {
    name: PromptTemplate(
        name, "fitb", _fitb_text(slots, "movie poster" if name == "movies" else "product"), tuple(slots)
    )
    for name, slots in FITB_SLOTS.items()
}
BUILTIN["free"] = PromptTemplate(
    "free",
    "free",
    "Describe the item in this image in at most 30 words: what it is, its main attributes and who it is for.",
)
BUILTIN["vlm4rec"] = PromptTemplate(
    "vlm4rec",
    "free",
    'This is an e-commerce product image. The product title is: "{title}". Describe the product shown, grounded in '
    "what is visible in the image: its type, appearance (colour, material, style) and likely use. Be concise and factual.",
)
BUILTIN["control"] = PromptTemplate(
    "control",
    "control",
    "Ignore the product. Describe the lighting and the background of this picture in at most 30 words.",
)


def load_template(name_or_path: str) -> PromptTemplate:
    """A built-in name, or a YAML file: {name, kind: fitb|free|control, text, slots: [...]}. For fitb,
    `text` may be omitted and is generated from the slots."""
    if name_or_path in BUILTIN:
        return BUILTIN[name_or_path]
    p = Path(name_or_path)
    if not p.exists():
        raise ConfigError(
            f"prompt {name_or_path!r}: not a built-in ({', '.join(BUILTIN)}) and no such YAML file"
        )
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    kind = raw.get("kind", "fitb" if raw.get("slots") else "free")
    slots = tuple(raw.get("slots") or ())
    if kind not in ("fitb", "free", "control"):
        raise ConfigError(f"{p}: kind {kind!r}: expected fitb, free or control")
    if kind == "fitb" and not slots:
        raise ConfigError(f"{p}: a fitb template needs 'slots' (e.g. [Category, Material])")
    text = raw.get("text") or (
        _fitb_text(list(slots), raw.get("item", "product")) if kind == "fitb" else None
    )
    if not text:
        raise ConfigError(f"{p}: missing 'text'")
    missing = [s for s in slots if f"[{s}]" not in text]
    if missing:
        raise ConfigError(f"{p}: the text does not show the slot(s) {missing} as [Slot]")
    return PromptTemplate(raw.get("name", p.stem), kind, text, slots)


@dataclass
class ParsedAnswer:
    values: dict[str, str]
    missing: list[str]


def parse_fitb(answer: str, slots: tuple[str, ...] | list[str]) -> ParsedAnswer:
    """Read `[Slot]: value` lines (brackets optional, ':' '=' or '-' as separator, any order,
    extra text ignored). Slots not found are listed in `missing` (a failure recorded per item)."""
    names = "|".join(re.escape(s) for s in sorted(slots, key=len, reverse=True))
    label = rf"(?:\[\s*|\*\*|\b)({names})(?:\s*\]|\*\*)?\s*[:=\-]"
    pattern = re.compile(label, re.IGNORECASE)
    matches = list(pattern.finditer(answer))
    values: dict[str, str] = {}
    canonical = {s.lower(): s for s in slots}
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(answer)
        raw = answer[m.end() : end].strip().splitlines()[0] if answer[m.end() : end].strip() else ""
        value = raw.strip().strip(".;,*[]").strip()
        slot = canonical[m.group(1).lower()]
        if value and value != "..." and slot not in values:
            values[slot] = value
    return ParsedAnswer(values, [s for s in slots if s not in values])
