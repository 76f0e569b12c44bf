"""The chat text an LVLM reads for one item: a user turn holding the image and the prompt, through
the processor's own chat template (one builder for every back-end, so they read the same text)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def chat_texts(processor: Any, prompts: Sequence[str]) -> list[str]:
    """One templated chat text per prompt (image placeholder first, generation prompt appended)."""
    return [
        processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}],
            add_generation_prompt=True,
            tokenize=False,
        )
        for prompt in prompts
    ]
