"""The vLLM back-end (GPU only, optional): `VLLMGenerator`, generation at scale with the same chat
texts and decoding options as the transformers back-end's `LVLM.generate`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

from vlmrec.errors import ConfigError, ModelError
from vlmrec.features.lvlm.backend import LVLMBackend
from vlmrec.features.lvlm.batching import BatchChoice, BatchSize
from vlmrec.features.lvlm.chat import chat_texts
from vlmrec.features.lvlm.options import NO_LVLM_HELP, GenerationOptions, Mode

VLLM_HANDOFF = 256  # items handed to vLLM per call when the caller sets no batch size


class VLLMGenerator(LVLMBackend):
    """Generation at scale with vLLM (GPU only, optional): the same chat prompts and decoding options
    as `LVLM.generate`. vLLM schedules its own batches (continuous batching), so a batch size only
    sets how many items are handed over at once. Embeddings stay on the transformers backend (vLLM
    exposes no hidden states). Beam search and the static-cache/compile options are transformers
    options and are refused here."""

    EXPLICIT_SOURCE = "vllm"

    def __init__(
        self,
        model: str | None,
        generation: GenerationOptions | None = None,
        trust_remote_code: bool = False,
        **engine_kwargs: Any,
    ):
        if not model:
            raise ModelError(NO_LVLM_HELP)
        self.generation = generation or GenerationOptions()
        self._check(self.generation)
        try:
            from vllm import LLM
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

    @staticmethod
    def _check(opts: GenerationOptions) -> None:
        if opts.num_beams > 1 or opts.cache_implementation != "dynamic" or opts.compile:
            raise ConfigError(
                "the vLLM backend takes no num_beams > 1, cache_implementation or compile "
                "(transformers options); use the transformers backend for them"
            )

    def _automatic_batch(
        self, prompt: str, mode: Mode, generation: GenerationOptions, announce: bool
    ) -> BatchChoice:
        """Items handed to vLLM per call when the caller sets none (vLLM batches them itself)."""
        return BatchChoice(VLLM_HANDOFF, "vllm")

    def _generate(
        self, images: Sequence[Image.Image], prompts: Sequence[str], opts: GenerationOptions, batch: BatchSize
    ) -> list[str]:
        """Decoded answers, in input order (vLLM keeps the request order and batches by itself)."""
        from vllm import SamplingParams

        self._check(opts)
        params = SamplingParams(
            temperature=(opts.temperature if opts.temperature is not None else 1.0)
            if opts.do_sample
            else 0.0,
            top_p=opts.top_p if opts.top_p is not None else 1.0,
            top_k=opts.top_k or -1,
            max_tokens=opts.max_new_tokens,
            min_tokens=opts.min_new_tokens,
            repetition_penalty=opts.repetition_penalty,
            seed=opts.seed if opts.do_sample else None,
        )
        requests = []
        for image, text in zip(images, chat_texts(self.processor, prompts)):
            requests.append({"prompt": text, "multi_modal_data": {"image": image}})
        outputs = self.llm.generate(requests, params)
        return [o.outputs[0].text.strip() for o in outputs]

    def describe(self) -> dict[str, Any]:
        """Provenance of the model for manifests."""
        return {
            "model": self.model_id,
            "architecture": "vLLM",
            "dtype": "auto",
            "processor": type(self.processor).__name__,
        }
