"""Run the LVLM code path on a GPU machine: tiny random-weight Qwen2-VL / LLaVA / Idefics3 built
locally (no hub), bf16 on CUDA, embed + generate timings; and report any real VLM weights found
in the local Hugging Face cache. Writes benchmarks/results/lvlm_gpu_check.json (or $OUT).

    PYTHONPATH=src:. python benchmarks/lvlm_gpu_check.py
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.tiny_lvlm import build_tiny_idefics3, build_tiny_llava, build_tiny_qwen2vl  # noqa: E402
from vlmrec.features.lvlm.model import LVLM  # noqa: E402
from vlmrec.features.lvlm.prompts import BUILTIN  # noqa: E402


def main() -> None:
    out_dir = Path(os.environ.get("OUT") or Path(__file__).parent / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "device_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "archs": {},
    }
    hub = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"
    report["hf_cache_models"] = sorted(p.name for p in hub.glob("models--*")) if hub.exists() else []
    images = [Image.new("RGB", (224, 224), (200, 30, 30)), Image.new("RGB", (224, 224), (30, 30, 200))] * 8
    prompts = [BUILTIN["clothing"].render()] * len(images)
    for name, build in (
        ("qwen2vl", build_tiny_qwen2vl),
        ("llava", build_tiny_llava),
        ("idefics3", build_tiny_idefics3),
    ):
        try:
            with tempfile.TemporaryDirectory() as d:
                path = build(Path(d) / name)
                lvlm = LVLM(str(path))
                lvlm.embed(images[:2], prompts[:2])  # warm-up
                t = time.perf_counter()
                emb = lvlm.embed(images, prompts, pooling="image")
                embed_s = time.perf_counter() - t
                t = time.perf_counter()
                texts = lvlm.generate(images, prompts, max_new_tokens=16)
                gen_s = time.perf_counter() - t
                report["archs"][name] = {
                    "ok": True,
                    "device": str(lvlm.device),
                    "dtype": str(lvlm.dtype),
                    "embed_shape": list(emb.shape),
                    "embed_items_per_s": len(images) / embed_s,
                    "generate_items_per_s": len(images) / gen_s,
                    "sample": texts[0][:40],
                }
        except Exception as e:  # report, do not hide: the JSON says which architecture failed and why
            report["archs"][name] = {"ok": False, "error": f"{type(e).__name__}: {e}"[:500]}
    (out_dir / "lvlm_gpu_check.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
