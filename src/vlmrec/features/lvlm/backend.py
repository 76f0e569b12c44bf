"""What every LVLM back-end offers (`LVLMBackend`): the one batch-size resolver and the one
`generate` entry point; a back-end supplies its automatic batch size and its decoding loop."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from PIL import Image

from vlmrec.features.lvlm.batching import BatchChoice, BatchSize, BatchSource, checked_batch_size
from vlmrec.features.lvlm.options import GenerationOptions, Mode


class LVLMBackend(ABC):
    """An image-text-to-text model behind a back-end (transformers, vLLM)."""

    model_id: str
    generation: GenerationOptions
    # how a manifest names a batch size the caller gave
    EXPLICIT_SOURCE: ClassVar[BatchSource] = "explicit"

    def resolve_batch_size(
        self,
        requested: int | None,
        prompt: str,
        mode: Mode,
        generation: GenerationOptions | None = None,
        announce: bool = True,
    ) -> BatchChoice:
        """The caller's batch size if given (>= 1), else the back-end's automatic choice for `prompt`
        (which should be a long prompt of the job: memory estimates scale with its length)."""
        explicit = checked_batch_size(requested)
        if explicit is not None:
            return BatchChoice(explicit, self.EXPLICIT_SOURCE)
        return self._automatic_batch(prompt, mode, generation or self.generation, announce)

    def generate(
        self,
        images: Sequence[Image.Image],
        prompts: Sequence[str],
        max_new_tokens: int | None = None,
        options: GenerationOptions | None = None,
        batch_size: BatchSize = None,
    ) -> list[str]:
        """Decoded answers, in input order. `options` default to the model's; `max_new_tokens`
        overrides theirs. Sampling, when asked, is seeded with `options.seed` at each call."""
        opts = options or self.generation
        if max_new_tokens is not None and max_new_tokens != opts.max_new_tokens:
            opts = GenerationOptions.from_options({**opts.model_dump(), "max_new_tokens": max_new_tokens})
        if not len(images):
            return []
        return self._generate(images, prompts, opts, batch_size)

    @abstractmethod
    def _automatic_batch(
        self, prompt: str, mode: Mode, generation: GenerationOptions, announce: bool
    ) -> BatchChoice:
        """The batch size when the caller gives none."""

    @abstractmethod
    def _generate(
        self, images: Sequence[Image.Image], prompts: Sequence[str], opts: GenerationOptions, batch: BatchSize
    ) -> list[str]:
        """Decoded answers for a non-empty job, in input order."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Provenance of the model for manifests."""
