"""The transformers back-end: `LVLM`, an image-text-to-text checkpoint with batched, length-sorted
`embed` (pooled hidden states, see layers.py) and `generate` (decoded text).

Any checkpoint that `AutoProcessor` + `AutoModelForImageTextToText` load works (LLaVA /
LLaVA-NeXT, Idefics3 / SmolVLM, Qwen2-VL / Qwen2.5-VL, PaliGemma...; Phi-3.5-vision with
trust_remote_code). Chat templates are applied through the processor. On GPU the weights are
bf16 (fp16 where bf16 is unsupported); 4-bit when asked and bitsandbytes is installed.

transformers' own annotations change between patch releases (a `type: ignore` one release needs,
the next reports as unused), so its model and processor are held as `Any` here: the type check
does not depend on which release is installed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image

from vlmrec.errors import ModelError
from vlmrec.features.lvlm.backend import LVLMBackend
from vlmrec.features.lvlm.batching import (
    CPU_BATCH,
    PROBE_IMAGE_SIZE,
    BatchChoice,
    BatchRunner,
    BatchSize,
    choose_batch_size,
    estimate_item_bytes,
)
from vlmrec.features.lvlm.chat import chat_texts
from vlmrec.features.lvlm.layers import hidden_states_at, pool, resolve_layers, text_decoder
from vlmrec.features.lvlm.options import NO_LVLM_HELP, POOLINGS, GenerationOptions, Mode

log = logging.getLogger(__name__)

STATIC_CACHE_STEP = 128  # static KV caches are sized in steps of this many tokens (fewer recompiles)

T = TypeVar("T")


def _pick_device_dtype(device: str | None, dtype: str | None) -> tuple[torch.device, torch.dtype]:
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dtype:
        return dev, getattr(torch, dtype)
    if dev.type == "cuda":
        return dev, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return dev, torch.float32


def _load(model_id: str, dtype: torch.dtype, load_in_4bit: bool, trust_remote_code: bool) -> tuple[Any, Any]:
    """(processor, model) for a checkpoint folder or hub id; errors say what to pass instead."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": trust_remote_code}
    if load_in_4bit:
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except ImportError as e:
            raise ModelError("load_in_4bit needs `pip install bitsandbytes` (GPU only)") from e
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=dtype)
    if not Path(model_id).exists():
        log.warning("LVLM %r is not a local folder; it will be looked up on the model hub", model_id)
    try:
        processor: Any = AutoProcessor.from_pretrained(model_id, trust_remote_code=trust_remote_code)
        model: Any = AutoModelForImageTextToText.from_pretrained(model_id, **kwargs)
    except (OSError, ValueError, ImportError) as e:
        raise ModelError(f"cannot load LVLM {model_id!r}: {e}\n{NO_LVLM_HELP}") from e
    return processor, model


class LVLM(LVLMBackend):
    """A transformers image-text-to-text model with batched, length-sorted `embed` and `generate`."""

    def __init__(
        self,
        model: str | None,
        device: str | None = None,
        dtype: str | None = None,
        load_in_4bit: bool = False,
        trust_remote_code: bool = False,
        generation: GenerationOptions | None = None,
    ):
        if not model:
            raise ModelError(NO_LVLM_HELP)
        self.model_id = str(model)
        self.device, self.dtype = _pick_device_dtype(device, dtype)
        self.processor, self.model = _load(self.model_id, self.dtype, load_in_4bit, trust_remote_code)
        if not load_in_4bit:
            self.model.to(self.device)
        self.model.eval()
        tok = getattr(self.processor, "tokenizer", None)
        if tok is not None:
            tok.padding_side = "left"  # generation appends on the right; last token = position -1
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
        cfg = self.model.config
        self.image_token_id = getattr(cfg, "image_token_id", None) or getattr(cfg, "image_token_index", None)
        self.generation = generation or GenerationOptions()
        self.decoder = text_decoder(self.model)
        self.num_hidden_states = cfg.get_text_config().num_hidden_layers + 1
        self.layer_capture = (
            "forward hooks" if self.decoder is not None else "output_hidden_states (all layers)"
        )
        if self.decoder is None:
            log.warning("%s: no decoder stack found; embed falls back to output_hidden_states", self.model_id)
        self._batches = BatchRunner()  # remembers batch sizes halved after running out of GPU memory
        self._oom_cap = self._batches.oom_cap

    # ---- inputs --------------------------------------------------------------------------
    def inputs(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Processor outputs for one batch (left-padded), on the model's device and dtype."""
        texts = chat_texts(self.processor, prompts)
        batch = self.processor(text=texts, images=[[im] for im in images], return_tensors="pt", padding=True)
        return {
            k: (v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device))
            for k, v in batch.items()
        }

    def prompt_lengths(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[int]:
        """Tokenised length of each item's input: chat text tokens with the image placeholder replaced by
        the image tokens the processor inserts (from the processor's own count where it has one; else
        by processing each item, exact but slower)."""
        counter = getattr(self.processor, "_get_num_multimodal_tokens", None)
        tok = getattr(self.processor, "tokenizer", None)
        if counter is not None and tok is not None and self.image_token_id is not None:
            try:
                n_image = counter(image_sizes=[(im.height, im.width) for im in images]).num_image_tokens
            except (AttributeError, TypeError, ValueError, KeyError):
                n_image = None
            if n_image is not None and len(n_image) == len(images):
                ids = tok(chat_texts(self.processor, prompts))["input_ids"]
                return [len(t) - t.count(self.image_token_id) + int(k) for t, k in zip(ids, n_image)]
        return [int(self.inputs([im], [p])["input_ids"].shape[1]) for im, p in zip(images, prompts)]

    # ---- batch size ----------------------------------------------------------------------
    def free_memory(self) -> int | None:
        """Free bytes on the model's GPU, or None off CUDA."""
        if self.device.type != "cuda":
            return None
        free, _total = torch.cuda.mem_get_info(self.device)
        return int(free)

    def item_memory(
        self, prompt: str, mode: Mode, generation: GenerationOptions | None = None
    ) -> tuple[int, int, int]:
        """(estimated bytes per item, prompt tokens, image tokens) for `prompt` with a
        PROBE_IMAGE_SIZE square image (see `estimate_item_bytes`)."""
        probe = Image.new("RGB", (PROBE_IMAGE_SIZE, PROBE_IMAGE_SIZE), (128, 128, 128))
        ids = self.inputs([probe], [prompt])["input_ids"]
        image_tokens = int((ids == self.image_token_id).sum()) if self.image_token_id is not None else 0
        dtype_bytes = torch.finfo(self.dtype).bits // 8 if self.dtype.is_floating_point else 2
        item = estimate_item_bytes(
            self.model.config, ids.shape[1], image_tokens, mode, generation or self.generation, dtype_bytes
        )
        return item, int(ids.shape[1]), image_tokens

    def _automatic_batch(
        self, prompt: str, mode: Mode, generation: GenerationOptions, announce: bool
    ) -> BatchChoice:
        """On CUDA, `choose_batch_size` from the free memory and the estimated memory per item for
        `prompt` (at most MAX_BATCH); else CPU_BATCH."""
        free = self.free_memory()
        if free is None:
            return BatchChoice(CPU_BATCH, "cpu-default")
        item, tokens, image_tokens = self.item_memory(prompt, mode, generation)
        size = choose_batch_size(free, item)
        (log.info if announce else log.debug)(
            "%s batch size %d chosen from %.1f GiB free (about %.0f MiB per item: %d prompt tokens, %d of "
            "them image tokens%s); override with --batch-size",
            mode,
            size,
            free / 2**30,
            item / 2**20,
            tokens,
            image_tokens,
            f", {generation.max_new_tokens} new tokens" if mode == "generate" else "",
        )
        return BatchChoice(size, "auto", item, tokens)

    def _as_choice(
        self,
        batch_size: BatchSize,
        prompts: Sequence[str],
        lengths: Sequence[int],
        mode: Mode,
        generation: GenerationOptions,
    ) -> BatchChoice:
        if isinstance(batch_size, BatchChoice):
            return batch_size
        longest = prompts[int(np.argmax(lengths))]
        return self.resolve_batch_size(batch_size, longest, mode, generation, announce=False)

    # ---- embeddings ----------------------------------------------------------------------
    @torch.no_grad()
    def embed(
        self,
        images: Sequence[Image.Image],
        prompts: Sequence[str],
        layer: int | str = -1,
        pooling: str = "mean",
        batch_size: BatchSize = None,
    ) -> np.ndarray:
        """One pooled float32 vector per (image, prompt), in input order. `batch_size`: an int, a
        resolved `BatchChoice`, or None to choose (see `resolve_batch_size`)."""
        if pooling not in POOLINGS:
            raise ModelError(f"pooling {pooling!r}: choose one of {POOLINGS}")
        indices = resolve_layers(layer, self.num_hidden_states)
        if not len(images):
            return np.zeros((0, self.model.config.get_text_config().hidden_size), np.float32)
        lengths = self.prompt_lengths(images, prompts)
        batch = self._as_choice(batch_size, prompts, lengths, "embed", self.generation)

        def run(idx: list[int]) -> np.ndarray:
            return self._embed_batch([images[i] for i in idx], [prompts[i] for i in idx], indices, pooling)

        return np.stack(self._batches(lengths, batch, "embed", run)).astype(np.float32, copy=False)

    def _embed_batch(
        self, images: list[Image.Image], prompts: list[str], indices: list[int], pooling: str
    ) -> np.ndarray:
        batch = self.inputs(images, prompts)
        hidden = hidden_states_at(self.model, self.decoder, batch, indices, self.model_id)
        return (
            pool(hidden, batch["input_ids"], batch["attention_mask"], pooling, self.image_token_id)
            .cpu()
            .numpy()
        )

    # ---- generation ----------------------------------------------------------------------
    @torch.no_grad()
    def _generate(
        self, images: Sequence[Image.Image], prompts: Sequence[str], opts: GenerationOptions, batch: BatchSize
    ) -> list[str]:
        """Length-sorted batches through transformers' `generate`, prompt tokens cut off the answers."""
        lengths = self.prompt_lengths(images, prompts)
        choice = self._as_choice(batch, prompts, lengths, "generate", opts)
        kwargs = opts.generate_kwargs(self.device)
        if opts.cache_implementation == "static":
            # one cache length for the whole job, so the compiled decoding step keeps its shapes
            need = max(lengths) + opts.max_new_tokens
            kwargs["max_cache_len"] = STATIC_CACHE_STEP * math.ceil(need / STATIC_CACHE_STEP)
        if opts.do_sample:
            torch.manual_seed(opts.seed)

        def run(idx: list[int]) -> list[str]:
            inputs = self.inputs([images[i] for i in idx], [prompts[i] for i in idx])
            out = self.model.generate(**inputs, **kwargs)
            new = out[:, inputs["input_ids"].shape[1] :]
            return [t.strip() for t in self.processor.batch_decode(new, skip_special_tokens=True)]

        return self._batches(lengths, choice, "generate", run)

    def describe(self) -> dict[str, Any]:
        """Provenance of the model for manifests."""
        return {
            "model": self.model_id,
            "architecture": type(self.model).__name__,
            "dtype": str(self.dtype).replace("torch.", ""),
            "processor": type(self.processor).__name__,
        }
