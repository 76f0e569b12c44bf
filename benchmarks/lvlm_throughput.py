"""LVLM extraction throughput at real model size (issue 16).

Builds Qwen2-VL-2B-Instruct and LLaVA-1.5-7B checkpoints with random weights from their published
configs (written out below: compute does not depend on trained weights, and no model hub is reached),
saves them with `save_pretrained` and loads them back through `LVLM(<dir>)`, the same path as a real
checkpoint. Then, for each model:

* a naive loop, one item at a time, straight through transformers (what the papers' seed code does):
  `generate` per item; `model(..., output_hidden_states=True)` per item for embeddings;
* vlmrec's own paths: `LVLM.embed` (the `lvlm-embed` extractor's call) and `LVLMDescriber.describe`
  (the `lvlm-describe` / `lvlm-attributes` call), over a batch sweep (8, 32, 64, 128, 256 where memory
  allows) and variants: embed sorted / unsorted; describe with a dynamic KV cache (default), the same
  unsorted, a static KV cache, and a static cache with transformers' `torch.compile` of the decoding step;
* for every run: the first batch at that size (warm-up, compilation included) and the steady state
  (a job of `--steady-batches` further batches, passed in one call as the extractors do, so items are
  sorted by prompt length; "unsorted" passes them one batch per call in input order) reported
  separately; items/s, generated tokens/s (every item generates exactly `--new-tokens`:
  min_new_tokens = max_new_tokens), prompt tokens/s, the padding share, peak GPU memory, the memory
  per item it implies beside vlmrec's own estimate, and the batch size vlmrec would choose itself.

Runs already in the state file are not redone (`--redo` to force), and `--budget-s` stops before a run
that would start late, so repeating a command continues a sweep that one 10-minute slot cannot hold.

    PYTHONPATH=src:. python benchmarks/lvlm_throughput.py --model qwen2vl-2b --modes describe
    PYTHONPATH=src:. python benchmarks/lvlm_throughput.py --tiny      # CPU check of this script

Writes benchmarks/results/lvlm_throughput_<label>.{json,md} (under $OUT instead when it is set).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]
from tests.tiny_lvlm import (  # noqa: E402
    CORPUS,
    TINY_BUILDERS,
    build_llava,
    build_qwen2vl,
    build_tiny_qwen2vl,
)
from vlmrec.features.lvlm.extractors import LVLMDescriber  # noqa: E402
from vlmrec.features.lvlm.model import LVLM, BatchChoice, GenerationOptions  # noqa: E402
from vlmrec.features.lvlm.prompts import BUILTIN, load_template  # noqa: E402

# ---- published configs ------------------------------------------------------------------------
# Qwen/Qwen2-VL-2B-Instruct config.json (token ids are set from the locally trained tokenizer; the
# vocabulary size, and so the embedding and LM-head cost, is the published one).
QWEN2VL_2B = {
    "text_config": {
        "hidden_act": "silu",
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "max_position_embeddings": 32768,
        "max_window_layers": 28,
        "num_attention_heads": 12,
        "num_hidden_layers": 28,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": 32768,
        "tie_word_embeddings": True,
        "use_sliding_window": False,
        "vocab_size": 151936,
        "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
    },
    "vision_config": {
        "depth": 32,
        "embed_dim": 1280,
        "mlp_ratio": 4,
        "num_heads": 16,
        "in_channels": 3,
        "hidden_size": 1536,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    },
    # preprocessor_config.json
    "min_pixels": 3136,
    "max_pixels": 12845056,
}
# llava-hf/llava-1.5-7b-hf config.json (Vicuna-7B text model: the llama defaults written out; CLIP
# ViT-L/14-336 vision tower, features from its second-to-last layer).
LLAVA15_7B = {
    "text_config": {
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-05,
        "vocab_size": 32064,
    },
    "vision_config": {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_attention_heads": 16,
        "num_hidden_layers": 24,
        "patch_size": 14,
        "projection_dim": 768,
    },
    "image_size": 336,
    "vision_feature_layer": -2,
}
PUBLISHED = {"qwen2vl-2b": QWEN2VL_2B, "llava-7b": LLAVA15_7B}

TITLES = [
    "Baby bib",
    "Organic cotton muslin swaddle blankets, set of 3",
    "Silicone teether",
    "Convertible car seat with 5-point harness, rear and forward facing, 5 to 65 lb",
    "Stroller rain cover",
    "Wooden stacking rings toy for toddlers 12 months and up, natural finish",
    "Nursing pillow",
    "Glass baby bottles, anti-colic vent, slow flow nipples, 4 oz, pack of 4",
    "Crib sheet",
    "Portable changing pad with wipes pocket and shoulder strap, waterproof, grey",
    "Baby monitor with camera, night vision, two-way talk and temperature display",
    "Sippy cup",
]
VARIANTS = {
    "embed": ("sorted", "unsorted"),
    "describe": ("dynamic", "dynamic-unsorted", "static", "static+compile"),
}


# ---- helpers -------------------------------------------------------------------------------------


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _images(n: int, size: int, seed: int = 0) -> list[Image.Image]:
    """Smooth random colour fields (content does not change the compute)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        out.append(Image.fromarray(small).resize((size, size), Image.BILINEAR))
    return out


def _corpus() -> list[str]:
    """Tokenizer training text: the built-in prompts and the titles, so that prompts tokenise into
    about one token per word, close to the real tokenizers' lengths."""
    return list(CORPUS) + [t.text for t in BUILTIN.values()] * 4 + TITLES * 4


def _oom(e: BaseException) -> bool:
    return isinstance(e, torch.cuda.OutOfMemoryError) or isinstance(e.__cause__, torch.cuda.OutOfMemoryError)


def _padding_share(lengths: Sequence[int], batch: int, sort: bool) -> float:
    order = sorted(lengths, reverse=True) if sort else list(lengths)
    padded = sum(max(order[s : s + batch]) * len(order[s : s + batch]) for s in range(0, len(order), batch))
    return 1 - sum(order) / padded


def _generation(variant: str, new_tokens: int) -> GenerationOptions:
    static = variant.startswith("static")
    return GenerationOptions(
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        cache_implementation="static" if static else "dynamic",
        compile=variant == "static+compile",
    )


def build_checkpoint(name: str, root: Path, tiny: bool, device: str) -> Path:
    """The checkpoint folder for `name`, built unless a folder from the same recipe is there."""
    recipe = json.dumps({"name": name, "tiny": tiny, "published": PUBLISHED.get(name)}, sort_keys=True)
    key = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    directory = root / f"{name}-{key}"
    if (directory / "config.json").exists() and (directory / "BUILT").exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    if tiny:
        builder = {**TINY_BUILDERS, "qwen2vl": build_tiny_qwen2vl}[name]
        builder(directory)
    elif name == "qwen2vl-2b":
        c = QWEN2VL_2B
        build_qwen2vl(
            directory,
            c["text_config"],
            c["vision_config"],
            vocab_size=8000,
            corpus=_corpus(),
            min_pixels=c["min_pixels"],
            max_pixels=c["max_pixels"],
            device=device,
            dtype=torch.bfloat16,
        )
    elif name == "llava-7b":
        c = LLAVA15_7B
        build_llava(
            directory,
            c["text_config"],
            c["vision_config"],
            c["image_size"],
            vocab_size=8000,
            corpus=_corpus(),
            vision_feature_layer=c["vision_feature_layer"],
            device=device,
            dtype=torch.bfloat16,
        )
    else:
        raise SystemExit(f"unknown model {name!r}: choose from {', '.join(PUBLISHED)}")
    (directory / "BUILT").write_text(recipe)
    return directory


# ---- the measurements ------------------------------------------------------------------------------


class Bench:
    """Runs and records one model's measurements into `state` (a dict of run key -> record)."""

    def __init__(self, name: str, lvlm: LVLM, args: argparse.Namespace, state: dict, deadline: float):
        self.name, self.lvlm, self.args, self.state, self.deadline = name, lvlm, args, state, deadline
        self.template = load_template(args.prompt)
        self.pool_images = _images(len(TITLES) * 3, args.image_size)
        self.gpu = lvlm.device.type == "cuda"

    def items(self, n: int, offset: int = 0) -> tuple[list[Image.Image], list[str], list[str]]:
        idx = [(offset + i) % len(self.pool_images) for i in range(n)]
        titles = [TITLES[i % len(TITLES)] for i in idx]
        prompts = [self.template.render(t) for t in titles]
        return [self.pool_images[i] for i in idx], titles, prompts

    def _skip(self, key: str) -> bool:
        if key in self.state and not self.args.redo:
            return True
        if time.monotonic() > self.deadline:
            self.state.setdefault("_skipped", []).append(key)
            return True
        return False

    def _memory_start(self) -> int:
        gc.collect()
        if not self.gpu:
            return 0
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()

    def _memory_peak(self, start: int, batch: int) -> dict[str, Any]:
        if not self.gpu:
            return {"peak_gib": None, "measured_mib_per_item": None}
        peak = torch.cuda.max_memory_allocated()
        return {
            "peak_gib": round(peak / 2**30, 2),
            "measured_mib_per_item": round((peak - start) / 2**20 / batch, 1),
        }

    def naive(self, mode: str) -> None:
        key = f"{self.name}|{mode}|naive|1"
        if self._skip(key):
            return
        n = self.args.naive_items
        images, _titles, prompts = self.items(n + 1)
        lvlm, new = self.lvlm, self.args.new_tokens
        start = self._memory_start()

        def one(i: int) -> None:
            with torch.no_grad():
                inputs = lvlm.inputs([images[i]], [prompts[i]])
                if mode == "describe":
                    lvlm.model.generate(**inputs, max_new_tokens=new, min_new_tokens=new, do_sample=False)
                else:
                    hs = lvlm.model(**inputs, output_hidden_states=True).hidden_states
                    hs[-1].float().mean(1).cpu()

        t = time.perf_counter()
        one(0)  # warm-up, reported as the first batch
        _sync()
        first = time.perf_counter() - t
        t = time.perf_counter()
        for i in range(1, n + 1):
            one(i)
        _sync()
        steady = time.perf_counter() - t
        lengths = lvlm.prompt_lengths(images[1:], prompts[1:])
        self.state[key] = self._record(mode, "naive", 1, "ok", first, 1, steady, n, lengths, 0.0)
        self.state[key].update(self._memory_peak(start, 1))
        print(json.dumps(self.state[key]), flush=True)

    def run(self, mode: str, variant: str, batch: int) -> str:
        """One (mode, variant, batch) measurement; returns its status."""
        key = f"{self.name}|{mode}|{variant}|{batch}"
        if self._skip(key):
            return self.state.get(key, {}).get("status", "skipped")
        lvlm, args = self.lvlm, self.args
        first_items = self.items(batch, offset=0)
        steady_items = self.items(batch * args.steady_batches, offset=batch)
        choice = BatchChoice(batch, "explicit")
        unsorted = variant.endswith("unsorted")
        if mode == "describe":
            describer = LVLMDescriber(lvlm, self.template, _generation(variant, args.new_tokens), batch)

            def call(images: list[Image.Image], titles: list[str], prompts: list[str]) -> None:
                describer.describe(images, titles)
        else:

            def call(images: list[Image.Image], titles: list[str], prompts: list[str]) -> None:
                lvlm.embed(images, prompts, layer=-1, pooling="mean", batch_size=choice)

        start = self._memory_start()
        try:
            t = time.perf_counter()
            call(*first_items)
            _sync()
            first = time.perf_counter() - t
            images, titles, prompts = steady_items
            t = time.perf_counter()
            if unsorted:  # one call per batch, in input order: no sorting across the job
                for s in range(0, len(images), batch):
                    call(images[s : s + batch], titles[s : s + batch], prompts[s : s + batch])
            else:
                call(images, titles, prompts)
            _sync()
            steady = time.perf_counter() - t
        except Exception as e:  # recorded, not fatal: one refusal must not lose a sweep's device time
            status = "oom" if _oom(e) else f"error: {type(e).__name__}: {str(e)[:300]}"
            self.state[key] = {
                "model": self.name,
                "mode": mode,
                "variant": variant,
                "batch": batch,
                "status": status,
            }
            self.state[key].update(self._memory_peak(start, batch))
            gc.collect()
            if self.gpu:
                torch.cuda.empty_cache()
            print(json.dumps(self.state[key]), flush=True)
            return status
        lengths = lvlm.prompt_lengths(steady_items[0], steady_items[2])
        padding = _padding_share(lengths, batch, sort=not unsorted)
        rec = self._record(mode, variant, batch, "ok", first, batch, steady, len(lengths), lengths, padding)
        rec.update(self._memory_peak(start, batch))
        gen = _generation(variant, args.new_tokens) if mode == "describe" else None
        est, _tokens, _image_tokens = lvlm.item_memory(self.template.render(TITLES[3]), mode, gen)
        rec["estimated_mib_per_item"] = round(est / 2**20, 1)
        self.state[key] = rec
        print(json.dumps(rec), flush=True)
        return "ok"

    def _record(
        self,
        mode: str,
        variant: str,
        batch: int,
        status: str,
        first_s: float,
        first_n: int,
        steady_s: float,
        steady_n: int,
        lengths: Sequence[int],
        padding: float,
    ) -> dict[str, Any]:
        new = self.args.new_tokens if mode == "describe" else 0
        return {
            "model": self.name,
            "mode": mode,
            "variant": variant,
            "batch": batch,
            "status": status,
            "first_batch_s": round(first_s, 3),
            "first_batch_items_per_s": round(first_n / first_s, 3),
            "steady_items": steady_n,
            "steady_s": round(steady_s, 3),
            "steady_items_per_s": round(steady_n / steady_s, 3),
            "steady_generated_tokens_per_s": round(steady_n * new / steady_s, 1) if new else None,
            "steady_prompt_tokens_per_s": round(sum(lengths) / steady_s, 1),
            "mean_prompt_tokens": round(float(np.mean(lengths)), 1),
            "padding_share": round(padding, 4),
        }


# ---- report -------------------------------------------------------------------------------------


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def _params(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e8 else f"{n / 1e3:,.0f} k"


def hours(items: int, rate: float, gpus: int = 1) -> float:
    """Wall-clock hours for `items` at `rate` items/s per GPU on `gpus` GPUs (perfect scaling)."""
    return items / (rate * gpus) / 3600


def markdown(payload: dict) -> str:
    lines = [f"# LVLM throughput: {payload['label']}", "", f"**{payload['claim']}**", ""]
    env = payload["device"]
    lines += [
        f"Device: {env['name']}; torch {payload['environment']['torch']}; transformers "
        f"{payload['settings']['transformers']}; {payload['settings']['dtype']}; images "
        f"{payload['settings']['image_size']}px; prompt `{payload['settings']['prompt']}`; "
        f"{payload['settings']['new_tokens']} new tokens per described item (forced); steady state over "
        f"{payload['settings']['steady_batches']} batches.",
        "",
    ]
    for name, model in payload["models"].items():
        lines += [f"## {name}", ""]
        info = model.get("info", {})
        if "skipped" in info:
            lines += [f"Not run: {info['skipped']}.", ""]
            continue
        if info:
            lines += [
                f"{_params(info.get('parameters', 0))} parameters; build {_fmt(info.get('build_s'), 1)} s, "
                f"load {_fmt(info.get('load_s'), 1)} s; vlmrec's own batch choice: "
                + ", ".join(
                    f"{m} {c['batch_size']} ({c['batch_size_source']}"
                    + (
                        f", ~{c['batch_item_mib_estimate']} MiB/item"
                        if "batch_item_mib_estimate" in c
                        else ""
                    )
                    + ")"
                    for m, c in info.get("auto_batch", {}).items()
                ),
                "",
            ]
        runs = sorted(
            model["runs"], key=lambda r: (r["mode"], r["variant"] != "naive", r["variant"], r["batch"])
        )
        naive = {r["mode"]: r.get("steady_items_per_s") for r in runs if r["variant"] == "naive"}
        lines += [
            "| mode | path / variant | batch | first batch items/s | steady items/s | x naive | "
            "generated tok/s | prompt tok/s | padding | peak GiB | MiB/item measured | MiB/item estimated |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in runs:
            if r["status"] != "ok":
                status = r["status"].replace("|", "/").replace("\n", " ")
                lines.append(f"| {r['mode']} | {r['variant']} | {r['batch']} | {status} |" + " |" * 8)
                continue
            base = naive.get(r["mode"])
            speedup = r["steady_items_per_s"] / base if base and r["variant"] != "naive" else None
            lines.append(
                f"| {r['mode']} | {r['variant']} | {r['batch']} | {_fmt(r['first_batch_items_per_s'])} | "
                f"{_fmt(r['steady_items_per_s'])} | {_fmt(speedup, 1)} | "
                f"{_fmt(r['steady_generated_tokens_per_s'], 0)} | {_fmt(r['steady_prompt_tokens_per_s'], 0)} | "
                f"{r['padding_share']:.1%} | {_fmt(r.get('peak_gib'))} | {_fmt(r.get('measured_mib_per_item'), 0)} | "
                f"{_fmt(r.get('estimated_mib_per_item'), 0)} |"
            )
        lines.append("")
        if not payload["tiny"]:
            best = {
                mode: max(
                    (
                        r
                        for r in runs
                        if r["mode"] == mode and r["status"] == "ok" and r["variant"] != "naive"
                    ),
                    key=lambda r: r["steady_items_per_s"],
                    default=None,
                )
                for mode in ("describe", "embed")
            }
            lines += ["Hours at the best steady rate, one GPU (N GPUs: divide by N):", ""]
            lines += [
                "| mode | best rate (variant, batch) | Amazon Baby 7,050 | 100k | 10M |",
                "| --- | --- | --- | --- | --- |",
            ]
            for mode, r in best.items():
                if r is None:
                    continue
                rate = r["steady_items_per_s"]
                lines.append(
                    f"| {mode} | {rate:.2f}/s ({r['variant']}, {r['batch']}) | {hours(7050, rate):.2f} | "
                    f"{hours(100_000, rate):.1f} | {hours(10_000_000, rate):,.0f} |"
                )
            lines.append("")
    skipped = payload.get("skipped") or []
    if skipped:
        lines += [
            f"Not run in this invocation (time budget; re-run the command to continue): {len(skipped)} runs.",
            "",
        ]
    return "\n".join(lines)


# ---- main -----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="tiny random models on CPU: checks the script only")
    p.add_argument("--model", action="append", help="qwen2vl-2b, llava-7b (repeatable; default both)")
    p.add_argument("--modes", default="embed,describe")
    p.add_argument("--variants", default=None, help="comma list; default all for each mode")
    p.add_argument("--batches", default=None, help="batch sweep (default 8,32,64,128,256; tiny 2,4,8)")
    p.add_argument("--new-tokens", type=int, default=None, help="new tokens per described item (64; tiny 8)")
    p.add_argument("--steady-batches", type=int, default=2)
    p.add_argument("--naive-items", type=int, default=None, help="items in the naive loop (8; tiny 4)")
    p.add_argument("--image-size", type=int, default=448)
    p.add_argument("--prompt", default="vlm4rec")
    p.add_argument("--budget-s", type=float, default=540.0, help="start no run after this many seconds")
    p.add_argument("--checkpoints", type=Path, default=None, help="checkpoint folder (default .cache/...)")
    p.add_argument("--label", default=None)
    p.add_argument("--redo", action="store_true", help="redo runs already in the state file")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (tiny default 1)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    t0 = time.monotonic()
    cuda = torch.cuda.is_available()
    if not cuda and not args.tiny:
        raise SystemExit(
            "the real-size benchmark needs a CUDA GPU; run with --tiny to check the script on CPU"
        )
    torch.set_num_threads(args.threads or (1 if args.tiny else torch.get_num_threads()))
    device = "cuda" if cuda and not args.tiny else "cpu"
    args.new_tokens = args.new_tokens or (8 if args.tiny else 64)
    args.naive_items = args.naive_items or (4 if args.tiny else 8)
    batches = [int(b) for b in (args.batches or ("2,4,8" if args.tiny else "8,32,64,128,256")).split(",")]
    names = args.model or (list(TINY_BUILDERS) + ["qwen2vl"] if args.tiny else list(PUBLISHED))
    gpu_name = torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "CPU"
    short = "".join(ch for ch in gpu_name.split()[1] if ch.isalnum()).lower() if device == "cuda" else "cpu"
    label = args.label or ("cpu_tiny" if args.tiny else short)
    out_dir = Path(os.environ.get("OUT") or ROOT / "benchmarks" / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_root = args.checkpoints or (
        Path(tempfile.mkdtemp(prefix="lvlm_tiny_")) if args.tiny else ROOT / ".cache" / "lvlm_throughput"
    )
    state_file = None if args.tiny else ckpt_root / f"state_{label}.json"
    state: dict = json.loads(state_file.read_text()) if state_file and state_file.exists() else {}
    state.pop("_skipped", None)
    infos: dict = state.setdefault("_info", {})
    deadline = t0 + args.budget_s
    modes = [m for m in args.modes.split(",") if m]

    for name in names:
        if name == "qwen2vl" and args.tiny:
            try:
                import torchvision  # noqa: F401
            except ImportError:
                infos[name] = {"skipped": "Qwen2-VL's processor needs torchvision, not importable here"}
                continue
        t = time.monotonic()
        path = build_checkpoint(name, ckpt_root, args.tiny, device)
        build_s = time.monotonic() - t
        t = time.monotonic()
        lvlm = LVLM(str(path), device=device)
        load_s = time.monotonic() - t
        bench = Bench(name, lvlm, args, state, deadline)
        probe = bench.template.render(TITLES[3])
        auto = {
            m: lvlm.resolve_batch_size(
                None,
                probe,
                "generate" if m == "describe" else "embed",
                _generation("dynamic", args.new_tokens),
            ).manifest()
            for m in modes
        }
        info = infos.setdefault(name, {})
        info.update(
            parameters=sum(p.numel() for p in lvlm.model.parameters()),
            build_s=info.get("build_s") or round(build_s, 1),
            load_s=round(load_s, 1),
            auto_batch=auto,
            layer_capture=lvlm.layer_capture,
            prompt_tokens=lvlm.prompt_lengths(*bench.items(1)[::2]),
        )
        for mode in modes:
            bench.naive(mode)
            variants = [
                v for v in (args.variants or ",".join(VARIANTS[mode])).split(",") if v in VARIANTS[mode]
            ]
            for variant in variants:
                if (
                    variant == "static+compile"
                    and device == "cpu"
                    and "static+compile" not in (args.variants or "")
                ):
                    continue  # minutes of CPU kernel compilation; opt in with --variants
                for b in batches:
                    if bench.run(mode, variant, b) != "ok":
                        break  # out of memory: larger batches will not fit; an error: they would fail too
                if state_file:
                    state_file.parent.mkdir(parents=True, exist_ok=True)
                    state_file.write_text(json.dumps(state, indent=1))
        del bench, lvlm
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()

    import transformers

    from benchmarks._common import environment

    runs = [v for k, v in state.items() if not k.startswith("_")]
    payload = {
        "label": label,
        "tiny": args.tiny,
        "claim": (
            "CPU tiny check: tiny random-weight models on a shared 2-core CPU exercise every path of this script; "
            "these are not throughput figures"
            if args.tiny
            else "Throughput of vlmrec's LVLM paths at real model size (random weights from published configs)"
        ),
        "environment": environment(),
        "device": {
            "name": gpu_name,
            "total_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
            if device == "cuda"
            else None,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        },
        "settings": {
            "dtype": "float32 (CPU)" if device == "cpu" else "bfloat16",
            "transformers": transformers.__version__,
            "image_size": args.image_size,
            "prompt": args.prompt,
            "new_tokens": args.new_tokens,
            "steady_batches": args.steady_batches,
            "naive_items": args.naive_items,
            "batches": batches,
        },
        "models": {
            name: {"info": infos.get(name, {}), "runs": [r for r in runs if r["model"] == name]}
            for name in dict.fromkeys([*infos, *(r["model"] for r in runs)])
        },
        "skipped": state.get("_skipped", []),
        "elapsed_s": round(time.monotonic() - t0, 1),
    }
    (out_dir / f"lvlm_throughput_{label}.json").write_text(json.dumps(payload, indent=1, default=str))
    md = markdown(payload)
    (out_dir / f"lvlm_throughput_{label}.md").write_text(md + "\n")
    print(md)
    return payload


if __name__ == "__main__":
    main()
