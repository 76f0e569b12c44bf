"""Look, don't read: what each evaluated model recommends to a few real test users.

For a seeded, stratified sample of test users (heavy and light histories; users whose test items
are cold or tail items) this module computes the user's recent history and, for every row of the
run that kept its fitted model, that model's top-K exactly as the evaluator ranked it (the run's
test-time mask, `Evaluator.topk`: same masking, same tie rule), with hits marked and cold / tail
items flagged. It also counts where the best content row and the best ID-only row disagree over
all test users: the items one ranks in its top-K and the other does not, and how often each was a
hit. The report (report_examples.py) and `vlmrec explore` (serving/explore.py) show the result.

Thumbnails are embedded once per item (not once per tile) and small: at most `THUMB_SIDE`
pixels a side, WebP, and together at most `THUMB_BUDGET_BYTES`; items past the budget, and
catalogues without images, get title cards. With the charts, the whole report stays under
`REPORT_BUDGET_BYTES` (tested).
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from vlmrec.data.dataset import Dataset
from vlmrec.errors import ConfigError, DataError, ModelError
from vlmrec.evaluation.segments import item_segments
from vlmrec.experiments.artifacts import CellArtifact, RunArtifact
from vlmrec.experiments.results import segment_rows

if TYPE_CHECKING:
    from vlmrec.evaluation.evaluator import Evaluator
    from vlmrec.models.base import Recommender

log = logging.getLogger(__name__)

K = 10
HISTORY = 8  # most recent history items shown per user
PER_STRATUM = 2  # users drawn per stratum
STRATA: tuple[str, ...] = ("heavy history", "light history", "cold test item", "tail test item")
THUMB_SIDE = 64  # pixels, the longer side of an embedded thumbnail
THUMB_BUDGET_BYTES = 400_000  # base64 bytes of all embedded thumbnails together
REPORT_BUDGET_BYTES = 2_000_000  # the whole report.html, strips and charts included (tested)
DISAGREE_USERS = 5_000  # at most this many test users (a seeded sample) in "where they disagree"
DISAGREE_ITEMS = 8  # items listed on each side of "where they disagree"
BATCH = 512
RowKind = Literal["id", "content", "twin"]


@dataclass(frozen=True)
class RowModel:
    """One row of the run (model x features x control) and the cell whose saved model stands
    for it (the lowest seed of the selected hyperparameters that kept its model)."""

    model: str
    features: str
    control: str
    cell: str
    seed: int
    valid_score: float

    @property
    def kind(self) -> RowKind:
        """`id` (no features), `content` (real features) or `twin` (a content control)."""
        if self.control != "none":
            return "twin"
        return "id" if self.features == "none" else "content"

    @property
    def label(self) -> str:
        """E.g. `itemknn` or `profilematch · text+image~shuffled`."""
        return self.model if self.features == "none" else f"{self.model} · {self.features}"

    @property
    def slug(self) -> str:
        """A URL-safe name: `profilematch.text_image-shuffled` (`+` -> `_`, `~` -> `-`)."""
        name = self.model if self.features == "none" else f"{self.model}.{self.features}"
        return "".join(c if c.isalnum() or c in "._-" else {"~": "-"}.get(c, "_") for c in name)


@dataclass(frozen=True)
class ItemInfo:
    """What a tile shows of an item: title, flags, and its thumbnail (base64) when embedded."""

    item: int
    item_id: str
    title: str
    cold: bool
    tail: bool
    thumb: str | None = None  # base64 WebP / PNG, None: a title card
    mime: str = "image/webp"


@dataclass(frozen=True)
class Strip:
    """One model's top-K for one user: item indices and whether each is a test item."""

    row: RowModel
    items: tuple[int, ...]
    hits: tuple[bool, ...]


@dataclass(frozen=True)
class UserExample:
    """A sampled test user: why they were drawn, their recent history and every row's top-K."""

    user: int
    user_id: str
    stratum: str
    n_history: int
    n_test: int
    history: tuple[int, ...]  # most recent first
    strips: tuple[Strip, ...]


@dataclass(frozen=True)
class DisagreeItem:
    """An item one row ranks in its top-K for `times` users where the other does not; `hits`:
    how many of those users had it in their test split."""

    item: int
    times: int
    hits: int


@dataclass(frozen=True)
class Disagreement:
    """Where the best content row and the best ID-only row disagree, over `users` test users."""

    content: RowModel
    reference: RowModel
    users: int
    only_content: tuple[DisagreeItem, ...]
    only_reference: tuple[DisagreeItem, ...]
    content_slots: int  # top-K slots (over all users) holding an item only the content row ranks
    content_hits: int
    reference_slots: int
    reference_hits: int


@dataclass(frozen=True)
class ExamplesSection:
    """Everything the report's "What each model recommends" section shows."""

    k: int
    seed: int
    mask: str
    users: tuple[UserExample, ...]
    disagreement: Disagreement | None
    items: dict[int, ItemInfo]
    thumb_bytes: int
    thumb_budget: int
    note: str


def run_rows(folder: RunArtifact) -> list[RowModel]:
    """The run's rows that kept a fitted model, ordered: ID-only rows (best validation first),
    then content rows (best first), each followed directly by its content twins."""
    try:
        results = segment_rows(folder.results(), "all")
    except DataError:  # no results yet: no rows (the report says so elsewhere)
        return []
    if "cell" not in results.columns:
        return []
    results = results.assign(control=results["control"] if "control" in results else "none")
    cells = results.drop_duplicates("cell").sort_values(["seed", "cell"])
    rows: list[RowModel] = []
    for (model, features, control), group in cells.groupby(["model", "features", "control"], sort=True):
        valid = float(group["valid_score"].mean()) if "valid_score" in group else float("nan")
        for cell, seed in zip(group["cell"], group["seed"]):
            found = CellArtifact.find(folder.directory, str(cell))
            if found is not None and found.has_model:
                rows.append(RowModel(str(model), str(features), str(control), str(cell), int(seed), valid))
                break
    return order_rows(rows)


def order_rows(rows: Sequence[RowModel]) -> list[RowModel]:
    """ID rows, then each content row followed by its twins (see `run_rows`)."""

    def best_first(r: RowModel) -> tuple[float, str]:
        """Best validation score first, then by label."""
        return (-(r.valid_score if np.isfinite(r.valid_score) else -np.inf), r.label)

    out = sorted((r for r in rows if r.kind == "id"), key=best_first)
    twins = [r for r in rows if r.kind == "twin"]
    for content in sorted((r for r in rows if r.kind == "content"), key=best_first):
        out.append(content)
        out += sorted(
            (
                t
                for t in twins
                if t.model == content.model and t.features.replace(f"~{t.control}", "") == content.features
            ),
            key=lambda t: t.control,
        )
    return out + [t for t in twins if t not in out]


def run_mask(summary: dict) -> tuple[str, ...]:
    """The splits the run masked at test time (run.json; default train + valid)."""
    mask = summary.get("evaluation", {}).get("mask") or ["train", "valid"]
    return tuple(str(m) for m in mask)


def seen_matrix(ds: Dataset, mask: Sequence[str]) -> sp.csr_matrix:
    """Users x items: everything the masked splits hold (what a top-K never shows)."""
    out = ds.matrix(mask[0]).copy()
    for split in mask[1:]:
        out = out + ds.matrix(split)
    return out.tocsr()


def recent_history(ds: Dataset, mask: Sequence[str], user: int, n: int = HISTORY) -> tuple[int, ...]:
    """The user's `n` most recent items of the masked splits, most recent first (by timestamp
    where the splits have one, else in stored order)."""
    frames = [getattr(ds, s) for s in mask]
    rows = pd.concat([f[f["user"] == user] for f in frames], ignore_index=True)
    if "timestamp" in rows.columns:
        rows = rows.sort_values("timestamp", kind="stable")
    items = rows["item"].to_numpy()[::-1]
    return tuple(int(i) for i in dict.fromkeys(items.tolist()))[:n]


def choose_users(
    ds: Dataset, candidates: np.ndarray, seen: sp.csr_matrix, seed: int = 0, per_stratum: int = PER_STRATUM
) -> list[tuple[int, str]]:
    """A seeded sample of test users, `per_stratum` from each of STRATA (a user is drawn once):
    heavy / light history (top / bottom quarter of history length among the candidates), a test
    item that is cold (no training interaction), a test item in the popularity tail."""
    rng = np.random.default_rng(seed)
    if len(candidates) == 0:
        return []
    length = np.diff(seen.indptr)[candidates]
    test = ds.matrix("test")[candidates]
    segs = item_segments(ds.matrix("train"), ("cold", "popularity"))
    members = {
        "heavy history": length >= np.quantile(length, 0.75),
        "light history": length <= np.quantile(length, 0.25),
        "cold test item": np.asarray(test @ segs["cold"].astype(np.float64)).ravel() > 0,
        "tail test item": np.asarray(test @ segs["tail"].astype(np.float64)).ravel() > 0,
    }
    chosen: list[tuple[int, str]] = []
    taken: set[int] = set()
    for stratum in STRATA:
        pool = [int(u) for u in rng.permutation(candidates[members[stratum]]) if int(u) not in taken]
        for u in pool[:per_stratum]:
            chosen.append((u, stratum))
            taken.add(u)
    return chosen


def hit_matrix(target: sp.csr_matrix, users: np.ndarray, top: np.ndarray) -> np.ndarray:
    """hits[r, j]: item top[r, j] is in the target row of users[r]."""
    if not top.size:
        return np.zeros(top.shape, dtype=bool)
    rows = np.repeat(np.asarray(users), top.shape[1])
    return np.asarray(target[rows, top.ravel()]).reshape(top.shape) != 0


def load_models(folder: RunArtifact, rows: Iterable[RowModel]) -> dict[RowModel, Recommender]:
    """Each row's saved model, exactly as evaluated."""
    return {row: folder.cell(row.cell).load_model() for row in rows}


def disagreement(
    ev: Evaluator,
    content: tuple[RowModel, Recommender],
    reference: tuple[RowModel, Recommender],
    k: int = K,
    seed: int = 0,
    max_users: int = DISAGREE_USERS,
) -> Disagreement:
    """Items the content row ranks in its top-`k` and the reference row does not (and the
    reverse), counted over the evaluator's test users (a seeded sample of `max_users` at most),
    with how often each such item was a test item of that user."""
    users = ev.users
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    target = ev.target
    n = ev.dataset.n_items
    times = {side: np.zeros(n, np.int64) for side in ("content", "reference")}
    hits = {side: np.zeros(n, np.int64) for side in ("content", "reference")}
    for start in range(0, len(users), BATCH):
        batch = users[start : start + BATCH]
        top_c = ev.topk(content[1], batch, k)
        top_r = ev.topk(reference[1], batch, k)
        for side, mine, other in (("content", top_c, top_r), ("reference", top_r, top_c)):
            only = ~(mine[:, :, None] == other[:, None, :]).any(axis=2)
            hit = hit_matrix(target, batch, mine)
            np.add.at(times[side], mine[only], 1)
            np.add.at(hits[side], mine[only], hit[only].astype(np.int64))

    def top_items(side: str) -> tuple[DisagreeItem, ...]:
        """The items most often alone in this side's lists (more hits first on a tie)."""
        order = np.lexsort((np.arange(n), -hits[side], -times[side]))
        return tuple(
            DisagreeItem(int(i), int(times[side][i]), int(hits[side][i]))
            for i in order[:DISAGREE_ITEMS]
            if times[side][i] > 0
        )

    return Disagreement(
        content=content[0],
        reference=reference[0],
        users=len(users),
        only_content=top_items("content"),
        only_reference=top_items("reference"),
        content_slots=int(times["content"].sum()),
        content_hits=int(hits["content"].sum()),
        reference_slots=int(times["reference"].sum()),
        reference_hits=int(hits["reference"].sum()),
    )


def item_titles(ds: Dataset) -> list[str]:
    """A short title per item: the `title` column, else the first text column, else the id."""
    items = ds.items
    column = "title" if "title" in items.columns else next(iter(ds.text_columns()), None)
    ids = [str(i) for i in ds.item_ids]
    if column is None:
        return ids
    values = items[column].tolist()
    return [str(v)[:120] if isinstance(v, str) and v.strip() else iid for v, iid in zip(values, ids)]


def run_descriptions(run_dir: Path) -> dict[str, str]:
    """Generated item descriptions of the run (features/*/descriptions.jsonl), by item id."""
    out: dict[str, str] = {}
    for path in sorted((run_dir / "features").glob("*/descriptions.jsonl")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("description"), str):
                out.setdefault(str(rec.get("item_id")), rec["description"])
    return out


def thumbnail(path: str | None, side: int = THUMB_SIDE) -> tuple[str, str] | None:
    """(base64, mime) of the image at `path` shrunk to at most `side` pixels a side (WebP when
    Pillow has it, else PNG); None when there is no image or it cannot be read."""
    if not path:
        return None
    from PIL import Image, features

    try:
        with Image.open(path) as im:
            im.draft("RGB", (side * 2, side * 2))  # JPEG: decode at a reduced size
            rgb = im.convert("RGB")
            rgb.thumbnail((side, side))
            buf = io.BytesIO()
            if features.check("webp"):
                rgb.save(buf, format="WEBP", quality=70, method=6)
                mime = "image/webp"
            else:  # pragma: no cover - Pillow without WebP
                rgb.save(buf, format="PNG", optimize=True)
                mime = "image/png"
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return base64.b64encode(buf.getvalue()).decode(), mime


def item_infos(ds: Dataset, wanted: Iterable[int], budget: int = THUMB_BUDGET_BYTES) -> dict[int, ItemInfo]:
    """An ItemInfo per wanted item (in the order given, which is the order of priority for the
    thumbnail budget: once it is spent, the remaining items get title cards)."""
    train = ds.matrix("train")
    segs = item_segments(train, ("cold", "popularity"))
    titles = item_titles(ds)
    paths = ds.items["image_path"].tolist()
    out: dict[int, ItemInfo] = {}
    spent = 0
    for i in dict.fromkeys(wanted):
        thumb = thumbnail(paths[i]) if spent < budget else None
        if thumb is not None and spent + len(thumb[0]) > budget:
            thumb, spent = None, budget
        spent += len(thumb[0]) if thumb else 0
        out[i] = ItemInfo(
            i,
            str(ds.item_ids[i]),
            titles[i],
            bool(segs["cold"][i]),
            bool(segs["tail"][i]),
            thumb[0] if thumb else None,
            thumb[1] if thumb else "image/webp",
        )
    return out


def build_examples(
    run_dir: str | Path,
    ds: Dataset,
    summary: dict,
    reference: str | None = None,
    k: int = K,
    seed: int = 0,
) -> ExamplesSection | None:
    """The "What each model recommends" section of a run's report; None when no cell of the run
    kept its fitted model (nothing to show). `reference`: the verdict's best ID-only model on all
    items (default: the ID row best on validation)."""
    from vlmrec.evaluation.evaluator import Evaluator

    folder = RunArtifact(run_dir)
    rows = run_rows(folder)
    if not rows:
        return None
    mask = run_mask(summary)
    ev = Evaluator(ds, "test", ks=[k], metrics=("recall",), mask=mask)
    try:
        models = load_models(folder, rows)
    except (DataError, ModelError, ConfigError) as e:
        log.warning("report: saved models not shown: %s", e)
        note = f"The saved models could not be loaded, so no recommendations are shown: {e}"
        return ExamplesSection(k, seed, "+".join(mask), (), None, {}, 0, THUMB_BUDGET_BYTES, note)
    sample = choose_users(ds, ev.users, ev.exclude, seed)
    users = np.array([u for u, _ in sample], dtype=np.int64)
    strips: dict[RowModel, tuple[np.ndarray, np.ndarray]] = {}
    for row, model in models.items():
        top = ev.topk(model, users, k)
        strips[row] = (top, hit_matrix(ev.target, users, top))
    examples = tuple(
        UserExample(
            user=u,
            user_id=str(ds.user_ids[u]),
            stratum=stratum,
            n_history=int(ev.exclude[u].nnz),
            n_test=int(ev.target[u].nnz),
            history=recent_history(ds, mask, u),
            strips=tuple(
                Strip(row, tuple(int(i) for i in top[r]), tuple(bool(h) for h in hit[r]))
                for row, (top, hit) in strips.items()
            ),
        )
        for r, (u, stratum) in enumerate(sample)
    )
    pair = best_pair(rows, reference)
    dis = (
        disagreement(ev, (pair[0], models[pair[0]]), (pair[1], models[pair[1]]), k, seed)
        if pair is not None
        else None
    )
    infos = item_infos(ds, _wanted(examples, dis))
    thumbs = sum(len(i.thumb) for i in infos.values() if i.thumb)
    n_thumbs = sum(1 for i in infos.values() if i.thumb)
    pictures = (
        f"{n_thumbs} thumbnails embedded once each, {thumbs / 1000:.0f} kB of the "
        f"{THUMB_BUDGET_BYTES / 1000:.0f} kB thumbnail budget (whole report under "
        f"{REPORT_BUDGET_BYTES / 1e6:.0f} MB); other items as title cards."
        if ds.items["image_path"].notna().any()
        else "The catalogue has no images: items are shown as title cards."
    )
    note = (
        f"{len(examples)} test users drawn with seed {seed}, up to {PER_STRATUM} per group "
        f"({', '.join(STRATA)}). Each row is the model the run evaluated (its lowest seed of the "
        f"selected hyperparameters), ranked as the evaluator ranked it: {'+'.join(mask)} items masked, "
        f"ties by lowest item index. ✓ marks a hit (a test item of the user); cold: no training "
        f"interaction; tail: the popularity tail. {pictures}"
    )
    return ExamplesSection(k, seed, "+".join(mask), examples, dis, infos, thumbs, THUMB_BUDGET_BYTES, note)


def best_pair(rows: Sequence[RowModel], reference: str | None) -> tuple[RowModel, RowModel] | None:
    """(best content row, best ID-only row): the content row best on validation, and the ID row
    of model `reference` (the verdict's choice) or else the ID row best on validation."""
    content = next((r for r in rows if r.kind == "content"), None)
    ids = [r for r in rows if r.kind == "id"]
    if content is None or not ids:
        return None
    return content, next((r for r in ids if r.model == reference), ids[0])


def _wanted(examples: Sequence[UserExample], dis: Disagreement | None) -> list[int]:
    """Items in the order they get thumbnails: users first (history, then strips), then the
    disagreement lists."""
    out: list[int] = []
    for ex in examples:
        out += ex.history
        for strip in ex.strips:
            out += strip.items
    if dis is not None:
        out += [d.item for d in (*dis.only_content, *dis.only_reference)]
    return out
