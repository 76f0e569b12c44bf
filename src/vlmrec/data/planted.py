"""The planted-signal catalogue: a GENERATED multimodal dataset whose truth is known.

Items have latent attributes (category, colour, material, name). Each item gets a rendered PNG
(shape from the category, fill from the colour, name and material printed as text so OCR can
read them) and a generated title/description. Only a `text_share` fraction of items mention
their category and colour in text, so the rest of that signal lives in the image alone. Users
prefer one category and one colour; they pick items by those preferences, mixed with uniform
noise and a popularity skew. Results on it are circular by construction: a testbed for
"does the model use the content at all?", never a claim about real-world accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

GENERATED_LABEL = "GENERATED planted-signal catalogue (synthetic; not real-world data)"
CATEGORIES = ["circle", "square", "triangle", "star", "diamond", "cross"]
CATEGORY_WORDS = {
    "circle": "round lamp",
    "square": "box crate",
    "triangle": "tent kit",
    "star": "star ornament",
    "diamond": "gem pendant",
    "cross": "first-aid kit",
}
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 30),
    "purple": (140, 60, 180),
    "orange": (240, 130, 30),
}
MATERIALS = ["COTTON", "STEEL", "WOOD", "GLASS", "LEATHER"]
SYLLABLES = ["ka", "lo", "mi", "ra", "to", "ve", "zu", "pe", "sa", "no", "ti", "du"]


def generate_planted(
    out_dir: str | Path,
    n_users: int = 300,
    n_items: int = 240,
    interactions_per_user: int = 20,
    noise: float = 0.15,
    popularity_skew: float = 0.5,
    text_share: float = 0.5,
    image_size: int = 128,
    seed: int = 0,
) -> Path:
    """Write interactions.csv, items.csv, images/<item_id>.png, ground_truth.json to out_dir."""
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    items = _planted_items(rng, n_items, text_share)
    for i, item_id in enumerate(items["item_id"]):
        _render(
            out / "images" / f"{item_id}.png",
            CATEGORIES[items["cat"][i]],
            COLOURS[list(COLOURS)[items["col"][i]]],
            items["names"][i],
            MATERIALS[items["mat"][i]],
            image_size,
        )
    user_cat, user_col, rows = _planted_interactions(
        rng, items, n_users, interactions_per_user, noise, popularity_skew
    )
    pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]).to_csv(
        out / "interactions.csv", index=False
    )
    colour_names = list(COLOURS)
    pd.DataFrame(
        {
            "item_id": items["item_id"],
            "title": items["titles"],
            "description": items["descriptions"],
            "category": [CATEGORIES[c] for c in items["cat"]],
            "colour": [colour_names[c] for c in items["col"]],
            "material": [MATERIALS[m].lower() for m in items["mat"]],
        }
    ).to_csv(out / "ground_truth_items.csv", index=False)
    pd.DataFrame(
        {"item_id": items["item_id"], "title": items["titles"], "description": items["descriptions"]}
    ).to_csv(out / "items.csv", index=False)
    params = {
        "n_users": n_users,
        "n_items": n_items,
        "interactions_per_user": interactions_per_user,
        "noise": noise,
        "popularity_skew": popularity_skew,
        "text_share": text_share,
        "seed": seed,
    }
    preferences = {
        f"U{u:05d}": {"category": CATEGORIES[user_cat[u]], "colour": colour_names[user_col[u]]}
        for u in range(n_users)
    }
    (out / "ground_truth.json").write_text(
        json.dumps({"label": GENERATED_LABEL, "params": params, "user_preferences": preferences}, indent=1)
    )
    (out / "README.txt").write_text(GENERATED_LABEL + "\nWritten by vlmrec.data.planted.generate_planted.\n")
    return out


def _planted_items(rng: np.random.Generator, n_items: int, text_share: float) -> dict:
    """Each item's hidden category, colour and material, its name, and its title and description
    (only a `text_share` of the texts mention category and colour)."""
    cat = rng.integers(len(CATEGORIES), size=n_items)
    col = rng.integers(len(COLOURS), size=n_items)
    mat = rng.integers(len(MATERIALS), size=n_items)
    names = ["".join(rng.choice(SYLLABLES, size=3)).upper() for _ in range(n_items)]
    colour_names = list(COLOURS)
    mentions = rng.random(n_items) < text_share
    titles, descriptions = [], []
    for i in range(n_items):
        material = MATERIALS[mat[i]].lower()
        word = CATEGORY_WORDS[CATEGORIES[cat[i]]]
        if mentions[i]:
            titles.append(f"{names[i].title()} {colour_names[col[i]]} {word}")
            descriptions.append(f"A {colour_names[col[i]]} {material} {word} called {names[i].title()}.")
        else:
            titles.append(f"{names[i].title()} item")
            descriptions.append(f"Made of {material}. Model {names[i].title()}.")
    item_ids = [f"P{i:05d}" for i in range(n_items)]
    return dict(
        item_id=item_ids, cat=cat, col=col, mat=mat, names=names, titles=titles, descriptions=descriptions
    )


def _planted_interactions(
    rng: np.random.Generator,
    items: dict,
    n_users: int,
    interactions_per_user: int,
    noise: float,
    popularity_skew: float,
) -> tuple[np.ndarray, np.ndarray, list[tuple]]:
    """Each user's hidden taste (a category and a colour) and their interactions, drawn from
    taste x popularity with a `noise` share of uniform picks."""
    cat, col, item_ids = items["cat"], items["col"], items["item_id"]
    n_items = len(item_ids)
    user_cat = rng.integers(len(CATEGORIES), size=n_users)
    user_col = rng.integers(len(COLOURS), size=n_users)
    popularity = rng.pareto(1.5, size=n_items) + 1.0
    rows = []
    for u in range(n_users):
        affinity = 3.0 * (cat == user_cat[u]) + 1.5 * (col == user_col[u])
        p = np.exp(affinity) * popularity**popularity_skew
        p = (1 - noise) * p / p.sum() + noise / n_items
        n = min(n_items, max(5, int(rng.poisson(interactions_per_user))))
        chosen = rng.choice(n_items, size=n, replace=False, p=p)
        for t, i in enumerate(chosen):
            rows.append((f"U{u:05d}", item_ids[i], 1.0, 1_600_000_000 + 3600 * (u * 1000 + t)))
    return user_cat, user_col, rows


def _render(path: Path, shape: str, rgb: tuple[int, int, int], name: str, material: str, size: int) -> None:
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(img)
    s = size
    box = (s * 0.2, s * 0.08, s * 0.8, s * 0.62)
    cx, cy, r = s * 0.5, s * 0.35, s * 0.27
    if shape == "circle":
        d.ellipse(box, fill=rgb)
    elif shape == "square":
        d.rectangle(box, fill=rgb)
    elif shape == "triangle":
        d.polygon([(cx, box[1]), (box[2], box[3]), (box[0], box[3])], fill=rgb)
    elif shape == "diamond":
        d.polygon([(cx, box[1]), (box[2], cy), (cx, box[3]), (box[0], cy)], fill=rgb)
    elif shape == "star":
        angles = np.linspace(-np.pi / 2, 3 * np.pi / 2, 11)[:-1]
        radii = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
        d.polygon([(cx + q * np.cos(a), cy + q * np.sin(a)) for a, q in zip(angles, radii)], fill=rgb)
    else:  # cross
        w = r * 0.35
        d.rectangle((cx - w, box[1], cx + w, box[3]), fill=rgb)
        d.rectangle((box[0], cy - w, box[2], cy + w), fill=rgb)
    font = ImageFont.load_default(size=max(10, s // 8))
    d.text((s * 0.06, s * 0.66), name, fill="black", font=font)
    d.text((s * 0.06, s * 0.82), material, fill="black", font=font)
    img.save(path)
