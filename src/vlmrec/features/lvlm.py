"""Large vision-language models (transformers) for item representations.

Two uses, both under a structured prompt (see prompts.py):
  embed:    image + prompt -> hidden states -> one pooled vector per item (Pomo et al.)
  generate: image + prompt -> text (decoded descriptions, FITB attributes; VLM4Rec)

Any checkpoint that `AutoProcessor` + `AutoModelForImageTextToText` load works (LLaVA /
LLaVA-NeXT, Idefics3 / SmolVLM, Qwen2-VL / Qwen2.5-VL, PaliGemma...; Phi-3.5-vision with
trust_remote_code). Chat templates are applied through the processor. On GPU the weights are
bf16 (fp16 where bf16 is unsupported); 4-bit when asked and bitsandbytes is installed.

Pooling (B items, T tokens, hidden states H of the chosen layer):
  mean    sum_t m_t H_t / sum_t m_t   over attended tokens (attention mask m)
  image   the same over image-placeholder tokens (input_ids == image_token_id)
  prompt  the same over attended non-image tokens
  last    H at the last attended position
Layer: an index into `hidden_states` (-1 last, 0 embeddings) or "mean_last_N".
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from vlmrec.errors import ModelError

log = logging.getLogger(__name__)

POOLINGS = ("mean", "image", "prompt", "last")
NO_LVLM_HELP = (
    "no LVLM weights are available offline here: pass --model with a local checkpoint folder "
    "(e.g. a downloaded Qwen2-VL, LLaVA or SmolVLM) or a hub id on a machine that can reach a hub. "
    "Offline, use the label+OCR describer instead: `vlmrec extract --extractor describe-ocr` "
    "(it is not an LVLM and says so in its outputs)."
)


def _pick_device_dtype(device: str | None, dtype: str | None) -> tuple[torch.device, torch.dtype]:
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dtype:
        return dev, getattr(torch, dtype)
    if dev.type == "cuda":
        return dev, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return dev, torch.float32


class LVLM:
    def __init__(
        self,
        model: str | None,
        device: str | None = None,
        dtype: str | None = None,
        load_in_4bit: bool = False,
        trust_remote_code: bool = False,
        max_new_tokens: int = 96,
    ):
        if not model:
            raise ModelError(NO_LVLM_HELP)
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.model_id = str(model)
        self.device, self.dtype = _pick_device_dtype(device, dtype)
        kwargs: dict[str, Any] = {"dtype": self.dtype, "trust_remote_code": trust_remote_code}
        if load_in_4bit:
            try:
                import bitsandbytes  # noqa: F401
                from transformers import BitsAndBytesConfig
            except ImportError as e:
                raise ModelError("load_in_4bit needs `pip install bitsandbytes` (GPU only)") from e
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_compute_dtype=self.dtype
            )
        if not Path(self.model_id).exists():
            log.warning("LVLM %r is not a local folder; it will be looked up on the model hub", self.model_id)
        try:
            self.processor = AutoProcessor.from_pretrained(self.model_id, trust_remote_code=trust_remote_code)
            self.model = AutoModelForImageTextToText.from_pretrained(self.model_id, **kwargs)
        except (OSError, ValueError, ImportError) as e:
            raise ModelError(f"cannot load LVLM {self.model_id!r}: {e}\n{NO_LVLM_HELP}") from e
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
        self.max_new_tokens = max_new_tokens

    # ---- inputs --------------------------------------------------------------------------
    def inputs(self, images: list[Image.Image], prompts: list[str]) -> dict[str, torch.Tensor]:
        texts = []
        for prompt in prompts:
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
            texts.append(
                self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            )
        batch = self.processor(text=texts, images=[[im] for im in images], return_tensors="pt", padding=True)
        return {
            k: (v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device))
            for k, v in batch.items()
        }

    # ---- embeddings ----------------------------------------------------------------------
    @torch.no_grad()
    def embed(
        self, images: list[Image.Image], prompts: list[str], layer: int | str = -1, pooling: str = "mean"
    ) -> np.ndarray:
        if pooling not in POOLINGS:
            raise ModelError(f"pooling {pooling!r}: choose one of {POOLINGS}")
        batch = self.inputs(images, prompts)
        out = self.model(**batch, output_hidden_states=True)
        hidden = select_layer(out.hidden_states, layer)
        return (
            pool(hidden.float(), batch["input_ids"], batch["attention_mask"], pooling, self.image_token_id)
            .cpu()
            .numpy()
        )

    # ---- generation ----------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self, images: list[Image.Image], prompts: list[str], max_new_tokens: int | None = None
    ) -> list[str]:
        batch = self.inputs(images, prompts)
        out = self.model.generate(
            **batch, max_new_tokens=max_new_tokens or self.max_new_tokens, do_sample=False
        )
        new = out[:, batch["input_ids"].shape[1] :]
        return [t.strip() for t in self.processor.batch_decode(new, skip_special_tokens=True)]

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "architecture": type(self.model).__name__,
            "dtype": str(self.dtype).replace("torch.", ""),
            "processor": type(self.processor).__name__,
        }


def select_layer(hidden_states: tuple[torch.Tensor, ...], layer: int | str) -> torch.Tensor:
    if isinstance(layer, str):
        if layer.startswith("mean_last_"):
            n = int(layer.rsplit("_", 1)[1])
            return torch.stack(hidden_states[-n:]).mean(0)
        try:
            layer = int(layer)
        except ValueError:
            raise ModelError(f"layer {layer!r}: expected an integer index or 'mean_last_N'") from None
    if not -len(hidden_states) <= layer < len(hidden_states):
        raise ModelError(
            f"layer {layer}: the model has {len(hidden_states)} hidden-state layers (0 = embeddings)"
        )
    return hidden_states[layer]


def pool(
    hidden: torch.Tensor,
    input_ids: torch.Tensor,
    attention: torch.Tensor,
    pooling: str,
    image_token_id: int | None,
) -> torch.Tensor:
    mask = attention.bool()
    if pooling == "last":
        pos = attention.shape[1] - 1 - torch.flip(attention, dims=[1]).argmax(1)
        return hidden[torch.arange(hidden.shape[0]), pos]
    if pooling in ("image", "prompt"):
        if image_token_id is None:
            raise ModelError("this model's config names no image token id; use pooling 'mean' or 'last'")
        is_image = input_ids == image_token_id
        mask = mask & is_image if pooling == "image" else mask & ~is_image
        if not mask.any(1).all():
            raise ModelError(f"pooling {pooling!r}: some inputs have no {pooling} tokens")
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


class VLLMGenerator:
    """Generation at scale with vLLM (GPU only, optional): the same chat prompts and greedy decoding
    as `LVLM.generate`. Embeddings stay on the transformers backend (vLLM exposes no hidden states)."""

    def __init__(
        self, model: str | None, max_new_tokens: int = 96, trust_remote_code: bool = False, **engine_kwargs
    ):
        if not model:
            raise ModelError(NO_LVLM_HELP)
        try:
            from vllm import LLM, SamplingParams
        except ImportError as e:
            raise ModelError(
                "the vLLM backend needs `pip install vllm` on a GPU machine; "
                "use the default transformers backend otherwise"
            ) from e
        from transformers import AutoProcessor

        self.model_id = str(model)
        self.processor = AutoProcessor.from_pretrained(self.model_id, trust_remote_code=trust_remote_code)
        self.llm = LLM(
            model=self.model_id,
            trust_remote_code=trust_remote_code,
            limit_mm_per_prompt={"image": 1},
            **engine_kwargs,
        )
        self._params = lambda n: SamplingParams(temperature=0.0, max_tokens=n)
        self.max_new_tokens = max_new_tokens

    def generate(
        self, images: list[Image.Image], prompts: list[str], max_new_tokens: int | None = None
    ) -> list[str]:
        requests = []
        for image, prompt in zip(images, prompts):
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
            text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            requests.append({"prompt": text, "multi_modal_data": {"image": image}})
        outputs = self.llm.generate(requests, self._params(max_new_tokens or self.max_new_tokens))
        return [o.outputs[0].text.strip() for o in outputs]

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "architecture": "vLLM",
            "dtype": "auto",
            "processor": type(self.processor).__name__,
        }
