"""Resumable, chunked extraction of a FeatureSet, and the contract every extractor follows.

The contract: an `Extractor` (`fit` on the whole item table, then `process` chunks of it, then
`manifest`) built from one typed `ExtractorOptions` model per extractor (unknown keys refused,
ranges checked). `vlmrec.features.registry` maps extractor names to their options model and
builder; the CLI, the YAML config and the Python API all go through it.

Items are processed in fixed chunks; each finished chunk is written atomically to
`<out>/.partial/chunk_XXXXX.npz`. A killed run restarts from the first missing chunk and,
because extractors are deterministic per item, assembles a byte-identical `vectors.npy`.
Items an extractor cannot process (missing or corrupt image...) are listed with the reason
in the manifest's `failed` list and filled by an explicit policy, never silently zeroed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, get_args

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler, ValidationError
from pydantic_core import core_schema
from tqdm.auto import tqdm

from vlmrec.artifact_io import nonfinite_rows
from vlmrec.data.dataset import Dataset
from vlmrec.errors import ConfigError, DataError
from vlmrec.features.featureset import FeatureSet
from vlmrec.provenance import hash_text

log = logging.getLogger(__name__)

MissingPolicy = Literal["mean", "zero", "error"]
MISSING_POLICIES: tuple[str, ...] = get_args(MissingPolicy)
Engine = Literal["local", "ray"]
ENGINES: tuple[str, ...] = get_args(Engine)

# The settings every front end has a slot of its own for (CLI --model/--prompt/--fields/--batch-size,
# the config's model/prompt/fields keys): None there means "not set", whichever the extractor.
UNSET_WHEN_NONE = frozenset({"model", "prompt", "fields", "batch_size"})


@dataclass(frozen=True)
class Choices:
    """Field metadata: the value must be one of `values`, a tuple defined once elsewhere (e.g.
    `lvlm.POOLINGS`). Validated like a Literal (`Annotated[str, Choices(POOLINGS)]`), listed by
    `vlmrec extractors`."""

    values: tuple[str, ...]

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """A literal schema over `values` (pydantic hook)."""
        return core_schema.literal_schema(list(self.values))


class ExtractorOptions(BaseModel):
    """Base of every extractor's options model: frozen, unknown keys refused.

    Subclasses declare typed fields with defaults (the extractor's own defaults) and ranges, and
    a `description` per field (shown by `vlmrec extractors`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def unknown_key_hint(cls, key: str) -> str | None:
        """Why `key` is not an option here, when there is more to say than "unknown"."""
        return None

    @classmethod
    def parse(
        cls,
        raw: Mapping[str, Any] | ExtractorOptions | None,
        extractor: str,
        elsewhere: Callable[[str], str | None] | None = None,
    ) -> Self:
        """Validate a plain mapping (CLI, YAML, Python keywords) into this model, or raise a
        ConfigError naming `extractor`, each bad key and the valid keys. `None` for one of
        UNSET_WHEN_NONE means not set. An instance of this model is returned as it is.
        `elsewhere(key)` may say where an unknown key belongs when the model has no hint of its own."""
        if type(raw) is cls:
            return raw
        if isinstance(raw, ExtractorOptions):
            raw = raw.model_dump(exclude_unset=True)
        given = {k: v for k, v in (raw or {}).items() if not (v is None and k in UNSET_WHEN_NONE)}
        valid = ", ".join(sorted(cls.model_fields))
        unknown = sorted(set(given) - set(cls.model_fields))
        if unknown:
            found = (cls.unknown_key_hint(k) or (elsewhere(k) if elsewhere else None) for k in unknown)
            hints = list(dict.fromkeys(h for h in found if h))
            raise ConfigError(
                f"extractor {extractor!r}: unknown option{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(map(repr, unknown))}{' (' + '; '.join(hints) + ')' if hints else ''}; "
                f"valid options: {valid}"
            )
        try:
            return cls.model_validate(given)
        except ValidationError as e:
            raise ConfigError(f"extractor {extractor!r}: {_problems(e, cls)}") from None


def _problems(e: ValidationError, model: type[BaseModel]) -> str:
    """One clause per validation error: `key=value: message`, or `option 'key' is required (...)`."""
    out = []
    for err in e.errors():
        key = ".".join(str(x) for x in err["loc"]) or "options"
        if err["type"] == "missing":
            field = model.model_fields.get(key)
            about = f" ({field.description})" if field is not None and field.description else ""
            out.append(f"option {key!r} is required{about}")
        elif err["loc"]:
            out.append(f"{key}={err.get('input')!r}: {err['msg']}")
        else:  # a check across options (model validator)
            out.append(str(err["msg"]).removeprefix("Value error, "))
    return "; ".join(out)


class Extractor(ABC):
    """What `extract` (and the Ray engine) run: `fit` once on the whole item table, then `process`
    chunks of it; `manifest` describes the extractor for the FeatureSet's provenance.

    `own_missing_policy`: None when failed rows are placeholders (NaN) that the run's missing
    policy fills; otherwise failed rows are the extractor's final vectors (e.g. one-hot rows with a
    missing slot left empty) and this text is recorded as the manifest's `missing_policy`.
    """

    name: str
    own_missing_policy: ClassVar[str | None] = None

    def fit(self, items: pd.DataFrame) -> None:  # noqa: B027 - a no-op is the right default
        """Learn what the extractor needs from the whole catalogue (a vocabulary, attribute
        keyword lists) before any chunk is processed. Deterministic: the Ray engine fits every
        worker on the same items. Most extractors have nothing to learn."""

    @abstractmethod
    def process(self, items: pd.DataFrame) -> tuple[np.ndarray, dict[int, str]]:
        """Vectors for a chunk of item-table rows (NaN rows allowed for failures) and
        {row position in chunk: reason} for the failed ones."""

    @abstractmethod
    def manifest(self) -> dict[str, Any]:
        """Provenance of the vectors (extractor name, model, preprocessing...); called after `fit`."""


def extract(
    dataset: Dataset,
    extractor: Extractor,
    out: str | Path,
    chunk_size: int = 256,
    missing: str = "mean",
    progress: bool = True,
    max_chunks: int | None = None,
) -> FeatureSet | None:
    """Fit `extractor` on the dataset's items, run it over every item and save the FeatureSet in `out`.

    `max_chunks` stops after that many new chunks (returns None): used to test resumption.
    """
    if missing not in MISSING_POLICIES:
        raise ConfigError(f"missing-item policy {missing!r}: choose one of {MISSING_POLICIES}")
    out = Path(out)
    extractor.fit(dataset.items)
    manifest = extractor.manifest()
    todo = prepare_partial(out, dataset, {"extractor": manifest, "chunk_size": chunk_size})
    n = dataset.n_items
    bar = tqdm(
        total=n,
        initial=n - sum(min(chunk_size, n - c * chunk_size) for c in todo),
        desc=f"extract {extractor.name}",
        unit="item",
        disable=None if progress else True,  # None: off when stderr is not a TTY (log file, pipe)
        mininterval=1.0,
    )
    t0 = time.perf_counter()
    for count, c in enumerate(todo):
        if max_chunks is not None and count >= max_chunks:
            bar.close()
            return None
        bar.update(process_chunk(extractor, dataset.items, c, chunk_size, out / ".partial"))
    bar.close()
    return assemble(
        dataset,
        out,
        manifest,
        chunk_size,
        missing,
        time.perf_counter() - t0,
        own_missing_policy=extractor.own_missing_policy,
    )


def prepare_partial(out: Path, dataset: Dataset, spec: dict) -> list[int]:
    """Create `out/.partial` for this configuration (starting over if it was made with another)
    and return the chunk numbers still to do."""
    partial = out / ".partial"
    partial.mkdir(parents=True, exist_ok=True)
    config = {**spec, "dataset_fingerprint": dataset.fingerprint}
    config_key = hash_text(json.dumps(config, sort_keys=True, default=str))
    marker = partial / "config.json"
    if marker.exists() and json.loads(marker.read_text()).get("key") != config_key:
        log.warning("%s: partial results were made with another configuration; starting over", out)
        shutil.rmtree(partial)
        partial.mkdir(parents=True)
    marker.write_text(json.dumps({"key": config_key, **config}, default=str))
    n_chunks = (dataset.n_items + spec["chunk_size"] - 1) // spec["chunk_size"]
    return [c for c in range(n_chunks) if not (partial / f"chunk_{c:05d}.npz").exists()]


def process_chunk(extractor: Extractor, items: pd.DataFrame, c: int, chunk_size: int, partial: Path) -> int:
    """Extract one chunk and write it atomically (a kill leaves either the whole chunk or none)."""
    rows = items.iloc[c * chunk_size : (c + 1) * chunk_size]
    vectors, failed = extractor.process(rows)
    if len(vectors) != len(rows):
        raise DataError(f"extractor {extractor.name}: returned {len(vectors)} vectors for {len(rows)} items")
    tmp = partial / f"chunk_{c:05d}.tmp-{os.getpid()}.npz"
    np.savez(
        tmp,
        vectors=np.asarray(vectors, np.float32),
        failed_pos=np.array(list(failed), dtype=np.int64),
        failed_reason=np.array(list(failed.values()), dtype=str),
    )
    tmp.replace(partial / f"chunk_{c:05d}.npz")
    return len(rows)


def assemble(
    dataset: Dataset,
    out: Path,
    manifest: dict,
    chunk_size: int,
    missing: str,
    seconds: float,
    own_missing_policy: str | None = None,
    **extra: Any,
) -> FeatureSet:
    """Join the chunks into `vectors.npy` once every item is accounted for (processed or failed).

    Failed rows are filled by the `missing` policy, unless the extractor has its own
    (`Extractor.own_missing_policy`): then they are kept and that policy is recorded."""
    partial = out / ".partial"
    n = dataset.n_items
    n_chunks = (n + chunk_size - 1) // chunk_size
    absent = [c for c in range(n_chunks) if not (partial / f"chunk_{c:05d}.npz").exists()]
    if absent:
        raise DataError(f"{out}: chunks {absent[:10]} are missing; re-run the extraction to complete them")
    blocks: list[np.ndarray] = []
    failed_all: list[dict[str, Any]] = []
    for c in range(n_chunks):
        with np.load(partial / f"chunk_{c:05d}.npz") as z:
            blocks.append(z["vectors"])
            failed_all += [
                {"item": int(c * chunk_size + p), "reason": str(r)}
                for p, r in zip(z["failed_pos"], z["failed_reason"])
            ]
    vectors = np.concatenate(blocks).astype(np.float32)
    _fail_nonfinite(vectors, failed_all, own_missing_policy)
    if own_missing_policy is None:
        vectors = _apply_missing_policy(vectors, failed_all, missing, manifest.get("extractor", "?"))
    else:
        missing = own_missing_policy
    for f in failed_all:
        f["item_id"] = str(dataset.item_ids[f["item"]])
    fs = FeatureSet.create(
        vectors,
        dataset,
        name=out.name,
        missing_policy=missing,
        failed=failed_all,
        **manifest,
        extraction_seconds=round(seconds, 3),
        **extra,
    )
    fs.save(out)
    shutil.rmtree(partial)
    if failed_all:
        log.warning(
            "%s: %d of %d items could not be processed (listed in manifest.json 'failed'; policy %s)",
            out,
            len(failed_all),
            n,
            missing,
        )
    return fs


def _fail_nonfinite(vectors: np.ndarray, failed: list[dict[str, Any]], own_policy: str | None) -> None:
    """Rows the extractor returned with NaN or infinite values (or values beyond float32) but did
    not report are failed items too: listed with the reason and filled by the missing-item
    policy, with a warning, so no non-finite vector is ever saved. An extractor with its own
    policy keeps its rows as they are, so those are refused instead."""
    known = {f["item"] for f in failed}
    bad = [int(i) for i in nonfinite_rows(vectors) if int(i) not in known]
    if not bad:
        return
    if own_policy is not None:
        raise DataError(f"extractor returned NaN or infinite values for {len(bad)} item(s) (rows {bad[:5]})")
    log.warning(
        "%d item(s) came out of the extractor with NaN or infinite values (rows %s); listed as "
        "failed and filled by the missing-item policy",
        len(bad),
        bad[:5],
    )
    failed += [{"item": i, "reason": "the extractor returned NaN or infinite values"} for i in bad]
    failed.sort(key=lambda f: f["item"])


def _apply_missing_policy(
    vectors: np.ndarray, failed: list[dict[str, Any]], policy: str, name: str
) -> np.ndarray:
    if not failed:
        return vectors
    idx = np.array([f["item"] for f in failed])
    if policy == "error":
        first = failed[0]
        raise DataError(
            f"extractor {name}: {len(failed)} item(s) failed, e.g. item {first['item']}: {first['reason']} "
            "(use --missing mean|zero to continue with an explicit fill)"
        )
    ok = np.ones(len(vectors), bool)
    ok[idx] = False
    if policy == "zero" or not ok.any():
        vectors[idx] = 0.0
    else:
        vectors[idx] = vectors[ok].mean(0)
    return vectors
