"""vlmrec writes only into folders it created.

Every folder vlmrec writes into (a prepared dataset, a FeatureSet, a run, `evaluate`'s results,
`describe`'s output, a generated planted catalogue) is claimed before its first file is written:

- an absent or empty folder is created and marked with a small `.vlmrec` file
  (`{"kind": "dataset"}`, ...), so a half-written folder stays recognisable and resumable;
- an existing folder is reused only when it is vlmrec's folder of the same kind: its marker, or,
  for folders written before the marker existed, the artifact's own manifest (a dataset's or
  FeatureSet's `manifest.json`, a run's `config.json` / `run.json`, an extraction's
  `.partial/config.json`, a describe folder's `descriptions.jsonl`, a planted catalogue's
  README.txt);
- anything else (a non-empty folder of the user's, a file, another kind of vlmrec folder) is
  refused with a ConfigError that says why, before anything is written.

`same_folder` tells whether two paths are one folder (after resolving links and `..`), for the
commands that read a folder and write another (`fuse`, `control`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from vlmrec.errors import ConfigError

FolderKind = Literal["dataset", "featureset", "run", "results", "descriptions", "planted"]
MARKER = ".vlmrec"
"""The file that marks a folder vlmrec created; it holds {"kind": FolderKind}."""

_WHAT = {
    "dataset": "prepared dataset",
    "featureset": "FeatureSet",
    "run": "run",
    "results": "results",
    "descriptions": "descriptions",
    "planted": "generated planted catalogue",
}


def _json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def folder_kind(directory: str | Path) -> str | None:
    """The kind of vlmrec folder `directory` is (see the module docstring), or None when it is not
    one vlmrec wrote."""
    d = Path(directory)
    marker = _json(d / MARKER)
    if marker is not None and isinstance(marker.get("kind"), str):
        return str(marker["kind"])
    manifest = _json(d / "manifest.json")
    if manifest is not None:
        if "featureset_format" in manifest or {"dim", "n_items", "failed"} <= manifest.keys():
            return "featureset"
        if "dataset_format" in manifest or {"fingerprint", "stats"} <= manifest.keys():
            return "dataset"
    partial = _json(d / ".partial" / "config.json")
    if partial is not None and {"key", "dataset_fingerprint"} <= partial.keys():
        return "featureset"  # an extraction that has not finished yet
    config = _json(d / "config.json")
    if _json(d / "run.json") is not None or (
        config is not None and {"name", "dataset", "models"} <= config.keys()
    ):
        return "run"
    if (d / "descriptions.jsonl").is_file() and {p.name for p in d.iterdir()} <= {
        "descriptions.jsonl",
        "text",
        "attributes",
    }:
        return "descriptions"
    readme = d / "README.txt"
    try:
        if readme.is_file() and "vlmrec.data.planted.generate_planted" in readme.read_text(errors="replace"):
            return "planted"
    except OSError:
        pass
    return None


def check_folder(directory: str | Path, kind: FolderKind, what: str = "--out") -> Path:
    """Refuse, before anything is written, to write a `kind` folder at `directory` unless it is
    absent, empty, or vlmrec's folder of that kind. `what` names it in the error (`--out`,
    `output_dir`, ...). Returns the path; writes nothing."""
    d = Path(directory)
    if not d.exists():
        if d.is_symlink():
            raise ConfigError(f"{what} {d}: a broken link; give a folder (it is created if missing)")
        return d
    if not d.is_dir():
        raise ConfigError(f"{what} {d}: is a file; give a folder (it is created if missing)")
    try:
        empty = next(os.scandir(d), None) is None
    except OSError as e:
        raise ConfigError(f"{what} {d}: cannot be read ({e.strerror})") from None
    if empty:
        return d
    found = folder_kind(d)
    if found == kind:
        return d
    if found is None:
        raise ConfigError(
            f"{what} {d}: the folder is not empty and vlmrec did not create it (no {_WHAT[kind]} "
            "manifest in it); vlmrec writes only into new or empty folders or its own, so the files "
            "there are left untouched: give a new or empty folder"
        )
    raise ConfigError(
        f"{what} {d}: a vlmrec {_WHAT.get(found, found)} folder, not a {_WHAT[kind]} folder; "
        "give another folder"
    )


def claim_folder(directory: str | Path, kind: FolderKind, what: str = "--out") -> Path:
    """`check_folder`, then create the folder and mark it as vlmrec's `kind` folder (a reused one
    keeps its marker). Call it right before the first file is written; returns the path."""
    d = check_folder(directory, kind, what)
    d.mkdir(parents=True, exist_ok=True)
    marker = d / MARKER
    if not marker.is_file():
        tmp = d / f"{MARKER}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"kind": kind}) + "\n")
        os.replace(tmp, marker)
    return d


def same_folder(a: str | Path, b: str | Path) -> bool:
    """True when `a` and `b` are the same folder once links and `..` are resolved."""
    return Path(a).resolve() == Path(b).resolve()
